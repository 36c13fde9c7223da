"""``--metrics-file PATH``: a Prometheus text-format file kept current while the job runs, for
the node exporter's textfile collector (``--collector.textfile.directory``; the name must end
in ``.prom``).

Nothing is counted here: a :class:`JobCollector` reads the job's own numbers (``Job.progress()``,
``job.stats``, the limiter) each time the file is written, so every value has one owner and the
file always agrees with ``report.json``. ``prometheus_client`` renders the exposition format
and ``write_to_textfile`` writes it atomically (a temporary file, then a rename), so the
collector never reads half a file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._engine import Job
from ._errors import ConfigError
from ._report import JobReport

__all__ = ["JobCollector", "MetricsFile"]

_PREFIX = "bulkops"


class JobCollector(Collector):
    """The metrics of one job, read from the job when collected."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.report: JobReport | None = None  # set when the job has ended

    def collect(self) -> Iterator[Metric]:
        job, report = self.job, self.report
        p, stats = job.progress(), job.stats
        config = job.config

        info = GaugeMetricFamily(
            f"{_PREFIX}_job_info",
            "The job this file describes (always 1).",
            labels=["operation", "object_type", "out_dir", "mode"],
        )
        info.add_metric(
            [config.operation.value, config.object_type, str(config.out_dir), job.mode.value], 1
        )
        yield info
        yield _gauge("job_running", "1 while the job runs, 0 once it has ended.", report is None)
        if report is not None:
            yield _gauge(
                "job_exit_code",
                "The exit code the job ended with (0 ok, 1 rows failed, 2 fix first, 3 "
                "stopped: resumable).",
                report.exit_code,
            )

        rows = CounterMetricFamily(
            f"{_PREFIX}_rows", "Rows finished in this run, by outcome.", labels=["outcome"]
        )
        rows.add_metric(["succeeded"], stats.succeeded)
        rows.add_metric(["failed"], stats.failed)
        yield rows
        failed = CounterMetricFamily(
            f"{_PREFIX}_rows_failed",
            "Rows failed in this run, by category.",
            labels=["category"],
        )
        for category, n in sorted(stats.failed_by_category.items()):
            failed.add_metric([category], n)
        yield failed
        yield _gauge("rows_read", "Input rows read in this run.", p.rows_read)
        yield _gauge("rows_in_engine", "Rows read and not finished yet.", p.in_engine)

        by_status = CounterMetricFamily(
            f"{_PREFIX}_requests",
            "Requests answered in this run, by HTTP status.",
            labels=["status"],
        )
        for status, n in sorted(stats.by_status.items()):
            by_status.add_metric([str(status)], n)
        yield by_status
        by_kind = CounterMetricFamily(
            f"{_PREFIX}_requests_sent",
            "Requests sent in this run, by kind (schema, write, verify, isolation, probe).",
            labels=["kind"],
        )
        for kind, n in sorted(stats.requests.items()):
            by_kind.add_metric([kind], n)
        yield by_kind
        failures = CounterMetricFamily(
            f"{_PREFIX}_transport_failures",
            "Requests without an HTTP answer (timeouts, resets...), by kind.",
            labels=["kind"],
        )
        for kind, n in sorted(stats.transport_failures.items()):
            failures.add_metric([kind], n)
        yield failures
        throttled = CounterMetricFamily(
            f"{_PREFIX}_rate_limited",
            "429 answers in this run, by HubSpot's policyName.",
            labels=["policy"],
        )
        for policy, n in sorted(stats.throttled.items()):
            throttled.add_metric([policy], n)
        yield throttled
        yield _gauge("requests_in_flight", "Requests sent and not answered yet.", p.in_flight)

        yield _gauge(
            "rate_limit_current", "Requests per window the job allows itself now.", p.limit
        )
        yield _gauge(
            "rate_limit_learned",
            "The account's limit per window (learned from HubSpot's headers).",
            p.ceiling,
        )
        yield _gauge(
            "rate_limit_window_seconds",
            "The rate limit's window.",
            job.limiter.stats().window,
        )
        if p.daily_remaining is not None:
            yield _gauge(
                "daily_quota_remaining",
                "Requests left today on the account (X-HubSpot-RateLimit-Daily-Remaining).",
                p.daily_remaining,
            )
        if stats.last_success_at is not None:
            yield _gauge(
                "last_success_timestamp_seconds",
                "When the last row was written (Unix time).",
                stats.last_success_at,
            )
        yield _gauge("elapsed_seconds", "How long this run has been running.", p.elapsed)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{_PREFIX}_{name}", text, value=float(value))


class MetricsFile:
    """Writes the job's metrics to ``path`` at most every ``every`` seconds (:meth:`tick`),
    and once more when it has ended (:meth:`finish`)."""

    def __init__(
        self,
        path: Path,
        job: Job,
        *,
        every: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.path = path
        self.collector = JobCollector(job)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self._every = every
        self._clock = clock
        self._warn = warn
        self._written_at: float | None = None
        self._warned = False

    def start(self) -> None:
        """The first write, before the job starts: a path that cannot be written is a
        usage error (exit 2), not something found an hour in.

        :raises ConfigError: naming ``--metrics-file``.
        """
        try:
            self._write()
        except OSError as exc:
            raise ConfigError(
                f"cannot write --metrics-file {self.path}: {exc.strerror or exc}"
            ) from None

    def tick(self) -> None:
        now = self._clock()
        if self._written_at is not None and now - self._written_at < self._every:
            return
        self._written_at = now
        self._write_or_warn()

    def finish(self, report: JobReport) -> None:
        self.collector.report = report
        self._write_or_warn()

    def _write_or_warn(self) -> None:
        try:
            self._write()
        except OSError as exc:
            # A full disk must not stop the job; say it once.
            if not self._warned:
                self._warned = True
                self._warn(f"bulkops: cannot write --metrics-file {self.path}: {exc}")

    def _write(self) -> None:
        write_to_textfile(str(self.path), self.registry)
