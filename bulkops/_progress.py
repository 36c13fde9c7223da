"""Live progress for the CLI: a rich display on a terminal, plain log lines otherwise.

Cron jobs and Airflow tasks have no terminal; they get one line every ``log_every`` seconds,
which reads well in a log file. On a terminal, rich redraws a bar with rows, records/s, ETA,
429s and the rate limit in place.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from ._engine import JobReport, Progress
from ._logfmt import utc_stamp

if TYPE_CHECKING:
    from rich.live import Live

__all__ = ["WIDTH", "ProgressDisplay", "fit", "format_summary"]

WIDTH = 80  # columns: a classic terminal, and a log viewer's line


def fit(parts: list[str], *, width: int = WIDTH, prefix: str = "", indent: str = "  ") -> list[str]:
    """``" | "``-joined parts packed into lines of at most ``width`` characters; the first
    starts with ``prefix``, the others with ``indent``. A part never splits across lines."""
    lines: list[str] = []
    current, empty = prefix, True
    for part in parts:
        part = part[: width - len(indent)]
        if empty:
            current, empty = (current + part)[:width], False
        elif len(current) + 3 + len(part) <= width:
            current = f"{current} | {part}"
        else:
            lines.append(current)
            current = indent + part
    lines.append(current)
    return lines


def _rate(samples: deque[tuple[float, int]]) -> float:
    if len(samples) < 2:
        return 0.0
    (t0, n0), (t1, n1) = samples[0], samples[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressDisplay:
    def __init__(
        self,
        *,
        expected_rows: int | None = None,
        mode: str = "auto",
        stream: IO[str] | None = None,
        log_every: float = 10.0,
        on_line: Callable[[Progress, str], None] | None = None,
    ) -> None:
        """``on_line``: where a log-mode line goes instead of ``stream`` (the CLI makes it a
        ``bulkops.progress`` log record; see ``_logfmt``)."""
        self.stream = stream or sys.stderr
        self.on_line = on_line
        self.rate = 0.0  # records/s over the last samples, as the last line showed it
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.expected_rows = expected_rows
        self._samples: deque[tuple[float, int]] = deque(maxlen=40)  # ~10-20 s of samples
        self._log_every = log_every
        self._last_log = 0.0
        self._live: Live | None = None
        if mode == "bar":
            # rich only for a terminal: a job logging to a file (cron, a container) starts
            # ~60 ms sooner without importing it.
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, stderr=self.stream is sys.stderr)
            self._live = Live(console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> ProgressDisplay:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def line(self, p: Progress) -> str:
        progress, health = self.parts(p)
        return " | ".join(progress + health)

    def parts(self, p: Progress) -> tuple[list[str], list[str]]:
        """(progress: rows, %, rate, ETA; health: outcomes, requests, 429s, limits)."""
        done = p.succeeded + p.failed
        self._samples.append((time.monotonic(), done))
        rate = self.rate = _rate(self._samples)
        total = self.expected_rows
        if total and p.reading_done:
            total = max(total, p.rows_read)
        parts = [f"{done:,}" + (f"/{total:,}" if total else "") + " rows"]
        if total:
            parts.append(f"{min(100.0, 100 * done / total):5.1f}%")
        parts.append(f"{rate:,.0f} rec/s")
        if total and rate > 0 and done < total:
            parts.append(f"ETA {_duration((total - done) / rate)}")
        rest = [f"ok {p.succeeded:,} failed {p.failed:,}"]
        rest.append(f"{p.requests:,} req")
        throttled = sum(p.throttled.values())
        by_policy = ", ".join(f"{k.lower()} {v}" for k, v in sorted(p.throttled.items()))
        rest.append(f"429s {throttled}" + (f" ({by_policy})" if throttled else ""))
        if p.ceiling:
            limit = f"limit {p.limit:g}/{p.ceiling}"
            if p.others >= 0.5:
                limit += f" (others ~{p.others:.0f})"
            rest.append(limit)
        if p.daily_remaining is not None:
            rest.append(f"daily left {p.daily_remaining:,}")
        if p.waiting:
            rest.append(f"waiting: {p.waiting}")
        if p.stopping:
            rest.append(f"STOPPING: {p.stopping}")
        return parts, rest

    def __call__(self, p: Progress) -> None:
        if self.mode == "none":
            return
        progress, health = self.parts(p)
        if self._live is not None:
            from rich.console import Group
            from rich.progress_bar import ProgressBar
            from rich.table import Table
            from rich.text import Text

            done, total = p.succeeded + p.failed, self.expected_rows
            text = fit(progress, width=WIDTH - 11)[0]
            # The bar takes what the numbers leave of 80 columns (one for the grid's padding).
            width = max(10, WIDTH - 1 - len(text))
            bar = ProgressBar(total=float(total) if total else None, completed=done, width=width)
            top = Table.grid(padding=(0, 1))
            top.add_row(bar, Text(text))
            rows = [Text(line, style="dim") for line in fit(health)]
            self._live.update(Group(top, *rows))
            return
        now = time.monotonic()
        if now - self._last_log >= self._log_every:
            self._last_log = now
            prefix = f"[bulkops {_duration(p.elapsed)}] "
            if self.on_line is not None:
                self.on_line(p, "\n".join(fit(progress + health, prefix=prefix)))
                return
            if not self.stream.isatty():  # a log file: say when
                prefix = f"{utc_stamp()} {prefix}"
            print("\n".join(fit(progress + health, prefix=prefix)), file=self.stream, flush=True)


def format_summary(report: JobReport) -> str:
    rows, req, rl, job = report.rows, report.requests, report.rate_limit, report.job
    deleting = job.api == "v1" and job.operation == "archive"
    lines = [
        f"bulkops {job.operation} {job.object_type}: {report.status}"
        + (f" ({report.stop.reason})" if report.stop else ""),
        f"  rows: {rows.read:,} read, {rows.succeeded:,} "
        + ("deleted" if deleting else "succeeded")
        + f", {rows.failed:,} failed, {rows.unprocessed:,} unprocessed",
    ]
    w = report.written
    if w.created or w.updated or w.new_unknown:
        lines.append(
            f"  written: {w.created:,} new, {w.updated:,} updated"
            + (f", {w.new_unknown:,} new-or-updated" if w.new_unknown else "")
        )
    if report.failed_by_category:
        cats = ", ".join(f"{k} {v:,}" for k, v in sorted(report.failed_by_category.items()))
        lines.append(f"  failed by category: {cats}")
    kinds = req.by_kind
    lines.append(
        f"  requests: {req.total:,} to {job.host} ({kinds.get('verify', 0):,} read-backs, "
        f"{kinds.get('isolation', 0):,} isolation, {req.resent_batches:,} resends); "
        f"429s: {dict(rl.by_policy_429) or 0}"
    )
    share = rl.share_of_ceiling
    lines.append(
        f"  {report.duration_s:.1f}s, {report.records_per_s:,.0f} records/s, "
        f"{rl.requests_per_s:.2f} req/s"
        + (
            f" = {100 * share:.1f}% of the {rl.learned_ceiling}/{rl.interval_s:g}s ceiling"
            if share is not None
            else ""
        )
    )
    lines.extend(f"  warning: {warning}" for warning in report.warnings)
    if report.stop:
        lines.append(f"  stopped: {report.stop.message}")
    # Quoted so that it can be pasted into a shell, whatever the folder's name holds.
    lines.append(
        f"  results in {shlex.quote(job.out_dir)}: succeeded.jsonl, failed.jsonl, report.json"
    )
    return "\n".join(lines)
