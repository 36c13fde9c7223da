"""``--shard i/n`` and ``bulkops merge``: shards disjoint and complete by row number, each
resuming on its own, and a merge that checks every input row is there exactly once."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from bulkops import ConfigError, JobConfig, Operation, Secret, run_job
from bulkops._cli import main
from bulkops._engine import Job, Mode
from bulkops._merge import ShardUnfinished, merge_folders
from bulkops._shard import parse_shard

from .accounting import read_jsonl
from .mockhub import MockHub, tickets

TOKEN = "pat-test-shard-test-token"
ROWS, N = 103, 3


def write_input(path: Path, n: int = ROWS) -> Path:
    rows = tickets(n)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def config(out: Path, shard: tuple[int, int] | None, **kw: object) -> JobConfig:
    return JobConfig(
        operation=Operation.CREATE,
        token=Secret(TOKEN),
        base_url="http://hub.test",
        out_dir=out,
        batch_size=10,
        rate_limit=0,
        shard=shard,
        **kw,  # type: ignore[arg-type]
    )


async def run_shards(tmp_path: Path, source: Path | list[dict[str, str]], n: int = N) -> list[Path]:
    folders = []
    for i in range(n):
        out = tmp_path / f"shard{i}"
        src = str(source) if isinstance(source, Path) else source
        report = await run_job(config(out, (i, n)), src, transport=MockHub().transport)
        assert report.exit_code == 0
        folders.append(out)
    return folders


def rows_in(folder: Path) -> list[int]:
    return sorted(r["row"] for name in ("succeeded.jsonl", "failed.jsonl")
                  for r in read_jsonl(folder / name))  # fmt: skip


def test_a_shard_is_parsed_and_checked() -> None:
    assert parse_shard("0/4") == (0, 4) and parse_shard(" 3/4 ") == (3, 4)
    for bad in ("4/4", "-1/4", "1", "a/b", "1/0"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)
    with pytest.raises(ConfigError, match="shard"):
        config(Path("x"), (2, 2))


async def test_shards_are_disjoint_complete_and_keep_the_inputs_row_numbers(
    tmp_path: Path,
) -> None:
    source = write_input(tmp_path / "in.csv")
    folders = await run_shards(tmp_path, source)
    seen: list[int] = []
    for i, folder in enumerate(folders):
        rows = rows_in(folder)
        assert rows == [r for r in range(1, ROWS + 1) if (r - 1) % N == i]
        report = orjson.loads((folder / "report.json").read_bytes())
        assert report["rows"]["read"] == len(rows) and report["rows"]["unprocessed"] == 0
        seen += rows
    assert sorted(seen) == list(range(1, ROWS + 1))
    # A succeeded line still says which input row it was.
    line = read_jsonl(folders[1] / "succeeded.jsonl")[0]
    assert line["row"] == 2


async def test_merge_joins_the_shards_into_one_set_of_files_and_one_report(
    tmp_path: Path,
) -> None:
    source = write_input(tmp_path / "in.csv")
    folders = await run_shards(tmp_path, source)
    into = tmp_path / "merged"
    report = merge_folders(folders[::-1], into)
    ok = read_jsonl(into / "succeeded.jsonl")
    assert [r["row"] for r in ok] == list(range(1, ROWS + 1))  # sorted, each once
    assert read_jsonl(into / "failed.jsonl") == []
    data = orjson.loads((into / "report.json").read_bytes())
    assert data["rows"] == ROWS and data["succeeded"] == ROWS and data["shards"] == N
    assert [f["shard"] for f in data["folders"]] == ["0/3", "1/3", "2/3"]
    assert report.exit_code == 0 and data["requests"] == sum(
        orjson.loads((f / "report.json").read_bytes())["requests"]["total"] for f in folders
    )


async def test_merge_refuses_folders_that_do_not_add_up(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.csv")
    folders = await run_shards(tmp_path, source)
    with pytest.raises(ConfigError, match="shard\\(s\\) 2/3 missing"):
        merge_folders(folders[:2], tmp_path / "m1")
    with pytest.raises(ConfigError, match="given twice"):
        merge_folders([folders[0], folders[0], folders[1], folders[2]], tmp_path / "m2")
    other = write_input(tmp_path / "other.csv", 50)
    stranger = tmp_path / "stranger"
    await run_job(config(stranger, (2, 3)), str(other), transport=MockHub().transport)
    with pytest.raises(ConfigError, match="another input"):
        merge_folders([folders[0], folders[1], stranger], tmp_path / "m3")
    # A row written twice (a hand-edited or corrupted folder) is named.
    with (folders[0] / "succeeded.jsonl").open("ab") as f:
        f.write((folders[0] / "succeeded.jsonl").read_bytes().splitlines(keepends=True)[0])
    with pytest.raises(ConfigError, match="row 1 is twice in"):
        merge_folders(folders, tmp_path / "m4")
    assert not (tmp_path / "m4" / "succeeded.jsonl").exists()
    with pytest.raises(ConfigError, match="not empty"):
        merge_folders(folders, tmp_path)


async def test_a_stopped_shard_resumes_on_its_own_then_merges(tmp_path: Path) -> None:
    # A Python source here: a file job stopped mid-read leaves its file to the garbage
    # collector (a reader issue outside sharding, reported), which pytest turns into an error.
    source = tickets(ROWS)
    folders = await run_shards(tmp_path, source)
    # Shard 1 again, stopped by its daily budget after its schema read and one batch.
    shard1 = tmp_path / "shard1-again"
    stopped = await run_job(
        config(shard1, (1, N), daily_budget=2), source, transport=MockHub().transport
    )
    assert stopped.exit_code == 3 and stopped.rows.succeeded == 10
    with pytest.raises(ShardUnfinished, match="bulkops resume"):
        merge_folders([folders[0], shard1, folders[2]], tmp_path / "m")
    hub = MockHub()
    resumed = await Job(
        config(shard1, (1, N)), source, mode=Mode.RESUME, transport=hub.transport
    ).run()
    assert resumed.exit_code == 0 and hub.creates == 34 - 10  # only the shard's rest
    assert rows_in(shard1) == [r for r in range(1, ROWS + 1) if (r - 1) % N == 1]
    report = merge_folders([folders[0], shard1, folders[2]], tmp_path / "m")
    assert report.rows == ROWS and report.succeeded == ROWS


async def test_the_cli_merge_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_input(tmp_path / "in.csv")
    folders = await run_shards(tmp_path, source)
    args = ["merge", *map(str, folders), "--into", str(tmp_path / "m")]
    assert main(args) == 0
    assert "merged 3 shard(s)" in capsys.readouterr().err
    assert main(["merge", str(folders[0]), "--into", str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bulkops: shard(s) 1/3, 2/3 missing") and "Traceback" not in err


def test_the_shard_is_journaled_so_a_resume_keeps_it() -> None:
    from bulkops._config import config_from_meta, config_to_meta

    original = config(Path("o"), (2, 5))
    back = config_from_meta(config_to_meta(original), token=Secret(TOKEN), out_dir=Path("o"))
    assert back.shard == (2, 5) and dataclasses.replace(back, out_dir=Path("o")) == original


def test_the_cli_names_a_bad_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    source = write_input(tmp_path / "in.csv")
    code = main(
        ["run", "create", "-i", str(source), "--out", str(tmp_path / "o"), "--shard", "4/4"]
    )
    assert code == 2
    assert "--shard '4/4': give i/n with 0 <= i < n" in capsys.readouterr().err


async def test_closing_a_shard_closes_its_source() -> None:
    from bulkops._shard import in_shard
    from bulkops._sources import RawRow

    closed = []

    async def source() -> AsyncIterator[RawRow]:
        try:
            for n in range(1, 10):
                yield RawRow(n, n, {"n": n})
        finally:
            closed.append(True)

    shard = in_shard(source(), 1, 3)
    assert (await shard.__anext__()).row == 2
    await shard.aclose()
    assert closed == [True]


async def test_a_shard_of_a_file_keeps_its_header_check(tmp_path: Path) -> None:
    # No column for the id property: the intake's header check (which reads the source's
    # ``header``) stops the job before anything is sent.
    bad = tmp_path / "bad.csv"
    bad.write_text("subject\na\nc\n", encoding="utf-8")
    cfg = config(tmp_path / "o", (0, 2), id_property="external_id")
    hub = MockHub()
    report = await run_job(cfg, str(bad), transport=hub.transport)
    assert report.exit_code == 2 and "external_id" in (report.stop.message if report.stop else "")
    assert hub.creates == 0
