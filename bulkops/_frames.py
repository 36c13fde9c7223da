"""Frames and columnar files as rows: pandas, polars, pyarrow, Parquet and gzip, a chunk at a time.

Each input here becomes a ``_sources._Reader``, so it is read like a CSV file: in a worker
thread, ``chunk_rows`` records at a time, and the event loop only hands out the last chunk.
Memory stays at one chunk of dicts beside what the caller already holds (a frame in memory is
sliced, never copied whole; ``DataFrame.to_dict("records")`` would copy all of it at once).

pandas, polars and pyarrow are optional (``bulkops[pandas]``, ``bulkops[polars]``,
``bulkops[parquet]``): frames are recognised by what they look like, and only a Parquet file
needs an import, which names the extra when it is missing.

A ``.json`` file holding an array is parsed incrementally (:class:`_JsonArray`): one element
(at most ``_MAX_ELEMENT`` characters) and one read block in memory, numbers kept as written
(as the JSON Lines reader keeps them). A ``.json`` file that does not start with ``[`` is
JSON Lines, as before.
"""

from __future__ import annotations

import codecs
import gzip
import importlib
import io
import json
import os
import re
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, NoReturn, Protocol

from ._errors import ConfigError
from ._sources import (
    _JSON_KINDS,
    JsonNumber,
    RawRow,
    RowStream,
    SourceError,
    _CsvReader,
    _exact_int,
    _JsonlReader,
    _no_constant,
    _Reader,
    _skip_blank,
    _ThreadedRows,
)

__all__ = ["DataFrameLike", "frame_rows", "open_file", "read_parquet"]

_CHUNK_ROWS = 1000
_READ_BLOCK = 1024 * 1024
# The longest array element: as the JSON Lines reader's longest line. An element cannot be
# skipped without parsing it, so a longer one ends the input.
_MAX_ELEMENT = 16 * 1024 * 1024
_WHITESPACE = re.compile(r"[ \t\n\r]*")

_GZIP_FORMATS = {
    ".csv.gz": ("csv", ","),
    ".tsv.gz": ("csv", "\t"),
    ".jsonl.gz": ("jsonl", ""),
    ".ndjson.gz": ("jsonl", ""),
    ".json.gz": ("json", ""),
}


class DataFrameLike(Protocol):
    """A pandas or polars DataFrame (or a pyarrow Table) as far as bulkops needs to know."""

    @property
    def columns(self) -> Any: ...


def _missing_extra(what: str, module: str, extra: str) -> ConfigError:
    return ConfigError(
        f"reading {what} needs {module}, which is not installed: pip install 'bulkops[{extra}]'"
    )


# --------------------------------------------------------------------------------------------
# In-memory frames and Arrow data.


def frame_rows(source: object, *, chunk_rows: int = _CHUNK_ROWS) -> RowStream | None:
    """``source`` as rows when it is a pandas or polars DataFrame, a pyarrow Table,
    RecordBatch or RecordBatchReader; None for anything else."""
    batches = _frame_batches(source)
    if batches is None:
        return None
    name = f"<{type(source).__module__.partition('.')[0]} {type(source).__name__}>"
    return _ThreadedRows(_BatchReader(batches, name=name), chunk_rows=chunk_rows)


def _frame_batches(source: object) -> Callable[[int], Iterator[list[dict[str, Any]]]] | None:
    module = type(source).__module__.partition(".")[0]
    if module == "pandas" and hasattr(source, "iloc") and hasattr(source, "columns"):
        frame: Any = source
        return lambda n: _pandas_batches(frame, n)
    if module == "polars" and hasattr(source, "iter_slices"):
        pl: Any = source
        return lambda n: (piece.to_dicts() for piece in pl.iter_slices(n))
    if module == "pyarrow":
        arrow: Any = source
        if hasattr(arrow, "read_next_batch"):  # RecordBatchReader: batches of any size
            return lambda n: _arrow_batches(iter(arrow), n)
        if hasattr(arrow, "to_batches"):  # Table: zero-copy slices
            return lambda n: (b.to_pylist() for b in arrow.to_batches(max_chunksize=n))
        if hasattr(arrow, "to_pylist") and hasattr(arrow, "num_columns"):  # RecordBatch
            return lambda n: _arrow_batches(iter([arrow]), n)
    return None


