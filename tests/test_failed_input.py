"""Retry input: an edited failed.jsonl is checked whole before the job (mistakes named by file
and line), then streamed with the original row numbers; unparseable and AMBIGUOUS rows are
left out and counted."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import orjson
import pytest

from bulkops._errors import AMBIGUOUS, ConfigError
from bulkops._failed_input import RowSet, read_failed_file
from bulkops._sources import RawRow
from bulkops.testing import FakeConfig, FakeHubSpot

from .accounting import assert_accounted, read_jsonl
from .test_cli import create, run_cli, write_csv


def failed_line(row: int, category: str = "VALIDATION_ERROR", **input: object) -> bytes:
    record = {"row": row, "error": {"category": category, "message": "m"}, "attempts": 1}
    record["input"] = input or {"subject": f"s{row}"}
    return orjson.dumps(record)


def write(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_streams_the_rows_with_their_original_row_numbers(tmp_path):
    path = write(
        tmp_path / "failed.jsonl",
        failed_line(7, subject="fixed"),
        b"",
        failed_line(3),
        orjson.dumps({"row": 9, "line": 12, "error": {"category": "INPUT_ERROR"}, "input": None}),
    )
    checked = read_failed_file(path, include_ambiguous=False)
    assert (checked.rows_to_send, checked.skipped_unparsed, checked.skipped_ambiguous) == (2, 1, 0)
    assert list(checked.rows()) == [
        RawRow(7, 1, {"subject": "fixed"}),
        RawRow(3, 3, {"subject": "s3"}),
    ]
    assert checked.skipped_message() == (
        '1 row(s) skipped whose original input could not be parsed ("input": null); '
        "fix those in the original input"
    )


def test_ambiguous_rows_are_skipped_and_listed_unless_included(tmp_path):
    lines = [failed_line(row, AMBIGUOUS) for row in range(1, 901)]
    path = write(tmp_path / "failed.jsonl", failed_line(1000), *lines)
    checked = read_failed_file(path, include_ambiguous=False)
    assert (checked.rows_to_send, checked.skipped_ambiguous) == (1, 900)
    assert checked.ambiguous_rows == tuple(range(1, 11))
    assert [r.row for r in checked.rows()] == [1000]
    assert checked.skipped_message() == (
        "900 AMBIGUOUS row(s) skipped (rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 890 more): "
        "HubSpot may have created them; --include-ambiguous to send them anyway"
    )
    everything = read_failed_file(path, include_ambiguous=True)
    assert (everything.rows_to_send, everything.skipped_ambiguous) == (901, 0)
    assert everything.skipped_message() is None
    assert sum(1 for _ in everything.rows()) == 901


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'{"row": 4, "input": {"a": 1}', "line 3: not valid JSON"),
        (b"[4]", "line 3: not a JSON object"),
        (b'{"input": {}}', 'line 3: "row" must be the row number (an integer >= 1), not missing'),
        (
            b'{"row": "4", "input": {}}',
            'line 3: "row" must be the row number (an integer >= 1), not "4"',
        ),
        (b'{"row": 4.5, "input": {}}', "not 4.5"),
        (b'{"row": true, "input": {}}', "not true"),
        (b'{"row": 0, "input": {}}', "not 0"),
        (b'{"row": 4}', 'line 3: row 4 has no "input"'),
        (b'{"row": 4, "input": "subject=x"}', 'line 3: the "input" of row 4 must be a JSON object'),
        (b'{"row": 1, "input": {}}', "line 3: row 1 appears twice (also line 1)"),
    ],
)
def test_a_mistake_anywhere_is_named_by_file_and_line_before_anything_is_sent(
    tmp_path, bad, message
):
    path = write(tmp_path / "failed.jsonl", failed_line(1), b"   ", bad, failed_line(2))
    with pytest.raises(ConfigError) as caught:
        read_failed_file(path, include_ambiguous=False)
    assert str(caught.value).startswith(f"{path} line 3: ")
    assert message in str(caught.value)


def test_an_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.jsonl"):
        read_failed_file(tmp_path / "missing.jsonl", include_ambiguous=False)
    binary = write(tmp_path / "failed.jsonl", b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError, match="line 1: not valid JSON"):
        read_failed_file(binary, include_ambiguous=False)


def test_a_file_changed_after_the_check_is_refused_when_streamed(tmp_path):
    path = write(tmp_path / "failed.jsonl", failed_line(1))
    checked = read_failed_file(path, include_ambiguous=False)
    write(path, failed_line(1), failed_line(2))
    with pytest.raises(ConfigError, match="changed while the retry started"):
        next(checked.rows())


def test_both_passes_run_in_constant_memory(tmp_path):
    path = tmp_path / "failed.jsonl"
    with path.open("wb") as f:
        for row in range(1, 50_001):
            f.write(failed_line(row, subject="x" * 100) + b"\n")
    assert path.stat().st_size > 7_000_000
    tracemalloc.start()
    try:
        checked = read_failed_file(path, include_ambiguous=False)
        checking_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        streamed = sum(1 for _ in checked.rows())
        streaming_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert streamed == checked.rows_to_send == 50_000
    assert checking_peak < 500_000 and streaming_peak < 500_000


# -- the retry command -------------------------------------------------------------------------
async def test_retry_says_which_rows_it_skipped_and_refuses_a_broken_file(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "job"
    write_csv(src, 30, bad={2, 5, 9})
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        opts = ("--base-url", fake.url, "--rate-limit", 0, "--progress", "none")
        # No id property: an AMBIGUOUS row cannot be checked, so a retry leaves it out.
        first = await run_cli(*create(src, out), *opts)
        assert first.returncode == 1, first.stderr.decode()
        records = sorted(read_jsonl(out / "failed.jsonl"), key=lambda r: r["row"])
        assert [r["row"] for r in records] == [2, 5, 9]
        # The user fixes row 2, leaves row 9, and row 5 is (say) a create of unknown outcome.
        records[0]["input"]["hs_ticket_priority"] = "HIGH"
        records[1]["error"]["category"] = AMBIGUOUS
        edited = b"".join(orjson.dumps(r) + b"\n" for r in records)

        broken = edited + b'{"row": 12, "input": \n'
        (out / "failed.jsonl").write_bytes(broken)
        refused = await run_cli("retry", out, *opts)
        assert refused.returncode == 2
        assert b"Traceback" not in refused.stderr
        assert f"{out / 'failed.jsonl'} line 4: not valid JSON".encode() in refused.stderr
        assert (out / "failed.jsonl").read_bytes() == broken  # nothing ran, nothing rewritten
        assert len(fake.records("tickets")) == 27

        (out / "failed.jsonl").write_bytes(edited)
        again = await run_cli("retry", out, *opts)
        assert again.returncode == 1, again.stderr.decode()
        assert b"1 AMBIGUOUS row(s) skipped (rows 5)" in again.stderr
        assert b"--include-ambiguous to send them anyway" in again.stderr
        ok, bad = assert_accounted(out, 30)
        assert sorted(bad) == [5, 9] and 2 in ok
        assert len(fake.records("tickets")) == 28


def test_row_set_holds_row_numbers_as_bits():
    rows = RowSet()
    for row in (1, 8, 9, 1_000_003):
        rows.add(row)
    assert [r for r in range(1_000_010) if r in rows] == [1, 8, 9, 1_000_003]
    assert -1 not in rows and "1" not in rows
