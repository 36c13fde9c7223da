"""Result files: ``succeeded.jsonl`` and ``failed.jsonl``.

Every input row ends in exactly one of the two files, with its 1-based row number. A failed
line keeps the original input under ``input``, so ``failed.jsonl`` can be fed straight back as
the input of another job (the JSONL reader unwraps it).

Lines are buffered here and written whole by :meth:`ResultWriter.flush` (the engine flushes with
every journal commit, at most a second apart, and at the end), so a file on disk never ends in
half a line and never holds a row the journal does not: after any stop, what is on disk is
usable, and a resume rebuilds the files from the journal.
"""

from __future__ import annotations

import itertools
import math
import operator
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import msgspec
import orjson

from ._journal import Journal
from ._models import Item, Outcome

__all__ = [
    "FAILED",
    "SUCCEEDED",
    "Committer",
    "ResultWriter",
    "failed_line",
    "item_key",
    "succeeded_line",
]

SUCCEEDED = "succeeded.jsonl"
FAILED = "failed.jsonl"

_FLUSH_BYTES = 1 << 20
_COMMIT_EVERY_S = 0.02
_FLUSH_FILES_EVERY_S = 1.0


def _default(value: Any) -> Any:
    # An input value orjson cannot encode (Decimal, a numpy scalar...) must not crash the job
    # while its failure is written: keep its text, which reads back as the same value.
    return str(value)


# msgspec, not orjson, for the lines: both write the same compact JSON, but orjson starts every
# output in a large buffer and shrinks it, and a line kept (in the write buffer and the
# journal's pending batch) then costs about 2.5 us more than msgspec's (measured: 20,000 result
# lines, 2.4-3.0 us each with orjson, 0.22 us with msgspec).
_encode = msgspec.json.Encoder(enc_hook=_default, decimal_format="string").encode


class _Written(msgspec.Struct):
    """A written row's usual line, ``{"row": .., "id": .., "new": ..}``: encoded from a struct,
    not a dict built per record (the same bytes, in the field order, for less CPU)."""

    row: int
    id: str | None
    new: bool


_row_of = operator.attrgetter("item.row")
_new_of = operator.attrgetter("new")
_hubspot_id_of = operator.attrgetter("hubspot_id")
_digest_of = operator.attrgetter("item.digest")
_usual_write_of = operator.attrgetter("ok", "properties", "extra", "item.passthrough", "new")
_USUAL_WRITES = ((True, None, None, None, True), (True, None, None, None, False))


def _all_usual_writes(outcomes: Sequence[Outcome]) -> bool:
    """Whether each outcome is a written row with the usual line (``_Written``): ok, new or
    not (known), no properties read back, no extra fields, no passthrough columns. One
    C-level pass (attrgetter, then a tuple compare), as this runs for every batch."""
    usual = _USUAL_WRITES
    return all(map(usual.__contains__, map(_usual_write_of, outcomes)))


def _dumps(line: dict[str, Any]) -> bytes:
    try:
        return _encode(line)
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError):
        # What msgspec refuses (a lone surrogate, an integer past 64 bits, a key that is not
        # text): orjson's way, as before, whose own refusals the caller already handles.
        return orjson.dumps(line, default=_default, option=orjson.OPT_NON_STR_KEYS)


def succeeded_line(outcome: Outcome, *, id_property: str | None = None) -> bytes:
    """``id_property``: the job's; its value is written as ``key`` (to join results back)."""
    item = outcome.item
    line: dict[str, Any] = {"row": item.row, "id": outcome.hubspot_id}
    if outcome.new is not None or item.maybe_written:
        line["new"] = outcome.new
    if outcome.properties is not None:
        line["properties"] = outcome.properties
    if outcome.extra:
        line.update(outcome.extra)
    _add_key_and_passthrough(line, item, id_property)
    return _dumps(line)


def _add_key_and_passthrough(line: dict[str, Any], item: Item, id_property: str | None) -> None:
    if id_property:
        line["key"] = item_key(item, id_property)
    if item.passthrough is not None:
        line["passthrough"] = item.passthrough


