"""One job, end to end. The engine owns the task group, the stages and the stop; nothing else.

::

    source ──► Intake ──► Scheduler ──► Workers ──► Channel ──► HubSpot
     (thread)  normalise,   batches of    turn, mark,   limiter, counts,
               pre-flight   <= 100, keys  send, decide  headers, outages
                              ▲              │  (_policy)
                              └── retries, ◄─┘──► settle ──► ResultWriter + Journal + JobStats
                                  isolation halves, read-backs

Memory is bounded by ``max_outstanding`` records (the scheduler blocks the intake beyond it)
plus one chunk of the reader. A stop (auth, daily limit, Ctrl-C...) is held by one
:class:`~bulkops._stats.StopLatch`: no new requests, the ones in flight finish within the grace
period, and every finished result and the report are still written.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import random
import shlex
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ._account import Account
from ._channel import Channel, RequestDone, Waiting
from ._config import JobConfig, Secret, config_to_meta
from ._errors import ConfigError
from ._http import Transport
from ._intake import Intake, Resumed, Source, rows_of
from ._jobdir import RETRY_DIR, JobFolder, check_writable, identify_input, start_result_files
from ._journal import Journal
from ._limiter import RateLimiter
from ._log import job_log, with_fields
from ._outcome import Outcome as PublicOutcome
from ._pacer import Pacer
from ._preflight import PropertySchema
from ._report import (
    JobReport,
    JobStatus,
    write_report_file,
)
from ._reporter import Reporter
from ._results import Committer, ResultWriter
from ._scheduler import Scheduler
from ._schema_read import read_schema
from ._settle import Settler, failure_stop
from ._sources import RawRow
from ._stats import JobStats, Stop, StopLatch, StopReason
from ._transport import AiohttpTransport, Borrowed
from ._worker import Workers, dialects_for

__all__ = ["Job", "JobReport", "Mode", "Progress", "Source", "run_job"]

_REPORT_EVERY_S = 5.0  # report.json while the job runs


class Mode(enum.StrEnum):
    NEW = "new"  # start a job (refusing an out_dir that already holds one)
    RESUME = "resume"  # continue the job journaled in out_dir; the source is its input again
    RETRY = "retry"  # re-run the rows of the source (a job's failed records), update results


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for progress displays; cheap to take."""

    elapsed: float
    rows_read: int
    succeeded: int
    failed: int
    in_engine: int
    requests: int
    throttled: Mapping[str, int]
    limit: float
    ceiling: int
    others: float
    daily_remaining: int | None
    reading_done: bool
    stopping: str | None
    host: str = ""
    waiting: str | None = None  # what the job waits for, and until when
    in_flight: int = 0  # requests sent and not answered yet


