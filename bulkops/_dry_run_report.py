"""What a dry run found, as typed values (``report.json`` of a dry run), and its summary text.

Pure: the estimates are arithmetic on counts and on what the schema read's headers said.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ._limiter import LimiterStats
from ._stats import Stop

__all__ = ["DryRunReport", "Estimate", "ReadCheck", "estimate", "format_dry_run"]

DRY_RUN_REPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Estimate:
    """How long the writes would take and what share of the daily quota they would use."""

    write_requests: int
    per_window: int | None  # requests per window the estimate assumes; None: no limit
    window_s: float
    limit_source: str  # configured, learned (from the schema read's headers), default, none
    wall_time_s: float | None
    daily_limit: int | None
    daily_remaining: int | None
    share_of_daily_limit: float | None
    share_of_daily_remaining: float | None


@dataclass(frozen=True, slots=True)
class ReadCheck:
    """``--dry-run=reads``: the target records read back (at read cost)."""

    read_requests: int
    exist: int
    missing: int
    first_missing: tuple[int, ...]  # row numbers


@dataclass(frozen=True, slots=True)
class DryRunReport:
    operation: str
    object_type: str
    api_version: str
    host: str
    input: str
    out_dir: str
    stop: Stop | None
    rows_read: int
    would_send: int
    would_fail: int
    failed_by_category: Mapping[str, int]
    first_failures: tuple[Mapping[str, Any], ...]  # {row, category, message}
    duplicate_keys: int  # rows whose id (or id property value) an earlier row has
    first_duplicates: tuple[Mapping[str, Any], ...]  # {row, same_as, key}
    requests_made: Mapping[str, int]  # by kind: only reads (schema, dry_run_read)
    estimate: Estimate
    reads: ReadCheck | None
    mapping: tuple[Mapping[str, Any], ...]  # {column, property, how}
    dry_run: bool = True
    version: int = DRY_RUN_REPORT_VERSION

    @property
    def exit_code(self) -> int:
        """As a job's: the stop's code, else 1 when some rows would fail, else 0."""
        if self.stop is not None:
            return self.stop.reason.exit_code
        return 1 if self.would_fail else 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = (
            None
            if self.stop is None
            else {"reason": self.stop.reason.value, "message": self.stop.message}
        )
        data["exit_code"] = self.exit_code
        return data


def estimate(
    *,
    write_requests: int,
    configured: int | None,
    limiter: LimiterStats,
    learned: bool,
) -> Estimate:
    """Wall time at the configured limit, else at the account's learned one (the schema read's
    ``X-HubSpot-RateLimit-Max``), else at the limiter's starting pace."""
    per_window: int | None
    if configured == 0:
        per_window, source = None, "none"
    elif configured is not None:
        per_window, source = configured, "configured"
    else:
        per_window, source = limiter.ceiling, "learned" if learned else "default"
    wall = None
    if per_window:
        wall = round(write_requests * limiter.window / per_window, 1)
    daily_limit, left = limiter.daily_limit, limiter.daily_remaining
    return Estimate(
        write_requests=write_requests,
        per_window=per_window,
        window_s=limiter.window,
        limit_source=source,
        wall_time_s=wall,
        daily_limit=daily_limit,
        daily_remaining=left,
        share_of_daily_limit=round(write_requests / daily_limit, 4) if daily_limit else None,
        share_of_daily_remaining=round(write_requests / left, 4) if left else None,
    )


def _duration(seconds: float) -> str:
    seconds = math.ceil(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _percent(share: float | None) -> str:
    return "?" if share is None else f"{100 * share:.1f}%"


def format_dry_run(report: DryRunReport, *, shown: int = 5) -> str:
    """The dry run's summary for a terminal or a log (at most ~80 columns a line)."""
    lines = [
        f"bulkops DRY RUN {report.operation} {report.object_type}: nothing was written",
        f"  rows: {report.rows_read:,} read, {report.would_send:,} would be sent, "
        f"{report.would_fail:,} would fail",
    ]
    if report.stop is not None:
        lines.append(f"  stopped: {report.stop.message}")
    if report.failed_by_category:
        cats = ", ".join(f"{k} {v:,}" for k, v in sorted(report.failed_by_category.items()))
        lines.append(f"  would fail by category: {cats}")
    lines.extend(
        f"    row {failure['row']}: {str(failure['message'])[:200]}"
        for failure in report.first_failures[:shown]
    )
    if report.duplicate_keys:
        lines.append(
            f"  {report.duplicate_keys:,} rows repeat the id of an earlier row (sent after it, "
            "in input order)"
        )
        lines.extend(
            f"    row {dup['row']}: same {dup['key']!r} as row {dup['same_as']}"
            for dup in report.first_duplicates[:shown]
        )
    mapped = [m for m in report.mapping if m["how"] != "same"]
    for m in mapped:
        target = m["property"] if m["property"] is not None else "(ignored)"
        lines.append(f"  column {m['column']!r} -> {target} ({m['how']})")
    est = report.estimate
    pace = (
        f"{est.per_window}/{est.window_s:g}s ({est.limit_source})" if est.per_window else "no limit"
    )
    wall = _duration(est.wall_time_s) if est.wall_time_s is not None else "bound by latency"
    lines.append(f"  requests: {est.write_requests:,} writes; about {wall} at {pace}")
    if est.daily_limit is not None:
        lines.append(
            f"  daily quota: {_percent(est.share_of_daily_limit)} of {est.daily_limit:,}"
            + (
                f", {_percent(est.share_of_daily_remaining)} of the {est.daily_remaining:,} left"
                if est.daily_remaining is not None
                else ""
            )
        )
    reads = report.reads
    if reads is not None:
        found = f"{reads.exist:,} exist, {reads.missing:,} not found"
        if report.operation == "upsert":
            found = f"{reads.exist:,} exist (updates), {reads.missing:,} do not (creates)"
        lines.append(f"  records read back: {found}")
        lines.append(f"    ({reads.read_requests:,} read requests spent on this check)")
    made = sum(report.requests_made.values())
    lines.append(f"  requests made: {made:,}, all reads")
    lines.append(f"  report: {shlex.quote(report.out_dir + '/report.json')}")
    return "\n".join(lines)
