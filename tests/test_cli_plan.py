"""The planning options on the command line, in real subprocesses against the fake:
--dry-run, --limit with resume, and the column mapping."""

from __future__ import annotations

import orjson

from bulkops.testing import FakeConfig, FakeHubSpot

from .accounting import assert_accounted, assert_report_matches_files, read_jsonl
from .test_cli import create, run_cli, write_csv


async def test_dry_run_on_the_command_line_sends_no_write(tmp_path):
    src = tmp_path / "in.csv"
    write_csv(src, 250, bad={7})
    out = tmp_path / "dry out"
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        done = await run_cli(
            *create(src, out), "--id-property", "external_id", "--dry-run", "--base-url", fake.url
        )
        assert {(r.method, r.path.split("/")[-1]) for r in fake.requests} == {("GET", "tickets")}
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "DRY RUN" in err and "249 would be sent, 1 would fail" in err
    assert "row 7:" in err
    assert "'" + str(out / "report.json") + "'" in err  # quoted: the path has a space
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    report = orjson.loads((out / "report.json").read_bytes())
    assert report["would_fail"] == 1 and report["estimate"]["write_requests"] == 3


async def test_mapping_flags_reach_the_job(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("Title,Notes,Stage\nT1,n,1\nT2,n,2\n")
    mapfile = tmp_path / "map.json"
    mapfile.write_text('{"Stage": "hs_pipeline_stage", "Title": "content"}')
    out = tmp_path / "out"
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        done = await run_cli(
            *create(src, out),
            "--map",
            "Title=subject",  # wins over the file's Title
            "--map-file",
            mapfile,
            "--ignore-column",
            "Notes",
            "--set",
            "hs_pipeline=0",
            "--base-url",
            fake.url,
        )
        assert done.returncode == 0, done.stderr.decode()
        for line in read_jsonl(out / "succeeded.jsonl"):
            stored = fake.stored("tickets", line["id"])["properties"]
            assert stored["subject"] == f"T{line['row']}"
            assert stored["hs_pipeline"] == "0" and "Notes" not in stored
        done = await run_cli(
            *create(src, tmp_path / "o2"), "--map", "Title", "--base-url", fake.url
        )
    assert done.returncode == 2
    assert "--map 'Title': write COLUMN=PROPERTY" in done.stderr.decode()


async def test_a_trial_run_sends_the_first_rows_and_resume_sends_the_rest(tmp_path):
    src = tmp_path / "in.csv"
    write_csv(src, 450, bad={3})
    out = tmp_path / "out"
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        base = ("--base-url", fake.url, "--id-property", "external_id")
        trial = await run_cli(*create(src, out), "--limit", 120, *base)
        err = trial.stderr.decode()
        assert trial.returncode == 3, err
        assert "trial run: the first 120 rows were sent and 330 are left" in err
        report = assert_report_matches_files(out)
        assert report["rows_left"] == 330 and report["stop"]["reason"] == "limit"
        assert report["rows"]["succeeded"] + report["rows"]["failed"] == 120
        assert len(fake.records("tickets")) == 119  # row 3 is refused by the pre-flight
        done = await run_cli("resume", out, "--base-url", fake.url)
        assert done.returncode == 1, done.stderr.decode()
        _ok, bad = assert_accounted(out, 450)
        assert sorted(bad) == [3]
        assert len(fake.records("tickets")) == 449
        assert max(fake.stats.creates_by_unique.values()) == 1  # nothing created twice


def test_a_dry_run_never_writes_into_a_job_folder(tmp_path, monkeypatch, capsys):
    import bulkops._cli as cli

    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-test-cli-plan-not-a-real-token")
    src = tmp_path / "in.csv"
    write_csv(src, 3)
    out = tmp_path / "job"
    out.mkdir()
    (out / "journal.sqlite").write_bytes(b"")
    code = cli.main(["run", "create", "--input", str(src), "--out", str(out), "--dry-run"])
    assert code == 2
    assert "holds a job; a dry run writes its report.json in a folder of its own" in (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in out.iterdir()) == ["journal.sqlite"]
