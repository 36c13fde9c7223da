"""Streamed input: CSV, JSONL, stdin and in-memory records as ``RawRow``s, in constant memory.

File reads block, and stdin may be a pipe that blocks for ever, so every read happens in a worker
thread, ``chunk_rows`` records at a time; the event loop only hands out rows from the last chunk.
Whatever the file size, at most one chunk (and one line of at most ``_MAX_LINE`` characters) is
held in memory.

A record that cannot be parsed is not an exception: it comes out as a ``RawRow`` with
``data=None`` and an ``error`` naming the line, and reading goes on with the next record (a
quote that never closes costs only the line it is on). Only problems that make the whole
input unusable raise, before the first row: an unknown format or an unreadable file
(``ValueError``, ``OSError``), and a bad CSV header or a file that is not in its encoding
(:class:`SourceError`, which names the file and the line).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import json
import os
import stat
import sys
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio.to_thread
import msgspec
import orjson

from ._errors import ConfigError
from ._header import header_problems, sniff_delimiter
from ._offloop import read_in_thread

if TYPE_CHECKING:
    from _csv import Reader as CsvRecords

__all__ = [
    "JsonNumber",
    "RawRow",
    "RowStream",
    "SourceError",
    "fingerprint",
    "from_iterable",
    "open_source",
    "parse_delimiter",
    "read_csv",
    "read_jsonl",
]

# A line longer than this is an error row, not a reason to hold an unbounded line in memory.
# HubSpot caps a property value at 65,536 characters; a whole record of such values still fits.
_MAX_LINE = 16 * 1024 * 1024
# A CSV is read this many characters at a time (then to the end of the last line): a block
# with nothing unusual in it is parsed by csv straight from memory (_CsvReader._read_block).
_BLOCK_CHARS = 64 * 1024
# fingerprint() hashes this much from each end of the file.
_EDGE = 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_STDIN_NAME = "<stdin>"
_DEFAULT_ENCODING = "utf-8-sig"
# A regular file is checked for its encoding in blocks of this size before the first row.
_SCAN_CHUNK = 1024 * 1024
# How much of stdin is looked at to tell its delimiter (the header line).
_SNIFF_BYTES = 64 * 1024
# Codec names (as codecs.lookup spells them) whose ASCII bytes are ASCII characters, so an
# ASCII block needs no decoding.
_UTF8 = frozenset({"utf-8", "utf-8-sig"})
_ASCII_SUPERSETS = frozenset({"ascii", "latin-1", "iso8859-15", "cp1252", "cp1250", "mac-roman"})


class SourceError(ConfigError):
    """The input cannot be read as a whole: a bad CSV header, a file not in its encoding.

    Raised before the first row is handed out, so the job stops (exit 2) before anything is
    sent. ``path`` is the file ("<stdin>" for stdin) and ``line`` the 1-based line.
    """

    def __init__(self, problem: str, *, path: str, line: int) -> None:
        super().__init__(f"{path}: line {line}: {problem}")
        self.path = path
        self.line = line


# A Struct, not a dataclass: the readers make one per record, and a Struct is built in C (a
# frozen dataclass sets each slot through object.__setattr__ in a Python __init__), so a block
# of rows can be made with map() and no Python code per row (_CsvReader._read_plain).
# gc=False: a row holds only its own dict; nothing refers back to it.
class RawRow(msgspec.Struct, frozen=True, gc=False):
    """One input record, or the reason it could not be read.

    ``row`` counts records from 1 (a CSV header and blank lines are not records; error rows
    are). ``line`` is the 1-based physical line where the record starts.
    """

    row: int
    line: int
    data: dict[str, Any] | None
    error: str | None = None
    # A create of this row may already exist in HubSpot (a retried AMBIGUOUS row): with an id
    # property it is read back before it is created again.
    maybe_written: bool = False


@runtime_checkable
class RowStream(Protocol):
    """What the readers return: an async iterator of rows that can be closed early.

    ``aclose()`` (or ``contextlib.aclosing``) closes the file at once; dropping the last
    reference to a reader does too.
    """

    def __aiter__(self) -> RowStream: ...

    async def __anext__(self) -> RawRow: ...

    async def aclose(self) -> None: ...

    @property
    def header(self) -> list[str] | None:
        """The CSV/TSV column names, once the first row is out; None for JSON Lines."""
        ...


# --------------------------------------------------------------------------------------------
# Blocking readers: each runs only inside a worker thread, one chunk at a time.


class _Reader:
    """Turns a binary stream into RawRows, ``n`` at a time. Blocking; not thread-safe."""

    # The CSV column names once the header is read; None for formats without a header.
    header: list[str] | None = None
    # Every name and value of every row is a str and the names are the header's, in its order
    # (a CSV's rows): the row check may skip type tests and find each column's check once.
    text_only: bool = False

    def __init__(self, opener: Callable[[], IO[bytes]], *, name: str, owned: bool) -> None:
        self._opener = opener
        self._stream: IO[bytes] | None = None
        self.name = name
        # A stream we did not open (stdin) is never closed, only let go of.
        self._owned = owned
        self._closed = False
        # Until the first chunk is handed out, a problem with the whole input can still stop
        # the job before anything is sent (see encoding_problem).
        self._first_chunk = True

    def read(self, n: int) -> list[RawRow]:
        """Return up to ``n`` rows; an empty list means the input is exhausted."""
        if self._closed:
            return []
        if self._stream is None:
            # Opened here, in the worker thread: opening a FIFO blocks until a writer shows up.
            self._stream = self._opener()
            self._start(self._stream)
        try:
            return self._read(n)
        finally:
            self._first_chunk = False

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

    def encoding_problem(self, lineno: int, problem: str) -> str:
        """A line that does not decode: a SourceError while nothing has been handed out,
        else (a pipe, past its first chunk) the message of an error row for that record.

        A file in the wrong encoding fails on many lines, so it is one error for the job, not
        one per row. Regular files are checked whole before the first row (``_scan``); a pipe
        can only be checked as it is read.
        """
        if self._first_chunk:
            raise SourceError(f"{problem}; {_ENCODING_HINT}", path=self.name, line=lineno)
        return f"line {lineno}: {problem} (is the input in another encoding? see --encoding)"


# Most non-UTF-8 CSVs come from Excel on Windows, which writes cp1252.
_ENCODING_HINT = "pass --encoding with the file's encoding (e.g. --encoding cp1252)"


def _shown_encoding(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return "UTF-8" if name in _UTF8 else encoding


def _scan(stream: IO[bytes], encoding: str) -> tuple[int, str] | None:
    """The first line of a regular file that does not decode, and why; None when all do.

    Reads the file once more than the parse does, in ``_SCAN_CHUNK`` blocks; an ASCII block
    (the usual case) costs an ``isascii`` and no decoding. The stream is left at its start.
    Not for pipes: they cannot be read twice.
    """
    try:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode) or not stream.seekable():
            return None
    except (OSError, ValueError, io.UnsupportedOperation):
        return None  # not a real file (BytesIO in tests, sockets): checked as it is read
    start = stream.tell()
    ascii_safe = codecs.lookup(encoding).name in _UTF8 | _ASCII_SUPERSETS
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    at = start  # where the block being checked starts in the file
    try:
        while block := stream.read(_SCAN_CHUNK):
            if not (ascii_safe and block.isascii() and not decoder.getstate()[0]):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as bad:
                    # bad.object is the decoder's pending bytes followed by this block.
                    offset = at - (len(bad.object) - len(block)) + bad.start
                    byte = bad.object[bad.start]
                    return (
                        _line_at(stream, start, offset),
                        f"byte 0x{byte:02x} is not valid {_shown_encoding(encoding)}",
                    )
            at += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return (
                _line_at(stream, start, at),
                f"the file ends inside a {_shown_encoding(encoding)} character",
            )
        return None
    finally:
        stream.seek(start)


def _line_at(stream: IO[bytes], start: int, offset: int) -> int:
    """The line holding the byte at ``offset``: newlines are counted only once a file is found
    bad (counting them in every block cost ~1,000 instructions a record of a good one)."""
    stream.seek(start)
    newlines = 0
    while start < offset and (block := stream.read(min(_SCAN_CHUNK, offset - start))):
        newlines += block.count(b"\n")
        start += len(block)
    return newlines + 1


def _width_error(start: int, width: int, got: int, lines: int) -> str:
    """The error of a record of ``got`` fields, ``lines`` lines long, under a ``width`` header."""
    error = f"line {start}: expected {width} fields as in the header, got {got}"
    if lines > 1:
        end = start + lines - 1
        error += f" (the record runs to line {end}: check the quotes on line {start})"
    return error


def _decodes(text: str) -> bool:
    """No undecodable bytes in ``text``: the text layer decodes with surrogateescape, so they
    show up as lone surrogates, which strict UTF-8 refuses to encode (as ``_Lines`` checks)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _split_lines(block: str) -> list[str]:
    """The lines of ``block`` as ``readline(_MAX_LINE)`` on the text returns them: each line
    break (newline="": "\n", "\r" or "\r\n") kept, a longer line in pieces of the limit."""
    lines: list[str] = []
    for line in io.StringIO(block, newline=""):
        while len(line) > _MAX_LINE:
            lines.append(line[:_MAX_LINE])
            line = line[_MAX_LINE:]
        lines.append(line)
    return lines


