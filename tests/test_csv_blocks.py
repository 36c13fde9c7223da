"""The CSV reader parses a block of text at a time straight from memory when nothing in the
block is unusual (``_CsvReader._next_block``), and line by line otherwise. Both must give
exactly the rows, line numbers and errors that reading every line one by one gives, wherever
the blocks happen to end: here against that reading, with blocks of a few characters so that
their ends fall everywhere (inside quotes, between "\\r" and "\\n", inside long lines)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkops import _sources
from bulkops._sources import SourceError, _CsvReader

# Pieces that make CSV hard: quotes (doubled, stray, never closed), every line break, blank
# lines, non-ASCII text, bytes that do not decode, NUL, delimiters inside and outside quotes.
PIECES = [
    b"a",
    b"bc",
    b",",
    b",,",
    b'"',
    b'""',
    b'"x,y"',
    b'"q\nr"',
    b"\n",
    b"\r\n",
    b"\r",
    b"\n\n",
    b" ",
    b"caf\xc3\xa9",
    b"\xff",
    b"\x00",
    b"0123456789",
]


def _rows(data: bytes, read_sizes: list[int]) -> list[Any]:
    """Every row the reader gives for ``data`` (a SourceError as its message), read in calls
    of the given sizes, in turn."""
    reader = _CsvReader(
        lambda: io.BytesIO(data), name="t.csv", owned=True, encoding="utf-8", delimiter=","
    )
    got: list[Any] = []
    try:
        for turn in range(10_000):
            rows = reader.read(read_sizes[turn % len(read_sizes)])
            if not rows:
                break
            got.extend((r.row, r.line, r.data, r.error) for r in rows)
    except SourceError as exc:
        got.append(("SourceError", str(exc)))
    finally:
        reader.close()
    got.append(("header", reader.header))
    return got


def _line_by_line(read: Callable[[], list[Any]]) -> list[Any]:
    """What ``read`` gives when every line is read and checked one by one (no blocks)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_sources._Lines, "idle", property(lambda self: False))
        return read()


@settings(max_examples=400, deadline=None)
@given(
    body=st.lists(st.sampled_from(PIECES), max_size=60),
    block_chars=st.sampled_from([1, 2, 3, 5, 8, 13, 64, 4096]),
    max_line=st.sampled_from([16, 40, 16 * 1024 * 1024]),
    read_sizes=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    data=st.data(),
)
def test_blocks_give_what_reading_line_by_line_gives(
    body: list[bytes],
    block_chars: int,
    max_line: int,
    read_sizes: list[int],
    data: st.DataObject,
) -> None:
    text = b"h1,h2\n" + b"".join(body)
    if data.draw(st.booleans()):
        text += b"\n"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_sources, "_MAX_LINE", max_line)
        m.setattr(_sources, "_BLOCK_CHARS", min(block_chars, max_line - 1))
        expected = _line_by_line(lambda: _rows(text, read_sizes))
        assert _rows(text, read_sizes) == expected, text


@pytest.mark.parametrize("block_chars", [1, 7, 4096, 64 * 1024])
def test_a_large_file_read_in_blocks_keeps_every_row_and_line(
    monkeypatch: pytest.MonkeyPatch, block_chars: int
) -> None:
    """Thousands of records, some quoted over several lines, a few damaged: the same rows as
    line by line, and the blocks were used (not everything read the careful way)."""
    records = []
    for n in range(3000):
        if n % 97 == 0:
            records.append(f'{n},"two\r\nlines, quoted ""here"""')
        elif n % 331 == 0:
            records.append(f'{n},"opens and" never closes')
        elif n % 449 == 0:
            records.append(f"{n},too,many")
        else:
            records.append(f"{n},value {n}")
    text = ("id,value\n" + "\n".join(records) + "\n").encode()
    monkeypatch.setattr(_sources, "_BLOCK_CHARS", block_chars)
    blocks = 0
    real_next_block = _CsvReader._next_block

    def counting(self: _CsvReader) -> bool:
        nonlocal blocks
        found = real_next_block(self)
        blocks += self._block is not None
        return found

    monkeypatch.setattr(_CsvReader, "_next_block", counting)
    got = _rows(text, [1000])
    expected = _line_by_line(lambda: _rows(text, [1000]))
    assert got == expected
    assert blocks > 0
    rows = [r for r in got if isinstance(r[0], int)]
    assert [r[0] for r in rows] == list(range(1, 3001))
    damaged = [n for n in range(3000) if n % 97 and (n % 331 == 0 or n % 449 == 0)]
    assert [r[0] - 1 for r in rows if r[3] is not None] == damaged


# Pieces of plain blocks (no quote), so that many blocks are plain (_read_plain), with what
# makes one not plain after all: a blank line, a row of another width, a lone "\r", both
# kinds of line break.
PLAIN_PIECES = [b"a", b"bc", b",", b",,", b"\n", b"\n\n", b" ", b"caf\xc3\xa9", b"0123456789"]
CRLF_PIECES = [b"a", b"bc", b",", b",,", b"\r\n", b"\r\n\r\n", b" ", b"0123456789"]


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.lists(st.sampled_from(PLAIN_PIECES), max_size=80),
        st.lists(st.sampled_from(CRLF_PIECES), max_size=80),
        st.lists(st.sampled_from([*CRLF_PIECES, b"\n", b"\r"]), max_size=80),
    ),
    block_chars=st.sampled_from([1, 3, 8, 13, 64, 4096]),
    field_limit=st.sampled_from([4, 131_072]),
    read_sizes=st.lists(st.integers(1, 7), min_size=1, max_size=3),
)
def test_plain_blocks_give_what_reading_line_by_line_gives(
    body: list[bytes], block_chars: int, field_limit: int, read_sizes: list[int]
) -> None:
    text = b"h1,h2\n" + b"".join(body)
    old_limit = csv.field_size_limit(field_limit)  # a field over it is csv's error, not ours
    try:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(_sources, "_BLOCK_CHARS", block_chars)
            expected = _line_by_line(lambda: _rows(text, read_sizes))
            got = _rows(text, read_sizes)
            m.setattr(_CsvReader, "_plain_records", lambda self, block: None)
            assert _rows(text, read_sizes) == expected, text
        assert got == expected, text
    finally:
        csv.field_size_limit(old_limit)


def test_a_file_a_program_wrote_is_read_in_plain_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unquoted rows of the header's width, each line ended as csv.writer ends it ("\r\n"):
    every block is plain, and the rows and line numbers are those of reading line by line."""
    text = (
        "id,subject,content\r\n" + "".join(f"{n},s {n},c {n}\r\n" for n in range(5000))
    ).encode()
    monkeypatch.setattr(_sources, "_BLOCK_CHARS", 1000)
    plain = 0
    real = _CsvReader._plain_records

    def counting(self: _CsvReader, block: str) -> list[list[str]] | None:
        nonlocal plain
        records = real(self, block)
        plain += records is not None
        return records

    monkeypatch.setattr(_CsvReader, "_plain_records", counting)
    got = _rows(text, [700, 3])
    assert plain >= 80  # ~88 KB in blocks of ~1,000 characters
    assert got == _line_by_line(lambda: _rows(text, [700, 3]))
    rows = [r for r in got if isinstance(r[0], int)]
    assert [(r[0], r[1]) for r in rows] == [(n, n + 1) for n in range(1, 5001)]
    assert rows[-1][2] == {"id": "4999", "subject": "s 4999", "content": "c 4999"}