def item_key(item: Item, id_property: str | None) -> str | None:
    """The value a row is known by: the id property's (as sent), else the record id (update,
    archive, read by id), else None (a create without an id property)."""
    if id_property:
        value = item.properties.get(id_property) or item.record_id
        if value is None:
            # A row that failed before it was normalised: its input still names the key.
            raw_value = item.raw.get(id_property)
            value = raw_value if isinstance(raw_value, str) else None
        return value
    return item.record_id


def failed_line(
    outcome: Outcome, *, source_line: int | None = None, id_property: str | None = None
) -> bytes:
    item = outcome.item
    error: dict[str, Any] = {
        "category": outcome.category or "ERROR",
        "message": outcome.message or "",
    }
    if outcome.extra:
        error.update(outcome.extra)
    line: dict[str, Any] = {"row": item.row}
    if source_line is not None:
        # A record the reader could not parse: there is no input to keep, only where it was.
        line["line"] = source_line
    line.update(
        error=error, attempts=item.attempts, input=item.raw if source_line is None else None
    )
    _add_key_and_passthrough(line, item, id_property)
    return _dumps(line)


class ResultWriter:
    """Appends outcome lines (and journals them). Synchronous: a line costs a microsecond or
    two, far less than handing it to a thread."""

    def __init__(
        self, files_dir: Path, *, journal: Journal | None = None, id_property: str | None = None
    ) -> None:
        """``id_property``: the job's, whose value each line carries as ``key``."""
        self._id_property = id_property
        files_dir.mkdir(parents=True, exist_ok=True)
        self.files_dir = files_dir
        self._ok = open(files_dir / SUCCEEDED, "ab", buffering=0)
        self._bad = open(files_dir / FAILED, "ab", buffering=0)
        self._ok_buf = bytearray()
        self._bad_buf = bytearray()
        self._journal = journal

    def record(self, outcome: Outcome, *, source_line: int | None = None) -> None:
        if outcome.ok:
            data = succeeded_line(outcome, id_property=self._id_property)
            self._ok_buf += data + b"\n"
            category = None
        else:
            data = failed_line(outcome, source_line=source_line, id_property=self._id_property)
            self._bad_buf += data + b"\n"
            category = outcome.category or "ERROR"
        if self._journal is not None:
            item = outcome.item
            self._journal.record(item.row, outcome.ok, data, category, outcome.new, item.digest)
        if len(self._ok_buf) + len(self._bad_buf) > _FLUSH_BYTES and self._journal is None:
            # Unjournaled: nothing to stay behind, write as we go. Journaled: lines are written
            # with their commit (``flush``), so a file never holds a row the journal lacks.
            self.flush()

    def record_many(self, outcomes: Sequence[Outcome]) -> None:
        """:meth:`record` for each of a batch's outcomes."""
        journal, id_property = self._journal, self._id_property
        keyless = id_property is None
        if keyless and _all_usual_writes(outcomes):
            self._record_usual_writes(outcomes)
            return
        written: list[bytes] = []
        journaled: list[tuple[int, bool, bytes, str | None, bool | None, bytes]] | None = (
            [] if journal is not None else None
        )
        for outcome in outcomes:
            item = outcome.item
            if outcome.ok:
                new = outcome.new
                # (new is not None: implied, and said for the type checker.)
                if keyless and new is not None and _usual_write_of(outcome) in _USUAL_WRITES:
                    # succeeded_line's common case (a create's or an upsert's written row),
                    # inline: this runs for every record written in a mixed batch. Nothing in
                    # it msgspec could refuse (an int, HubSpot's id as JSON gave it, a bool).
                    data = _encode(_Written(item.row, outcome.hubspot_id, new))
                else:
                    data = succeeded_line(outcome, id_property=id_property)
                written.append(data)
                if journaled is not None:
                    journaled.append((item.row, True, data, None, new, item.digest))
                continue
            data = failed_line(outcome, id_property=id_property)
            self._bad_buf += data + b"\n"
            if journaled is not None:
                category = outcome.category or "ERROR"
                journaled.append((item.row, False, data, category, outcome.new, item.digest))
        if written:
            self._ok_buf += b"\n".join(written)
            self._ok_buf += b"\n"
        if journal is not None and journaled:
            journal.record_many(journaled)
        elif journal is None and len(self._ok_buf) + len(self._bad_buf) > _FLUSH_BYTES:
            self.flush()

    def _record_usual_writes(self, outcomes: Sequence[Outcome]) -> None:
        """:meth:`record_many` for a batch of rows all written, each with the usual line (see
        :func:`_all_usual_writes`): a column at a time, with map() and zip(), so no Python
        code runs per record."""
        rows = list(map(_row_of, outcomes))
        news = list(map(_new_of, outcomes))
        lines = list(map(_encode, map(_Written, rows, map(_hubspot_id_of, outcomes), news)))
        self._ok_buf += b"\n".join(lines)
        self._ok_buf += b"\n"
        if self._journal is not None:
            digests = map(_digest_of, outcomes)
            ok, category = itertools.repeat(True), itertools.repeat(None)
            self._journal.record_many(zip(rows, ok, lines, category, news, digests, strict=False))
        elif len(self._ok_buf) + len(self._bad_buf) > _FLUSH_BYTES:
            self.flush()

    def buffered(self) -> tuple[int, int]:
        """How much is buffered now, for :meth:`flush` ``upto``: the lines up to this point."""
        return len(self._ok_buf), len(self._bad_buf)

    def flush(self, upto: tuple[int, int] | None = None) -> None:
        """Write the buffered lines; ``upto``: only those buffered by then (:meth:`buffered`),
        the rest stay for a later flush."""
        for index, (buf, f) in enumerate(((self._ok_buf, self._ok), (self._bad_buf, self._bad))):
            size = len(buf) if upto is None else upto[index]
            if size == len(buf):
                if buf:
                    _write_all(f.fileno(), buf)
                    buf.clear()
            elif size:
                _write_all(f.fileno(), buf, size)  # in place: no copy of the part written
                del buf[:size]

    def close(self) -> None:
        self.flush()
        self._ok.close()
        self._bad.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _write_all(fd: int, data: bytearray, size: int | None = None) -> None:
    """Write ``data`` (its first ``size`` bytes) whole. Every view of it is released on
    return, so the caller may then resize it."""
    with memoryview(data) as whole:
        view = whole if size is None else whole[:size]
        try:
            while view:
                view = view[os.write(fd, view) :]
        finally:
            view.release()


