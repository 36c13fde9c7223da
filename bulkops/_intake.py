"""Intake: raw rows -> items in the scheduler, or outcomes when a row cannot be sent.

Each row is normalised for the operation and checked against the property schema (pre-flight);
a row that fails either ends here with its outcome. A resumed job skips the rows it finished
before, and a create that was in flight when the last run stopped is read back (phase VERIFY)
or, without an id property to read it by, failed AMBIGUOUS: never created twice.
"""

from __future__ import annotations

import operator
import os
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass
from typing import Any, cast

import anyio
import anyio.lowlevel

from ._config import JobConfig
from ._errors import AMBIGUOUS, ConfigError
from ._frames import DataFrameLike, frame_rows
from ._journal import row_digest
from ._log import intake_log
from ._models import Item, Operation, Outcome, Phase
from ._preflight import PropertySchema
from ._rowcheck import RowCheck
from ._scheduler import Scheduler
from ._sources import RawRow, RowStream, from_iterable, open_source
from ._stats import Stop, StopLatch, StopReason

__all__ = ["Intake", "Resumed", "Source", "rows_of"]

_CHECK_EVERY_ROWS = 16
# With a check of whole slices (RowCheck.many_checker), the plain path takes this many rows at
# a time: the slice's own cost is spread thinner, and 128 rows checked row by row (a slice
# where one fails) still take well under _YIELD_EVERY_S.
_SLICE_ROWS = 128
_WRITE = Phase.WRITE
_data_of = operator.attrgetter("data")
_row_of = operator.attrgetter("row")
_maybe_written_of = operator.attrgetter("maybe_written")
_YIELD_EVERY_S = 0.002

IN_FLIGHT_AMBIGUOUS = (
    "this create was in flight when the job stopped, so HubSpot may or may not have it. It was "
    "not sent again, to avoid a duplicate; run jobs with --id-property <a unique property> so "
    "bulkops can check, or look the record up and feed this row back only if it is missing."
)


@dataclass(slots=True)
class Resumed:
    """What an earlier run left: rows finished, and create rows sent without an outcome
    (both ascending streams, walked alongside the input in constant memory)."""

    finished: Iterator[tuple[int, bytes]]  # (row, digest)
    in_flight: Iterator[int]


class _Cursor:
    """Walks an ascending stream of row numbers alongside the input (a merge join)."""

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


class _Finished:
    """The rows a resumed job finished before, with their digests, walked like ``_Cursor``."""

    def __init__(self, rows: Iterator[tuple[int, bytes]] | None) -> None:
        self._rows = rows
        self._next = next(rows, None) if rows is not None else None

    def digest(self, row: int) -> bytes | None:
        """The finished row's digest (b"" when none was journaled); None: not finished."""
        rows = self._rows
        if rows is None:
            return None
        while self._next is not None and self._next[0] < row:
            self._next = next(rows, None)
        return self._next[1] if self._next is not None and self._next[0] == row else None