def _pandas_batches(frame: Any, n: int) -> Iterator[list[dict[str, Any]]]:
    # Slices are views; to_dict turns numpy scalars into Python ones (Timestamps stay, and
    # are coerced by the normaliser).
    for start in range(0, len(frame), n):
        yield frame.iloc[start : start + n].to_dict("records")


def _arrow_batches(batches: Iterator[Any], n: int) -> Iterator[list[dict[str, Any]]]:
    for batch in batches:
        for start in range(0, batch.num_rows, n):
            yield batch.slice(start, n).to_pylist()


class _BatchReader(_Reader):
    """Rows from an iterator of record lists, made in the worker thread on the first read."""

    def __init__(
        self, batches: Callable[[int], Iterator[list[dict[str, Any]]]], *, name: str
    ) -> None:
        # No stream to open: the base class's opener is a stand-in, and the frame is read
        # through ``batches`` in _read (still in the worker thread, chunk by chunk).
        super().__init__(io.BytesIO, name=name, owned=True)
        self._make = batches
        self._batches: Iterator[list[dict[str, Any]]] | None = None
        self._pending: list[dict[str, Any]] = []
        self._row = 0

    def _start(self, stream: IO[bytes]) -> None:
        pass  # the batches are made on the first read, when n is known

    def _read(self, n: int) -> list[RawRow]:
        records = self._pending
        try:
            if self._batches is None:
                self._batches = self._make(n)
            while len(records) < n:
                more = next(self._batches, None)
                if more is None:
                    break
                records.extend(more)
        except Exception as exc:  # the library's own error (a column it cannot convert...)
            problem = f"{type(exc).__name__}: {exc}"
            raise ConfigError(f"{self.name}: cannot read the frame ({problem})") from None
        records, self._pending = records[:n], records[n:]
        out = []
        row = self._row
        for record in records:
            row += 1
            out.append(RawRow(row, row, record))
        self._row = row
        return out


# --------------------------------------------------------------------------------------------
# Files: Parquet, gzip, JSON arrays.


def read_parquet(path: str | os.PathLike[str], *, chunk_rows: int = _CHUNK_ROWS) -> RowStream:
    """Stream the records of a Parquet file, ``chunk_rows`` at a time (needs pyarrow:
    ``bulkops[parquet]``).

    Raises:
        ConfigError: pyarrow is not installed (naming the extra), or, on the first
            iteration, the file is not Parquet.
    """
    try:
        importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise _missing_extra("Parquet files", "pyarrow", "parquet") from None
    name = os.fspath(path)
    return _ThreadedRows(_ParquetReader(lambda: open(path, "rb"), name=name), chunk_rows=chunk_rows)


class _ParquetReader(_Reader):
    def __init__(self, opener: Callable[[], IO[bytes]], *, name: str) -> None:
        super().__init__(opener, name=name, owned=True)
        self._batches: Iterator[Any] | None = None
        self._stream_obj: IO[bytes] | None = None
        self._row = 0

    def _start(self, stream: IO[bytes]) -> None:
        self._stream_obj = stream

    def _read(self, n: int) -> list[RawRow]:
        pq: Any = importlib.import_module("pyarrow.parquet")  # untyped; checked importable
        try:
            if self._batches is None:
                # One thread: this already runs in a worker thread, and Arrow's pool would
                # hold ~25 MiB more for no gain in a reader paced by the engine.
                self._batches = pq.ParquetFile(self._stream_obj).iter_batches(
                    batch_size=n, use_threads=False
                )
            batch = next(self._batches, None)
        except Exception as exc:  # pyarrow's ArrowInvalid, OSError...: the file, not the job
            raise ConfigError(f"{self.name}: not a readable Parquet file ({exc})") from None
        if batch is None:
            return []
        out = []
        row = self._row
        for record in batch.to_pylist():
            row += 1
            out.append(RawRow(row, row, record))
        self._row = row
        return out


