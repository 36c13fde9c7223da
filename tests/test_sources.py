from __future__ import annotations

import csv
import io
import os
import shutil
import sys
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import aclosing
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkops import _sources as sources
from bulkops._errors import ConfigError
from bulkops._sources import (
    JsonNumber,
    RawRow,
    RowStream,
    SourceError,
    fingerprint,
    from_iterable,
    open_source,
    parse_delimiter,
    read_csv,
    read_jsonl,
)
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

HAS_PROC_FDS = os.path.isdir("/proc/self/fd")


async def collect(stream: AsyncIterator[RawRow]) -> list[RawRow]:
    return [row async for row in stream]


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def open_fds_to(path: Path) -> int:
    """How many of this process's file descriptors point at ``path``."""
    target = str(path.resolve())
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                count += 1
        except OSError:
            continue
    return count


class FakeStdin(io.TextIOWrapper):
    """sys.stdin stand-in: a text wrapper whose .buffer is a real BufferedReader."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BufferedReader(io.BytesIO(data)))


# --- CSV ------------------------------------------------------------------------------------


async def test_csv_rows_are_dicts_of_strings_numbered_from_one(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "email,age,vip\na@x.io,31,true\nb@x.io,,false\n")
    rows = await collect(read_csv(path))
    assert rows == [
        RawRow(1, 2, {"email": "a@x.io", "age": "31", "vip": "true"}),
        RawRow(2, 3, {"email": "b@x.io", "age": "", "vip": "false"}),
    ]


async def test_csv_quoted_newlines_keep_line_numbers_right(tmp_path: Path) -> None:
    text = (
        "subject,content\r\n"
        'one,"first\r\nsecond\r\nthird"\r\n'
        'two,"say ""hi"", then, go"\r\n'
        "three,plain\r\n"
    )
    rows = await collect(read_csv(write(tmp_path / "t.csv", text)))
    assert [(r.row, r.line) for r in rows] == [(1, 2), (2, 5), (3, 6)]
    assert rows[0].data == {"subject": "one", "content": "first\r\nsecond\r\nthird"}
    assert rows[1].data == {"subject": "two", "content": 'say "hi", then, go'}


async def test_csv_ragged_rows_are_error_rows_and_reading_goes_on(tmp_path: Path) -> None:
    text = "a,b,c,d,e\n1,2,3,4,5\n1,2,3,4,5,6\n1,2\n1,2,3,4,5\n"
    rows = await collect(read_csv(write(tmp_path / "t.csv", text)))
    assert [r.row for r in rows] == [1, 2, 3, 4]
    assert rows[1] == RawRow(2, 3, None, "line 3: expected 5 fields as in the header, got 6")
    assert rows[2] == RawRow(3, 4, None, "line 4: expected 5 fields as in the header, got 2")
    assert rows[3].data == {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}


async def test_csv_empty_lines_are_not_records(tmp_path: Path) -> None:
    text = "\n\nname,n\n\nx,1\n\n\r\ny,2\n\n"
    rows = await collect(read_csv(write(tmp_path / "t.csv", text)))
    assert rows == [RawRow(1, 5, {"name": "x", "n": "1"}), RawRow(2, 8, {"name": "y", "n": "2"})]


async def test_csv_whitespace_only_line_is_a_record(tmp_path: Path) -> None:
    # Only *completely* empty lines are skipped; "  " is a one-field row.
    rows = await collect(read_csv(write(tmp_path / "t.csv", "a,b\n  \n")))
    assert rows == [RawRow(1, 2, None, "line 2: expected 2 fields as in the header, got 1")]


async def test_csv_bom_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", b"\xef\xbb\xbfemail,name\nx@y.z,X\n")
    assert (await collect(read_csv(path)))[0].data == {"email": "x@y.z", "name": "X"}
    # Even when the caller asks for plain utf-8, the BOM is not part of the first name.
    rows = await collect(read_csv(path, encoding="utf-8"))
    assert rows[0].data == {"email": "x@y.z", "name": "X"}


async def test_csv_header_names_are_stripped_and_values_are_not(tmp_path: Path) -> None:
    rows = await collect(read_csv(write(tmp_path / "t.csv", " email , name\n a , b \n")))
    assert rows[0].data == {"email": " a ", "name": " b "}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("email,name,email", "duplicate column names 'email'"),
        ("email, email ,name,name", "duplicate column names 'email', 'name'"),
        ("email,,name", "empty column name at column 2"),
        ("email, ,name,", "empty column name at column 2, 4"),
    ],
)
async def test_csv_bad_header_raises_up_front(tmp_path: Path, header: str, expected: str) -> None:
    path = write(tmp_path / "t.csv", header + "\n1,2,3,4\n")
    stream = read_csv(path)
    with pytest.raises(ValueError, match="bad CSV header") as info:
        await stream.__anext__()
    assert expected in str(info.value)
    assert str(path) in str(info.value)


async def test_csv_malformed_quote_is_an_error_row_then_reading_goes_on(tmp_path: Path) -> None:
    text = 'a,b\n1,"x"y\n2,ok\n'
    rows = await collect(read_csv(write(tmp_path / "t.csv", text)))
    assert rows[0].row == 1 and rows[0].line == 2 and rows[0].data is None
    assert rows[0].error is not None and rows[0].error.startswith("line 2: malformed CSV:")
    assert rows[1] == RawRow(2, 3, {"a": "2", "b": "ok"})


async def test_csv_unterminated_quote_costs_only_its_line(tmp_path: Path) -> None:
    # Without strict parsing this would silently become one valid-looking record; strict
    # alone would make it swallow "4,5" into an error row.
    text = 'a,b\n1,2\n3,"never closed\n4,5\n'
    rows = await collect(read_csv(write(tmp_path / "t.csv", text)))
    assert rows[0] == RawRow(1, 2, {"a": "1", "b": "2"})
    assert rows[1].row == 2 and rows[1].line == 3 and rows[1].data is None
    assert rows[1].error == (
        "line 3: malformed CSV: a quoted field opens on this line and does not close properly "
        "(unexpected end of data, reading on to line 4); only this line was skipped"
    )
    assert rows[2] == RawRow(3, 4, {"a": "4", "b": "5"})
    assert len(rows) == 3


async def test_csv_unterminated_quote_on_the_last_line_is_an_error_row(tmp_path: Path) -> None:
    rows = await collect(read_csv(write(tmp_path / "t.csv", 'a,b\n1,2\n3,"never closed\n')))
    assert rows[1] == RawRow(2, 3, None, "line 3: malformed CSV: unexpected end of data")


async def test_csv_one_damaged_record_in_20000_costs_only_itself(tmp_path: Path) -> None:
    # Without the resync, csv swallows the next 5,124 lines into one field (up to its
    # 131,072-character field limit) and every later row is renumbered.
    lines = ["n,subject,priority"]
    lines += [
        f'{n},"Printer {n} on fire,HIGH' if n == 10 else f"{n},Printer {n},LOW"
        for n in range(1, 20_001)
    ]
    path = write(tmp_path / "t.csv", "\n".join(lines) + "\n")
    rows = await collect(read_csv(path))
    assert [r.row for r in rows] == list(range(1, 20_001))
    assert [r.line for r in rows] == list(range(2, 20_002))
    damaged = rows[9]
    assert damaged.data is None and damaged.error is not None
    assert damaged.error.startswith("line 11: malformed CSV: a quoted field opens on this line")
    assert all(
        r.data == {"n": str(r.row), "subject": f"Printer {r.row}", "priority": "LOW"}
        for r in rows
        if r.row != 10
    )


async def test_csv_damage_ended_by_a_later_quote_is_resynced(tmp_path: Path) -> None:
    # The swallow ends at the next quoted field ('"x"' closes it, then x is not a delimiter).
    text = 'a,b\n1,"oops\n2,plain\n3,"x"\n4,"multi\nline"\n'
    rows = await collect(read_csv(write(tmp_path / "t.csv", text)))
    assert [(r.row, r.line, r.data) for r in rows] == [
        (1, 2, None),
        (2, 3, {"a": "2", "b": "plain"}),
        (3, 4, {"a": "3", "b": "x"}),
        (4, 5, {"a": "4", "b": "multi\nline"}),
    ]
    assert rows[0].error is not None and "reading on to line 4" in rows[0].error


async def test_csv_legit_long_multi_line_fields_are_kept(tmp_path: Path) -> None:
    # HubSpot takes values up to 65,536 characters; one that long over 2,000 lines is kept.
    body = "\n".join(f"line {i} of a long email, with commas" for i in range(2000))[:65_536]
    out = io.StringIO(newline="")
    csv.writer(out).writerows([["subject", "content"], ["long", body], ["next", "x"]])
    rows = await collect(read_csv(write(tmp_path / "t.csv", out.getvalue())))
    assert [r.data for r in rows] == [
        {"subject": "long", "content": body},
        {"subject": "next", "content": "x"},
    ]
    assert rows[1].row == 2 and rows[1].line == 2 + body.count("\n") + 1


async def test_csv_multi_line_record_with_a_wrong_width_says_where_it_ends(
    tmp_path: Path,
) -> None:
    # It parsed, so it is not split up (its lines may be text, not records), but the message
    # points at the quote.
    text = 'a,b\n1,"two\nlines",extra\n2,3\n'
    rows = await collect(read_csv(write(tmp_path / "t.csv", text)))
    assert rows == [
        RawRow(
            1,
            2,
            None,
            "line 2: expected 2 fields as in the header, got 3 "
            "(the record runs to line 3: check the quotes on line 2)",
        ),
        RawRow(2, 4, {"a": "2", "b": "3"}),
    ]


async def test_csv_nul_in_the_header_is_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", b"a,b\x00\n1,2\n")
    with pytest.raises(SourceError) as info:
        await collect(read_csv(path))
    assert str(info.value) == f"{path}: line 1: bad CSV header: NUL byte"
    assert info.value.line == 1


async def test_csv_header_is_on_the_stream_after_the_first_row(tmp_path: Path) -> None:
    stream = read_csv(write(tmp_path / "t.csv", "\n email , name\nx,y\n"))
    assert stream.header is None
    await stream.__anext__()
    assert stream.header == ["email", "name"]
    jsonl = read_jsonl(write(tmp_path / "t.jsonl", '{"a": 1}\n'))
    await jsonl.__anext__()
    assert jsonl.header is None
    empty = read_csv(write(tmp_path / "e.csv", "a,b\n"))
    assert await collect(empty) == [] and empty.header == ["a", "b"]


async def test_csv_nul_byte_is_an_error_row(tmp_path: Path) -> None:
    rows = await collect(read_csv(write(tmp_path / "t.csv", b"a,b\n1,\x002\n3,4\n")))
    assert rows == [RawRow(1, 2, None, "line 2: NUL byte"), RawRow(2, 3, {"a": "3", "b": "4"})]


@pytest.mark.parametrize(
    ("tail", "line", "problem"),
    [
        (b"x,\xe9\n", 41, "byte 0xe9 is not valid UTF-8"),
        # A character split across two blocks is fine; one cut off by the file's end is not.
        (b"x,\xc3\xa9\n9,\xc3", 42, "the file ends inside a UTF-8 character"),
    ],
)
async def test_a_bad_byte_blocks_into_the_file_is_named_by_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tail: bytes, line: int, problem: str
) -> None:
    monkeypatch.setattr(sources, "_SCAN_CHUNK", 7)  # many blocks, and lines that span them
    body = b"a,b\n" + b"".join(b"%d,ok\n" % n for n in range(1, 40))
    path = write(tmp_path / "t.csv", body + tail)
    with pytest.raises(SourceError) as info:
        await read_csv(path).__anext__()
    assert info.value.line == line and problem in str(info.value)


async def test_csv_not_in_its_encoding_is_one_error_naming_the_line(tmp_path: Path) -> None:
    # The first undecodable byte far into the file still stops the job before the first row.
    lines = [b"a,b"] + [b"%d,plain" % i for i in range(1, 5000)] + [b'5000,"Ren\xe9"', b"1,2"]
    path = write(tmp_path / "t.csv", b"\n".join(lines) + b"\n")
    stream = read_csv(path)
    with pytest.raises(SourceError) as info:
        await stream.__anext__()
    assert str(info.value) == (
        f"{path}: line 5001: byte 0xe9 is not valid UTF-8; pass --encoding with the file's "
        "encoding (e.g. --encoding cp1252)"
    )
    assert (info.value.path, info.value.line) == (str(path), 5001)
    assert isinstance(info.value, ConfigError)
    rows = await collect(read_csv(path, encoding="cp1252"))
    assert len(rows) == 5001 and rows[4999].data == {"a": "5000", "b": "René"}


async def test_csv_stdin_not_in_its_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pipe cannot be read twice: in its first chunk the bad byte stops the job ...
    monkeypatch.setattr(sys, "stdin", FakeStdin(b"a,b\n1,2\n3,\xff\n"))
    with pytest.raises(SourceError, match=r"^<stdin>: line 3: bytes that are not valid UTF-8; "):
        await collect(open_source("-"))
    # ... after it (rows may have been sent), it is that record's error row.
    data = b"a,b\n" + b"1,2\n" * 1000 + b'3,"multi\nline \xff here"\n5,6\n'
    monkeypatch.setattr(sys, "stdin", FakeStdin(data))
    rows = await collect(open_source("-"))
    assert rows[1000] == RawRow(
        1001,
        1002,
        None,
        "line 1003: bytes that are not valid UTF-8 (is the input in another encoding? "
        "see --encoding)",
    )
    assert rows[1001] == RawRow(1002, 1004, {"a": "5", "b": "6"})


async def test_csv_other_encoding_and_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "nom;ville\nRené;Orléans\n".encode("latin-1"))
    rows = await collect(read_csv(path, encoding="latin-1", delimiter=";"))
    assert rows == [RawRow(1, 2, {"nom": "René", "ville": "Orléans"})]


async def test_csv_empty_file_has_no_records(tmp_path: Path) -> None:
    assert await collect(read_csv(write(tmp_path / "t.csv", ""))) == []
    assert await collect(read_csv(write(tmp_path / "u.csv", "\n\na,b\n"))) == []


@pytest.mark.parametrize("chunk_rows", [1, 2, 7, 1000])
async def test_csv_chunking_does_not_change_the_rows(tmp_path: Path, chunk_rows: int) -> None:
    lines = ["k,v"] + [f"{i},{'x' * (i % 5)}" if i % 4 else f"{i}" for i in range(1, 30)]
    path = write(tmp_path / "t.csv", "\n".join(lines) + "\n")
    assert await collect(read_csv(path, chunk_rows=chunk_rows)) == await collect(read_csv(path))


def test_csv_arguments_are_checked_at_call_time(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_rows"):
        read_csv(tmp_path / "t.csv", chunk_rows=0)
    with pytest.raises(ValueError, match="delimiter"):
        read_csv(tmp_path / "t.csv", delimiter=",,")
    with pytest.raises(LookupError):
        read_csv(tmp_path / "t.csv", encoding="no-such-codec")


async def test_missing_file_raises_on_first_read(tmp_path: Path) -> None:
    stream = read_csv(tmp_path / "missing.csv")
    with pytest.raises(FileNotFoundError):
        await stream.__anext__()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


cell = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(st.tuples(cell, cell, cell), max_size=25))
async def test_csv_round_trip(tmp_path: Path, records: list[tuple[str, str, str]]) -> None:
    # Whatever csv.writer writes comes back identical, in order, with each record's first line.
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["a", "b", "c"])
    expected_lines = []
    line = 2
    for record in records:
        expected_lines.append(line)
        one = io.StringIO(newline="")
        csv.writer(one).writerow(record)
        line += len(io.StringIO(one.getvalue(), newline="").readlines())
        writer.writerow(record)
    path = write(tmp_path / "rt.csv", out.getvalue())
    rows = await collect(read_csv(path, chunk_rows=4))
    assert [r.error for r in rows] == [None] * len(records)
    assert [r.data for r in rows] == [dict(zip("abc", rec, strict=True)) for rec in records]
    assert [r.row for r in rows] == list(range(1, len(records) + 1))
    assert [r.line for r in rows] == expected_lines


# --- JSONL ----------------------------------------------------------------------------------


async def test_jsonl_blank_lines_bad_json_and_non_objects(tmp_path: Path) -> None:
    data = (
        b'{"email": "a@x.io", "n": 1}\n'
        b"\n"
        b"   \r\n"
        b'{"email": "b@x.io", oops}\n'
        b"[1, 2]\n"
        b'"just a string"\n'
        b"null\n"
        b'{"email": "c@x.io", "nested": {"k": [1, 2]}}\n'
    )
    rows = await collect(read_jsonl(write(tmp_path / "t.jsonl", data)))
    assert rows[0] == RawRow(1, 1, {"email": "a@x.io", "n": 1})
    assert rows[1].row == 2 and rows[1].line == 4 and rows[1].data is None
    assert rows[1].error is not None
    assert rows[1].error.startswith("line 4: invalid JSON: ")
    assert rows[1].error.endswith(" at column 21")
    assert rows[2] == RawRow(3, 5, None, "line 5: a JSON line must be an object, got list")
    assert rows[3] == RawRow(4, 6, None, "line 6: a JSON line must be an object, got string")
    assert rows[4] == RawRow(5, 7, None, "line 7: a JSON line must be an object, got null")
    assert rows[5] == RawRow(6, 8, {"email": "c@x.io", "nested": {"k": [1, 2]}})


async def test_jsonl_failed_record_lines_are_unwrapped(tmp_path: Path) -> None:
    lines = [
        {"row": 7, "error": "INVALID_OPTION: ...", "input": {"email": "a@x.io"}},
        {"row": 8, "line": 9, "error": "x", "code": "Y", "input": {"email": "b@x.io"}},
        # Not failed-record lines: left alone.
        {"row": 1, "error": "x", "input": "not an object"},
        {"error": "x", "input": {"email": "c@x.io"}},
        {"row": 1, "input": {"email": "d@x.io"}},
    ]
    path = write(tmp_path / "failed.jsonl", b"".join(orjson.dumps(x) + b"\n" for x in lines))
    rows = await collect(read_jsonl(path))
    assert [r.data for r in rows] == [
        {"email": "a@x.io"},
        {"email": "b@x.io"},
        lines[2],
        lines[3],
        lines[4],
    ]
    assert [(r.row, r.line) for r in rows] == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]


async def test_jsonl_not_utf8_is_one_error_naming_the_line(tmp_path: Path) -> None:
    data = b'{"a": "ok"}\n' * 3000 + b'{"a": "\xff"}\n{"a": "fine"}\n'
    path = write(tmp_path / "t.jsonl", data)
    with pytest.raises(SourceError) as info:
        await collect(read_jsonl(path))
    assert str(info.value) == (
        f"{path}: line 3001: byte 0xff is not valid UTF-8; JSON Lines are UTF-8: convert the "
        "file first (e.g. iconv -f cp1252 -t utf-8)"
    )


async def test_jsonl_stdin_not_utf8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", FakeStdin(b'{"a": "ok"}\n{"a": "\xff"}\n'))
    with pytest.raises(SourceError, match=r"^<stdin>: line 2: not valid UTF-8 \(byte 0xff"):
        await collect(open_source("-", format="jsonl"))
    data = b'{"a": "ok"}\n' * 1000 + b'{"a": "\xff"}\n{"a": "fine"}\n'
    monkeypatch.setattr(sys, "stdin", FakeStdin(data))
    rows = await collect(open_source("-", format="jsonl"))
    assert rows[1000:] == [
        RawRow(1001, 1001, None, "line 1001: not valid UTF-8 (byte 0xff at column 8)"),
        RawRow(1002, 1002, {"a": "fine"}),
    ]


async def test_jsonl_bom_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}'
    rows = await collect(read_jsonl(write(tmp_path / "t.jsonl", data)))
    assert rows == [RawRow(1, 1, {"a": 1}), RawRow(2, 2, {"a": 2})]


async def test_jsonl_numbers_keep_the_text_as_written(tmp_path: Path) -> None:
    lines = [
        b'{"big": 18446744073709551616, "neg": -9223372036854775809, "n": 7}',
        b'{"a": 1.10, "b": 1e400, "c": -0, "d": -0.0, "e": 1E5, "f": 0.1}',
        b'{"properties": {"amount": 2.50}, "id": "5", "date": "2026-01-02"}',
        b'{"zero": 0, "date": "2026-01-02", "n": 18446744073709551615}',
        b'{"bad": 1e400, oops}',
        b'{"nan": NaN}',
    ]
    rows = await collect(read_jsonl(write(tmp_path / "t.jsonl", b"\n".join(lines) + b"\n")))
    big = rows[0].data
    assert big == {"big": 18446744073709551616, "neg": -9223372036854775809, "n": 7}
    assert rows[1].data == {
        "a": "1.10",
        "b": "1e400",
        "c": "-0",
        "d": "-0.0",
        "e": "1E5",
        "f": "0.1",
    }
    assert all(type(v) is JsonNumber for v in rows[1].data.values())
    assert rows[2].data == {"properties": {"amount": "2.50"}, "id": "5", "date": "2026-01-02"}
    # Exact already: orjson's ints up to 64 bits, and a 0 that is not -0.
    assert rows[3].data is not None and type(rows[3].data["zero"]) is int
    assert type(rows[3].data["n"]) is int
    assert rows[4].data is None and rows[4].error is not None
    assert rows[4].error.startswith("line 5: invalid JSON: ")
    assert rows[5].data is None  # NaN is not JSON, whichever parser reads it


async def test_jsonl_a_huge_integer_keeps_its_text(tmp_path: Path) -> None:
    digits = "9" * 5000  # past int()'s 4,300-digit limit
    rows = await collect(read_jsonl(write(tmp_path / "t.jsonl", f'{{"n": {digits}}}\n')))
    assert rows[0].data == {"n": digits}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(st.dictionaries(st.text(), json_values, max_size=5), max_size=30))
async def test_jsonl_round_trip(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    path = write(tmp_path / "rt.jsonl", b"".join(orjson.dumps(r) + b"\n" for r in records))
    rows = await collect(read_jsonl(path, chunk_rows=7))
    n = len(records)
    # A record that happens to look like a failed line is unwrapped by design.
    expected = [
        r["input"] if {"row", "error"} <= r.keys() and type(r.get("input")) is dict else r
        for r in records
    ]
    assert [r.data for r in rows] == expected
    assert [(r.row, r.line, r.error) for r in rows] == [(i, i, None) for i in range(1, n + 1)]


# --- from_iterable --------------------------------------------------------------------------


async def test_from_iterable_numbers_rows_and_reports_non_mappings() -> None:
    items: list[Any] = [{"a": "1"}, MappingProxyType({"b": "2"}), ["not", "a", "mapping"], "str"]
    rows = await collect(from_iterable(items))
    assert rows == [
        RawRow(1, 1, {"a": "1"}),
        RawRow(2, 2, {"b": "2"}),
        RawRow(3, 3, None, "line 3: a record must be a mapping, got list"),
        RawRow(4, 4, None, "line 4: a record must be a mapping, got str"),
    ]
    assert type(rows[1].data) is dict


async def test_from_iterable_a_mapping_that_cannot_be_read_is_an_error_row() -> None:
    class Broken(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            raise RuntimeError("cursor closed")

        def __len__(self) -> int:
            return 1

    rows = await collect(from_iterable([{"a": "1"}, Broken(), {"b": "2"}]))
    assert rows == [
        RawRow(1, 1, {"a": "1"}),
        RawRow(2, 2, None, "line 2: the record cannot be read (RuntimeError: cursor closed)"),
        RawRow(3, 3, {"b": "2"}),
    ]


async def test_from_iterable_takes_dataframe_records() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"subject": ["a", "b"], "n": [1, 2]})
    rows = await collect(from_iterable(frame.to_dict("records")))
    assert [r.data for r in rows] == [{"subject": "a", "n": 1}, {"subject": "b", "n": 2}]
    # The frame itself too, not its column names.
    rows = await collect(from_iterable(frame))
    assert [r.data for r in rows] == [{"subject": "a", "n": 1}, {"subject": "b", "n": 2}]
    assert [(r.row, r.line) for r in rows] == [(1, 1), (2, 2)]


async def test_from_iterable_takes_anything_shaped_like_a_data_frame() -> None:
    class Frame:
        """What pandas.DataFrame looks like to from_iterable (pandas may not be installed)."""

        columns = ("subject", "n")

        def __iter__(self) -> Iterator[str]:
            return iter(self.columns)  # as a DataFrame does: its column names

        def itertuples(self, *, index: bool, name: None) -> Iterator[tuple[Any, ...]]:
            assert index is False and name is None
            return iter([("a", 1), ("b", 2)])

    rows = await collect(from_iterable(Frame()))  # type: ignore[arg-type]
    assert rows == [RawRow(1, 1, {"subject": "a", "n": 1}), RawRow(2, 2, {"subject": "b", "n": 2})]


async def test_from_iterable_takes_generators_and_async_iterables() -> None:
    def gen() -> Iterator[dict[str, int]]:
        yield from ({"i": i} for i in range(3))

    async def agen() -> AsyncIterator[dict[str, int]]:
        for i in range(3):
            await anyio.lowlevel.checkpoint()
            yield {"i": i}

    expected = [RawRow(i + 1, i + 1, {"i": i}) for i in range(3)]
    assert await collect(from_iterable(gen())) == expected
    assert await collect(from_iterable(agen())) == expected


async def test_from_iterable_closing_early_closes_the_async_source() -> None:
    closed = []

    async def agen() -> AsyncIterator[dict[str, int]]:
        try:
            for i in range(100):
                yield {"i": i}
        finally:
            closed.append(True)

    async with aclosing(from_iterable(agen())) as rows:
        async for row in rows:
            if row.row == 2:
                break
    assert closed == [True]


# --- closing, memory, blocking --------------------------------------------------------------


@pytest.mark.skipif(not HAS_PROC_FDS, reason="needs /proc/self/fd")
@pytest.mark.parametrize("reader", [read_csv, read_jsonl])
async def test_breaking_out_early_closes_the_file(tmp_path: Path, reader: Any) -> None:
    path = tmp_path / "t.data"
    if reader is read_csv:
        write(path, "a\n" + "x\n" * 5000)
    else:
        write(path, '{"a": 1}\n' * 5000)

    async for row in reader(path, chunk_rows=10):
        assert open_fds_to(path) == 1  # open while reading
        if row.row == 3:
            break
    # Dropping the iterator closes at once, without aclose() or a trip through the loop.
    assert open_fds_to(path) == 0

    stream: RowStream = reader(path, chunk_rows=10)
    async with aclosing(stream):
        await stream.__anext__()
        assert open_fds_to(path) == 1
    assert open_fds_to(path) == 0
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()

    await collect(reader(path))  # read to the end
    assert open_fds_to(path) == 0


# tracemalloc makes reading ~4x slower; JSONL gets half the rows to keep the suite quick.
@pytest.mark.parametrize(("kind", "n"), [("csv", 200_000), ("jsonl", 100_000)])
async def test_large_files_stream_in_flat_memory(tmp_path: Path, kind: str, n: int) -> None:
    path = tmp_path / f"big.{kind}"
    with path.open("w", encoding="utf-8", newline="") as f:
        if kind == "csv":
            f.write("subject,hs_pipeline,hs_pipeline_stage,content\n")
            f.writelines(f"Ticket {i},0,1,Body of ticket {i}\n" for i in range(n))
        else:
            f.writelines(
                f'{{"subject": "Ticket {i}", "hs_pipeline": "0", "content": "Body {i}"}}\n'
                for i in range(n)
            )
    assert path.stat().st_size > 5_000_000  # the whole file would not fit under the limit

    count = 0
    last: RawRow | None = None
    tracemalloc.start()
    try:
        async for row in open_source(str(path)):
            count += 1
            last = row
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n
    assert last is not None and last.row == n and last.error is None
    assert peak < 4_000_000, f"peak {peak / 1e6:.1f} MB"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
async def test_a_blocking_pipe_does_not_block_the_event_loop(tmp_path: Path) -> None:
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    received: list[RawRow] = []

    async def consume() -> None:
        received.extend(await collect(read_jsonl(fifo)))

    def produce() -> None:
        with open(fifo, "wb") as w:
            w.write(b'{"a": 1}\n{"a": 2}\n')

    ticks = 0
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            # The reader is stuck opening the FIFO (no writer yet); the loop still runs.
            for _ in range(5):
                await anyio.sleep(0.01)
                ticks += 1
            await anyio.to_thread.run_sync(produce)
    assert ticks == 5
    assert received == [RawRow(1, 1, {"a": 1}), RawRow(2, 2, {"a": 2})]


@pytest.mark.skipif(not (hasattr(os, "mkfifo") and HAS_PROC_FDS), reason="needs pipes, /proc")
async def test_cancelling_a_blocked_read_returns_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    stream = read_jsonl(fifo)
    # Should cancellation wait for the worker, this unblocks it after 3 s so the test fails
    # on the elapsed time instead of hanging.
    rescue = threading.Timer(3, fifo.write_bytes, (b"",))
    rescue.start()
    started = time.monotonic()
    with anyio.move_on_after(0.1) as scope:
        await stream.__anext__()
    assert scope.cancelled_caught
    assert time.monotonic() - started < 2
    rescue.cancel()
    # The abandoned worker is still blocked; once the pipe yields, it closes the file itself.
    await anyio.to_thread.run_sync(fifo.write_bytes, b'{"a": 1}\n')
    for _ in range(500):
        if not open_fds_to(fifo):
            break
        await anyio.sleep(0.01)
    assert open_fds_to(fifo) == 0
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


# --- open_source ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("t.csv", "a,b\n1,2\n"),
        ("T.CSV", "a,b\n1,2\n"),
        ("t.tsv", "a\tb\n1\t2\n"),
        ("t.jsonl", '{"a": "1", "b": "2"}\n'),
        ("t.ndjson", '{"a": "1", "b": "2"}\n'),
        ("t.json", '{"a": "1", "b": "2"}\n'),
    ],
)
async def test_open_source_picks_the_format_by_suffix(
    tmp_path: Path, name: str, content: str
) -> None:
    path = write(tmp_path / name, content)
    assert await collect(open_source(str(path))) == [
        RawRow(1, 1 + name.lower().endswith("sv"), {"a": "1", "b": "2"})
    ]


async def test_open_source_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = write(tmp_path / "export.txt", '{"a": "1"}\n')
    assert await collect(open_source(str(path), format="jsonl")) == [RawRow(1, 1, {"a": "1"})]
    path = write(tmp_path / "export.dat", "a\tb\n1\t2\n")
    rows = await collect(open_source(str(path), format="tsv"))
    assert rows == [RawRow(1, 2, {"a": "1", "b": "2"})]


def test_open_source_unknown_suffix_or_format_names_the_path(tmp_path: Path) -> None:
    path = str(tmp_path / "export.xlsx")
    with pytest.raises(ValueError, match=r"export\.xlsx") as info:
        open_source(path)
    assert "'.xlsx'" in str(info.value)
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        open_source(path, format="xml")
    with pytest.raises(ValueError, match="cannot tell the format"):
        open_source(str(tmp_path / "noext"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'\n  \n{"a": "1"}\n\n{"a": "2"}\n', [RawRow(1, 3, {"a": "1"}), RawRow(2, 5, {"a": "2"})]),
        (b"\r\n\r\na,b\n1,2\n", [RawRow(1, 4, {"a": "1", "b": "2"})]),
        (b'\xef\xbb\xbf{"a": "1"}\n', [RawRow(1, 1, {"a": "1"})]),
        (b"\xef\xbb\xbfa\n1\n", [RawRow(1, 2, {"a": "1"})]),
        (b"", []),
        (b"\n \n", []),
    ],
)
async def test_stdin_is_sniffed_and_never_closed(
    monkeypatch: pytest.MonkeyPatch, data: bytes, expected: list[RawRow]
) -> None:
    stdin = FakeStdin(data)
    monkeypatch.setattr(sys, "stdin", stdin)
    assert await collect(open_source("-")) == expected
    assert not stdin.buffer.closed


async def test_stdin_with_a_format_and_early_close(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = FakeStdin(b"a\tb\n" + b"1\t2\n" * 3000)
    monkeypatch.setattr(sys, "stdin", stdin)
    async with aclosing(open_source("-", format="tsv")) as rows:
        first = await rows.__anext__()
    assert first == RawRow(1, 2, {"a": "1", "b": "2"})
    assert not stdin.buffer.closed
    stdin.buffer.read()  # still usable


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a\tb\n1\t2,3\n", {"a": "1", "b": "2,3"}),
        (b"\n\xef\xbb\xbfa;b\n1;2\n", {"a": "1", "b": "2"}),
        (b'"x,y"|b\n1|2\n', {"x,y": "1", "b": "2"}),
        (b"a,b\n1;2,3\n", {"a": "1;2", "b": "3"}),
    ],
)
async def test_stdin_delimiter_is_sniffed(
    monkeypatch: pytest.MonkeyPatch, data: bytes, expected: dict[str, str]
) -> None:
    monkeypatch.setattr(sys, "stdin", FakeStdin(data))
    rows = await collect(open_source("-"))
    assert [r.data for r in rows] == [expected]
    # --format csv names the format, not the separator: still sniffed.
    monkeypatch.setattr(sys, "stdin", FakeStdin(data))
    assert [r.data for r in await collect(open_source("-", format="csv"))] == [expected]


async def test_stdin_header_is_on_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", FakeStdin(b"a\tb\n1\t2\n"))
    stream = open_source("-")
    await stream.__anext__()
    assert stream.header == ["a", "b"]


async def test_open_source_delimiter_and_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "t.csv", "nom;ville\nRené;Orléans\n".encode("cp1252"))
    rows = await collect(open_source(str(path), delimiter=";", encoding="cp1252"))
    assert rows == [RawRow(1, 2, {"nom": "René", "ville": "Orléans"})]
    monkeypatch.setattr(sys, "stdin", FakeStdin("a,b\n1,é\n".encode("latin-1")))
    rows = await collect(open_source("-", delimiter=",", encoding="latin-1"))
    assert rows == [RawRow(1, 2, {"a": "1", "b": "é"})]


def test_open_source_checks_delimiter_and_encoding_at_call_time(tmp_path: Path) -> None:
    path = str(write(tmp_path / "t.csv", "a\n"))
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        open_source(path, encoding="klingon")
    with pytest.raises(ValueError, match="'delimiter' must be one character"):
        open_source(path, delimiter=";;")
    with pytest.raises(ValueError, match="'delimiter' must be one character"):
        open_source(path, delimiter='"')


@pytest.mark.parametrize(
    ("text", "expected"), [(";", ";"), ("\\t", "\t"), ("tab", "\t"), ("\t", "\t"), ("|", "|")]
)
def test_parse_delimiter(text: str, expected: str) -> None:
    assert parse_delimiter(text) == expected


@pytest.mark.parametrize("text", ["", ";;", "\n", '"'])
def test_parse_delimiter_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="delimiter"):
        parse_delimiter(text)


# --- fingerprint ----------------------------------------------------------------------------


def test_fingerprint_is_stable_and_ignores_mtime_and_name(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a,b\n1,2\n")
    first = fingerprint(str(path))
    assert len(first) == 64 and fingerprint(str(path)) == first
    os.utime(path, (0, 0))
    assert fingerprint(str(path)) == first
    copy = tmp_path / "copy.csv"
    shutil.copy(path, copy)
    assert fingerprint(str(copy)) == first


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a,b\n1,2\n")
    first = fingerprint(str(path))
    write(path, "a,b\n1,3\n")  # same size, one byte differs
    assert fingerprint(str(path)) != first
    write(path, "a,b\n1,2\n3,4\n")
    assert fingerprint(str(path)) != first


def test_fingerprint_of_a_large_file_reads_its_head_and_tail(tmp_path: Path) -> None:
    mib = 1024 * 1024
    body = bytearray(b"x" * (3 * mib))
    path = write(tmp_path / "big.jsonl", bytes(body))
    first = fingerprint(str(path))
    for offset, changes in [(10, True), (3 * mib - 10, True), (int(1.5 * mib), False)]:
        changed = bytearray(body)
        changed[offset] = ord("y")
        write(path, bytes(changed))
        # The middle is not read: that is the price of a cheap fingerprint.
        assert (fingerprint(str(path)) != first) is changes, offset


def test_fingerprint_between_one_and_two_mib_covers_every_byte(tmp_path: Path) -> None:
    body = bytearray(b"x" * (1024 * 1024 + 5000))
    path = write(tmp_path / "mid.csv", bytes(body))
    first = fingerprint(str(path))
    body[1024 * 1024 + 10] = ord("y")
    write(path, bytes(body))
    assert fingerprint(str(path)) != first


def test_fingerprint_refuses_stdin() -> None:
    with pytest.raises(ValueError, match=r"^stdin cannot be fingerprinted$"):
        fingerprint("-")


# --- through the command line ---------------------------------------------------------------


def bulkops_cmd(*args: Any) -> list[str]:
    return [sys.executable, "-m", "bulkops", *map(str, args)]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env["HUBSPOT_ACCESS_TOKEN"] = DEFAULT_FAKE_TOKEN
    return env


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"subject,subject\nA,B\n", "line 1: bad CSV header: duplicate column names 'subject'"),
        (b"subject\nA\n" * 2000 + b"Ren\xe9\n", "line 4001: byte 0xe9 is not valid UTF-8; pass"),
    ],
)
async def test_cli_a_bad_input_is_exit_2_and_one_message(
    tmp_path: Path, content: bytes, message: str
) -> None:
    src = write(tmp_path / "in.csv", content)
    args = ["run", "create", "--input", src, "--no-preflight", "--progress", "none"]
    # Nothing listens on port 9: the job must stop on the input before sending anything.
    args += ["--base-url", "http://127.0.0.1:9", "--out", tmp_path / "out"]
    with anyio.fail_after(60):
        done = await anyio.run_process(bulkops_cmd(*args), env=cli_env(), check=False)
    assert done.returncode == 2
    stderr = done.stderr.decode()
    # The host line (where the token goes), then the one message.
    first, second = stderr.splitlines()
    assert first == "bulkops: talking to 127.0.0.1:9"
    assert second.startswith(f"bulkops: {src}: {message}") and "Traceback" not in stderr


async def test_cli_delimiter_and_encoding_reach_the_reader(tmp_path: Path) -> None:
    rows = ["subject;hs_pipeline;hs_pipeline_stage;content"]
    rows += [f"Café {n};0;1;Crème brûlée" for n in range(1, 51)]
    src = write(tmp_path / "in.csv", ("\n".join(rows) + "\n").encode("cp1252"))
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        args = ["run", "create", "--input", src, "--base-url", fake.url, "--out", tmp_path / "o"]
        args += ["--delimiter", ";", "--encoding", "cp1252", "--rate-limit", 0]
        with anyio.fail_after(60):
            done = await anyio.run_process(
                bulkops_cmd(*args, "--progress", "none"), env=cli_env(), check=False
            )
        created = fake.records("tickets")
    assert done.returncode == 0, done.stderr.decode()
    assert len((tmp_path / "o" / "succeeded.jsonl").read_bytes().splitlines()) == 50
    assert sorted(r["properties"]["subject"] for r in created) == sorted(
        f"Café {n}" for n in range(1, 51)
    )
    assert {r["properties"]["content"] for r in created} == {"Crème brûlée"}
