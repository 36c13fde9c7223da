"""The intake's plain path (a job with no resume, limit or digests takes rows a slice at a
time) against its per-row path: the same outcomes and the same admissions, in the same order,
for every kind of row, in chunks of every size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bulkops import Secret
from bulkops._config import JobConfig
from bulkops._intake import Intake
from bulkops._models import Item, Operation, Outcome, Phase
from bulkops._preflight import PropertySchema
from bulkops._scheduler import Scheduler
from bulkops._sources import RawRow
from bulkops._stats import StopLatch
from bulkops.testing._fake_types import build_types, property_json


def _schema() -> PropertySchema:
    ot = build_types(None)["tickets"]
    body = {"results": [property_json(ot, p) for p in ot.properties]}
    return PropertySchema.from_hubspot(body, object_type="tickets")


def _rows(unusual: bool) -> list[RawRow]:
    """120 rows, every 7th refused by pre-flight; ``unusual``: also unparsed and retried ones
    (without them, whole slices of rows take the plain path's quickest way)."""
    rows = []
    for n in range(1, 121):
        data = {"subject": f"s{n}", "hs_pipeline_stage": "1", "external_id": f"k{n % 50}"}
        if n % 7 == 0:
            data["hs_ticket_priority"] = "NOPE"  # refused by pre-flight
        if n % 11 == 0 and unusual:
            rows.append(RawRow(n, n + 1, None, f"line {n + 1}: malformed"))  # unparsed
        elif n % 13 == 0 and unusual:
            rows.append(RawRow(n, n + 1, data, maybe_written=True))  # a retried AMBIGUOUS row
        else:
            rows.append(RawRow(n, n + 1, data))
    return rows


class _Chunks:
    """A source handing its rows over ``size`` at a time, as our threaded readers do."""

    def __init__(self, rows: list[RawRow], size: int) -> None:
        self._rows, self._size = rows, size
        self._pos = 0
        self.header = ["subject", "hs_pipeline_stage", "external_id"]

    def __aiter__(self) -> AsyncIterator[RawRow]:
        return self

    async def __anext__(self) -> RawRow:
        if self._pos >= len(self._rows):
            raise StopAsyncIteration
        self._pos += 1
        return self._rows[self._pos - 1]

    def drain_buffered(self) -> list[RawRow]:
        end = min(len(self._rows), self._pos - 1 + self._size)
        out = self._rows[self._pos : end]
        self._pos = end
        return out


class _Recording(Scheduler):
    def __init__(self, seen: list[tuple[int, Phase, bool, int]], **kw: Any) -> None:
        super().__init__(**kw)
        self.seen = seen

    def try_put(self, item: Item, *, phase: Phase = Phase.WRITE) -> bool | None:
        done = super().try_put(item, phase=phase)
        if done:
            self.seen.append((item.row, phase, item.maybe_written, item.attempts))
        return done

    def try_put_many(self, items: Any) -> int | None:
        done = super().try_put_many(items)
        self.seen.extend(
            (it.row, Phase.WRITE, it.maybe_written, it.attempts) for it in items[: done or 0]
        )
        return done


async def _run(
    config: JobConfig, chunk: int, plain: bool, unusual: bool = True
) -> tuple[list[Any], list[Any], int]:
    seen: list[tuple[int, Phase, bool, int]] = []
    settled: list[tuple[int, str | None]] = []
    scheduler = _Recording(seen, batch_size=10, max_outstanding=1000)

    def settle(outcome: Outcome) -> None:
        settled.append((outcome.item.row, outcome.category))

    def unparsed(raw: RawRow) -> None:
        settled.append((raw.row, "unparsed"))

    intake = Intake(
        config,
        _Chunks(_rows(unusual), chunk),
        scheduler=scheduler,
        settle=settle,
        settle_unparsed=unparsed,
        latch=StopLatch(),
        schema=_schema(),
        resumed=None,
    )
    assert intake._plain
    intake._plain = plain
    with anyio.fail_after(5):
        await intake.run()
    return settled, seen, intake.rows_read


@pytest.mark.parametrize("chunk", [1, 5, 16, 17, 40, 500])
@pytest.mark.parametrize("id_property", [None, "external_id"])
async def test_the_plain_path_takes_rows_as_the_per_row_path_does(
    chunk: int, id_property: str | None
) -> None:
    config = JobConfig(
        operation=Operation.CREATE,
        token=Secret("x"),
        out_dir=Path("/tmp/unused"),
        id_property=id_property,
    )
    plain = await _run(config, chunk, plain=True)
    per_row = await _run(config, chunk, plain=False)
    assert plain == per_row
    settled, seen, read = plain
    assert read == 120
    assert sorted([s[0] for s in settled] + [s[0] for s in seen]) == list(range(1, 121))
    # A retried create that may exist is read back first, or sent again marked as such.
    assert (13, Phase.VERIFY if id_property else Phase.WRITE, True, 1) in seen


@pytest.mark.parametrize("chunk", [1, 16, 17, 40, 500])
@pytest.mark.parametrize("id_property", [None, "external_id"])
async def test_slices_of_parsed_rows_are_taken_as_the_per_row_path_takes_them(
    chunk: int, id_property: str | None
) -> None:
    """Every row parsed and none retried: whole slices are checked at once; the items and the
    refused rows (every 7th) must still come out exactly as row by row."""
    config = JobConfig(
        operation=Operation.CREATE,
        token=Secret("x"),
        out_dir=Path("/tmp/unused"),
        id_property=id_property,
    )
    plain = await _run(config, chunk, plain=True, unusual=False)
    assert plain == await _run(config, chunk, plain=False, unusual=False)
    settled, seen, read = plain
    assert read == 120
    assert [s[0] for s in settled] == list(range(7, 121, 7))
    assert [s[0] for s in seen] == [n for n in range(1, 121) if n % 7]
