"""One job, end to end: source -> normalise/validate -> scheduler -> workers -> result files.

::

    source ──► intake ──► Scheduler ──► worker x N ──► HubSpot
     (thread)  normalise,   batches of     limiter turn,
               pre-flight   <= 100, keys    send, settle ──► ResultWriter (+ journal)
                              ▲                  │
                              └── retries, ◄─────┘
                                  isolation halves, read-backs

Everything runs in one task group. Memory is bounded by ``max_outstanding`` records (the
scheduler blocks the intake beyond it) plus one chunk of the reader. A stop (auth, daily limit,
Ctrl-C) stops new requests, lets the ones in flight finish within a grace period, and still writes
every finished result and the report.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from ._config import JobConfig, config_to_meta
from ._dialect import Dialect, error_message
from ._dialect_v1 import V1Dialect
from ._dialect_v3 import V3Dialect
from ._dispatcher import Dispatcher, StopReason
from ._errors import AMBIGUOUS, INPUT_ERROR, PREFLIGHT, ConfigError, InputError
from ._jobdir import JobFolder, check_writable
from ._journal import Journal
from ._limiter import RateLimiter
from ._models import Api, Item, Operation, Outcome
from ._normalize import Normalizer
from ._preflight import PropertySchema
from ._report import JobReport, run_report, whole_job_report
from ._results import ResultWriter
from ._scheduler import Scheduler
from ._sources import RawRow, from_iterable, open_source
from ._transport import HttpRequest, Transport, TransportFailure

__all__ = ["NEW", "RESUME", "RETRY", "Job", "JobReport", "Progress", "Source", "run_job"]

NEW, RESUME, RETRY = "new", "resume", "retry"
_GROUP_COMMIT_S = 0.02

Source = (
    str
    | os.PathLike[str]
    | AsyncIterable[RawRow]
    | Iterable[Mapping[str, Any]]
    | AsyncIterable[Mapping[str, Any]]
)


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
        mode: str = NEW,
    ) -> None:
        """``mode``: NEW starts a job (refusing an ``out_dir`` that already holds one), RESUME
        continues the job journaled in ``out_dir`` (``source`` must be its input again), RETRY
        re-runs the rows of ``source`` (a job's failed records) and updates the job's results.
        ``input_meta`` (path, format, fingerprint) is journaled so ``resume`` can check it."""
        if mode not in (NEW, RESUME, RETRY):
            raise ValueError(f"mode must be one of {NEW}, {RESUME}, {RETRY}")
        if mode != NEW and not config.journal:
            raise ConfigError(f"{mode} needs the journal")
        self.config = config
        self._source = source
        self._grace = grace
        self._mode = mode
        self._input_meta = dict(input_meta or {})
        self._journal: Journal | None = None
        self._folder: JobFolder | None = None  # held (locked) while the job runs
        self._skipped = 0
        self._input_name = input_name or (
            os.fspath(source) if isinstance(source, str | os.PathLike) else "<python iterable>"
        )
        self.limiter = RateLimiter(config.rate_limit, config.interval, adaptive=config.adaptive)
        self.scheduler: Scheduler | None = None
        self.writer: ResultWriter | None = None
        self.dispatcher: Dispatcher | None = None
        self._rows_read = 0
        self._reading_done = False
        self._started = 0.0
        self._cancel: anyio.CancelScope | None = None
        self._early_stop: tuple[str, str] | None = None
        self._active = 0  # workers running
        self._idle: anyio.Event | None = None  # set when the last worker returned after the end

    # -- control -----------------------------------------------------------------------------
    def stop(self, reason: str = StopReason.INTERRUPTED, message: str | None = None) -> None:
        """Stop sending; requests in flight finish (within the grace period), results are kept."""
        msg = message or "interrupted; finished records are kept"
        if self.dispatcher is not None:
            self.dispatcher.stop(reason, msg)
        else:
            self._early_stop = (reason, msg)

    def cancel(self) -> None:
        """Stop at once: abandon requests in flight (their records count as unprocessed)."""
        self.stop()
        if self._cancel is not None:
            self._cancel.cancel()

    def progress(self) -> Progress:
        w, s, d = self.writer, self.scheduler, self.dispatcher
        ls = self.limiter.stats()
        return Progress(
            elapsed=time.monotonic() - self._started if self._started else 0.0,
            rows_read=self._rows_read,
            succeeded=w.succeeded if w else 0,
            failed=w.failed if w else 0,
            in_engine=s.outstanding if s else 0,
            requests=d.stats.requests if d else 0,
            throttled=ls.throttled,
            limit=ls.limit,
            ceiling=ls.ceiling,
            others=ls.others,
            daily_remaining=ls.daily_remaining,
            reading_done=self._reading_done,
            stopping=s.stop_reason if s else None,
        )

    # -- the run -----------------------------------------------------------------------------
    async def run(self) -> JobReport:
        config = self.config
        self._started = time.monotonic()
        started_wall = time.time()
        journal = self._journal = self._open_journal()
        writer = self.writer = ResultWriter(
            config.out_dir,
            journal=journal,
            # A retry writes its own lines aside; the job's files are rebuilt from the journal.
            files_dir=config.out_dir / ".retry" if self._mode == RETRY else None,
            # A resumed job starts its files with every row finished before.
            replay=journal.lines() if journal is not None and self._mode == RESUME else (),
        )
        scheduler = self.scheduler = Scheduler(
            batch_size=config.max_batch, max_outstanding=config.max_outstanding
        )
        try:
            async with Transport(
                config.base_url,
                config.token,
                timeout=config.timeout,
                max_connections=max(config.concurrency or 0, 256),
            ) as transport:
                dispatcher = self.dispatcher = Dispatcher(
                    config,
                    transport=transport,
                    limiter=self.limiter,
                    scheduler=scheduler,
                    writer=writer,
                    dialect=_dialect(config),
                    verify_dialect=_verify_dialect(config),
                    journal=journal,
                )
                if self._early_stop:
                    dispatcher.stop(*self._early_stop)
                schema = None
                if config.preflight or config.id_property:
                    schema = await self._load_schema(transport, dispatcher)
                if scheduler.stop_reason is None:
                    await self._pipeline(dispatcher, scheduler, writer, schema)
        finally:
            # No awaits here, so a cancellation (Ctrl-C) cannot interrupt writing the results.
            writer.close()
            report = self._report(started_wall)
            try:
                if journal is not None and self._folder is not None:
                    report = whole_job_report(
                        journal, report, mode=self._mode, skipped=self._skipped
                    )
                    self._folder.finish()  # a retry: result files rebuilt, its input settled
                (config.out_dir / "report.json").write_bytes(
                    orjson.dumps(report.data, option=orjson.OPT_INDENT_2)
                )
            finally:
                if self._folder is not None:
                    self._folder.close()  # the journal, then the lock, last
        return report

    def _report(self, started_wall: float) -> JobReport:
        assert self.writer is not None
        return run_report(
            self.config,
            input_name=self._input_name,
            started_wall=started_wall,
            elapsed=time.monotonic() - self._started,
            rows_read=self._rows_read,
            reading_done=self._reading_done,
            writer=self.writer,
            stats=self.dispatcher.stats if self.dispatcher else None,
            limiter=self.limiter.stats(),
            stop_reason=self.scheduler.stop_reason if self.scheduler else None,
        )

    def _open_journal(self) -> Journal | None:
        config = self.config
        if not config.journal:
            check_writable(config.out_dir)
            return None
        meta = None
        if self._mode == NEW:
            meta = {"config": config_to_meta(config), "input": self._input_meta}
        # Locks the folder (another process on it fails fast, naming its PID) and checks the
        # journal before anything rewrites the result files from it.
        self._folder = JobFolder(config.out_dir)
        return self._folder.open(self._mode, meta=meta)

    async def _pipeline(
        self,
        dispatcher: Dispatcher,
        scheduler: Scheduler,
        writer: ResultWriter,
        schema: PropertySchema | None,
    ) -> None:
        async with anyio.create_task_group() as tg:
            self._cancel = tg.cancel_scope
            tg.start_soon(self._intake, scheduler, writer, schema)
            tg.start_soon(self._workers, tg, dispatcher, scheduler)
            tg.start_soon(self._watch_stop, tg, scheduler)
            if self._journal is not None:
                tg.start_soon(self._group_commit, self._journal, scheduler)

    async def _workers(
        self, tg: anyio.abc.TaskGroup, dispatcher: Dispatcher, scheduler: Scheduler
    ) -> None:
        """Grow the pool to rate x latency as latency becomes known; workers end by themselves
        when the scheduler says the job is over."""
        running = 0
        while not scheduler.over:
            target = dispatcher.target_workers()
            while running < target:
                tg.start_soon(self._worker, dispatcher, scheduler)
                running += 1
            with anyio.move_on_after(0.25):
                await scheduler.wait_over()

    async def _group_commit(self, journal: Journal, scheduler: Scheduler) -> None:
        """Commit finished outcomes every 20 ms. At HubSpot's pace that is every batch; in a
        fast job it folds many batches into one transaction (or into the next batch's sent
        marks). A crash loses at most the batches in flight and 20 ms of finished ones, which
        a resume redoes safely: creates among them are marked sent and get read back."""
        while not scheduler.over:
            with anyio.move_on_after(_GROUP_COMMIT_S):
                await scheduler.wait_over()
            journal.commit()

    async def _worker(self, dispatcher: Dispatcher, scheduler: Scheduler) -> None:
        self._active += 1
        try:
            await dispatcher.worker()
        finally:
            self._active -= 1
            if self._active == 0 and scheduler.over and self._idle is not None:
                self._idle.set()

    async def _watch_stop(self, tg: anyio.abc.TaskGroup, scheduler: Scheduler) -> None:
        """After a stop, give requests in flight ``grace`` seconds, then cancel them."""
        await scheduler.wait_over()
        if scheduler.stop_reason is None:
            return
        if self._active:
            self._idle = anyio.Event()
            with anyio.move_on_after(self._grace):
                await self._idle.wait()
        tg.cancel_scope.cancel()

    async def _intake(
        self, scheduler: Scheduler, writer: ResultWriter, schema: PropertySchema | None
    ) -> None:
        config = self.config
        normalize = Normalizer(
            config.operation,
            api=config.api,
            id_property=config.id_property,
            empty_clears=config.empty_clears,
        )
        validate = schema.validate if schema is not None and config.preflight else None
        if config.operation not in (Operation.CREATE, Operation.UPDATE, Operation.UPSERT):
            validate = None
        creating = config.operation is Operation.CREATE
        rows = _as_rows(self._source)
        journal = self._journal if self._mode == RESUME else None
        finished = _Cursor(journal.finished_row_numbers() if journal else None)
        in_flight = _Cursor(journal.sent_unfinished_rows() if journal and creating else None)
        try:
            async for raw in rows:
                self._rows_read += 1
                if finished.has(raw.row):
                    self._skipped += 1
                    continue
                if raw.data is None:
                    writer.record_unparsed(raw.row, raw.line, raw.error or "unreadable record")
                    continue
                try:
                    item = normalize(raw.row, raw.data)
                except InputError as exc:
                    _reject_input(writer, raw, INPUT_ERROR, str(exc), exc.field)
                    continue
                if validate is not None:
                    errors = validate(item.properties, creating=creating)
                    if errors:
                        message = "; ".join(e.message for e in errors)
                        fields = [e.property for e in errors]
                        writer.record(
                            Outcome(
                                item,
                                False,
                                category=PREFLIGHT,
                                message=message,
                                extra={"properties": fields, "codes": [e.code for e in errors]},
                            )
                        )
                        continue
                if in_flight.has(raw.row):
                    # Sent before the crash with no outcome: it may exist in HubSpot.
                    item.ambiguous = True
                    item.attempts = 1
                    if config.id_property:
                        item.verify_next = True
                    else:
                        writer.record(
                            Outcome(item, False, category=AMBIGUOUS, message=_IN_FLIGHT_AMBIGUOUS)
                        )
                        continue
                if not await scheduler.put(item):
                    break
        finally:
            self._reading_done = True
            scheduler.close_intake()
            aclose = getattr(rows, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    async def _load_schema(
        self, transport: Transport, dispatcher: Dispatcher
    ) -> PropertySchema | None:
        """Fetch the object's properties once; also where a bad token or URL shows first."""
        config = self.config
        request = HttpRequest("GET", f"/crm/v3/properties/{config.object_type}")
        for attempt in range(1, config.max_attempts + 1):
            sent_at = await self.limiter.wait_turn()
            dispatcher.stats.requests += 1
            try:
                response = await transport.send(request)
            except TransportFailure as failure:
                if failure.kind == "connect":
                    dispatcher.stop(StopReason.UNREACHABLE, str(failure))
                    return None
                await anyio.sleep(dispatcher.backoff(attempt))
                continue
            dispatcher.stats.by_status[response.status] += 1
            dispatcher.observe(response, sent_at)
            status = response.status
            if status == 200:
                body = response.json()
                schema = PropertySchema.from_hubspot(
                    body if isinstance(body, Mapping) else {}, object_type=config.object_type
                )
                problem = _id_property_problem(config, schema)
                if problem:
                    dispatcher.stop(StopReason.CONFIG, problem)
                    return None
                return schema
            if status in (401, 403):
                dispatcher.auth_failure(response)
                return None
            if status in (400, 404):
                dispatcher.stop(
                    StopReason.CONFIG,
                    f"cannot read the properties of {config.object_type!r} "
                    f"(HTTP {status}: {error_message(response.json(), response)}). "
                    "Check --object and --base-url.",
                )
                return None
            if status == 429:
                pause = dispatcher.throttled(response)
                if pause is None:
                    return None
                await anyio.sleep(pause)
                continue
            await anyio.sleep(dispatcher.backoff(attempt))
        # The schema could not be had; the job can still run, HubSpot validates on its side.
        return None


_IN_FLIGHT_AMBIGUOUS = (
    "this create was in flight when the job stopped, so HubSpot may or may not have it. It was "
    "not sent again, to avoid a duplicate; run jobs with --id-property <a unique property> so "
    "bulkops can check, or look the record up and feed this row back only if it is missing."
)


class _Cursor:
    """Walks an ascending stream of row numbers alongside the input (a merge join): constant
    memory however many rows a resumed job has finished."""

    def __init__(self, rows: Iterator[int] | None) -> None:
        self._rows = rows
        self._next = next(rows, None) if rows is not None else None

    def has(self, row: int) -> bool:
        rows = self._rows
        if rows is None:
            return False
        while self._next is not None and self._next < row:
            self._next = next(rows, None)
        return self._next == row


def _reject_input(
    writer: ResultWriter, raw: RawRow, category: str, message: str, field: str | None
) -> None:
    item = Item(raw.row, raw.data or {}, {})
    extra = {"property": field} if field else {}
    writer.record(Outcome(item, False, category=category, message=message, extra=extra))


def _id_property_problem(config: JobConfig, schema: PropertySchema) -> str | None:
    idp = config.id_property
    if not idp:
        return None
    if not schema.has(idp):
        return f"the id property {idp!r} does not exist on {config.object_type}"
    email_on_contacts = idp == "email" and config.object_type in ("contacts", "0-1")
    if not schema.is_unique(idp) and not email_on_contacts:
        return (
            f"the id property {idp!r} of {config.object_type} does not have unique values "
            "(hasUniqueValue is false); HubSpot only matches records on unique properties"
        )
    return None


def _dialect(config: JobConfig) -> Dialect:
    if config.api is Api.V1:
        return V1Dialect(
            config.operation, id_property=config.id_property, properties=config.properties
        )
    return V3Dialect(
        config.operation,
        config.object_type,
        id_property=config.id_property,
        properties=config.properties,
        properties_with_history=config.properties_with_history,
        archived=config.archived,
    )


def _verify_dialect(config: JobConfig) -> Dialect | None:
    """Creates with a unique property are settled by a v3 read on it (v1 tickets are the same
    records, so this serves the v1 dialect too)."""
    if config.operation is not Operation.CREATE or not config.id_property:
        return None
    object_type = "tickets" if config.api is Api.V1 else config.object_type
    return V3Dialect(
        Operation.READ, object_type, id_property=config.id_property, properties=[config.id_property]
    )


def _as_rows(source: Source) -> AsyncIterable[RawRow]:
    if isinstance(source, str | os.PathLike):
        return open_source(os.fspath(source))
    if isinstance(source, AsyncIterable):
        return _raw_or_mapping(source)
    return from_iterable(source)


async def _raw_or_mapping(source: AsyncIterable[Any]) -> AsyncIterator[RawRow]:
    row = 0
    async for x in source:
        row += 1
        if isinstance(x, RawRow):
            yield x
        elif isinstance(x, Mapping):
            yield RawRow(row, row, dict(x))
        else:
            yield RawRow(row, row, None, f"record {row}: not a mapping ({type(x).__name__})")


async def run_job(
    config: JobConfig,
    source: Source,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval: float = 0.5,
) -> JobReport:
    """Run one job to the end and return its report (also written to ``out_dir/report.json``).

    ``source`` is a path (CSV, TSV, JSONL; "-" for stdin), or any iterable or async iterable of
    dicts. Results go to ``config.out_dir``.
    """
    job = Job(config, source)
    if on_progress is None:
        return await job.run()
    result: list[JobReport] = []

    async def _run() -> None:
        result.append(await job.run())
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(_run)
        while True:
            on_progress(job.progress())
            await anyio.sleep(progress_interval)
    on_progress(job.progress())
    return result[0]
