"""Intake: raw rows -> items in the scheduler, or outcomes when a row cannot be sent.

Each row is normalised for the operation and checked against the property schema (pre-flight);
a row that fails either ends here with its outcome. A resumed job skips the rows it finished
before, and a create that was in flight when the last run stopped is read back (phase VERIFY)
or, without an id property to read it by, failed AMBIGUOUS: never created twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ._config import JobConfig
from ._errors import AMBIGUOUS, ConfigError
from ._journal import row_digest
from ._models import Item, Operation, Outcome, Phase
from ._preflight import PropertySchema
from ._rowcheck import RowCheck
from ._scheduler import Scheduler
from ._sources import RawRow
from ._stats import Stop, StopLatch, StopReason

__all__ = ["Intake", "Resumed"]

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
        self._resumed = resumed
        self._digests = digests
        self.rows_read = 0
        self.skipped = 0
        self.reading_done = False  # no more rows will come (read to the end, or stopped)
        self.exhausted = False  # read to the end
        self.left: int | None = None  # rows a trial run (--limit) left for resume

    async def run(self) -> None:
        config = self._config
        check = RowCheck(config, self._schema)
        creating = config.operation is Operation.CREATE
        resumed = self._resumed
        finished = _Finished(resumed.finished if resumed else None)
        in_flight = _Cursor(resumed.in_flight if resumed and creating else None)
        rows = self._rows
        scheduler = self._scheduler
        header_checked = False
        limit = config.limit
        taken = 0  # rows of this run (not skipped as finished before), for --limit
        try:
            async for raw in rows:
                if not header_checked:
                    header_checked = True
                    problem = check.header_problem(getattr(rows, "header", None))
                    if problem is not None:
                        # A mistake in the header is one error, before the first write.
                        self._latch.set(Stop(StopReason.INPUT, problem))
                        break
                self.rows_read += 1
                digest = row_digest(raw.data, None) if self._digests and raw.data else b""
                done = finished.digest(raw.row)
                if done is not None:
                    if done and digest and done != digest:
                        self._latch.set(Stop(StopReason.INPUT, _not_the_same_input(raw.row)))
                        break
                    self.skipped += 1
                    continue
                if limit is not None and taken >= limit:
                    # A trial run: this row and the rest stay unprocessed, for resume.
                    self.rows_read -= 1
                    self.left = 1 + await _count_rest(rows)
                    break
                taken += 1
                if raw.data is None:
                    self._settle_unparsed(raw)
                    continue
                checked = check(raw.row, raw.data)
                if isinstance(checked, Outcome):
                    self._settle(checked)
                    continue
                item = checked
                item.digest = digest
                phase = Phase.WRITE
                if in_flight.has(raw.row):
                    # Sent before the stop with no outcome: it may exist in HubSpot.
                    item.maybe_written = True
                    item.attempts = 1
                    if not config.id_property:
                        self._fail(item, AMBIGUOUS, IN_FLIGHT_AMBIGUOUS, {})
                        continue
                    phase = Phase.VERIFY
                if not await scheduler.put(item, phase=phase):
                    break
            else:
                self.exhausted = True
                if not self.rows_read and resumed is None and config.operation is Operation.ARCHIVE:
                    # An empty file where ids were meant: most likely the wrong one.
                    self._latch.set(Stop(StopReason.INPUT, _NOTHING_TO_ARCHIVE))
        except ConfigError as exc:
            # The input cannot be read on (a damaged file, a bad header): stop, keep results.
            self._latch.set(Stop(StopReason.INPUT, str(exc)))
        finally:
            self.reading_done = True
            scheduler.close_intake()
            aclose = getattr(rows, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    def _fail(self, item: Item, category: str, message: str, extra: Mapping[str, Any]) -> None:
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