class _Refused(Exception):
    """The input cannot be the job's: the intake stops with this."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(stop.message)
        self.stop = stop


class _LimitReached(Exception):
    """A trial run (``limit``) has taken its rows."""


class Intake:
    def __init__(
        self,
        config: JobConfig,
        rows: AsyncIterable[RawRow],
        *,
        scheduler: Scheduler,
        settle: Callable[[Outcome], None],
        settle_unparsed: Callable[[RawRow], None],
        latch: StopLatch,
        schema: PropertySchema | None,
        resumed: Resumed | None,
        digests: bool = False,
    ) -> None:
        """``digests``: journal each row's identity and, on resume, check the rows finished
        before are the rows given now (for sources without a file fingerprint)."""
        self._config = config
        self._rows = rows
        self._scheduler = scheduler
        self._settle = settle
        self._settle_unparsed = settle_unparsed
        self._latch = latch
        self._schema = schema
        self._digests = digests
        self._resumed = resumed
        # Mapping, normalising and pre-flight: the one check a row gets (the dry run too).
        self._check = RowCheck(config, schema)
        self._row_check = self._check.checker()  # asked again once the source is known
        self._rows_check: Callable[[Iterable[int], list[dict[str, Any]]], list[Item] | None] | None
        self._rows_check = None  # RowCheck.many_checker's, once the source is known
        self._creating = config.operation is Operation.CREATE
        self._limit = config.limit
        self._taken = 0  # rows of this run (not skipped as finished before), for --limit
        # No resume, limit or digests: rows are taken a slice at a time (_take_plain).
        self._plain = resumed is None and self._limit is None and not digests
        self._finished = _Finished(resumed.finished if resumed else None)
        self._in_flight = _Cursor(resumed.in_flight if resumed and self._creating else None)
        self.rows_read = 0
        self._yielded_at = 0.0  # when the intake last let the loop's other tasks run
        self.skipped = 0
        self.reading_done = False  # no more rows will come (read to the end, or stopped)
        self.exhausted = False  # read to the end
        self.left: int | None = None  # rows a trial run (--limit) left for resume

    async def run(self) -> None:
        rows, scheduler = self._rows, self._scheduler
        # Our readers hand over what they have already read without an await per row.
        drain: Callable[[], list[RawRow]] | None = getattr(rows, "drain_buffered", None)
        self._yielded_at = time.monotonic()
        header_checked = False
        try:
            async for first in rows:
                pending = [first, *drain()] if drain is not None else [first]
                # Fresh writes are admitted a chunk at a time (Scheduler.try_put_many), and
                # always before anything that waits or stops, and before a read-back is put:
                # writes to one key still reach the scheduler in input order.
                fresh: list[Item] = []
                stopped = False
                if not header_checked:
                    header_checked = True
                    # Our CSV readers say so: every name and value they give is a str.
                    self._check.text_only = bool(getattr(rows, "text_only", False))
                    header = getattr(rows, "header", None)
                    self._row_check = self._check.checker(header)
                    self._rows_check = self._check.many_checker()
                    if problem := self._check.header_problem(header):
                        # A mistake in the header is one error, before the first write.
                        self._latch.set(Stop(StopReason.INPUT, problem))
                        break
                start = 0
                if self._plain:
                    # The common case a slice at a time; the rows it does not take (and the
                    # rest of the chunk after one) go the per-row way below.
                    while start < len(pending):
                        if not await self._pause(fresh):
                            stopped = True
                            break
                        stride = _CHECK_EVERY_ROWS if self._rows_check is None else _SLICE_ROWS
                        end = min(len(pending), start + stride)
                        done = self._take_plain(pending, start, end, fresh)
                        if done < end:
                            start = done
                            break
                        start = end
                    if stopped:
                        break
                for index in range(start, len(pending)):
                    raw = pending[index]
                    read = self.rows_read  # only this loop changes it
                    if read % _CHECK_EVERY_ROWS == 0 and not await self._pause(fresh):
                        stopped = True
                        break
                    self.rows_read = read + 1
                    try:
                        taken = self._take(raw)
                    except _Refused as refused:
                        self._latch.set(refused.stop)
                        stopped = True
                        break
                    except _LimitReached:
                        # A trial run: this row and the rest stay unprocessed, for resume.
                        self.rows_read -= 1
                        stopped = True
                        if fresh and not await self._admit(fresh):
                            break
                        self.left = len(pending) - index + await _count_rest(rows)
                        break
                    if taken is None:
                        continue
                    item, phase = taken
                    if phase is Phase.WRITE:
                        fresh.append(item)
                        continue
                    if fresh and not await self._admit(fresh):
                        stopped = True
                        break
                    # Admitted at once while there is room (no coroutine per row); else wait.
                    admitted = scheduler.try_put(item, phase=phase)
                    if admitted is None:
                        admitted = await scheduler.put(item, phase=phase)
                    if not admitted:
                        stopped = True
                        break
                if fresh and not await self._admit(fresh):
                    stopped = True
                if stopped:
                    break
            else:
                self.exhausted = True
                archiving = self._config.operation is Operation.ARCHIVE
                if not self.rows_read and self._resumed is None and archiving:
                    # An empty file where ids were meant: most likely the wrong one.
                    self._latch.set(Stop(StopReason.INPUT, _NOTHING_TO_ARCHIVE))
        except ConfigError as exc:
            # The input cannot be read on (a damaged file, a bad header): stop, keep results.
            self._latch.set(Stop(StopReason.INPUT, str(exc)))
        finally:
            self.reading_done = True
            self._scheduler.close_intake()
            aclose = getattr(rows, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    async def _pause(self, fresh: list[Item]) -> bool:
        """Let the loop's other tasks (the host program's too) run once ``_YIELD_EVERY_S`` has
        passed: normalising never waits, and neither does the scheduler until it is full. The
        fresh writes so far are admitted first. False once the job is halted."""
        if time.monotonic() - self._yielded_at < _YIELD_EVERY_S:
            return True
        if fresh and not await self._admit(fresh):
            return False
        await anyio.lowlevel.checkpoint()
        self._yielded_at = time.monotonic()
        return True

    async def _admit(self, items: list[Item]) -> bool:
        """Admit ``items`` (fresh writes, in input order) and empty the list; waits while the
        engine is full. False once the job is halted: the rest stay unprocessed."""
        scheduler = self._scheduler
        taken = scheduler.try_put_many(items)
        if taken is None:
            items.clear()
            return False
        rest = items[taken:]
        items.clear()
        for item in rest:  # the engine is full: one at a time, as room is made
            if not await scheduler.put(item):
                return False
        return True

    def _take_plain(self, rows: list[RawRow], start: int, end: int, fresh: list[Item]) -> int:
        """:meth:`_take` for ``rows[start:end]`` in a job with no resume, limit or digests:
        fresh writes are appended to ``fresh``, the rest settled. Returns the index of the
        first row it did not take (a retried row that may have been written), or ``end``."""
        rows_check = self._rows_check
        if rows_check is not None:
            chunk = rows[start:end]
            datas = list(map(_data_of, chunk))
            if None not in datas and not any(map(_maybe_written_of, chunk)):
                items = rows_check(map(_row_of, chunk), datas)
                if items is not None:
                    fresh += items
                    self.rows_read += end - start
                    self._taken += end - start
                    return end
        check, settle, append = self._row_check, self._settle, fresh.append
        index = start
        for index in range(start, end):
            raw = rows[index]
            if raw.maybe_written:
                break
            data = raw.data
            if data is None:
                self._settle_unparsed(raw)
                continue
            checked = check(raw.row, data)
            if type(checked) is Item:
                append(checked)
            else:
                settle(checked)  # type: ignore[arg-type]  # an Outcome: normalising or pre-flight failed
        else:
            index = end
        self.rows_read += index - start
        self._taken += index - start
        return index

    def _take(self, raw: RawRow) -> tuple[Item, Phase] | None:
        """The item to schedule for this row, and its phase; None when the row ends here
        (finished before, unreadable, invalid, or a create that may exist without a way to
        check)."""
        data = raw.data
        digest = row_digest(data, None) if self._digests and data else b""
        resumed = self._resumed is not None
        if resumed:
            done = self._finished.digest(raw.row)
            if done is not None:
                if done and digest and done != digest:
                    raise _Refused(Stop(StopReason.INPUT, _not_the_same_input(raw.row)))
                self.skipped += 1
                return None
        limit = self._limit
        if limit is not None and self._taken >= limit:
            raise _LimitReached
        self._taken += 1
        if data is None:
            self._settle_unparsed(raw)
            return None
        checked = self._check(raw.row, data)
        if isinstance(checked, Outcome):
            self._settle(checked)  # invalid: normalising or pre-flight failed
            return None
        item = checked
        if digest:
            item.digest = digest  # else the default, b""
        in_flight = resumed and self._in_flight.has(raw.row)
        if not in_flight and not raw.maybe_written:
            return item, _WRITE
        # Sent before the stop with no outcome, or a retried AMBIGUOUS row: it may exist.
        item.maybe_written = True
        item.attempts = 1
        if self._config.id_property:
            return item, Phase.VERIFY  # read it back by its unique value first
        if in_flight:
            self._fail(item, AMBIGUOUS, IN_FLIGHT_AMBIGUOUS, {})
            return None
        return item, Phase.WRITE  # an AMBIGUOUS row the user chose to send again

    def _fail(self, item: Item, category: str, message: str, extra: Mapping[str, Any]) -> None:
        intake_log.debug(
            "row %d failed before it was sent (%s): %s",
            item.row,
            category,
            message,
            extra={"rows": 1, "kind": category},
        )
        self._settle(Outcome(item, False, category=category, message=message, extra=dict(extra)))


_NOTHING_TO_ARCHIVE = (
    "the input holds no rows: an archive (or delete) of nothing is refused (is it the right input?)"
)


async def _count_rest(rows: AsyncIterable[RawRow]) -> int:
    n = 0
    async for _ in rows:
        n += 1
    return n


def _not_the_same_input(row: int) -> str:
    return (
        f"the input is not this job's: row {row} differs from the row the job finished "
        "before (resume needs the same rows in the same order). Finished rows are kept; start a "
        "new job (another out_dir) for other data."
    )


_VALIDATED = frozenset({Operation.CREATE, Operation.UPDATE, Operation.UPSERT})


Source = (
    str
    | os.PathLike[str]
    | AsyncIterable[RawRow]
    | Iterable[Mapping[str, Any]]
    # What pandas-stubs says DataFrame.to_dict("records") gives; a key that is not a str
    # fails its row ("property name ... is not a string"), not the job.
    | Iterable[Mapping[Hashable, Any]]
    | AsyncIterable[Mapping[str, Any]]
    | DataFrameLike
)
"""What a job reads: a path, records (sync or async), RawRows, or a frame (see _frames)."""


def rows_of(source: Source) -> AsyncIterable[RawRow]:
    """Any source as a stream of numbered raw rows."""
    frame = frame_rows(source)
    if frame is not None:
        return frame  # pandas, polars, pyarrow: sliced in a worker thread
    if isinstance(source, str | os.PathLike):
        return open_source(os.fspath(source))
    if isinstance(source, RowStream):
        return source  # one of our readers (``open_source``): rows, and the header to check
    if isinstance(source, AsyncIterable):
        return _raw_or_mapping(source)
    if not isinstance(source, Iterable):
        raise ConfigError(
            f"the source is a {type(source).__name__}: give a path, an iterable of dicts, "
            "or a pandas/polars DataFrame or pyarrow Table"
        )
    return from_iterable(cast(Iterable[Mapping[str, Any]], source))


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
