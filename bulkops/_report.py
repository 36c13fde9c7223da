"""What ``report.json`` says, as typed values: one run's counts, and for a journaled job the
whole job's (every run summed), so a resumed job reports as if it had never stopped.

The report is built from :class:`~bulkops._stats.JobStats` (this run) and the journal (the
whole job, counted after the last commit, so it always equals the result files).
"""

from __future__ import annotations

import enum
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from ._limiter import LimiterStats
from ._stats import JobStats, Stop, StopReason

__all__ = [
    "JobInfo",
    "JobReport",
    "JobStatus",
    "RateLimitReport",
    "RequestCounts",
    "RowCounts",
    "RunInfo",
    "Written",
    "run_report",
    "whole_job_report",
    "write_report_file",
]

REPORT_VERSION = 2


class JobStatus(enum.StrEnum):
    COMPLETE = "complete"  # every input row has an outcome
    STOPPED = "stopped"  # a stop (see ``stop``): resumable or fix-first
    CANCELLED = "cancelled"  # cancelled at once: requests in flight were abandoned
    ERROR = "error"  # an unexpected exception (in a Python source, say); see ``stop.message``
    RUNNING = "running"  # a snapshot the engine refreshes while the job runs (see Job.run)


@dataclass(frozen=True, slots=True)
class JobInfo:
    operation: str
    object_type: str
    api: str
    api_version: str
    host: str
    id_property: str | None
    input: str
    out_dir: str
    started_at: str
    finished_at: str


@dataclass(frozen=True, slots=True)
class RowCounts:
    read: int
    succeeded: int
    failed: int
    unprocessed: int
    input_exhausted: bool


@dataclass(frozen=True, slots=True)
class Written:
    created: int
    updated: int
    new_unknown: int


@dataclass(frozen=True, slots=True)
class RequestCounts:
    total: int
    by_kind: Mapping[str, int]
    by_status: Mapping[str, int]
    transport_failures: Mapping[str, int]
    resent_batches: int
    splits: int

    @property
    def throttled(self) -> int:
        return int(self.by_status.get("429", 0))


@dataclass(frozen=True, slots=True)
class RateLimitReport:
    configured: int | None
    learned_ceiling: int
    interval_s: float
    current_limit: float
    others_estimate: float
    by_policy_429: Mapping[str, int]
    daily_limit: int | None
    daily_remaining: int | None
    requests_per_s: float
    # Accepted requests per second over the ceiling; None when it would mean nothing (no
    # known ceiling, or a run shorter than one window).
    share_of_ceiling: float | None


@dataclass(frozen=True, slots=True)
class RunInfo:
    mode: str
    duration_s: float
    records_per_s: float
    requests: int
    skipped_finished_rows: int


@dataclass(frozen=True, slots=True)
class JobReport:
    status: JobStatus
    stop: Stop | None
    job: JobInfo
    rows: RowCounts
    written: Written
    failed_by_category: Mapping[str, int]
    requests: RequestCounts
    rate_limit: RateLimitReport
    duration_s: float
    records_per_s: float
    runs: int = 1
    this_run: RunInfo | None = None
    warnings: tuple[str, ...] = ()
    version: int = field(default=REPORT_VERSION)
    rows_left: int | None = None  # rows a trial run (--limit) left for ``bulkops resume``

    @property
    def succeeded(self) -> int:
        return self.rows.succeeded

    @property
    def failed(self) -> int:
        return self.rows.failed

    @property
    def stop_reason(self) -> StopReason | None:
        return None if self.stop is None else self.stop.reason

    @property
    def exit_code(self) -> int:
        """0 all written, 1 some records failed, 2 config error, 3 stopped (resumable)."""
        if self.stop is not None:
            return self.stop.reason.exit_code
        if self.status is not JobStatus.COMPLETE:
            return 3
        return 1 if self.failed else 0

    def raise_for_status(self) -> JobReport:
        """Raise the typed error for a job that stopped before every row was finished
        (:class:`~bulkops.JobStopped` and its kinds, each carrying this report); return the
        report otherwise. Failed rows are results, not errors: they never raise here (set
        ``max_failures`` to stop a job whose rows mostly fail)."""
        from ._stop_errors import error_for

        error = error_for(self)
        if error is not None:
            raise error
        return self

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate_limit"]["429_by_policy"] = data["rate_limit"].pop("by_policy_429")
        data["stop"] = (
            None
            if self.stop is None
            else {"reason": self.stop.reason.value, "message": self.stop.message}
        )
        if self.stop is not None and self.stop.status is not None:
            data["stop"]["status"] = self.stop.status
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobReport:
        """A report read back from ``report.json`` or the journal's run history."""
        stop = data.get("stop")
        rl = dict(data["rate_limit"])
        rl["by_policy_429"] = rl.pop("429_by_policy", {})
        run = data.get("this_run")
        return cls(
            status=JobStatus(data["status"]),
            stop=None
            if not stop
            else Stop(StopReason(stop["reason"]), str(stop["message"]), stop.get("status")),
            job=JobInfo(**{"api_version": data["job"].get("api", "v3"), **data["job"]}),
            rows=RowCounts(**data["rows"]),
            written=Written(**data["written"]),
            failed_by_category=dict(data["failed_by_category"]),
            requests=RequestCounts(**data["requests"]),
            rate_limit=RateLimitReport(**rl),
            duration_s=float(data["duration_s"]),
            records_per_s=float(data["records_per_s"]),
            runs=int(data.get("runs", 1)),
            this_run=None if not run else RunInfo(**run),
            warnings=tuple(data.get("warnings", ())),
            rows_left=data.get("rows_left"),
        )


