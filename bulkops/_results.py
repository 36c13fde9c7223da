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

import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import orjson

from ._journal import Journal
from ._models import Outcome

__all__ = ["FAILED", "SUCCEEDED", "Committer", "ResultWriter", "failed_line", "succeeded_line"]

SUCCEEDED = "succeeded.jsonl"
FAILED = "failed.jsonl"

_FLUSH_BYTES = 1 << 20
_COMMIT_EVERY_S = 0.02
_FLUSH_FILES_EVERY_S = 1.0


def _default(value: Any) -> Any:
    # An input value orjson cannot encode (Decimal, a numpy scalar...) must not crash the job
    # while its failure is written: keep its text, which reads back as the same value.
    return str(value)


def succeeded_line(outcome: Outcome) -> bytes:
    item = outcome.item
    line: dict[str, Any] = {"row": item.row, "id": outcome.hubspot_id}
    if outcome.new is not None or item.maybe_written:
        line["new"] = outcome.new
    if outcome.properties is not None:
        line["properties"] = outcome.properties
    if outcome.extra:
        line.update(outcome.extra)
    return orjson.dumps(line, default=_default)


def failed_line(outcome: Outcome, *, source_line: int | None = None) -> bytes:
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
    return orjson.dumps(line, default=_default)


class ResultWriter:
    """Appends outcome lines (and journals them). Synchronous: a line costs a microsecond or
    two, far less than handing it to a thread."""

    def __init__(self, files_dir: Path, *, journal: Journal | None = None) -> None:
        files_dir.mkdir(parents=True, exist_ok=True)
        self.files_dir = files_dir
        self._ok = open(files_dir / SUCCEEDED, "ab", buffering=0)
        self._bad = open(files_dir / FAILED, "ab", buffering=0)
        self._ok_buf = bytearray()
        self._bad_buf = bytearray()
        self._journal = journal

    def record(self, outcome: Outcome, *, source_line: int | None = None) -> None:
        if outcome.ok:
            data = succeeded_line(outcome)
            self._ok_buf += data + b"\n"
            category = None
        else:
            data = failed_line(outcome, source_line=source_line)
            self._bad_buf += data + b"\n"
            category = outcome.category or "ERROR"
        if self._journal is not None:
            item = outcome.item
            self._journal.record(item.row, outcome.ok, data, category, outcome.new, item.digest)
        if len(self._ok_buf) + len(self._bad_buf) > _FLUSH_BYTES and self._journal is None:
            # Unjournaled: nothing to stay behind, write as we go. Journaled: lines are written
            # with their commit (``flush``), so a file never holds a row the journal lacks.
            self.flush()

    def flush(self) -> None:
        for buf, f in ((self._ok_buf, self._ok), (self._bad_buf, self._bad)):
            if buf:
                _write_all(f.fileno(), buf)
                buf.clear()

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


def _write_all(fd: int, data: bytearray) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class Committer:
    """Commits finished outcomes 20 ms after the first one since the last commit, and writes
    the result files with a commit at least every second: at HubSpot's pace that is every
    batch; in a fast job it folds many batches into one transaction. A crash loses at most
    the batches in flight and 20 ms of finished ones, which a resume redoes safely (creates
    among them are marked sent and read back)."""

    def __init__(self, journal: Journal | None, writer: ResultWriter) -> None:
        self._journal = journal
        self._writer = writer
        self._dirty = anyio.Event()
        self._flushed = 0.0

    def dirty(self) -> None:
        self._dirty.set()

    async def run(self) -> None:
        while True:
            await self._dirty.wait()
            await anyio.sleep(_COMMIT_EVERY_S)
            self._dirty = anyio.Event()
            if self._journal is not None:
                self._journal.commit()
            now = time.monotonic()
            if now - self._flushed >= _FLUSH_FILES_EVERY_S:
                self._flushed = now
                self._writer.flush()
