"""The CSV reader's cheaper per-record pieces give what the plain ones give."""

from __future__ import annotations

import dataclasses

import pytest

from bulkops._sources import RawRow, _data_row, read_csv


def test_data_row_is_the_raw_row_its_constructor_makes() -> None:
    data = {"subject": "S"}
    fast, plain = _data_row(3, 7, data), RawRow(3, 7, data)
    assert type(fast) is RawRow
    assert fast == plain
    assert repr(fast) == repr(plain)
    assert dataclasses.astuple(fast) == dataclasses.astuple(plain) == (3, 7, data, None, False)
    assert fast.data is data
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.row = 4  # type: ignore[misc]


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
