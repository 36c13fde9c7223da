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

from ._coerce import Coercer
from ._config import JobConfig
from ._errors import AMBIGUOUS, INPUT_ERROR, PREFLIGHT, ConfigError, InputError
from ._header import check_columns
from ._journal import row_digest
from ._models import Item, Operation, Outcome, Phase
from ._normalize import Normalizer
from ._preflight import PropertySchema
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

    async def run(self) -> None:
        config = self._config
        normalize = Normalizer(
            config.operation,
            api=config.api,
            id_property=config.id_property,
            empty_clears=config.empty_clears,
            coerce=Coercer(
                types=self._schema.types() if self._schema is not None else None,
                zone=config.zone,
                hooks=config.coerce,
            ),
        )
        creating = config.operation is Operation.CREATE
        validate = None
        if self._schema is not None and config.preflight and config.operation in _VALIDATED:
            validate = self._schema.validate
        resumed = self._resumed
        finished = _Finished(resumed.finished if resumed else None)
        in_flight = _Cursor(resumed.in_flight if resumed and creating else None)
        rows = self._rows
        scheduler = self._scheduler
        header_checked = False
        try:
            async for raw in rows:
                if not header_checked:
                    header_checked = True
                    problem = self._header_problem(rows)
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
                if raw.data is None:
                    self._settle_unparsed(raw)
                    continue
                try:
                    item = normalize(raw.row, raw.data)
                except InputError as exc:
                    self._fail(
                        Item(raw.row, raw.data, {}),
                        INPUT_ERROR,
                        str(exc),
                        {"property": exc.field} if exc.field else {},
                    )
                    continue
                if validate is not None:
                    errors = validate(item.properties, creating=creating)
                    if errors:
                        extra: dict[str, Any] = {
                            "properties": [e.property for e in errors],
                            "codes": [e.code for e in errors],
                        }
                        self._fail(item, PREFLIGHT, "; ".join(e.message for e in errors), extra)
                        continue
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

    def _header_problem(self, rows: AsyncIterable[RawRow]) -> str | None:
        header = getattr(rows, "header", None)
        if header is None:
            return None
        config = self._config
        return check_columns(
            header,
            schema=self._schema,
            operation=config.operation,
            id_property=config.id_property,
            object_type=config.object_type,
        )

    def _fail(self, item: Item, category: str, message: str, extra: Mapping[str, Any]) -> None:
        self._settle(Outcome(item, False, category=category, message=message, extra=dict(extra)))


def _not_the_same_input(row: int) -> str:
    return (
        f"the input is not this job's: row {row} differs from the row the job finished "
        "before (resume needs the same rows in the same order). Finished rows are kept; start a "
        "new job (another out_dir) for other data."
    )


_VALIDATED = frozenset({Operation.CREATE, Operation.UPDATE, Operation.UPSERT})