class Job:
    """A job you can watch and stop. Most callers want :func:`run_job`."""

    def __init__(
        self,
        config: JobConfig,
        source: Source,
        *,
        grace: float = 30.0,
        input_name: str = "",
        input_meta: Mapping[str, Any] | None = None,
        mode: Mode | str = Mode.NEW,
        transport: Transport | None = None,
        on_outcome: Callable[[PublicOutcome], None] | None = None,
        account: Account | None = None,
    ) -> None:
        """``input_meta`` (path, format, fingerprint) is journaled so ``resume`` can check it.
        ``transport``: send requests through this instead of aiohttp (tests, custom stacks).
        ``on_outcome``: called with each row's :class:`~bulkops.Outcome` as it is settled
        (after it is in the result files), on the event loop: keep it quick. An exception
        it raises ends the job like one from the source. ``account``: pace with the other
        jobs of this account (one window, one daily budget)."""
        self.mode = Mode(mode)
        if self.mode is not Mode.NEW and not config.journal:
            raise ConfigError(f"{self.mode} needs the journal")
        if config.dry_run:
            raise ConfigError("dry_run: run it with bulkops.dry_run(), which writes nothing")
        self.config = config
        self._source = source
        self._grace = grace
        self._input_meta = dict(input_meta or {})
        self._input_name = input_name or (
            os.fspath(source) if isinstance(source, str | os.PathLike) else "<python iterable>"
        )
        self._transport = transport
        self.stats = JobStats()
        self._owned_account: Account | None = None
        if account is None and config.redis_url is not None:
            if not isinstance(config.token, Secret):
                raise ConfigError(
                    "redis_url needs a static token: the shared budget is keyed by its hash"
                )
            # Pace with the account's other processes; closed when the job ends.
            account = self._owned_account = Account(
                config.token,
                config.base_url,
                rate_limit=config.rate_limit,
                interval=config.interval,
                adaptive=config.adaptive,
                redis_url=config.redis_url,
            )
        self._account_pacer = account.join(config) if account is not None else None
        self.limiter: Pacer = self._account_pacer or RateLimiter(
            config.rate_limit, config.interval, adaptive=config.adaptive
        )
        self.scheduler = Scheduler(
            batch_size=config.max_batch, max_outstanding=config.max_outstanding
        )
        self.latch = StopLatch(
            on_stop=self._on_stop,
            redact=_masking(config.token.reveal() if isinstance(config.token, Secret) else ""),
        )
        self._folder: JobFolder | None = None  # held (locked) while the job runs
        self._channel: Channel | None = None
        self._intake: Intake | None = None
        self._started = 0.0
        self._cancel: anyio.CancelScope | None = None
        self._cancelled = False
        self._rng = random.Random()
        self.report_every = _REPORT_EVERY_S  # seconds between report.json snapshots
        # Called with every request that came back (bulkops.otel's duration histogram).
        self.request_observers: list[Callable[[RequestDone], None]] = []
        self._on_outcome = on_outcome
        self.report: JobReport | None = None  # once the run is over, however it ended
        # Awaited before each row is read (``open_job``'s bounded outcome buffer).
        self._row_gate: Callable[[], Awaitable[None]] | None = None
        # The job's name in log records: its folder's, the same across resumes.
        self.job_id = config.out_dir.name or str(config.out_dir)
        self._log_fields = {
            "job_id": self.job_id,
            "operation": config.operation.value,
            "object_type": config.object_type,
        }

    # -- control -----------------------------------------------------------------------------
    def stop(self, reason: StopReason = StopReason.INTERRUPTED, message: str | None = None) -> None:
        """Stop sending; requests in flight finish (within the grace period), results are kept."""
        self.latch.set(Stop(reason, message or "interrupted; finished records are kept"))

    def cancel(self) -> None:
        """Stop at once: abandon requests in flight (their records count as unprocessed)."""
        self.stop()
        self._cancelled = True
        if self._cancel is not None:
            self._cancel.cancel()

    def _on_stop(self) -> None:
        stop = self.latch.stop
        if stop is not None:
            # Resumable stops are warnings; a stop that needs a fix first is an error.
            level = logging.WARNING if stop.reason.exit_code == 3 else logging.ERROR
            job_log.log(
                level,
                "job stopping (%s): %s",
                stop.reason.value,
                stop.message,
                extra=with_fields(self._log_fields, stop_reason=stop.reason.value),
            )
        self.scheduler.halt()
        if self._channel is not None:
            self._channel.wake()

    def progress(self) -> Progress:
        stats, ls = self.stats, self.limiter.stats()
        intake, channel = self._intake, self._channel
        stop = self.latch.stop
        return Progress(
            elapsed=time.monotonic() - self._started if self._started else 0.0,
            rows_read=intake.rows_read if intake else 0,
            succeeded=stats.succeeded,
            failed=stats.failed,
            in_engine=self.scheduler.outstanding,
            requests=stats.total_requests,
            throttled=dict(stats.throttled),
            limit=ls.limit,
            ceiling=ls.ceiling,
            others=ls.others,
            daily_remaining=ls.daily_remaining,
            reading_done=intake.reading_done if intake else False,
            stopping=None if stop is None else stop.reason.value,
            host=channel.host if channel else "",
            waiting=_waiting_text(channel.waiting if channel else None),
            in_flight=channel.in_flight if channel else 0,
        )

    # -- the run -----------------------------------------------------------------------------
    async def run(self) -> JobReport:
        config = self.config
        self._started = time.monotonic()
        self._reporter = Reporter(
            config,
            input_name=self._input_name,
            mode=self.mode.value,
            stats=self.stats,
            limiter=self.limiter,
            intake=lambda: self._intake,
            host=lambda: self._channel.host if self._channel else None,
        )
        journal = self._open_journal()
        writer = ResultWriter(
            # A retry writes its own lines aside; the job's files are rebuilt from the journal.
            config.out_dir / RETRY_DIR if self.mode is Mode.RETRY else config.out_dir,
            journal=journal,
            id_property=config.id_property,
        )
        job_log.info(
            "job %s: %s %s from %s (%s) into %s",
            self.mode.value,
            config.operation.value,
            config.object_type,
            self._input_name,
            _host_of(config.base_url),
            config.out_dir,
            extra=self._log_fields,
        )
        status = JobStatus.ERROR
        error: BaseException | None = None
        try:
            async with self._transport_cm() as transport, self._owned_account_cm():
                channel = self._channel = self._make_channel(transport)
                schema = None
                if config.preflight or config.id_property or config.mapping.match_labels:
                    schema = await read_schema(channel, config, self.latch, self._rng)
                if not self.latch.is_set:
                    await self._pipeline(channel, writer, journal, schema)
            status = JobStatus.STOPPED if self.latch.is_set else JobStatus.COMPLETE
            if self._cancelled:
                status = JobStatus.CANCELLED
        except anyio.get_cancelled_exc_class():
            status = JobStatus.CANCELLED
            raise
        except Exception as exc:
            error = _single(exc)
            if error is not exc:
                # A task group wraps what one stage raised; the caller gets that, not a group.
                raise error from None
            raise
        finally:
            # No awaits here, so a cancellation (Ctrl-C) cannot interrupt writing the results.
            report = self._finish(writer, journal, status, error)
            self.report = report  # also when the run was cancelled or raised
        return report

    def _finish(
        self,
        writer: ResultWriter,
        journal: Journal | None,
        status: JobStatus,
        error: BaseException | None,
    ) -> JobReport:
        config = self.config
        if journal is not None:
            journal.commit()
        writer.close()
        stop = self.latch.stop
        if error is not None and stop is None:
            stop = Stop(StopReason.INTERRUPTED, f"{type(error).__name__}: {error}")
        intake = self._intake
        left = intake.left if intake else None
        if left and stop is None:
            stop = Stop(
                StopReason.LIMIT,
                f"trial run: the first {config.limit} rows were sent and {left} are left; "
                f"bulkops resume {shlex.quote(str(config.out_dir))} sends them",
            )
            status = JobStatus.STOPPED
        report = self._reporter.run_report(status, stop)
        folder = self._folder
        try:
            if folder is not None:
                # The whole job's report (every run summed), and a retry's rows settled.
                report = folder.close_run(
                    report, mode=self.mode.value, skipped=intake.skipped if intake else 0
                )
            write_report_file(config.out_dir, report)
        finally:
            if folder is not None:
                folder.close()  # the journal, then the lock, last
        job_log.info(
            "job %s: %d succeeded, %d failed, %d unprocessed in %.1f s",
            report.status.value,
            report.rows.succeeded,
            report.rows.failed,
            report.rows.unprocessed,
            report.duration_s,
            extra=with_fields(self._log_fields, rows=report.rows.read),
        )
        return report

    def _transport_cm(self) -> Any:
        if self._transport is not None:
            return Borrowed(self._transport)
        return AiohttpTransport.from_config(self.config)

    def _owned_account_cm(self) -> Any:
        return self._owned_account or contextlib.nullcontext()

    def _make_channel(self, transport: Transport) -> Channel:
        config = self.config
        return Channel(
            transport,
            self.limiter,
            self.stats,
            self.latch,
            retry=config.retry,
            timeout=config.timeout,
            probe_path=config.api_version.properties_path(config.object_type),
            daily_budget=config.daily_budget,
            daily_share=config.daily_share,
            rng=self._rng,
            on_request=self._request_done if self.request_observers else None,
            log_fields=self._log_fields,
            budget_spent=self._account_pacer.budget_spent if self._account_pacer else None,
        )

    def _request_done(self, done: RequestDone) -> None:
        for observe in self.request_observers:
            observe(done)

    def _open_journal(self) -> Journal | None:
        config = self.config
        if not config.journal:
            check_writable(config.out_dir)
            start_result_files(config.out_dir)
            return None
        input_meta = identify_input(self._source, self._input_meta)
        self._input_meta = input_meta
        meta = None
        if self.mode is Mode.NEW:
            meta = {"config": config_to_meta(config), "input": input_meta}
        self._folder = JobFolder(config.out_dir)
        return self._folder.open_for_run(
            self.mode.value, meta=meta, input_meta=input_meta, input_name=self._input_name
        )

    # -- the stages --------------------------------------------------------------------------
    async def _pipeline(
        self,
        channel: Channel,
        writer: ResultWriter,
        journal: Journal | None,
        schema: PropertySchema | None,
    ) -> None:
        config, stats, scheduler = self.config, self.stats, self.scheduler
        committer = Committer(journal, writer)
        settle = Settler(
            writer=writer,
            stats=stats,
            committer=committer,
            on_outcome=self._on_outcome,
            id_property=config.id_property,
            on_failure=self._check_failures if config.max_failures is not None else None,
        )

        resumed = None
        if journal is not None and self.mode is not Mode.NEW:
            # A retry's rows were finished (failed) before: only its in-flight creates matter.
            resumed = Resumed(
                finished=journal.finished_rows() if self.mode is Mode.RESUME else iter(()),
                in_flight=journal.sent_unfinished_rows(),
            )
        rows = rows_of(self._source)
        if self._row_gate is not None:
            rows = _GatedRows(rows, self._row_gate)
        intake = self._intake = Intake(
            config,
            _in_shard(rows, config.shard),
            scheduler=scheduler,
            settle=settle,
            settle_unparsed=settle.unparsed,
            latch=self.latch,
            schema=schema,
            resumed=resumed,
            # A file the CLI fingerprinted is checked whole; other sources row by row.
            digests=journal is not None and not self._input_meta.get("fingerprint"),
        )
        workers = Workers(
            channel=channel,
            scheduler=scheduler,
            dialects=dialects_for(config),
            settle=settle.many,
            stats=stats,
            latch=self.latch,
            operation=config.operation,
            retry=config.retry,
            id_property=config.id_property,
            journal=journal,
            concurrency=config.concurrency,
            rng=self._rng,
            log_fields=self._log_fields,
        )
        async with anyio.create_task_group() as tg:
            self._cancel = tg.cancel_scope
            tg.start_soon(intake.run)
            tg.start_soon(committer.run)
            tg.start_soon(self._reporter.keep_current, journal, self.latch, self.report_every)
            workers.start(tg)
            # The supervisor: the job is over when every row is finished or it is stopped;
            # after a stop, requests in flight get ``grace`` seconds to end.
            await scheduler.wait_over()
            if self.latch.is_set:
                with anyio.move_on_after(self._grace):
                    await workers.wait_idle()
            else:
                await workers.wait_idle()
            tg.cancel_scope.cancel()

    def _check_failures(self) -> None:
        intake = self._intake
        taken = intake.rows_read - intake.skipped if intake is not None else 0
        stop = failure_stop(self.config.max_failures, self.stats, taken)
        if stop is not None:
            self.latch.set(stop)


