"""A running job's report: this run's, built from the one owner of each count (``JobStats``,
the limiter, the intake), and snapshots of it in ``report.json`` while the job runs."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from ._config import JobConfig
from ._intake import Intake
from ._journal import Journal
from ._pacer import Pacer
from ._report import (
    JobInfo,
    JobReport,
    JobStatus,
    iso_time,
    run_report,
    whole_job_report,
    write_report_file,
)
from ._stats import JobStats, Stop, StopLatch
from ._status import journal_counts

__all__ = ["Reporter"]

_COUNT_SHARE = 20  # a snapshot's journal count waits 20 times as long as the last one took


class Reporter:
    def __init__(
        self,
        config: JobConfig,
        *,
        input_name: str,
        mode: str,
        stats: JobStats,
        limiter: Pacer,
        intake: Callable[[], Intake | None],
        host: Callable[[], str | None],
    ) -> None:
        self._config = config
        self._input_name = input_name
        self._mode = mode
        self._stats = stats
        self._limiter = limiter
        self._intake = intake
        self._host = host
        self.started = time.monotonic()
        self.started_wall = time.time()

    def run_report(self, status: JobStatus, stop: Stop | None) -> JobReport:
        """This run's report, from ``JobStats`` and the limiter (one owner per count)."""
        config, intake = self._config, self._intake()
        report = run_report(
            job=JobInfo(
                operation=config.operation.value,
                object_type=config.object_type,
                api=config.api.value,
                api_version=str(config.api_version),
                host=self._host() or urlsplit(config.base_url).netloc.rpartition("@")[2],
                id_property=config.id_property,
                input=self._input_name,
                out_dir=str(config.out_dir),
                started_at=iso_time(self.started_wall),
                finished_at=iso_time(time.time()),
            ),
            configured_limit=config.rate_limit,
            status=status,
            stop=stop,
            elapsed=time.monotonic() - self.started,
            rows_read=intake.rows_read if intake else 0,
            reading_done=intake.exhausted if intake else False,
            stats=self._stats,
            limiter=self._limiter.stats(),
            warnings=self._warnings(intake),
        )
        left = intake.left if intake else None
        return dataclasses.replace(report, rows_left=left) if left else report

    def _warnings(self, intake: Intake | None) -> list[str]:
        warnings = []
        if intake is not None and intake.exhausted and intake.rows_read == 0:
            warnings.append(f"the input {self._input_name} has no rows: nothing was sent")
        if self._limiter.ignored_headers:
            names = ", ".join(sorted(self._limiter.ignored_headers))
            warnings.append(f"ignored rate-limit headers that made no sense: {names}")
        return warnings

    async def keep_current(self, journal: Journal | None, latch: StopLatch, every: float) -> None:
        """Keep ``report.json`` current while the job runs (status ``running``), so that
        ``bulkops status`` and a watching operator see rows read, rates and 429s."""
        counts: dict[str, Any] | None = None
        counted_at, counting_took = -math.inf, 0.0
        while True:
            await anyio.sleep(every)
            stop = latch.stop
            report = self.run_report(JobStatus.RUNNING if stop is None else JobStatus.STOPPED, stop)
            # A new job's counts are this run's: only a resumed or retried one has rows
            # finished before, counted from the journal (a scan of every outcome, so at most
            # one twentieth of the time: 10 million rows take seconds to count).
            if journal is not None:
                if self._mode == "new":
                    counts = _counts_of(report)
                elif (
                    counts is None or time.monotonic() - counted_at >= _COUNT_SHARE * counting_took
                ):
                    counted_at = time.monotonic()
                    # Counted from the last commit in a thread: the event loop does not wait.
                    counts = await anyio.to_thread.run_sync(
                        journal_counts, journal.path, abandon_on_cancel=True
                    )
                    counting_took = time.monotonic() - counted_at
                earlier = [JobReport.from_json(r) for r in journal.runs()]
                intake = self._intake()
                skipped = intake.skipped if intake else 0
                report = whole_job_report(report, earlier, counts, mode=self._mode, skipped=skipped)
            # A snapshot is advice: a full disk must not end the job; the final write says so.
            with contextlib.suppress(OSError):
                write_report_file(self._config.out_dir, report)


def _counts_of(report: JobReport) -> dict[str, Any]:
    """A run's own counts in the shape of ``journal_counts``: a new job's whole count."""
    return {
        "succeeded": report.rows.succeeded,
        "failed": report.rows.failed,
        "created": report.written.created,
        "updated": report.written.updated,
        "failed_by_category": dict(report.failed_by_category),
    }