class _Lines:
    """Text lines for ``csv.reader``, with problems noted instead of raised, and a replay.

    Raising from here would make csv lose its place in a multi-line record; instead the problem
    is kept in ``problem`` and the reader turns the record being parsed into an error row.
    csv.reader pulls lines only while it parses a record (no read-ahead), so the problem always
    belongs to the record that the next ``next(reader)`` returns.

    ``record`` holds the lines of the record being parsed, so that a damaged one can be undone:
    ``replay`` hands its lines out again, with their line numbers, before reading on.
    """

    __slots__ = (
        "_encoding",
        "_fed",
        "_problem_at",
        "_read_text",
        "_readline",
        "_replay",
        "_source",
        "lineno",
        "problem",
        "record",
        "size",
    )

    def __init__(self, text: io.TextIOWrapper, *, source: _Reader, encoding: str) -> None:
        # Where new lines come from: the text's readline, or _from_fed while fed lines last.
        self._read_text = text.readline
        self._readline: Callable[[int], str] = self._read_text
        self._fed: list[str] = []  # lines read ahead that are still to come (a stack)
        self._source = source
        self._encoding = encoding
        self.lineno = 0
        self.problem: str | None = None
        self.record: list[str] = []
        self.size = 0
        # Lines to hand out again (a stack: the next one last) and the problems noted on them.
        self._replay: list[str] = []
        self._problem_at: dict[int, str] = {}

    def begin(self) -> int:
        """Start a new record; return the line it starts on."""
        self.record = []
        self.size = 0
        self.problem = None
        return self.lineno + 1

    def replay(self, lines: list[str], *, after: int) -> None:
        """Hand ``lines`` out again, numbered from ``after + 1``."""
        self._replay.extend(reversed(lines))
        self.lineno = after

    def feed(self, lines: list[str], *, after: int) -> None:
        """Hand out ``lines`` (read ahead from the text, split as ``readline(_MAX_LINE)``
        splits, never handed out before) next, numbered from ``after + 1``, each checked as a
        line read now is; then read on from the text."""
        if lines:
            self._fed = lines[::-1]
            self._readline = self._from_fed
        self.lineno = after

    @property
    def idle(self) -> bool:
        """Nothing replayed or fed is waiting: the next line is the text's next line."""
        return not self._replay and self._readline is self._read_text

    def _from_fed(self, limit: int) -> str:
        fed = self._fed
        line = fed.pop()
        if not fed:
            self._readline = self._read_text
        return line

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._replay:
            line = self._replay.pop()
            self.lineno += 1
            problem = self._problem_at.pop(self.lineno, None)
            if problem is not None:
                self._note(problem)
        else:
            # The usual line (ASCII, no NUL, short of the limit) costs three tests here;
            # _unusual looks at the others. This runs once per line.
            line = self._readline(_MAX_LINE)
            if not line:
                raise StopIteration
            self.lineno += 1
            if not line.isascii() or "\x00" in line or len(line) == _MAX_LINE:
                line = self._unusual(line)
        self.record.append(line)
        self.size += len(line)
        if self.size > _MAX_LINE:
            # Only a quote that never closes makes a record this big; csv's own field limit
            # (131,072 characters by default) usually stops it much sooner.
            raise csv.Error(f"record longer than {_MAX_LINE} characters")
        return line

    def _unusual(self, line: str) -> str:
        """The checks of a line just read (``lineno`` is its number): a problem noted for
        bytes not in the encoding, a NUL, a line over the limit (then "\\n" stands for it)."""
        if not line.isascii():
            try:
                # The text layer decodes with surrogateescape, so undecodable bytes show up as
                # lone surrogates, which strict UTF-8 refuses to encode.
                line.encode("utf-8")
            except UnicodeEncodeError:
                problem = f"bytes that are not valid {_shown_encoding(self._encoding)}"
                self._note(self._source.encoding_problem(self.lineno, problem))
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
        # Kept by line too: a damaged record's lines are read again, and must say it again.
        self._problem_at[self.lineno] = problem
        if self.problem is None:
            self.problem = problem

    def forget_before(self, lineno: int) -> None:
        """Drop the problems noted on lines before ``lineno``: they will not be read again."""
        if self._problem_at:
            for old in [n for n in self._problem_at if n < lineno]:
                del self._problem_at[old]