def open_file(
    path: str, *, format: str | None, delimiter: str | None, encoding: str
) -> RowStream | None:
    """A reader for the files this module adds (.parquet, .gz, .json); None for the others,
    which ``open_source`` reads itself."""
    lower = path.lower()
    if format is None and lower.endswith(".parquet"):
        return read_parquet(path)
    if lower.endswith(".gz"):
        kind, by_format = _gzip_format(path, format)
        return _threaded(_file_reader(path, kind, delimiter or by_format, encoding, gzipped=True))
    if format is None and lower.endswith(".json"):
        return _threaded(_file_reader(path, "json", "", encoding, gzipped=False))
    return None


def _gzip_format(path: str, format: str | None) -> tuple[str, str]:
    if format in ("csv", "tsv", "jsonl"):
        return ("jsonl", "") if format == "jsonl" else ("csv", "\t" if format == "tsv" else ",")
    lower = path.lower()
    for suffix, found in _GZIP_FORMATS.items():
        if lower.endswith(suffix):
            return found
    raise ValueError(
        f"{path}: cannot tell the format of this gzip file; name it .csv.gz, .tsv.gz, "
        ".jsonl.gz, .ndjson.gz or .json.gz, or pass format='csv' or 'jsonl'"
    )


def _threaded(reader: _Reader) -> RowStream:
    return _ThreadedRows(reader, chunk_rows=_CHUNK_ROWS)


def _file_reader(path: str, kind: str, delimiter: str, encoding: str, *, gzipped: bool) -> _Reader:
    def opener() -> IO[bytes]:
        if gzipped:
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")

    reader: _Reader
    if kind == "csv":
        reader = _CsvReader(opener, name=path, owned=True, encoding=encoding, delimiter=delimiter)
    elif kind == "jsonl":
        reader = _JsonlReader(opener, name=path, owned=True)
    else:
        reader = _JsonFileReader(opener, name=path)
    return _GzipGuard(reader) if gzipped else reader


class _GzipGuard(_Reader):
    """A damaged gzip stream is one error for the input (naming the file), not a crash."""

    def __init__(self, inner: _Reader) -> None:
        super().__init__(io.BytesIO, name=inner.name, owned=True)
        self._inner = inner

    def _start(self, stream: IO[bytes]) -> None:
        pass

    def _read(self, n: int) -> list[RawRow]:
        try:
            rows = self._inner.read(n)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            problem = str(exc) or type(exc).__name__
            raise ConfigError(f"{self.name}: not a readable gzip file ({problem})") from None
        self.header = self._inner.header
        self.text_only = self._inner.text_only
        return rows

    def _stop(self) -> None:
        self._inner.close()


