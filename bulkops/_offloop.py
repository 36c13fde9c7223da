"""Read a synchronous iterable off the event loop, in chunks.

A plain iterable (a list, a generator over a database cursor, ``DataFrame.itertuples``) may
take any time to give its next item, and the event loop would stand still meanwhile: a host
program's other tasks (a web server, a heartbeat) would stall. So each chunk is taken in a
worker thread; the loop only hands the rows on. A chunk ends at ``_CHUNK_ROWS`` rows or after
``_CHUNK_S`` seconds, so a slow source still delivers its rows as they come.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TypeVar

import anyio.to_thread

__all__ = ["read_in_thread"]

T = TypeVar("T")
R = TypeVar("R")

_CHUNK_ROWS = 1000
_CHUNK_S = 0.05


async def read_in_thread(
    items: Iterable[T], convert: Callable[[int, T], R], *, chunk_rows: int = _CHUNK_ROWS
) -> AsyncIterator[R]:
    """``convert(row, item)`` for each item, row numbered from 1; iterated in a thread.

    The iterable is used by one thread at a time (never two chunks at once), but not always
    the same thread: objects bound to the thread that made them (a ``sqlite3`` cursor made
    with ``check_same_thread=True``) must be read through an async generator instead.
    """
    iterator: Iterator[T] | None = None
    row = 0

    def take() -> list[R]:
        nonlocal iterator, row
        if iterator is None:
            iterator = iter(items)  # may itself be slow (a query): off the loop too
        out: list[R] = []
        deadline = time.monotonic() + _CHUNK_S
        for item in iterator:
            row += 1
            out.append(convert(row, item))
            if len(out) >= chunk_rows or time.monotonic() >= deadline:
                break
        return out

    while chunk := await anyio.to_thread.run_sync(take):
        for converted in chunk:
            yield converted
