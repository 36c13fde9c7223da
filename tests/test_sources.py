from __future__ import annotations

import csv
import io
import os
import shutil
import sys
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
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

from bulkops._sources import (
    RawRow,
    RowStream,
    fingerprint,
    from_iterable,
    open_source,
    read_csv,
    read_jsonl,
)

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


async def test_csv_unterminated_quote_at_eof_is_an_error_row(tmp_path: Path) -> None:
    # Without strict parsing this would silently become one valid-looking record.
    text = 'a,b\n1,2\n3,"never closed\n4,5\n'
    rows = await collect(read_csv(write(tmp_path / "t.csv", text)))
    assert rows[0] == RawRow(1, 2, {"a": "1", "b": "2"})
    assert rows[1].row == 2 and rows[1].line == 3 and rows[1].data is None
    assert rows[1].error == "line 3: malformed CSV: unexpected end of data"
    assert len(rows) == 2


async def test_csv_nul_byte_is_an_error_row(tmp_path: Path) -> None:
    rows = await collect(read_csv(write(tmp_path / "t.csv", b"a,b\n1,\x002\n3,4\n")))
    assert rows == [RawRow(1, 2, None, "line 2: NUL byte"), RawRow(2, 3, {"a": "3", "b": "4"})]


async def test_csv_undecodable_bytes_are_an_error_row_naming_the_line(tmp_path: Path) -> None:
    data = b'a,b\n1,2\n3,"multi\nline \xff here"\n5,6\n'
    rows = await collect(read_csv(write(tmp_path / "t.csv", data)))
    assert rows == [
        RawRow(1, 2, {"a": "1", "b": "2"}),
        RawRow(2, 3, None, "line 4: bytes that are not valid utf-8-sig"),
        RawRow(3, 5, {"a": "5", "b": "6"}),
    ]


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


async def test_jsonl_undecodable_bytes_are_an_error_row(tmp_path: Path) -> None:
    data = b'{"a": "ok"}\n{"a": "\xff"}\n{"a": "fine"}\n'
    rows = await collect(read_jsonl(write(tmp_path / "t.jsonl", data)))
    assert rows == [
        RawRow(1, 1, {"a": "ok"}),
        RawRow(2, 2, None, "line 2: not valid UTF-8 (byte 0xff at column 8)"),
        RawRow(3, 3, {"a": "fine"}),
    ]


async def test_jsonl_bom_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}'
    rows = await collect(read_jsonl(write(tmp_path / "t.jsonl", data)))
    assert rows == [RawRow(1, 1, {"a": 1}), RawRow(2, 2, {"a": 2})]


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


class FakeStdin(io.TextIOWrapper):
    """sys.stdin stand-in: a text wrapper whose .buffer is a real BufferedReader."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BufferedReader(io.BytesIO(data)))


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