class _JsonFileReader(_Reader):
    """``.json``: an array of objects when its first non-blank byte is ``[``, else JSON Lines."""

    def __init__(self, opener: Callable[[], IO[bytes]], *, name: str) -> None:
        super().__init__(opener, name=name, owned=True)
        self._lines: _Reader | None = None
        self._array: _JsonArray | None = None
        self._row = 0

    def _start(self, stream: IO[bytes]) -> None:
        if not hasattr(stream, "peek"):
            stream = io.BufferedReader(stream)  # type: ignore[type-var]
        newlines = _skip_blank(stream)
        if stream.peek(1)[:1] == b"[":
            stream.read(1)
            self._array = _JsonArray(stream, name=self.name, line=newlines + 1)
        else:
            self._lines = _JsonlReader(
                lambda: stream, name=self.name, owned=False, first_line=newlines + 1
            )

    def _read(self, n: int) -> list[RawRow]:
        if self._lines is not None:
            return self._lines.read(n)
        assert self._array is not None
        out: list[RawRow] = []
        row = self._row
        while len(out) < n:
            element = self._array.next()
            if element is None:
                break
            line, value = element
            row += 1
            if type(value) is dict:
                out.append(RawRow(row, line, value))
            else:
                kind = _JSON_KINDS.get(type(value), type(value).__name__)
                error = f"line {line}: an array element must be an object, got {kind}"
                out.append(RawRow(row, line, None, error))
        self._row = row
        return out

    def _stop(self) -> None:
        if self._lines is not None:
            self._lines.close()


class _JsonArray:
    """The elements of a JSON array, one at a time, from a stream positioned after its ``[``.

    Invariant: ``_buf[_pos:]`` is the text not parsed yet and ``_line`` the line at ``_pos``;
    the buffer holds at most one element and one read block. A syntax error cannot be
    skipped (where the next element starts is unknown), so it ends the input (SourceError).
    """

    def __init__(self, stream: IO[bytes], *, name: str, line: int) -> None:
        self._stream = stream
        self._name = name
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._decode = json.JSONDecoder(
            parse_float=JsonNumber, parse_int=_exact_int, parse_constant=_no_constant
        ).raw_decode
        self._buf = ""
        self._pos = 0
        self._line = line
        self._eof = False
        self._first = True
        self._done = False

    def next(self) -> tuple[int, Any] | None:
        """(line, value) of the next element; None after the closing ``]``."""
        if self._done:
            return None
        ch = self._skip_space()
        if ch is None:
            self._fail("the file ends inside the array")
        if ch == "]":
            self._end()
            return None
        if not self._first:
            if ch != ",":
                self._fail("expected ',' or ']' after an array element")
            self._advance(self._pos + 1)
            ch = self._skip_space()
            if ch == "]":
                self._fail("a ',' just before ']' (trailing commas are not JSON)")
            if ch is None:
                self._fail("the file ends inside the array")
        self._first = False
        return self._value()

    def _end(self) -> None:
        self._advance(self._pos + 1)
        self._done = True
        if self._skip_space() is not None:
            self._fail("text after the array's closing ']'")

    def _value(self) -> tuple[int, Any]:
        line = self._line
        while True:
            try:
                value, end = self._decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._eof or len(self._buf) - self._pos > _MAX_ELEMENT:
                    self._fail(f"invalid JSON: {exc.msg}", at=exc.pos)
                self._more()
                continue
            except (ValueError, RecursionError) as exc:
                self._fail(f"invalid JSON: {exc}")
            if end < len(self._buf) or self._eof:
                # A value that ends the buffer may go on in the next block (a number).
                self._advance(end)
                return line, value
            self._more()

    def _skip_space(self) -> str | None:
        while True:
            match = _WHITESPACE.match(self._buf, self._pos)
            assert match is not None
            self._advance(match.end())
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if self._eof:
                return None
            self._more()

    def _advance(self, to: int) -> None:
        self._line += self._buf.count("\n", self._pos, to)
        self._pos = to

    def _more(self) -> None:
        block = self._stream.read(_READ_BLOCK)
        try:
            text = self._decoder.decode(block, final=not block)
        except UnicodeDecodeError:
            self._fail("not valid UTF-8; JSON files are UTF-8: convert the file first")
        if not block:
            self._eof = True
        # Keep only what is not parsed yet: memory is one element and one block.
        self._buf = self._buf[self._pos :] + text
        self._pos = 0

    def _fail(self, problem: str, *, at: int | None = None) -> NoReturn:
        line = self._line if at is None else self._line + self._buf.count("\n", self._pos, at)
        raise SourceError(problem, path=self._name, line=line)
