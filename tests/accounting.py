"""The accounting invariant, checked after every end-to-end job: every input row is in exactly
one of succeeded.jsonl and failed.jsonl, and the report agrees with the files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def assert_accounted(
    out_dir: Path, rows: int
) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """Returns (succeeded by row, failed by row) after checking the invariant."""
    ok = read_jsonl(out_dir / "succeeded.jsonl")
    bad = read_jsonl(out_dir / "failed.jsonl")
    ok_rows = [r["row"] for r in ok]
    bad_rows = [r["row"] for r in bad]
    assert len(ok_rows) == len(set(ok_rows)), "a row is in succeeded.jsonl twice"
    assert len(bad_rows) == len(set(bad_rows)), "a row is in failed.jsonl twice"
    both = set(ok_rows) & set(bad_rows)
    assert not both, f"rows in both files: {sorted(both)[:10]}"
    seen = set(ok_rows) | set(bad_rows)
    expected = set(range(1, rows + 1))
    assert seen == expected, (
        f"missing rows {sorted(expected - seen)[:10]}, unexpected {sorted(seen - expected)[:10]}"
    )
    report = orjson.loads((out_dir / "report.json").read_bytes())
    assert report["rows"]["succeeded"] == len(ok)
    assert report["rows"]["failed"] == len(bad)
    assert report["rows"]["unprocessed"] == 0
    for line in ok:
        assert line.get("id"), f"row {line['row']} succeeded without an id"
    for line in bad:
        assert line["error"]["category"] and line["error"]["message"]
    return {r["row"]: r for r in ok}, {r["row"]: r for r in bad}


def assert_report_matches_files(out_dir: Path) -> dict[str, Any]:
    """For a job that stopped: no row twice, none in both files, and the report counts what
    the files hold. Returns the report."""
    ok = read_jsonl(out_dir / "succeeded.jsonl")
    bad = read_jsonl(out_dir / "failed.jsonl")
    ok_rows = {r["row"] for r in ok}
    bad_rows = {r["row"] for r in bad}
    assert len(ok_rows) == len(ok) and len(bad_rows) == len(bad), "a row is in a file twice"
    assert not ok_rows & bad_rows, f"rows in both files: {sorted(ok_rows & bad_rows)[:10]}"
    report: dict[str, Any] = orjson.loads((out_dir / "report.json").read_bytes())
    assert report["rows"]["succeeded"] == len(ok), (report["rows"], len(ok))
    assert report["rows"]["failed"] == len(bad), (report["rows"], len(bad))
    return report
