"""The input of ``bulkops retry``: a job's ``failed.jsonl``, as the user edited it.

The file is read twice. The first pass (:func:`read_failed_file`) only parses and counts, so a
mistake anywhere in it (a broken line, a row number lost in editing, a row pasted twice) stops
the retry before anything is sent, naming the file and line. The second pass
(:meth:`FailedInput.rows`) streams the rows to the job. Neither holds the file in memory; the
only state that grows with the file is one bit per row number, to catch duplicates.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ._errors import AMBIGUOUS, ConfigError
from ._sources import RawRow

__all__ = ["FailedInput", "RowSet", "read_failed_file", "stored_lines"]

_LISTED = 10  # AMBIGUOUS rows named in the message; the rest are counted
_MAX_ROW = 10**9  # bounds the duplicate bitmap (125 MB at worst); no job reaches it


class RowSet:
    """A set of row numbers as one bit each: 125 kB per million rows, where a set of ints
    would take some 60 MB."""

    __slots__ = ("_bits",)

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, row: int) -> None:
        byte = row >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte + 1 - len(self._bits)))
        self._bits[byte] |= 1 << (row & 7)

    def __contains__(self, row: object) -> bool:
        if not isinstance(row, int) or row < 0 or (row >> 3) >= len(self._bits):
            return False
        return bool(self._bits[row >> 3] & (1 << (row & 7)))


@dataclass(frozen=True, slots=True)
class FailedInput:
    """A checked ``failed.jsonl``: what a retry will send and what it leaves out.

    ``rows`` are sent; ``skipped_unparsed`` rows have ``input: null`` (the reader could not
    parse the original, so there is nothing to resend); ``skipped_ambiguous`` creates may exist
    in HubSpot and are left out unless asked for (the first of them in ``ambiguous_rows``).
    """

    path: Path
    include_ambiguous: bool
    rows_to_send: int
    skipped_unparsed: int
    skipped_ambiguous: int
    ambiguous_rows: tuple[int, ...]
    _identity: tuple[int, int]  # (size, mtime_ns) when checked

    def rows(self) -> Iterator[RawRow]:
        """The rows to send, in file order, with their original row numbers (the second pass).

        Raises:
            ConfigError: the file changed since it was checked.
        """
        if _identity(self.path) != self._identity:
            raise ConfigError(f"{self.path} changed while the retry started; run it again")
        for lineno, record in _records(self.path):
            if _wanted(record, self.include_ambiguous):
                ambiguous = (record.get("error") or {}).get("category") == AMBIGUOUS
                yield RawRow(record["row"], lineno, record["input"], maybe_written=ambiguous)

    def skipped_message(self) -> str | None:
        """One line for the user about the rows left out, or None when none were."""
        parts = []
        if self.skipped_ambiguous:
            listed = ", ".join(map(str, self.ambiguous_rows))
            more = self.skipped_ambiguous - len(self.ambiguous_rows)
            listed += f" and {more} more" if more else ""
            parts.append(
                f"{self.skipped_ambiguous} AMBIGUOUS row(s) skipped (rows {listed}): HubSpot "
                "may have created them; --include-ambiguous to send them anyway"
            )
        if self.skipped_unparsed:
            parts.append(
                f"{self.skipped_unparsed} row(s) skipped whose original input could not be "
                'parsed ("input": null); fix those in the original input'
            )
        return "; ".join(parts) or None


def read_failed_file(path: Path, *, include_ambiguous: bool) -> FailedInput:
    """Check a whole (edited) ``failed.jsonl`` and count what a retry would send (first pass).

    Raises:
        ConfigError: the file cannot be read, or a line is not a JSON object with an integer
            ``row`` (>= 1, each row once) and an ``input`` that is an object or null; the
            message names the file and the line.
    """
    try:
        identity = _identity(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    seen = RowSet()
    to_send = unparsed = ambiguous = 0
    ambiguous_rows: list[int] = []
    for lineno, record in _records(path):
        row = record["row"]
        if row in seen:
            first = _find_row(path, row)
            raise ConfigError(f"{path} line {lineno}: row {row} appears twice (also line {first})")
        seen.add(row)
        if record["input"] is None:
            unparsed += 1
        elif _category(record) == AMBIGUOUS and not include_ambiguous:
            ambiguous += 1
            if len(ambiguous_rows) < _LISTED:
                ambiguous_rows.append(row)
        else:
            to_send += 1
    return FailedInput(
        path=path,
        include_ambiguous=include_ambiguous,
        rows_to_send=to_send,
        skipped_unparsed=unparsed,
        skipped_ambiguous=ambiguous,
        ambiguous_rows=tuple(ambiguous_rows),
        _identity=identity,
    )


def stored_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(row, line)`` of every record, the line exactly as the user left it (without its end
    of line): what a retry keeps for the rows it did not settle."""
    for _, record, line in _lines(path):
        yield record["row"], line


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of every non-blank line, each checked."""
    for lineno, record, _ in _lines(path):
        yield lineno, record


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any], bytes]]:
    try:
        with path.open("rb") as f:
            for lineno, line in enumerate(f, start=1):
                stripped = line.strip()
                if stripped:
                    yield lineno, _parse(path, lineno, stripped), stripped
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _parse(path: Path, lineno: int, line: bytes) -> dict[str, Any]:
    where = f"{path} line {lineno}"
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: not a JSON object")
    row = record.get("row")
    # bool is an int to Python, but "row": true is an editing mistake, not row 1.
    if not isinstance(row, int) or isinstance(row, bool) or not 1 <= row <= _MAX_ROW:
        shown = "missing" if "row" not in record else orjson.dumps(row).decode()
        raise ConfigError(f'{where}: "row" must be the row number (an integer >= 1), not {shown}')
    if "input" not in record:
        raise ConfigError(f'{where}: row {row} has no "input" (the record to send)')
    if not isinstance(record["input"], dict | None):
        raise ConfigError(f'{where}: the "input" of row {row} must be a JSON object (or null)')
    return record


def _category(record: dict[str, Any]) -> Any:
    error = record.get("error")
    return error.get("category") if isinstance(error, dict) else None


def _wanted(record: dict[str, Any], include_ambiguous: bool) -> bool:
    if record["input"] is None:
        return False
    return include_ambiguous or _category(record) != AMBIGUOUS


def _find_row(path: Path, row: int) -> int:
    """The first line holding ``row`` (only on the error path, so a third pass is fine)."""
    for lineno, record in _records(path):
        if record["row"] == row:
            return lineno
    return 0  # pragma: no cover - the caller saw the row before


def _identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns
