"""The CSV reader's cheaper per-record pieces give what the plain ones give."""

from __future__ import annotations

import gzip
from contextlib import aclosing
from pathlib import Path

import msgspec
import pytest

from bulkops._engine import Job
from bulkops._sources import RawRow, open_source, read_csv

from .accounting import assert_accounted
from .mockhub import MockHub
from .test_engine import config


def test_a_raw_row_is_a_frozen_record_of_its_fields() -> None:
    data = {"subject": "S"}
    raw = RawRow(3, 7, data)
    assert raw == RawRow(row=3, line=7, data={"subject": "S"}, error=None, maybe_written=False)
    assert (
        repr(raw) == "RawRow(row=3, line=7, data={'subject': 'S'}, error=None, maybe_written=False)"
    )
    assert msgspec.structs.astuple(raw) == (3, 7, data, None, False)
    assert raw.data is data
    with pytest.raises(AttributeError):
        raw.row = 4  # type: ignore[misc]


async def test_unusual_lines_keep_their_numbers_and_problems(tmp_path) -> None:
    # Each kind of line the usual-line test sends to _unusual, between plain ones; and a
    # damaged multi-line record, whose lines are read again.
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"subject,content\n"
        b"a,plain\n"
        b"b,caf\xc3\xa9\n"  # non-ASCII, valid
        b"c,nul\x00here\n"
        b'd,"opens\n'
        b"e,never closes\n"
        b"f,last\n"
    )
    rows = [r async for r in read_csv(path)]
    got = [(r.row, r.line, r.data, r.error) for r in rows]
    assert got[:2] == [
        (1, 2, {"subject": "a", "content": "plain"}, None),
        (2, 3, {"subject": "b", "content": "café"}, None),
    ]
    assert got[2] == (3, 4, None, "line 4: NUL byte")
    assert got[3][:3] == (4, 5, None)
    assert got[3][3] is not None and got[3][3].startswith("line 5: malformed CSV")
    assert got[4:] == [
        (5, 6, {"subject": "e", "content": "never closes"}, None),
        (6, 7, {"subject": "f", "content": "last"}, None),
    ]


@pytest.mark.parametrize(
    ("name", "body", "text_only"),
    [
        ("t.csv", b"subject\nS\n", True),
        ("t.tsv", b"subject\tcontent\nS\tC\n", True),
        ("t.csv.gz", gzip.compress(b"subject\nS\n"), True),
        ("t.jsonl", b'{"subject": "S", "n": 5}\n', False),
        ("t.json", b'[{"subject": "S", "n": 5}]', False),
    ],
)
async def test_only_csv_sources_say_every_value_is_text(
    tmp_path: Path, name: str, body: bytes, text_only: bool
) -> None:
    """The row check skips type tests for a source that says every name and value is a str;
    only the CSV readers (gzipped too) may say so."""
    path = tmp_path / name
    path.write_bytes(body)
    async with aclosing(open_source(str(path))) as stream:
        first = await stream.__anext__()
        assert first.data is not None
        assert getattr(stream, "text_only", False) is text_only
        if text_only:
            assert all(type(v) is str for v in first.data.values())


async def test_a_job_on_a_csv_checks_its_rows_as_text(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"subject,hs_pipeline_stage,external_id\nS,1,a\nT,2,b\n,3,c\n")
    hub = MockHub()
    job = Job(config(tmp_path / "out"), open_source(str(path)), transport=hub.transport)
    report = await job.run()
    assert job._intake is not None and job._intake._check.text_only
    ok, bad = assert_accounted(tmp_path / "out", 3)
    assert (report.rows.succeeded, sorted(ok), sorted(bad)) == (2, [1, 2], [3])
