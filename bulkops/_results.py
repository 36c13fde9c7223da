"""Result files: ``succeeded.jsonl``, ``failed.jsonl`` and the counters behind ``report.json``.

Every input row ends in exactly one of the two files, with its 1-based row number. A failed
line keeps the original input under ``input``, so ``failed.jsonl`` can be fed straight back as
the input of another job (the JSONL reader unwraps it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from ._journal import Journal
from ._models import Outcome

__all__ = ["FAILED", "SUCCEEDED", "ResultWriter"]

SUCCEEDED = "succeeded.jsonl"
FAILED = "failed.jsonl"

_BUFFER = 1 << 20


class ResultWriter:
    """Appends outcome lines; counts them. Writes are buffered and synchronous: a line costs a
    microsecond or two, far less than handing it to a thread."""

    def __init__(
        self,
        out_dir: Path,
        *,
        journal: Journal | None = None,
        files_dir: Path | None = None,
        replay: Iterable[tuple[bool, bytes]] = (),
    ) -> None:
        """``replay``: lines to write first (a resumed job's finished rows, from the journal);
        ``files_dir``: where the two files go, when not ``out_dir`` itself."""
        self.out_dir = out_dir
        files_dir = files_dir or out_dir
        files_dir.mkdir(parents=True, exist_ok=True)
        self._ok: IO[bytes] = open(files_dir / SUCCEEDED, "wb", buffering=_BUFFER)
        self._bad: IO[bytes] = open(files_dir / FAILED, "wb", buffering=_BUFFER)
        self._journal = journal
        for ok, line in replay:
            (self._ok if ok else self._bad).write(line + b"\n")
        self.succeeded = 0
        self.failed = 0
        self.created = 0
        self.updated = 0
        self.new_unknown = 0
        self.failed_by_category: Counter[str] = Counter()

    def record(self, outcome: Outcome) -> None:
        item = outcome.item
        if outcome.ok:
            line: dict[str, Any] = {"row": item.row, "id": outcome.hubspot_id}
            if outcome.new is not None or item.ambiguous:
                line["new"] = outcome.new
                if outcome.new is True:
                    self.created += 1
                elif outcome.new is False:
                    self.updated += 1
                else:
                    self.new_unknown += 1
            if outcome.properties is not None:
                line["properties"] = outcome.properties
            if outcome.extra:
                line.update(outcome.extra)
            data = orjson.dumps(line)
            self._ok.write(data + b"\n")
            self.succeeded += 1
            category: str | None = None
        else:
            category = outcome.category or "ERROR"
            error: dict[str, Any] = {"category": category, "message": outcome.message or ""}
            if outcome.extra:
                error.update(outcome.extra)
            line = {"row": item.row, "error": error, "attempts": item.attempts, "input": item.raw}
            data = orjson.dumps(line)
            self._bad.write(data + b"\n")
            self.failed += 1
            self.failed_by_category[category] += 1
        if self._journal is not None:
            self._journal.record(item.row, outcome.ok, data, category, outcome.new)

    def record_unparsed(self, row: int, line: int, message: str) -> None:
        """A row the reader could not parse: there is no input to keep, only where it was."""
        record = {
            "row": row,
            "line": line,
            "error": {"category": "INPUT_ERROR", "message": message},
            "attempts": 0,
            "input": None,
        }
        data = orjson.dumps(record)
        self._bad.write(data + b"\n")
        self.failed += 1
        self.failed_by_category["INPUT_ERROR"] += 1
        if self._journal is not None:
            self._journal.record(row, False, data, "INPUT_ERROR", None)

    def flush(self) -> None:
        self._ok.flush()
        self._bad.flush()

    def close(self) -> None:
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