class _CsvReader(_Reader):
    text_only = True

    def __init__(
        self,
        opener: Callable[[], IO[bytes]],
        *,
        name: str,
        owned: bool,
        encoding: str,
        delimiter: str | None,
        first_line: int = 1,
    ) -> None:
        super().__init__(opener, name=name, owned=owned)
        self._encoding = encoding
        # None: sniffed from the header line (stdin, whose name says nothing).
        self._delimiter = delimiter
        self._first_line = first_line
        self._text: io.TextIOWrapper | None = None
        self._header: list[str] = []
        self._row = 0
        # The block being parsed from memory (_read_block): csv's reader over its lines, the
        # block's text, the number of the line before it, and how many of its lines the
        # records handed out so far took.
        self._block: CsvRecords | None = None
        self._block_text = ""
        self._block_after = 0
        self._block_used = 0
        # A plain block (no quote, no blank line, one kind of line break, every line as wide as
        # the header): its records, split up front, and how many were handed out.
        self._plain: list[list[str]] | None = None
        self._plain_used = 0
        self._csv_args: dict[str, Any] = {}

    def _start(self, stream: IO[bytes]) -> None:
        bad = _scan(stream, self._encoding)
        if bad is not None:
            line, problem = bad
            raise SourceError(f"{problem}; {_ENCODING_HINT}", path=self.name, line=line)
        delimiter = self._delimiter or _sniff(stream)
        # newline="" is what csv needs to see line breaks inside quoted fields as they are.
        self._text = io.TextIOWrapper(
            stream,
            encoding=self._encoding,
            errors="surrogateescape",
            newline="",
        )
        self._lines = _Lines(self._text, source=self, encoding=self._encoding)
        self._lines.lineno = self._first_line - 1
        # strict: a stray or unterminated quote is an error instead of silently swallowing
        # the records after it into one field; _read then skips just the damaged line.
        self._csv_args = {"delimiter": delimiter, "strict": True}
        self._csv = csv.reader(self._lines, **self._csv_args)
        self._header = self._read_header()
        self.header = list(self._header) if self._header else None

    def _read_header(self) -> list[str]:
        lines = self._lines
        while True:
            start = lines.begin()
            try:
                values = next(self._csv)
            except StopIteration:
                return []  # empty input: no header, no records
            except csv.Error as exc:
                raise SourceError(f"bad CSV header: {exc}", path=self.name, line=start) from None
            if lines.problem is not None:
                problem = lines.problem.removeprefix(f"line {start}: ")
                raise SourceError(f"bad CSV header: {problem}", path=self.name, line=start)
            if values:
                break
        # A BOM survives when the caller picked plain "utf-8"; it is never part of a name.
        names = [v.strip() for v in values]
        names[0] = names[0].lstrip("\ufeff").strip()
        problems = header_problems(names)
        if problems:
            raise SourceError(f"bad CSV header: {'; '.join(problems)}", path=self.name, line=start)
        return names

    def _read(self, n: int) -> list[RawRow]:
        if not self._header:
            return []
        reader = self._csv
        lines = self._lines
        row = self._row
        last = row + n
        out: list[RawRow] = []
        append = out.append
        while row < last:
            if self._plain is not None:
                row = self._read_plain(row, last, out)
                continue
            if self._block is not None:
                row = self._read_block(row, last, out)
                continue
            if lines.idle:
                if not self._next_block():
                    break  # the end of the input
                continue  # a block to read from memory, or its lines fed to _Lines
            # A record read line by line, each line checked (see _next_block for when).
            # lines.begin(), inlined.
            lines.record = []
            lines.size = 0
            lines.problem = None
            start = lines.lineno + 1
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row += 1
                append(RawRow(row, start, None, self._damaged(start, exc)))
                continue
            if lines.problem is not None:
                row += 1
                append(RawRow(row, start, None, lines.problem))
                continue
            if not values:
                continue  # an empty line is not a record
            row += 1
            append(self._record_row(row, start, values, len(lines.record)))
        self._row = row
        lines.forget_before(lines.lineno + 1)
        return out

    def _next_block(self) -> bool:
        """Read the next block of the text (``_BLOCK_CHARS``, then to the end of its last
        line); False at the end of the input.

        A block with nothing unusual in it (every line short of the limit, no NUL, nothing
        that does not decode) is parsed straight from memory by :meth:`_read_block`, with no
        Python code per line. Any other block's lines go to ``_Lines`` (``feed``), to be read
        and checked one by one exactly as if read from the text then.
        """
        assert self._text is not None
        text, lines = self._text, self._lines
        block = text.read(_BLOCK_CHARS)
        if not block:
            return False
        while block[-1] != "\n":
            if block[-1] == "\r":
                # "\r\n" is one line break: never end a block between the two.
                ahead = text.read(1)
                block += ahead
                if ahead in ("", "\n"):
                    break
            # The rest of the last line, as readline(_MAX_LINE) would have read that line.
            begins = max(block.rfind("\n"), block.rfind("\r", 0, len(block) - 1)) + 1
            room = _MAX_LINE - (len(block) - begins)
            rest = text.readline(room)
            block += rest
            if not rest or (len(rest) == room and rest[-1] not in "\r\n"):
                break  # the end of the input, or a line over the limit
        if len(block) < _MAX_LINE and "\x00" not in block and _decodes(block):
            records = self._plain_records(block)
            if records is not None:
                self._plain = records
                self._plain_used = 0
                self._block_after = lines.lineno
                return True
            self._block = csv.reader(io.StringIO(block, newline=""), **self._csv_args)
            self._block_text = block
            self._block_after = lines.lineno
            self._block_used = 0
        else:
            lines.feed(_split_lines(block), after=lines.lineno)
        return True

    def _plain_records(self, block: str) -> list[list[str]] | None:
        """The block's records when it is plain, else None: then it holds no quote, no blank
        line and one kind of line break ("\n", or "\r\n" as csv writes), so each line is one
        record and csv would split it at each delimiter, exactly as ``str.split`` does (and no
        field can pass csv's size limit, as the block is shorter). Every record has the
        header's width, so each is a row. A block made by a program that quotes only when it
        must is usually plain."""
        if '"' in block or len(block) > csv.field_size_limit():
            return None
        breaks = block.count("\r")
        lines = block.split("\r\n" if breaks else "\n")
        if breaks and (len(lines) - 1 != breaks or block.count("\n") != breaks):
            return None  # a lone "\r" (a line break to csv), or both kinds of break
        if not lines[-1]:
            lines.pop()  # the block ends with its last line's break (always, but at the end)
        if "" in lines:
            return None
        records = list(map(str.split, lines, itertools.repeat(self._csv_args["delimiter"])))
        if not all(map(len(self._header).__eq__, map(len, records))):
            return None
        return records

    def _read_plain(self, row: int, last: int, out: list[RawRow]) -> int:
        """Rows of the plain block, until ``last`` or the block's end; returns the last row
        number given. Row and line numbers run on one by one, and map builds the rows, so no
        Python code runs per row."""
        records, used = self._plain, self._plain_used
        assert records is not None
        taken = records[used : used + last - row]
        line = self._block_after + used + 1
        out += map(
            RawRow,
            range(row + 1, row + 1 + len(taken)),
            range(line, line + len(taken)),
            map(dict, map(zip, itertools.repeat(self._header), taken)),
        )
        used += len(taken)
        if used == len(records):
            self._lines.lineno = self._block_after + used
            self._plain = None
        else:
            self._plain_used = used
        return row + len(taken)

    def _read_block(self, row: int, last: int, out: list[RawRow]) -> int:
        """Records from the block in memory, until ``last`` or the block's end; returns the
        last row number given. The block's records are exactly those csv finds reading its
        lines one by one: a record csv cannot finish inside the block (malformed, or running
        on past it) goes back with the rest of the block to ``_Lines`` (``feed``), where it
        is read line by line and, if it is damaged, undone as such a record always is."""
        block = self._block
        assert block is not None
        after = self._block_after
        used = self._block_used  # lines of the block before the next record
        append = out.append
        while row < last:
            try:
                values = next(block)
            except StopIteration:
                self._end_block(used, fed=False)
                break
            except csv.Error:
                self._end_block(used, fed=True)
                break
            start = after + used + 1
            taken = block.line_num - used
            used += taken
            if not values:
                continue  # an empty line is not a record
            row += 1
            append(self._record_row(row, start, values, taken))
        self._block_used = used
        return row

    def _record_row(self, row: int, start: int, values: list[str], lines: int) -> RawRow:
        """The row of a record csv read (``lines`` long, from line ``start``): its data when
        it is as wide as the header, else the width error."""
        header = self._header
        if len(values) == len(header):
            # The width is checked here, and zip given any keyword (strict=) costs about 1,400
            # instructions per call on CPython 3.11 (no vectorcall path).
            return RawRow(row, start, dict(zip(header, values)))  # noqa: B905
        return RawRow(row, start, None, _width_error(start, len(header), len(values), lines))

    def _end_block(self, used: int, *, fed: bool) -> None:
        """Leave the block with ``used`` of its lines taken; ``fed``: its other lines are read
        again by ``_Lines``, else the block has none left."""
        lines = self._lines
        if fed:
            lines.feed(_split_lines(self._block_text)[used:], after=self._block_after + used)
        else:
            lines.lineno = self._block_after + used
        self._block = None
        self._block_text = ""

    def _damaged(self, start: int, exc: csv.Error) -> str:
        """The error of a record csv could not parse; a multi-line one costs only its first line.

        A quote that opens a field and never closes swallows the lines after it, until csv's
        field limit (131,072 characters by default, twice the longest value HubSpot takes), the
        end of the input, or a quote that cannot close the field. Those lines are records of
        their own, so only the line the record starts on is the error, and reading resumes on
        the next line: every later record is read, with the number it would have had.
        """
        lines = self._lines
        record = lines.record
        if len(record) <= 1:
            return lines.problem or f"line {start}: malformed CSV: {exc}"
        end = start + len(record) - 1
        lines.replay(record[1:], after=start)
        return (
            f"line {start}: malformed CSV: a quoted field opens on this line and does not close "
            f"properly ({exc}, reading on to line {end}); only this line was skipped"
        )

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