class _GatedRows:
    """The source's rows, each read only after ``gate`` lets it in (back-pressure from a
    consumer of outcomes); ``header`` and ``aclose`` are the source's own."""

    def __init__(self, rows: AsyncIterable[RawRow], gate: Callable[[], Awaitable[None]]) -> None:
        self._rows = rows
        self._iterator = aiter(rows)
        self._gate = gate

    @property
    def header(self) -> list[str] | None:
        header: list[str] | None = getattr(self._rows, "header", None)
        return header

    @property
    def text_only(self) -> bool:
        return bool(getattr(self._rows, "text_only", False))

    def __aiter__(self) -> _GatedRows:
        return self

    async def __anext__(self) -> RawRow:
        await self._gate()
        return await anext(self._iterator)

    async def aclose(self) -> None:
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _in_shard(rows: AsyncIterable[RawRow], shard: tuple[int, int] | None) -> AsyncIterable[RawRow]:
    if shard is None:
        return rows
    from ._shard import in_shard

    return in_shard(rows, *shard)


def _masking(secret: str) -> Callable[[str], str]:
    def mask(text: str) -> str:
        return text.replace(secret, "***") if secret else text

    return mask


def _single(exc: Exception) -> Exception:
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _waiting_text(waiting: Waiting | None) -> str | None:
    if waiting is None:
        return None
    left = waiting.until - anyio.current_time()
    if left <= 0:
        return None
    until = time.strftime("%H:%M:%S", time.localtime(time.time() + left))
    return f"{waiting.reason}; until {until}"


