"""Frames, Arrow data, Parquet, gzip and JSON-array files as rows, a chunk at a time."""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import AsyncIterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulkops import (
    ConfigError,
    JobConfig,
    Operation,
    Secret,
    _frames,
    _sources,
    open_source,
    run_job,
)
from bulkops._sources import JsonNumber, RawRow, SourceError
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

from .accounting import assert_accounted
from .mockhub import MockHub

ROOT = Path(__file__).resolve().parent.parent


async def collect(rows: AsyncIterable[RawRow]) -> list[RawRow]:
    return [row async for row in rows]


def records(n: int) -> list[dict[str, Any]]:
    return [{"subject": f"s{i}", "hs_pipeline_stage": "1", "n": i} for i in range(n)]


# -- JSON arrays --------------------------------------------------------------------------------


async def test_a_json_array_is_streamed_with_exact_numbers_and_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks of 7 characters split numbers, strings and objects across reads.
    monkeypatch.setattr(_frames, "_READ_BLOCK", 7)
    path = tmp_path / "in.json"
    path.write_text('\n[\n {"a": 1.10, "b": 123456789},\n [1],\n {"c": "x,]"}\n]\n')
    rows = await collect(open_source(str(path)))
    assert [(r.row, r.line) for r in rows] == [(1, 3), (2, 4), (3, 5)]
    assert rows[0].data == {"a": "1.10", "b": 123456789}
    assert isinstance(rows[0].data["a"], JsonNumber)
    assert (
        rows[1].data is None
        and rows[1].error == "line 4: an array element must be an object, got list"
    )
    assert rows[2].data == {"c": "x,]"}


async def test_an_empty_array_has_no_rows_and_a_json_lines_file_named_json_still_reads(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty.json").write_text(" [ ] ")
    assert await collect(open_source(str(tmp_path / "empty.json"))) == []
    (tmp_path / "lines.json").write_text('{"a": "1"}\n{"a": "2"}\n')
    rows = await collect(open_source(str(tmp_path / "lines.json")))
    assert [r.data for r in rows] == [{"a": "1"}, {"a": "2"}]


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ('[{"a": 1},\n{"a": 2},\n]', "trailing commas are not JSON", 3),
        ('[{"a": 1}\n{"a": 2}]', "expected ',' or ']'", 2),
        ('[{"a": 1},\n{"a": ', "invalid JSON", 2),
        ('[{"a": 1}', "the file ends inside the array", 1),
        ('[{"a": 1}] x', "text after the array's closing ']'", 1),
        ('[{"a": NaN}]', "invalid JSON", 1),
    ],
)
async def test_a_broken_array_ends_the_input_naming_file_and_line(
    tmp_path: Path, text: str, problem: str, line: int
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(SourceError, match=problem) as caught:
        await collect(open_source(str(path)))
    assert caught.value.line == line and caught.value.path == str(path)


async def test_a_json_array_that_is_not_utf8_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'[{"a": "\xe9"}]')
    with pytest.raises(SourceError, match="not valid UTF-8"):
        await collect(open_source(str(path)))


# -- gzip ---------------------------------------------------------------------------------------


async def test_gzipped_csv_and_jsonl_read_like_the_plain_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"subject,n\nx,1\ny,2\n"))
    rows = await collect(open_source(str(tmp_path / "a.csv.gz")))
    assert [r.data for r in rows] == [{"subject": "x", "n": "1"}, {"subject": "y", "n": "2"}]
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b'{"n": 1.50}\n'))
    rows = await collect(open_source(str(tmp_path / "a.jsonl.gz")))
    assert rows[0].data == {"n": "1.50"}
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(b'[{"n": 1}]'))
    assert [r.data for r in await collect(open_source(str(tmp_path / "a.json.gz")))] == [{"n": 1}]
    (tmp_path / "data.gz").write_bytes(gzip.compress(b"n\n1\n"))
    rows = await collect(open_source(str(tmp_path / "data.gz"), format="csv"))
    assert [r.data for r in rows] == [{"n": "1"}]


async def test_a_damaged_or_unnamed_gzip_file_is_one_plain_error(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(b"n\n" + b"1\n" * 1000)[:-20])
    with pytest.raises(ConfigError, match=f"{path}: not a readable gzip file"):
        await collect(open_source(str(path)))
    with pytest.raises(ValueError, match="cannot tell the format of this gzip file"):
        open_source(str(tmp_path / "data.gz"))


# -- Parquet ------------------------------------------------------------------------------------


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ConfigError, match=r"needs pyarrow.*pip install 'bulkops\[parquet\]'"):
        open_source(str(tmp_path / "in.parquet"))


async def test_a_parquet_file_is_read_in_batches(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "in.parquet"
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    table = pa.table({"subject": [f"s{i}" for i in range(25)], "at": [when] * 25})
    pq.write_table(table, path, row_group_size=10)
    rows = await collect(_frames.read_parquet(path, chunk_rows=4))
    assert [r.row for r in rows] == list(range(1, 26))
    assert rows[24].data == {"subject": "s24", "at": when}
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match=r"bad.parquet: not a readable Parquet file"):
        await collect(open_source(str(tmp_path / "bad.parquet")))


# -- in-memory frames ---------------------------------------------------------------------------