def _sniff(stream: IO[bytes]) -> str:
    """The delimiter of the header line at the stream's position, without consuming it."""
    head = stream.peek(_SNIFF_BYTES) if hasattr(stream, "peek") else b""
    for line in head.removeprefix(_BOM).split(b"\n"):
        if line.strip():
            return sniff_delimiter(line.decode("utf-8", errors="replace"))
    return ","


_JSON_KINDS = {
    list: "list",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
_JSONL_HINT = "JSON Lines are UTF-8: convert the file first (e.g. iconv -f cp1252 -t utf-8)"


class JsonNumber(str):
    """The exact text of a JSON number that a float would change: ``1.10``, ``1e400``, ``-0``.

    A ``str``, so the normaliser sends it as written; written back out (``failed.jsonl``) it
    is a JSON string, which reads back to the same text. Integers that fit a Python int stay
    ints: their text is exact.
    """

    __slots__ = ()


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
        self._exact = _ExactJson()

    def _start(self, stream: IO[bytes]) -> None:
        bad = _scan(stream, "utf-8-sig")
        if bad is not None:
            line, problem = bad
            raise SourceError(f"{problem}; {_JSONL_HINT}", path=self.name, line=line)
        # orjson refuses a UTF-8 BOM; editors on Windows like to add one to the first line.
        head = stream.peek(3) if hasattr(stream, "peek") else b""
        if head.startswith(_BOM):
            stream.read(3)

    def _read(self, n: int) -> list[RawRow]:
        assert self._stream is not None
        readline = self._stream.readline
        loads = orjson.loads
        exact = self._exact.loads
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
                obj = exact(line) if "number" in exc.msg else None
                if obj is None:
                    row += 1
                    append(RawRow(row, lineno, None, self._json_error(lineno, line, exc)))
                    continue
            else:
                if type(obj) is dict and _loses_number_text(obj, line):
                    # None only for what orjson takes and json does not (nesting past
                    # Python's recursion limit): orjson's reading is then the best there is.
                    obj = exact(line) or obj
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

    def _json_error(self, lineno: int, line: bytes, exc: orjson.JSONDecodeError) -> str:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as bad:
            where = f"byte 0x{line[bad.start]:02x} at column {bad.start + 1}"
            if self._first_chunk:
                problem = f"not valid UTF-8 ({where}); {_JSONL_HINT}"
                raise SourceError(problem, path=self.name, line=lineno) from None
            return f"line {lineno}: not valid UTF-8 ({where})"
        return f"line {lineno}: invalid JSON: {exc.msg} at column {exc.colno}"


# orjson reads every number into an int or a float: exact for integers up to 64 bits, but a
# float keeps neither the text ("1.10" -> 1.1) nor big integers (2**64 -> 1.8446744073709552e19,
# silently), and it refuses 1e400. Lines holding such a number are read again, by the standard
# json module, which hands out each number's text. That costs only those lines: the check is a
# type test per value, and most CRM values are strings.


def _loses_number_text(obj: Any, line: bytes) -> bool:
    """Whether orjson's reading of ``line`` (a dict or list) holds a number not as written."""
    # A plain loop: measured faster than set(map(type, ...)) or a regex over the line.
    for value in obj.values() if type(obj) is dict else obj:
        kind = type(value)
        if kind is str:
            continue
        if kind is float:
            return True
        if kind is int:
            if not value and b"-0" in line:
                return True  # -0 reads as 0 (the bytes test is only a first filter)
        elif (kind is dict or kind is list) and _loses_number_text(value, line):
            return True
    return False


class _ExactJson:
    """Parses a line with each number as written (floats as JsonNumber), or says it cannot.

    One per reader: a JSONDecoder is costly to build (json.loads(..., parse_float=...) builds
    one per call, which doubled the time), and one reader is only used by one thread at a time.
    """

    __slots__ = ("_decode", "_decode_ints")

    def __init__(self) -> None:
        # Integers the C way (exact, and fast); -0 and very long ones need _exact_int.
        self._decode = json.JSONDecoder(parse_float=JsonNumber, parse_constant=_no_constant).decode
        self._decode_ints = json.JSONDecoder(
            parse_float=JsonNumber, parse_int=_exact_int, parse_constant=_no_constant
        ).decode

    def loads(self, line: bytes) -> Any:
        """``line`` parsed, or None when the json module refuses it too."""
        try:
            text = line.decode("utf-8")
            if b"-0" in line:
                return self._decode_ints(text)
            try:
                return self._decode(text)
            except ValueError:  # an integer past int()'s digit limit
                return self._decode_ints(text)
        except (ValueError, RecursionError):
            return None


def _exact_int(text: str) -> int | str:
    # int() refuses more than 4,300 digits (CVE-2020-10735); the text is exact anyway.
    if text == "-0" or len(text) > 4000:
        return JsonNumber(text)
    return int(text)


def _no_constant(name: str) -> Any:
    # The json module takes NaN and Infinity, which are not JSON; orjson refuses them too.
    raise ValueError(f"{name} is not JSON")


class _SniffingReader(_Reader):
    """stdin without a format: CSV or JSONL is decided by the first non-blank byte."""

    def __init__(self, stream: IO[bytes], *, encoding: str, delimiter: str | None) -> None:
        super().__init__(lambda: stream, name=_STDIN_NAME, owned=False)
        self._encoding = encoding
        self._delimiter = delimiter
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
                encoding=self._encoding,
                delimiter=self._delimiter,
            )

    def _read(self, n: int) -> list[RawRow]:
        assert self._inner is not None
        rows = self._inner.read(n)
        self.header = self._inner.header
        self.text_only = self._inner.text_only
        return rows

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

    def drain_buffered(self) -> list[RawRow]:
        """The rows already read and not handed out yet, without waiting (the intake takes a
        chunk at a time this way, rather than with an await per row)."""
        pos, buffer = self._pos, self._buffer
        if pos >= len(buffer):
            return []
        self._pos = len(buffer)
        return buffer[pos:]

    async def aclose(self) -> None:
        self._close()

    @property
    def header(self) -> list[str] | None:
        # Set by the worker thread while it read the first chunk, before this side saw a row.
        return self._handoff.reader.header

    @property
    def text_only(self) -> bool:
        """Whether every name and value of every row is a str, the names the header's (a
        CSV's rows)."""
        return self._handoff.reader.text_only

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
    encoding: str = _DEFAULT_ENCODING,
    delimiter: str = ",",
    chunk_rows: int = 1000,
) -> RowStream:
    """Stream the records of a CSV file; the first row is the header, values stay strings.

    Raises (on the first iteration) :class:`SourceError` (a ``ValueError``) for an empty,
    duplicate or NUL-holding header name, and for a file that does not decode as ``encoding``
    (checked through the whole file before the first row). A row with a different field
    count, malformed quoting or a NUL byte is an error row; a quote that never closes costs
    only its own line. Empty lines are skipped.
    """
    _check_chunk_rows(chunk_rows)
    codecs.lookup(encoding)  # an unknown encoding fails here, not in the worker
    _check_delimiter(delimiter)
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
    ``input``. Invalid JSON and non-objects are error rows. A number whose text a float would
    change (``1.10``, ``1e400``, ``-0``, integers past 64 bits) comes out as a
    :class:`JsonNumber` holding the text as written. Raises :class:`SourceError` (on the
    first iteration) for a file that is not UTF-8.
    """
    _check_chunk_rows(chunk_rows)
    reader = _JsonlReader(_file_opener(path), name=os.fspath(path), owned=True)
    return _ThreadedRows(reader, chunk_rows=chunk_rows)


def parse_delimiter(text: str) -> str:
    """A delimiter as typed on a command line: one character, or ``\\t`` or ``tab`` for a tab.

    Raises:
        ValueError: anything else.
    """
    delimiter = "\t" if text in ("\\t", "tab", "TAB") else text
    _check_delimiter(delimiter)
    return delimiter


def _check_delimiter(delimiter: str) -> None:
    if len(delimiter) != 1 or delimiter in '\r\n"':
        raise ValueError(
            f"'delimiter' must be one character other than a quote or line break, got {delimiter!r}"
        )


async def from_iterable(
    records: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
) -> AsyncGenerator[RawRow, None]:
    """Stream in-memory records; ``line`` equals ``row``. A non-mapping item is an error row.

    Any ``Mapping`` is a record, so ``DataFrame.to_dict("records")`` works; so does a pandas
    DataFrame itself, read row by row (iterating one directly would give its column names).
    """
    row = 0
    if _is_data_frame(records):
        records = _frame_records(records)
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
        # Off the event loop: a slow iterable must not stall the host program's other tasks.
        async for raw in read_in_thread(records, _mapping_row):
            yield raw


def _is_data_frame(records: object) -> bool:
    # Duck-typed, so pandas stays optional.
    return hasattr(records, "itertuples") and hasattr(records, "columns")


def _frame_records(frame: Any) -> Iterator[dict[str, Any]]:
    """A DataFrame's rows as dicts, one at a time (``to_dict`` would copy the whole frame)."""
    columns = list(frame.columns)
    for values in frame.itertuples(index=False, name=None):
        yield dict(zip(columns, values, strict=True))