def _host_of(base_url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(base_url).netloc.rpartition("@")[2]


async def run_job(
    config: JobConfig,
    source: Source,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval: float = 0.5,
    transport: Transport | None = None,
    on_outcome: Callable[[PublicOutcome], None] | None = None,
    handle_signals: bool = False,
    account: Account | None = None,
) -> JobReport:
    """Run one job to the end and return its report (also written to ``out_dir/report.json``).

    ``source`` is a path (CSV, TSV, JSONL; "-" for stdin), or any iterable or async iterable of
    dicts. Results go to ``config.out_dir``. ``on_outcome`` gets each row's
    :class:`~bulkops.Outcome` as it is settled. ``handle_signals``: the first SIGINT/SIGTERM
    stops the job gracefully, the second at once (see :func:`~bulkops.graceful_signals`).

    A job that ran returns its report, even one that stopped: ``report.raise_for_status()``
    raises the typed error for a stop. Errors before the job starts (a bad ``out_dir``, a
    folder another process holds) raise :class:`~bulkops.ConfigError`; an exception from the
    source or ``on_outcome`` is raised as itself, never inside an ``ExceptionGroup``.
    ``account``: share one rate budget with the account's other jobs (see
    :class:`~bulkops.Account`).
    """
    job = Job(config, source, transport=transport, on_outcome=on_outcome, account=account)
    if handle_signals:
        from ._embed import graceful_signals

        with graceful_signals(job):
            return await _run_watched(job, on_progress, progress_interval)
    return await _run_watched(job, on_progress, progress_interval)


async def _run_watched(
    job: Job, on_progress: Callable[[Progress], None] | None, progress_interval: float
) -> JobReport:
    if on_progress is None:
        return await job.run()
    result: list[JobReport] = []

    async def _run() -> None:
        result.append(await job.run())
        tg.cancel_scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_run)
            while True:
                on_progress(job.progress())
                await anyio.sleep(progress_interval)
    except ExceptionGroup as group:
        raise _single(group) from None
    on_progress(job.progress())
    return result[0]
