"""What ``report.json`` says: one run's counts, and for a journaled job the whole job's."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ._config import JobConfig
from ._dispatcher import JobStats, StopReason
from ._journal import Journal
from ._limiter import LimiterStats
from ._results import ResultWriter

__all__ = ["JobReport", "run_report", "whole_job_report"]

# Stop reasons that mean "fix the command or the environment" (exit 2) rather than "the job
# was cut short and can be resumed" (exit 3).
_CONFIG_STOPS = frozenset({StopReason.CONFIG, StopReason.UNREACHABLE})


@dataclass(frozen=True, slots=True)
class JobReport:
    data: dict[str, Any]

    @property
    def succeeded(self) -> int:
        return int(self.data["rows"]["succeeded"])

    @property
    def failed(self) -> int:
        return int(self.data["rows"]["failed"])

    @property
    def stop_reason(self) -> str | None:
        stop = self.data.get("stop")
        return None if stop is None else str(stop["reason"])

    @property
    def exit_code(self) -> int:
        """0 all written, 1 some records failed, 2 config error, 3 stopped (resumable)."""
        reason = self.stop_reason
        if reason in _CONFIG_STOPS:
            return 2
        if reason is not None:
            return 3
        return 1 if self.failed else 0


def run_report(
    config: JobConfig,
    *,
    input_name: str,
    started_wall: float,
    elapsed: float,
    rows_read: int,
    reading_done: bool,
    writer: ResultWriter,
    stats: JobStats | None,
    limiter: LimiterStats,
    stop_reason: str | None,
) -> JobReport:
    """This run's report: what ``report.json`` holds for a job that ran once."""
    ls = limiter
    finished = writer.succeeded + writer.failed
    interval = ls.window
    requests = stats.requests if stats else 0
    # 429s are not counted in HubSpot's window; what counts against the ceiling is the rest.
    accepted = requests - sum(ls.throttled.values())
    ceiling_rps = ls.ceiling / interval if ls.ceiling else None
    data: dict[str, Any] = {
        "status": "stopped" if stop_reason else "complete",
        "stop": None
        if stop_reason is None
        else {
            "reason": stop_reason,
            "message": stats.stop_message if stats else None,
        },
        "job": {
            "operation": config.operation.value,
            "object_type": config.object_type,
            "api": config.api.value,
            "base_url": config.base_url,
            "id_property": config.id_property,
            "input": input_name,
            "out_dir": str(config.out_dir),
            "started_at": _iso(started_wall),
            "finished_at": _iso(time.time()),
        },
        "rows": {
            "read": rows_read,
            "succeeded": writer.succeeded,
            "failed": writer.failed,
            "unprocessed": max(0, rows_read - finished),
            "input_exhausted": reading_done and stop_reason is None,
        },
        "written": {
            "created": writer.created,
            "updated": writer.updated,
            "new_unknown": writer.new_unknown,
        },
        "failed_by_category": dict(writer.failed_by_category),
        "requests": {
            "total": requests,
            "write": stats.write_requests if stats else 0,
            "verify": stats.verify_requests if stats else 0,
            "isolation": stats.isolation_requests if stats else 0,
            "resent_batches": stats.resent_batches if stats else 0,
            "splits": stats.splits if stats else 0,
            "by_status": {str(k): v for k, v in sorted(stats.by_status.items())} if stats else {},
            "transport_failures": dict(stats.transport_failures) if stats else {},
        },
        "rate_limit": {
            "configured": config.rate_limit,
            "learned_ceiling": ls.ceiling,
            "interval_s": interval,
            "current_limit": ls.limit,
            "others_estimate": ls.others,
            "429_by_policy": dict(ls.throttled),
            "daily_limit": ls.daily_limit,
            "daily_remaining": ls.daily_remaining,
            "requests_per_s": round(accepted / elapsed, 2) if elapsed else 0.0,
            "share_of_ceiling": (
                round(accepted / elapsed / ceiling_rps, 4) if elapsed and ceiling_rps else None
            ),
        },
        "duration_s": round(elapsed, 3),
        "records_per_s": round(finished / elapsed, 1) if elapsed else 0.0,
    }
    return JobReport(data)


def whole_job_report(journal: Journal, report: JobReport, *, mode: str, skipped: int) -> JobReport:
    """This run's report, with the row counts of the whole job and requests summed over
    every run, so a resumed job reports as if it had never stopped."""
    this_run = report.data
    journal.add_run(this_run)
    runs = journal.runs()
    totals = journal.counts()
    data = dict(this_run)
    read = max(int(r["rows"]["read"]) for r in runs)
    finished = totals["succeeded"] + totals["failed"]
    data["rows"] = {
        **this_run["rows"],
        "read": read,
        "succeeded": totals["succeeded"],
        "failed": totals["failed"],
        "unprocessed": max(0, read - finished),
    }
    data["written"] = {
        "created": totals["created"],
        "updated": totals["updated"],
        "new_unknown": sum(int(r["written"]["new_unknown"]) for r in runs),
    }
    data["failed_by_category"] = totals["failed_by_category"]
    requests = {k: v for k, v in this_run["requests"].items() if isinstance(v, int)}
    for key in requests:
        requests[key] = sum(int(r["requests"].get(key, 0)) for r in runs)
    data["requests"] = {**this_run["requests"], **requests}
    data["runs"] = len(runs)
    data["duration_s"] = round(sum(float(r["duration_s"]) for r in runs), 3)
    data["records_per_s"] = round(finished / data["duration_s"], 1) if finished else 0.0
    data["this_run"] = {
        "mode": mode,
        "duration_s": this_run["duration_s"],
        "records_per_s": this_run["records_per_s"],
        "requests": this_run["requests"]["total"],
        "skipped_finished_rows": skipped,
    }
    return JobReport(data)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
