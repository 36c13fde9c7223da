"""Result files: ``succeeded.jsonl``, ``failed.jsonl`` and the counters behind ``report.json``.

Every input row ends in exactly one of the two files, with its 1-based row number. A failed
line keeps the original input under ``input``, so ``failed.jsonl`` can be fed straight back as
the input of another job (the JSONL reader unwraps it).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from ._models import Outcome

__all__ = ["ResultWriter"]

_BUFFER = 1 << 20


class ResultWriter:
    """Appends outcome lines; counts them. Writes are buffered and synchronous: a line costs a
    microsecond or two, far less than handing it to a thread."""

    def __init__(self, out_dir: Path, *, append: bool = False) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        mode = "ab" if append else "wb"
        self._ok: IO[bytes] = open(out_dir / "succeeded.jsonl", mode, buffering=_BUFFER)
        self._bad: IO[bytes] = open(out_dir / "failed.jsonl", mode, buffering=_BUFFER)
        self.succeeded = 0
        self.failed = 0
        self.created = 0
        self.updated = 0
        self.new_unknown = 0
        self.failed_by_category: Counter[str] = Counter()
        self._listeners: list[Any] = []

    def add_listener(self, listener: Any) -> None:
        """Something that also wants every outcome line (the journal)."""
        self._listeners.append(listener)

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
        for listener in self._listeners:
            listener(item.row, outcome.ok, data)

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
        for listener in self._listeners:
            listener(row, False, data)

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
