"""Running jobs inside other programs: outcomes as an async iterator, a sync entry point, and
graceful signal handling for library users (the CLI has its own in ``_cli.drive``).

``open_job`` runs the job in a task beside the caller's code::

    async with bulkops.open_job(config, rows) as job:
        async for outcome in job.outcomes():
            ...
    job.report.raise_for_status()

Outcomes wait in a bounded buffer. When it is full the job reads no further rows, so memory
stays bounded by ``buffer`` plus the rows already inside the engine (``max_outstanding``)
however slowly the caller consumes.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from types import FrameType
from typing import Any

import anyio

from ._config import JobConfig
from ._engine import Job, JobReport, Progress, Source, _single, run_job
from ._errors import ConfigError
from ._gc import batch_gc as tuned_gc
from ._http import Transport
from ._log import job_log
from ._outcome import Outcome

__all__ = ["RunningJob", "graceful_signals", "open_job", "run_job_sync"]

DEFAULT_BUFFER = 1000


class _OutcomeBuffer:
    """Outcomes between ``settle()`` (synchronous, never waits) and the caller. The job waits
    for room before it reads each row (``wait_room``), which is the back-pressure."""

    def __init__(self, size: int) -> None:
        self._items: deque[Outcome] = deque()
        self._size = size
        self._room = anyio.Event()
        self._arrived = anyio.Event()
        self._closed = False  # the job is over: no more outcomes
        self._dropping = False  # nobody reads: drop outcomes, never wait

    def put(self, outcome: Outcome) -> None:
        if self._dropping:
            return
        self._items.append(outcome)
        self._arrived.set()

    async def wait_room(self) -> None:
        while not self._dropping and len(self._items) >= self._size:
            self._room = anyio.Event()
            await self._room.wait()

    async def get(self) -> Outcome | None:
        """The next outcome; None when the job is over and every outcome was read."""
        while not self._items:
            if self._closed or self._dropping:
                return None
            self._arrived = anyio.Event()
            await self._arrived.wait()
        outcome = self._items.popleft()
        self._room.set()
        return outcome

    def close(self) -> None:
        self._closed = True
        self._arrived.set()

    def drop(self) -> None:
        self._dropping = True
        self._items.clear()
        self._room.set()
        self._arrived.set()

    def __len__(self) -> int:
        return len(self._items)


class RunningJob:
    """A job running beside the caller (from :func:`open_job`)."""

    def __init__(self, job: Job, buffer: _OutcomeBuffer) -> None:
        self.job = job
        self._buffer = buffer
        self._done = anyio.Event()
        self._iterated = False
        self.report: JobReport | None = None  # set when the job is over

    async def outcomes(self) -> AsyncIterator[Outcome]:
        """Each row's outcome as it is settled, until the job is over. Once per job."""
        if self._iterated:
            raise RuntimeError("outcomes() can be iterated once per job")
        self._iterated = True
        while (outcome := await self._buffer.get()) is not None:
            yield outcome

    async def wait(self) -> JobReport:
        """Wait for the job's end (outcomes not read yet are dropped) and return its report."""
        self._buffer.drop()
        await self._done.wait()
        if self.report is None:  # pragma: no cover - the job raised; open_job raises it
            raise RuntimeError("the job ended without a report")
        return self.report

    def stop(self) -> None:
        self.job.stop()

    def cancel(self) -> None:
        self.job.cancel()

    def progress(self) -> Progress:
        return self.job.progress()

    @property
    def buffered(self) -> int:
        """Outcomes settled but not read yet."""
        return len(self._buffer)


@asynccontextmanager
async def open_job(
    config: JobConfig,
    source: Source,
    *,
    buffer: int = DEFAULT_BUFFER,
    transport: Transport | None = None,
    handle_signals: bool = False,
) -> AsyncIterator[RunningJob]:
    """Start a job in a task beside the block; read its outcomes with ``job.outcomes()``.

    Leaving the block waits for the job's end: if the job is still running (the block broke
    out of the loop early) it is stopped first, gracefully, and unread outcomes are dropped;
    an exception in the block cancels the job at once. ``job.report`` holds the report
    afterwards. An exception the job raised (from the source, say) is raised as itself.
    """
    if buffer < 1:
        raise ConfigError("buffer must be >= 1")
    outcomes = _OutcomeBuffer(buffer)
    job = Job(config, source, transport=transport, on_outcome=outcomes.put)
    job._row_gate = outcomes.wait_room
    running = RunningJob(job, outcomes)

    async def run() -> None:
        try:
            await job.run()
        finally:
            running.report = job.report
            outcomes.close()
            running._done.set()

    signals = graceful_signals(job) if handle_signals else _nothing()
    try:
        with signals:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                try:
                    yield running
                except BaseException:
                    job.cancel()
                    outcomes.drop()
                    raise
                if not running._done.is_set():
                    job.stop()
                outcomes.drop()
                await running._done.wait()
    except BaseExceptionGroup as group:
        raise _single_base(group) from None


def _single_base(group: BaseExceptionGroup[Any]) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, ExceptionGroup):
        return _single(error)
    return error


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def run_job_sync(
    config: JobConfig,
    source: Source,
    *,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval: float = 0.5,
    transport: Transport | None = None,
    handle_signals: bool = False,
    batch_gc: bool = False,
) -> JobReport:
    """:func:`~bulkops.run_job` for code without an event loop (Airflow and Dagster tasks,
    scripts): runs its own loop and returns the report (``.raise_for_status()`` to raise a
    stop). Called where a loop is running, it refuses: await ``run_job`` there instead.

    ``batch_gc``: tune the garbage collector for the job's duration (:func:`bulkops.batch_gc`:
    less CPU, no long pauses); process-wide while it lasts, so off unless asked for."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ConfigError(
            "run_job_sync() cannot run inside a running event loop (a notebook, an async "
            "framework): use `await bulkops.run_job(...)` there"
        )
    call = functools.partial(
        run_job,
        config,
        source,
        on_outcome=on_outcome,
        on_progress=on_progress,
        progress_interval=progress_interval,
        transport=transport,
        handle_signals=handle_signals,
    )
    if not batch_gc:
        return anyio.run(call)
    with tuned_gc():
        return anyio.run(call)


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def graceful_signals(
    job: Job | RunningJob, signals: Sequence[signal.Signals] = _SIGNALS
) -> Iterator[None]:
    """While inside, the first SIGINT/SIGTERM stops ``job`` gracefully (requests in flight
    finish, results and the report are written: resumable), the second cancels it at once.
    The previous handlers are put back on the way out.

    Enter it on the event loop's thread, where the job runs. Python delivers signals to the
    main thread only: from another thread this installs nothing (and logs a warning on
    ``bulkops.job``), and the host program's own handling stays as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        job_log.warning("graceful_signals: not the main thread, so no signal handlers installed")
        yield
        return
    call_on_loop = _loop_caller()
    seen = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal seen
        seen += 1
        job_log.warning(
            "%s: %s",
            signal.Signals(signum).name,
            "stopping, waiting for requests in flight" if seen == 1 else "cancelling at once",
        )
        call_on_loop(job.stop if seen == 1 else job.cancel)

    previous = {sig: signal.getsignal(sig) for sig in signals}
    try:
        for sig in signals:
            signal.signal(sig, on_signal)
        yield
    finally:
        for sig, handler in previous.items():
            # None: a handler installed from C, which Python cannot put back; the default is
            # the nearest thing.
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _loop_caller() -> Callable[[Callable[[], None]], None]:
    """How a signal handler hands work to the running loop (and wakes it if it sleeps)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return lambda action: action()  # trio, or no loop: the handler runs on its thread

    def call(action: Callable[[], None]) -> None:
        loop.call_soon_threadsafe(action)

    return call