def _share(accepted: int, elapsed: float, ceiling: int, interval: float) -> float | None:
    if not ceiling or elapsed < interval or accepted <= 0:
        return None
    return round(accepted / elapsed / (ceiling / interval), 4)


def run_report(
    *,
    job: JobInfo,
    configured_limit: int | None,
    status: JobStatus,
    stop: Stop | None,
    elapsed: float,
    rows_read: int,
    reading_done: bool,
    stats: JobStats,
    limiter: LimiterStats,
    warnings: Sequence[str] = (),
) -> JobReport:
    """This run's report: what ``report.json`` holds for a job that ran once."""
    ls = limiter
    requests = stats.total_requests
    # 429s are not counted in HubSpot's window; what counts against the ceiling is the rest.
    accepted = requests - stats.by_status.get(429, 0)
    return JobReport(
        status=status,
        stop=stop,
        job=job,
        rows=RowCounts(
            read=rows_read,
            succeeded=stats.succeeded,
            failed=stats.failed,
            unprocessed=max(0, rows_read - stats.finished),
            input_exhausted=reading_done and status is not JobStatus.ERROR,
        ),
        written=Written(stats.created, stats.updated, stats.new_unknown),
        failed_by_category=dict(stats.failed_by_category),
        requests=RequestCounts(
            total=requests,
            by_kind=dict(sorted(stats.requests.items())),
            by_status={str(k): v for k, v in sorted(stats.by_status.items())},
            transport_failures=dict(stats.transport_failures),
            resent_batches=stats.resent_batches,
            splits=stats.splits,
        ),
        rate_limit=RateLimitReport(
            configured=configured_limit,
            learned_ceiling=ls.ceiling,
            interval_s=ls.window,
            current_limit=ls.limit,
            others_estimate=ls.others,
            by_policy_429=dict(stats.throttled),
            daily_limit=ls.daily_limit,
            daily_remaining=ls.daily_remaining,
            requests_per_s=round(accepted / elapsed, 2) if elapsed else 0.0,
            share_of_ceiling=_share(accepted, elapsed, ls.ceiling, ls.window),
        ),
        duration_s=round(elapsed, 3),
        records_per_s=round(stats.finished / elapsed, 1) if elapsed else 0.0,
        warnings=tuple(warnings),
    )


def _sum(counters: Sequence[Mapping[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counters:
        total.update({k: int(v) for k, v in c.items()})
    return dict(sorted(total.items()))


def whole_job_report(
    this_run: JobReport,
    earlier: Sequence[JobReport],
    totals: Mapping[str, Any],
    *,
    mode: str,
    skipped: int,
) -> JobReport:
    """This run's report with the row counts of the whole job (``totals``: the journal's
    counts after the last commit) and requests, statuses and 429s summed over every run."""
    runs = [*earlier, this_run]
    read = max(r.rows.read for r in runs)
    finished = int(totals["succeeded"]) + int(totals["failed"])
    duration = round(sum(r.duration_s for r in runs), 3)
    reqs = [r.requests for r in runs]
    requests = RequestCounts(
        total=sum(r.total for r in reqs),
        by_kind=_sum([r.by_kind for r in reqs]),
        by_status=_sum([r.by_status for r in reqs]),
        transport_failures=_sum([r.transport_failures for r in reqs]),
        resent_batches=sum(r.resent_batches for r in reqs),
        splits=sum(r.splits for r in reqs),
    )
    accepted = requests.total - requests.throttled
    rl = this_run.rate_limit
    return replace(
        this_run,
        rows=replace(
            this_run.rows,
            read=read,
            succeeded=int(totals["succeeded"]),
            failed=int(totals["failed"]),
            unprocessed=max(0, read - finished),
        ),
        written=Written(
            created=int(totals["created"]),
            updated=int(totals["updated"]),
            new_unknown=sum(r.written.new_unknown for r in runs),
        ),
        failed_by_category=dict(totals["failed_by_category"]),
        requests=requests,
        rate_limit=replace(
            rl,
            by_policy_429=_sum([r.rate_limit.by_policy_429 for r in runs]),
            requests_per_s=round(accepted / duration, 2) if duration else 0.0,
            share_of_ceiling=_share(accepted, duration, rl.learned_ceiling, rl.interval_s),
        ),
        duration_s=duration,
        records_per_s=round(finished / duration, 1) if duration else 0.0,
        runs=len(runs),
        this_run=RunInfo(
            mode=mode,
            duration_s=this_run.duration_s,
            records_per_s=this_run.records_per_s,
            requests=this_run.requests.total,
            skipped_finished_rows=skipped,
        ),
    )


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


REPORT_NAME = "report.json"


def write_report_file(out_dir: Path, report: JobReport) -> None:
    """Write ``out_dir/report.json`` atomically (temporary file, then rename): ``bulkops
    status`` and other readers see the previous report or this one, never half of one."""
    target = out_dir / REPORT_NAME
    tmp = out_dir / f".{REPORT_NAME}.writing"
    try:
        tmp.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