class Committer:
    """Commits finished outcomes 20 ms after the first one since the last commit, and writes
    the committed lines to the result files once a second or once they reach a megabyte: at
    HubSpot's pace that is every batch; in a fast job it folds many batches into one
    transaction, and many commits into one write. A crash loses at most
    the batches in flight and 20 ms of finished ones, which a resume redoes safely (creates
    among them are marked sent and read back)."""

    def __init__(
        self,
        journal: Journal | None,
        writer: ResultWriter,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._journal = journal
        self._writer = writer
        self._dirty = anyio.Event()
        self._clock = clock
        self._flushed = -math.inf

    def dirty(self) -> None:
        self._dirty.set()

    async def run(self) -> None:
        committed: tuple[int, int] | None = None  # the buffered lines the journal now holds
        while True:
            # Committed lines reach the files within a second even if nothing else settles
            # meanwhile (a long pause, an outage, a slow request): wait no longer than that.
            wait = _FLUSH_FILES_EVERY_S - (self._clock() - self._flushed)
            with anyio.move_on_after(max(0.0, wait) if committed is not None else math.inf):
                await self._dirty.wait()
            if self._dirty.is_set():
                await anyio.sleep(_COMMIT_EVERY_S)
                self._dirty = anyio.Event()
                # The lines buffered so far and their journal records are taken at this one
                # instant (no await between): once the commit returns, they are all durable.
                # Rows settled during the commit (it runs in the journal's thread) wait for the
                # next one, so a file never runs ahead of the journal.
                point = self._writer.buffered()
                if self._journal is not None:
                    await self._journal.commit_in_thread()
                committed = point
            now = self._clock()
            if committed is not None and _flush_due(committed, now - self._flushed):
                self._flushed = now
                self._writer.flush(upto=committed)
                committed = None


def _flush_due(committed: tuple[int, int], since_flush_s: float) -> bool:
    """Whether the committed lines go to the files now: a second after the last write, or
    once they fill a write. Not on every commit (a commit every 20 ms would be two small
    writes each), nor on the second alone: a fast job settles 100,000 rows a second, whose
    lines, held a whole second, would make the job's memory grow with its speed."""
    return since_flush_s >= _FLUSH_FILES_EVERY_S or sum(committed) >= _FLUSH_BYTES