def _mapping_row(row: int, item: object) -> RawRow:
    if type(item) is dict:
        return RawRow(row, row, item)
    if isinstance(item, Mapping):
        try:
            return RawRow(row, row, dict(item))
        except Exception as exc:  # a user's Mapping may fail to iterate; that is its row's fault
            problem = f"{type(exc).__name__}: {exc}"
            return RawRow(row, row, None, f"line {row}: the record cannot be read ({problem})")
    kind = type(item).__name__
    return RawRow(row, row, None, f"line {row}: a record must be a mapping, got {kind}")


_SUFFIXES = {
    ".csv": ("csv", ","),
    ".tsv": ("csv", "\t"),
    ".jsonl": ("jsonl", ""),
    ".ndjson": ("jsonl", ""),
    ".json": ("jsonl", ""),
}


def open_source(
    path: str,
    *,
    format: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> RowStream:
    """Open ``path`` ("-" is stdin) as CSV or JSONL, by ``format`` or else by its suffix.

    ``format`` is "csv", "tsv" or "jsonl". By suffix: .csv, .tsv (tab-separated), and
    .jsonl/.ndjson (JSON Lines), .json (an array of objects, or JSON Lines), .parquet (needs
    ``bulkops[parquet]``), and any of these but Parquet gzipped (.csv.gz, .jsonl.gz, ...).
    stdin without a format is JSONL when its first non-blank byte is "{", else CSV. stdin is
    read but never closed.

    ``delimiter`` and ``encoding`` apply to CSV/TSV (JSON Lines are UTF-8). Without a
    delimiter, a file's comes from its format (tab for TSV, else comma) and stdin's is sniffed
    from its header line (comma, tab, semicolon or pipe). The encoding defaults to UTF-8, with
    or without a BOM.

    Raises:
        ValueError: unknown format or encoding, a bad delimiter, or a suffix that does not
            tell the format.
    """
    if delimiter is not None:
        _check_delimiter(delimiter)
    encoding = encoding or _DEFAULT_ENCODING
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r}") from None
    if path != "-":
        # Parquet, gzip and JSON-array files (see _frames); imported here, not at the top,
        # because _frames builds on this module.
        from ._frames import open_file

        opened = open_file(path, format=format, delimiter=delimiter, encoding=encoding)
        if opened is not None:
            return opened
    suffix = os.path.splitext(path)[1].lower() if path != "-" else ""
    kind: str
    if format is None:
        if path == "-":
            return _ThreadedRows(
                _SniffingReader(sys.stdin.buffer, encoding=encoding, delimiter=delimiter),
                chunk_rows=1000,
            )
        if suffix not in _SUFFIXES:
            raise ValueError(
                f"{path}: cannot tell the format from the suffix {suffix!r}; "
                "use .csv, .tsv, .jsonl, .ndjson or .json, or pass format='csv' or 'jsonl'"
            )
        kind, by_format = _SUFFIXES[suffix]
    elif format == "csv":
        kind, by_format = "csv", "\t" if suffix == ".tsv" else ","
    elif format == "tsv":
        kind, by_format = "csv", "\t"
    elif format == "jsonl":
        kind, by_format = "jsonl", ""
    else:
        raise ValueError(f"{path}: unknown format {format!r}; use 'csv', 'tsv' or 'jsonl'")

    if path != "-":
        if kind == "csv":
            return read_csv(path, delimiter=delimiter or by_format, encoding=encoding)
        return read_jsonl(path)
    # Looked up at call time, not import time, so a replaced sys.stdin is honoured.
    stdin = sys.stdin.buffer
    reader: _Reader
    if kind == "csv":
        # --format csv on stdin says CSV, not which separator: that is sniffed; tsv says tab.
        sniffed = None if format == "csv" else by_format
        reader = _CsvReader(
            lambda: stdin,
            name=_STDIN_NAME,
            owned=False,
            encoding=encoding,
            delimiter=delimiter or sniffed,
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
