"""Streamed input: CSV, JSONL, stdin and in-memory records as ``RawRow``s, in constant memory.

File reads block, and stdin may be a pipe that blocks for ever, so every read happens in a worker
thread, ``chunk_rows`` records at a time; the event loop only hands out rows from the last chunk.
Whatever the file size, at most one chunk (and one line of at most ``_MAX_LINE`` characters) is
held in memory.

A record that cannot be parsed is not an exception: it comes out as a ``RawRow`` with
``data=None`` and an ``error`` naming the line, and reading goes on with the next record.
Only problems that make the whole input unusable (a bad CSV header, an unknown format, an
unreadable file) raise.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import stat
import sys
import threading
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

import anyio.to_thread
import orjson

__all__ = [
    "RawRow",
    "RowStream",
    "fingerprint",
    "from_iterable",
    "open_source",
    "read_csv",
    "read_jsonl",
]

# A line longer than this is an error row, not a reason to hold an unbounded line in memory.
# HubSpot caps a property value at 65,536 characters; a whole record of such values still fits.
_MAX_LINE = 16 * 1024 * 1024
# fingerprint() hashes this much from each end of the file.
_EDGE = 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_STDIN_NAME = "<stdin>"


@dataclass(slots=True, frozen=True)
class RawRow:
    """One input record, or the reason it could not be read.

    ``row`` counts records from 1 (a CSV header and blank lines are not records; error rows
    are). ``line`` is the 1-based physical line where the record starts.
    """

    row: int
    line: int
    data: dict[str, Any] | None
    error: str | None = None


class RowStream(Protocol):
    """What the readers return: an async iterator of rows that can be closed early.

    ``aclose()`` (or ``contextlib.aclosing``) closes the file at once; dropping the last
    reference to a reader does too.
    """

    def __aiter__(self) -> RowStream: ...

    async def __anext__(self) -> RawRow: ...

    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------------------------
# Blocking readers: each runs only inside a worker thread, one chunk at a time.


class _Reader:
    """Turns a binary stream into RawRows, ``n`` at a time. Blocking; not thread-safe."""

    def __init__(self, opener: Callable[[], IO[bytes]], *, name: str, owned: bool) -> None:
        self._opener = opener
        self._stream: IO[bytes] | None = None
        self.name = name
        # A stream we did not open (stdin) is never closed, only let go of.
        self._owned = owned
        self._closed = False

    def read(self, n: int) -> list[RawRow]:
        """Return up to ``n`` rows; an empty list means the input is exhausted."""
        if self._closed:
            return []
        if self._stream is None:
            # Opened here, in the worker thread: opening a FIFO blocks until a writer shows up.
            self._stream = self._opener()
            self._start(self._stream)
        return self._read(n)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            self._stop()
            if self._owned:
                self._stream.close()

    def _start(self, stream: IO[bytes]) -> None:
        raise NotImplementedError

    def _read(self, n: int) -> list[RawRow]:
        raise NotImplementedError

    def _stop(self) -> None:
        """Let go of any wrapper around the stream without closing the stream itself."""


class _Lines:
    """Text lines for ``csv.reader``, with problems noted instead of raised.

    Raising from here would make csv lose its place in a multi-line record; instead the problem
    is kept in ``problem`` and the reader turns the record being parsed into an error row.
    csv.reader pulls lines only while it parses a record (no read-ahead), so the problem always
    belongs to the record that the next ``next(reader)`` returns.
    """

    __slots__ = ("_encoding", "_readline", "lineno", "problem")

    def __init__(self, text: io.TextIOWrapper, *, encoding: str, first_line: int) -> None:
        self._readline = text.readline
        self._encoding = encoding
        self.lineno = first_line - 1
        self.problem: str | None = None

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._readline(_MAX_LINE)
        if not line:
            raise StopIteration
        self.lineno += 1
        if not line.isascii():
            try:
                # The text layer decodes with surrogateescape, so undecodable bytes show up as
                # lone surrogates, which strict UTF-8 refuses to encode.
                line.encode("utf-8")
            except UnicodeEncodeError:
                self._note(f"line {self.lineno}: bytes that are not valid {self._encoding}")
        if "\x00" in line:
            # Python 3.11's csv accepts NUL, but in a CSV it nearly always means a binary or
            # UTF-16 file read with the wrong encoding.
            self._note(f"line {self.lineno}: NUL byte")
        if len(line) == _MAX_LINE and line[-1] not in "\r\n":
            self._note(f"line {self.lineno}: longer than {_MAX_LINE} characters")
            while (rest := self._readline(_MAX_LINE)) and rest[-1] not in "\r\n":
                pass
            return "\n"
        return line

    def _note(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem


class _CsvReader(_Reader):
    def __init__(
        self,
        opener: Callable[[], IO[bytes]],
        *,
        name: str,
        owned: bool,
        encoding: str,
        delimiter: str,
        first_line: int = 1,
    ) -> None:
        super().__init__(opener, name=name, owned=owned)
        self._encoding = encoding
        self._delimiter = delimiter
        self._first_line = first_line
        self._text: io.TextIOWrapper | None = None
        self._header: list[str] = []
        self._row = 0

    def _start(self, stream: IO[bytes]) -> None:
        # newline="" is what csv needs to see line breaks inside quoted fields as they are.
        self._text = io.TextIOWrapper(
            stream,
            encoding=self._encoding,
            errors="surrogateescape",
            newline="",
        )
        self._lines = _Lines(self._text, encoding=self._encoding, first_line=self._first_line)
        # strict: a stray or unterminated quote is an error row instead of silently swallowing
        # the records after it into one field.
        self._csv = csv.reader(self._lines, delimiter=self._delimiter, strict=True)
        self._header = self._read_header()

    def _read_header(self) -> list[str]:
        lines = self._lines
        while True:
            start = lines.lineno + 1
            try:
                values = next(self._csv)
            except StopIteration:
                return []  # empty input: no header, no records
            except csv.Error as exc:
                raise ValueError(f"{self.name}: line {start}: bad CSV header: {exc}") from None
            if lines.problem is not None:
                raise ValueError(f"{self.name}: bad CSV header: {lines.problem}")
            if values:
                break
        # A BOM survives when the caller picked plain "utf-8"; it is never part of a name.
        names = [v.strip() for v in values]
        names[0] = names[0].lstrip("\ufeff").strip()
        problems = []
        empty = [str(i) for i, n in enumerate(names, 1) if not n]
        if empty:
            problems.append(f"empty column name at column {', '.join(empty)}")
        dups = [n for n, count in Counter(names).items() if count > 1 and n]
        if dups:
            problems.append(f"duplicate column names {', '.join(map(repr, dups))}")
        if problems:
            raise ValueError(f"{self.name}: line {start}: bad CSV header: {'; '.join(problems)}")
        return names

    def _read(self, n: int) -> list[RawRow]:
        header = self._header
        if not header:
            return []
        width = len(header)
        reader = self._csv
        lines = self._lines
        row = self._row
        out: list[RawRow] = []
        append = out.append
        while row - self._row < n:
            start = lines.lineno + 1
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                lines.problem = None
                row += 1
                append(RawRow(row, start, None, f"line {start}: malformed CSV: {exc}"))
                continue
            if lines.problem is not None:
                row += 1
                append(RawRow(row, start, None, lines.problem))
                lines.problem = None
                continue
            if not values:
                continue  # an empty line is not a record
            row += 1
            if len(values) == width:
                append(RawRow(row, start, dict(zip(header, values, strict=True))))
            else:
                got = len(values)
                error = f"line {start}: expected {width} fields as in the header, got {got}"
                append(RawRow(row, start, None, error))
        self._row = row
        return out

    def _stop(self) -> None:
        if self._text is None:
            return
        if self._owned:
            self._text.close()
        else:
            # Closing (or garbage-collecting) a TextIOWrapper closes the stream under it;
            # detaching does not, which is what stdin needs.
            self._text.detach()
        self._text = None


_JSON_KINDS = {
    list: "list",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class _JsonlReader(_Reader):
    def __init__(
        self,
        opener: Callable[[], IO[bytes]],
        *,
        name: str,
        owned: bool,
        first_line: int = 1,
    ) -> None:
        super().__init__(opener, name=name, owned=owned)
        self._lineno = first_line - 1
        self._row = 0

    def _start(self, stream: IO[bytes]) -> None:
        # orjson refuses a UTF-8 BOM; editors on Windows like to add one to the first line.
        head = stream.peek(3) if hasattr(stream, "peek") else b""
        if head.startswith(_BOM):
            stream.read(3)

    def _read(self, n: int) -> list[RawRow]:
        assert self._stream is not None
        readline = self._stream.readline
        loads = orjson.loads
        lineno = self._lineno
        row = self._row
        out: list[RawRow] = []
        append = out.append
        while row - self._row < n:
            line = readline(_MAX_LINE)
            if not line:
                break
            lineno += 1
            if len(line) == _MAX_LINE and not line.endswith(b"\n"):
                while (rest := readline(_MAX_LINE)) and not rest.endswith(b"\n"):
                    pass
                row += 1
                append(RawRow(row, lineno, None, f"line {lineno}: longer than {_MAX_LINE} bytes"))
                continue
            try:
                obj = loads(line)
            except orjson.JSONDecodeError as exc:
                if not line.strip():
                    continue  # a blank line is not a record
                row += 1
                append(RawRow(row, lineno, None, _json_error(lineno, line, exc)))
                continue
            row += 1
            if type(obj) is not dict:
                kind = _JSON_KINDS.get(type(obj), type(obj).__name__)
                error = f"line {lineno}: a JSON line must be an object, got {kind}"
                append(RawRow(row, lineno, None, error))
                continue
            # A line of our own failed.jsonl carries the original record under "input", so a
            # failed file can be fed straight back in after fixing it.
            inner = obj.get("input")
            if type(inner) is dict and "error" in obj and "row" in obj:
                obj = inner
            append(RawRow(row, lineno, obj))
        self._lineno = lineno
        self._row = row
        return out


def _json_error(lineno: int, line: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        where = f"byte 0x{line[bad.start]:02x} at column {bad.start + 1}"
        return f"line {lineno}: not valid UTF-8 ({where})"
    return f"line {lineno}: invalid JSON: {exc.msg} at column {exc.colno}"


class _SniffingReader(_Reader):
    """stdin without a format: CSV or JSONL is decided by the first non-blank byte."""

    def __init__(self, stream: IO[bytes], *, csv_options: dict[str, str]) -> None:
        super().__init__(lambda: stream, name=_STDIN_NAME, owned=False)
        self._csv_options = csv_options
        self._inner: _Reader | None = None

    def _start(self, stream: IO[bytes]) -> None:
        newlines = _skip_blank(stream)
        first_line = newlines + 1
        if stream.peek(1)[:1] == b"{":  # type: ignore[attr-defined]
            self._inner = _JsonlReader(
                lambda: stream, name=self.name, owned=False, first_line=first_line
            )
        else:
            self._inner = _CsvReader(
                lambda: stream,
                name=self.name,
                owned=False,
                first_line=first_line,
                **self._csv_options,
            )

    def _read(self, n: int) -> list[RawRow]:
        assert self._inner is not None
        return self._inner.read(n)

    def _stop(self) -> None:
        if self._inner is not None:
            self._inner.close()


def _skip_blank(stream: IO[bytes]) -> int:
    """Consume a leading BOM and whitespace; return how many line breaks were consumed."""
    if not hasattr(stream, "peek"):
        raise ValueError(f"{_STDIN_NAME}: cannot sniff the format of this stream; pass format=")
    newlines = 0
    if stream.peek(3).startswith(_BOM):
        stream.read(3)
    while data := stream.peek(1):
        rest = data.lstrip(b" \t\r\n")
        skip = len(data) - len(rest)
        newlines += data.count(b"\n", 0, skip)
        stream.read(skip)
        if rest:
            break
    return newlines


# --------------------------------------------------------------------------------------------
# The async side.


class _Handoff:
    """Who may touch a reader: the worker thread while a chunk is read, else the event loop.

    Invariant: while ``busy``, only the worker uses the reader; a close requested meanwhile is
    left to the worker, which closes the reader as soon as its read returns. That is what lets
    a cancelled read of a blocking pipe be abandoned at once instead of holding up cancellation.

    This is a separate object from the stream on purpose: anyio's idle worker threads keep a
    reference to the last function they ran, and that must not keep the stream (whose
    finalizer closes the file) alive.
    """

    __slots__ = ("busy", "chunk_rows", "closing", "lock", "reader")

    def __init__(self, reader: _Reader, chunk_rows: int) -> None:
        self.reader = reader
        self.chunk_rows = chunk_rows
        self.lock = threading.Lock()
        self.busy = False
        self.closing = False

    def begin(self) -> bool:
        """Claim the reader for a worker; False once closing."""
        with self.lock:
            if self.closing:
                return False
            self.busy = True
            return True

    def read_chunk(self) -> list[RawRow]:
        # Runs in the worker thread.
        try:
            return self.reader.read(self.chunk_rows)
        finally:
            with self.lock:
                self.busy = False
                close_now = self.closing
            if close_now:
                self.reader.close()

    def close(self) -> None:
        with self.lock:
            self.closing = True
            if self.busy:
                return  # the worker closes the reader when its read returns
        self.reader.close()


class _ThreadedRows:
    """Async iterator over a ``_Reader``, reading one chunk at a time in a worker thread."""

    __slots__ = ("_buffer", "_handoff", "_pos")

    def __init__(self, reader: _Reader, *, chunk_rows: int) -> None:
        self._handoff = _Handoff(reader, chunk_rows)
        self._buffer: list[RawRow] = []
        self._pos = 0

    def __aiter__(self) -> _ThreadedRows:
        return self

    async def __anext__(self) -> RawRow:
        pos = self._pos
        if pos < len(self._buffer):
            self._pos = pos + 1
            return self._buffer[pos]
        handoff = self._handoff
        if not handoff.begin():
            raise StopAsyncIteration
        try:
            chunk = await anyio.to_thread.run_sync(handoff.read_chunk, abandon_on_cancel=True)
        except BaseException:
            self._close()
            raise
        if not chunk:
            self._close()
            raise StopAsyncIteration
        self._buffer = chunk
        self._pos = 1
        return chunk[0]

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        self._buffer = []
        self._handoff.close()

    def __del__(self) -> None:
        # Lets `async for ... : break` close the file as soon as the iterator is dropped,
        # without waiting for the event loop's async-generator finalizer.
        self._close()

    def __repr__(self) -> str:
        state = "closed" if self._handoff.closing else "open"
        return f"<RowStream {self._handoff.reader.name} {state}>"


def _check_chunk_rows(chunk_rows: int) -> None:
    if chunk_rows < 1:
        raise ValueError(f"'chunk_rows' must be >= 1, got {chunk_rows}")


def _file_opener(path: str | os.PathLike[str]) -> Callable[[], IO[bytes]]:
    return lambda: open(path, "rb")  # closed by _Reader.close


def read_csv(
    path: str | os.PathLike[str],
    *,
    encoding: str = "utf-8-sig",
    delimiter: str = ",",
    chunk_rows: int = 1000,
) -> RowStream:
    """Stream the records of a CSV file; the first row is the header, values stay strings.

    Raises (on the first iteration) ``ValueError`` for an empty or duplicate header name.
    A row with a different field count, malformed quoting, undecodable bytes or a NUL byte is
    an error row. Empty lines are skipped.
    """
    _check_chunk_rows(chunk_rows)
    codecs.lookup(encoding)  # an unknown encoding fails here, not in the worker
    if len(delimiter) != 1:
        raise ValueError(f"'delimiter' must be one character, got {delimiter!r}")
    reader = _CsvReader(
        _file_opener(path),
        name=os.fspath(path),
        owned=True,
        encoding=encoding,
        delimiter=delimiter,
    )
    return _ThreadedRows(reader, chunk_rows=chunk_rows)


def read_jsonl(path: str | os.PathLike[str], *, chunk_rows: int = 1000) -> RowStream:
    """Stream the records of a JSON Lines file: one object per line, blank lines skipped.

    A line of bulkops' own ``failed.jsonl`` (``{"row", "error", "input": {...}}``) yields its
    ``input``. Invalid JSON, undecodable bytes and non-objects are error rows.
    """
    _check_chunk_rows(chunk_rows)
    reader = _JsonlReader(_file_opener(path), name=os.fspath(path), owned=True)
    return _ThreadedRows(reader, chunk_rows=chunk_rows)


async def from_iterable(
    records: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
) -> AsyncGenerator[RawRow, None]:
    """Stream in-memory records; ``line`` equals ``row``. A non-mapping item is an error row."""
    row = 0
    if isinstance(records, AsyncIterable):
        iterator = aiter(records)
        try:
            async for item in iterator:
                row += 1
                yield _mapping_row(row, item)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
    else:
        for item in records:
            row += 1
            yield _mapping_row(row, item)


def _mapping_row(row: int, item: object) -> RawRow:
    if type(item) is dict:
        return RawRow(row, row, item)
    if isinstance(item, Mapping):
        return RawRow(row, row, dict(item))
    kind = type(item).__name__
    return RawRow(row, row, None, f"line {row}: a record must be a mapping, got {kind}")


_SUFFIXES = {
    ".csv": ("csv", ","),
    ".tsv": ("csv", "\t"),
    ".jsonl": ("jsonl", ""),
    ".ndjson": ("jsonl", ""),
    ".json": ("jsonl", ""),
}


def open_source(path: str, *, format: str | None = None) -> RowStream:
    """Open ``path`` ("-" is stdin) as CSV or JSONL, by ``format`` or else by its suffix.

    ``format`` is "csv", "tsv" or "jsonl". By suffix: .csv, .tsv (tab-separated), and
    .jsonl/.ndjson/.json (JSON Lines). stdin without a format is JSONL when its first non-blank
    byte is "{", else CSV. stdin is read but never closed.

    Raises:
        ValueError: unknown format, or a suffix that does not tell the format.
    """
    suffix = os.path.splitext(path)[1].lower() if path != "-" else ""
    if format is None:
        if path == "-":
            return _ThreadedRows(
                _SniffingReader(
                    sys.stdin.buffer, csv_options={"encoding": "utf-8-sig", "delimiter": ","}
                ),
                chunk_rows=1000,
            )
        if suffix not in _SUFFIXES:
            raise ValueError(
                f"{path}: cannot tell the format from the suffix {suffix!r}; "
                "use .csv, .tsv, .jsonl, .ndjson or .json, or pass format='csv' or 'jsonl'"
            )
        kind, delimiter = _SUFFIXES[suffix]
    elif format == "csv":
        kind, delimiter = "csv", "\t" if suffix == ".tsv" else ","
    elif format == "tsv":
        kind, delimiter = "csv", "\t"
    elif format == "jsonl":
        kind, delimiter = "jsonl", ""
    else:
        raise ValueError(f"{path}: unknown format {format!r}; use 'csv', 'tsv' or 'jsonl'")

    if path != "-":
        if kind == "csv":
            return read_csv(path, delimiter=delimiter)
        return read_jsonl(path)
    # Looked up at call time, not import time, so a replaced sys.stdin is honoured.
    stdin = sys.stdin.buffer
    reader: _Reader
    if kind == "csv":
        reader = _CsvReader(
            lambda: stdin, name=_STDIN_NAME, owned=False, encoding="utf-8-sig", delimiter=delimiter
        )
    else:
        reader = _JsonlReader(lambda: stdin, name=_STDIN_NAME, owned=False)
    return _ThreadedRows(reader, chunk_rows=1000)


def fingerprint(path: str) -> str:
    """A cheap identity of an input file, to check that a resumed job reads the same input.

    sha256 over the size and the first and last MiB (the whole file when smaller). The mtime is
    left out so a copied or touched file keeps its fingerprint; an edit in the middle of a file
    over 2 MiB that keeps its size goes unnoticed, which is the price of not reading it all.
    """
    if path == "-":
        raise ValueError("stdin cannot be fingerprinted")
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path}: not a regular file, cannot be fingerprinted")
        size = info.st_size
        digest = hashlib.sha256(b"bulkops-fingerprint-v1\0")
        digest.update(size.to_bytes(8, "big"))
        digest.update(f.read(_EDGE))
        if size > _EDGE:
            # Never overlap the head: a 1.5 MiB file is hashed exactly once, byte for byte.
            f.seek(max(_EDGE, size - _EDGE))
            digest.update(f.read(_EDGE))
    return digest.hexdigest()
