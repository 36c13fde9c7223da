"""The console driver: runs a job with a live display and Ctrl-C/SIGTERM handling.

Shared by the ``bulkops`` command and the demo, so neither imports the other: the first signal
stops the job gracefully (requests in flight finish, results are kept), the second at once.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

import anyio
import anyio.to_thread

from ._engine import Job
from ._logfmt import say
from ._progress import ProgressDisplay
from ._report import JobReport

__all__ = ["count_rows", "drive"]


def count_rows(path: str) -> int | None:
    """Rough row count for the ETA: newline count, less a CSV header."""
    if path == "-" or not os.path.isfile(path):
        return None
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return max(0, n - 1) if path.lower().endswith((".csv", ".tsv")) else n


async def drive(
    job: Job,
    display: ProgressDisplay,
    *,
    count_from: str | None = None,
    on_tick: Callable[[], None] | None = None,
) -> JobReport:
    """Run a job with a live display; Ctrl-C/SIGTERM once stops gracefully, twice at once.
    ``on_tick`` runs with each refresh of the display (the metrics file)."""
    result: list[JobReport] = []
    try:
        await _drive(job, display, count_from, result, on_tick)
    except BaseExceptionGroup as group:
        # One task failing (a ConfigError found when the job opens) cancels the others; show
        # that error, not the group around it.
        first = group.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    display(job.progress())
    return result[0]


async def _drive(
    job: Job,
    display: ProgressDisplay,
    count_from: str | None,
    result: list[JobReport],
    on_tick: Callable[[], None] | None = None,
) -> None:
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            result.append(await job.run())
            tg.cancel_scope.cancel()

        async def signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
                seen = 0
                async for _ in received:
                    seen += 1
                    if seen == 1:
                        say(
                            "\nbulkops: stopping, waiting for requests in flight "
                            "(press Ctrl-C again to stop at once)",
                            event="stopping",
                            level=logging.WARNING,
                        )
                        job.stop()
                    else:
                        job.cancel()

        async def show() -> None:
            if count_from:
                display.expected_rows = await anyio.to_thread.run_sync(
                    count_rows, count_from, abandon_on_cancel=True
                )
            while True:
                display(job.progress())
                if on_tick is not None:
                    on_tick()
                await anyio.sleep(0.25)

        tg.start_soon(run)
        tg.start_soon(signals)
        tg.start_soon(show)