async def test_a_pandas_frame_is_sliced_not_copied() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(records(10))
    stream = _frames.frame_rows(frame, chunk_rows=3)
    assert stream is not None
    rows = await collect(stream)
    assert [r.row for r in rows] == list(range(1, 11))
    assert rows[9].data == {"subject": "s9", "hs_pipeline_stage": "1", "n": 9}
    assert type(rows[9].data["n"]) is int  # numpy scalars became Python ones


async def test_polars_and_arrow_data_are_read_in_chunks() -> None:
    pa = pytest.importorskip("pyarrow")
    table = pa.Table.from_pylist(records(10))
    for source in (
        table,
        table.to_batches()[0],
        pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=4)),
    ):
        stream = _frames.frame_rows(source, chunk_rows=3)
        assert stream is not None, type(source)
        assert [r.data for r in await collect(stream)] == records(10)
    pl = pytest.importorskip("polars")
    stream = _frames.frame_rows(pl.DataFrame(records(10)), chunk_rows=3)
    assert stream is not None
    assert [r.data for r in await collect(stream)] == records(10)


def test_other_objects_are_not_frames() -> None:
    assert _frames.frame_rows([{"a": 1}]) is None
    assert _frames.frame_rows(object()) is None


# -- jobs ---------------------------------------------------------------------------------------


def job_config(out: Path) -> JobConfig:
    return JobConfig(
        operation=Operation.CREATE,
        token=Secret("pat-test-engine-test-token"),
        base_url="http://hub.test",
        out_dir=out,
        rate_limit=0,
        preflight=False,  # the mock's schema knows none of these columns
    )


async def test_a_job_takes_a_pandas_frame_with_missing_values_and_timestamps(
    tmp_path: Path,
) -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(records(250))
    frame["closed"] = pd.Timestamp("2026-01-02T03:04:05Z")
    frame.loc[3, "n"] = float("nan")
    hub = MockHub()
    report = await run_job(job_config(tmp_path), frame, transport=hub.transport)
    assert_accounted(tmp_path, 250)
    assert report.succeeded == 250
    sent = {p["subject"]: p for p in hub.records.values()}
    assert sent["s3"].get("n") is None and sent["s4"]["n"] == "4.0"
    assert sent["s0"]["closed"] == "2026-01-02T03:04:05.000Z"


async def test_a_job_reads_a_parquet_file_by_its_path(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(records(120)), path)
    hub = MockHub()
    report = await run_job(job_config(tmp_path / "out"), path, transport=hub.transport)
    assert_accounted(tmp_path / "out", 120)
    assert report.succeeded == 120 and hub.creates == 120


async def test_a_source_that_is_nothing_readable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the source is a int"):
        await run_job(job_config(tmp_path), 42, transport=MockHub().transport)  # type: ignore[arg-type]


# -- the command line -----------------------------------------------------------------------------


async def bulkops_cli(*args: Any, pythonpath: str = "") -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    env["HUBSPOT_ACCESS_TOKEN"] = DEFAULT_FAKE_TOKEN
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "bulkops", *map(str, args)]
    with anyio.fail_after(60):
        return await anyio.run_process(command, env=env, check=False)


async def test_the_cli_reads_parquet_gzip_and_json_arrays_by_suffix(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"subject": f"s{i}", "hs_pipeline": "0", "hs_pipeline_stage": "1"} for i in range(40)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    (tmp_path / "in.json").write_bytes(b"[\n" + b",\n".join(orjson.dumps(r) for r in rows) + b"]")
    lines = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    (tmp_path / "in.jsonl.gz").write_bytes(gzip.compress(lines))
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        for name in ("in.parquet", "in.json", "in.jsonl.gz"):
            out = tmp_path / f"out-{name}"
            done = await bulkops_cli(
                "run", "create", "--input", tmp_path / name, "--base-url", fake.url,
                "--out", out, "--rate-limit", 0, "--progress", "none",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr.decode()
            assert_accounted(out, 40)
        assert len(fake.records("tickets")) == 120


async def test_the_cli_names_the_extra_when_pyarrow_is_missing(tmp_path: Path) -> None:
    # A pyarrow that cannot be imported, first on the path: as if it were not installed.
    hidden = tmp_path / "site"
    (hidden / "pyarrow").mkdir(parents=True)
    (hidden / "pyarrow" / "__init__.py").write_text("raise ImportError('no pyarrow here')\n")
    (tmp_path / "in.parquet").write_bytes(b"PAR1")
    done = await bulkops_cli(
        "run", "create", "--input", tmp_path / "in.parquet", "--base-url", "http://127.0.0.1:9",
        "--out", tmp_path / "out", pythonpath=f"{hidden}{os.pathsep}{ROOT}",
    )  # fmt: skip
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "needs pyarrow" in err and "pip install 'bulkops[parquet]'" in err
    assert "Traceback" not in err


async def test_a_frame_that_cannot_be_read_is_one_plain_error() -> None:
    pa = pytest.importorskip("pyarrow")

    class Broken:
        num_rows = 3

        def slice(self, start: int, n: int) -> Any:
            raise pa.ArrowInvalid("cannot convert column 'x'")

    reader = pa.RecordBatchReader.from_batches(pa.schema([]), [])
    stream = _sources._ThreadedRows(
        _frames._BatchReader(lambda n: _frames._arrow_batches(iter([Broken()]), n), name="<t>"),
        chunk_rows=2,
    )
    with pytest.raises(ConfigError, match=r"<t>: cannot read the frame \(ArrowInvalid: cannot"):
        await collect(stream)
    assert _frames.frame_rows(reader) is not None
