"""The command line in real subprocesses against the embedded fake: exit codes, SIGKILL and
resume, graceful SIGINT, a changed input refused, retry of failed rows, the daily limit, and
the token never written anywhere."""

from __future__ import annotations

import csv
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot, FaultPlan

from .accounting import assert_accounted, assert_report_matches_files, read_jsonl

HEADER = ["subject", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority", "external_id"]


def write_csv(path: Path, rows: int, *, bad: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for n in range(1, rows + 1):
            w.writerow([f"T{n}", "0", "1", "WRONG" if n in bad else "LOW", f"cli-{n}"])


def env(token: str = DEFAULT_FAKE_TOKEN) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    e["HUBSPOT_ACCESS_TOKEN"] = token
    return e


def create(src: Path, out: Path) -> list[Any]:
    """The start of a create job's command line: ``run create --input SRC --out OUT``."""
    return ["run", "create", "--input", src, "--out", out]


def cmd(*args: Any) -> list[str]:
    return [sys.executable, "-m", "bulkops", *map(str, args)]


async def run_cli(*args: Any, token: str = DEFAULT_FAKE_TOKEN, limit: float = 60):
    with anyio.fail_after(limit):
        return await anyio.run_process(cmd(*args), env=env(token), check=False)


def assert_no_duplicates(fake: FakeHubSpot) -> None:
    assert max(fake.stats.creates_by_unique.values(), default=0) <= 1


async def test_exit_codes_and_summary(tmp_path):
    src = tmp_path / "in.csv"
    write_csv(src, 300, bad={5})
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        done = await run_cli(
            "run",
            "create",
            "--input",
            src,
            "--base-url",
            fake.url,
            "--out",
            tmp_path / "a",
            "--rate-limit",
            0,
            "--progress",
            "none",
        )
        assert done.returncode == 1, done.stderr.decode()
        assert b"299 succeeded, 1 failed" in done.stderr
        assert_accounted(tmp_path / "a", 300)

        bad_token = await run_cli(
            "run",
            "create",
            "--input",
            src,
            "--base-url",
            fake.url,
            "--out",
            tmp_path / "b",
            token="nope",
        )
        assert bad_token.returncode == 3
        assert b"rejected the access token" in bad_token.stderr

        usage = await run_cli("run", "upsert", "--input", src, "--base-url", fake.url)
        assert usage.returncode == 2 and b"--id-property is required" in usage.stderr

        bad_url = await run_cli(
            "run",
            "create",
            "--input",
            src,
            "--base-url",
            "http://127.0.0.1:9",
            "--out",
            tmp_path / "c",
        )
        assert bad_url.returncode == 2 and b"cannot connect" in bad_url.stderr


async def test_token_never_appears_in_output_or_files(tmp_path):
    secret = "pat-secret-" + "7" * 24
    src = tmp_path / "in.csv"
    write_csv(src, 500, bad={3, 300})
    faults = FaultPlan(seed=3, p_5xx=0.2, p_reset=0.1)
    async with FakeHubSpot(
        FakeConfig(rate_limit=None, tokens=frozenset({secret}), faults=faults)
    ) as fake:
        runs = [
            await run_cli(
                *create(src, tmp_path / "ok"),
                "--base-url",
                fake.url,
                "--id-property",
                "external_id",
                "--rate-limit",
                0,
                "--progress",
                "log",
                token=secret,
            ),
            await run_cli(
                *create(src, tmp_path / "bad"),
                "--base-url",
                fake.url,
                "--progress",
                "log",
                token=secret + "x",
            ),
        ]
    for done in runs:
        assert secret.encode() not in done.stdout + done.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


async def test_sigkill_at_random_points_then_resume(tmp_path):
    """Kill the CLI several times mid-job; each resume continues. In the end every row is in the
    results exactly once, nothing was created twice and every id is in the fake's store."""
    rows = 8000
    src = tmp_path / "in.csv"
    write_csv(src, rows, bad={7, 1234})
    out = tmp_path / "job"
    rng = random.Random(5)
    faults = FaultPlan(seed=9, p_write_then_fail=0.05, p_5xx=0.03)
    # 20 requests per second: the 81 requests of this job take about 4 s without kills.
    async with FakeHubSpot(FakeConfig(rate_limit=10, interval_ms=500, faults=faults)) as fake:
        first = True
        for _ in range(4):
            args = (
                [
                    *create(src, out),
                    "--id-property",
                    "external_id",
                    "--rate-limit",
                    20,
                ]
                if first
                else ["resume", out]
            )
            proc = await anyio.open_process(
                cmd(*args, "--base-url", fake.url, "--progress", "none"), env=env()
            )
            await anyio.sleep(rng.uniform(0.8, 1.6))
            assert proc.returncode is None, "the job ended before it could be killed"
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            await proc.aclose()
            first = False
        done = await run_cli("resume", out, "--base-url", fake.url, "--progress", "none")
        assert done.returncode == 1, done.stderr.decode()
        ok, bad = assert_accounted(out, rows)
        assert sorted(bad) == [7, 1234]
        assert_no_duplicates(fake)
        stored = {r["id"]: r for r in fake.records("tickets")}
        assert len(stored) == rows - 2
        for row, line in ok.items():
            assert stored[line["id"]]["properties"]["external_id"] == f"cli-{row}"
        report = orjson.loads((out / "report.json").read_bytes())
        assert report["status"] == "complete"
        assert report["this_run"]["skipped_finished_rows"] > 0  # earlier runs' work was kept


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_signal_stops_gracefully_and_resume_finishes(tmp_path, sig):
    rows = 3000
    src = tmp_path / "in.csv"
    write_csv(src, rows)
    out = tmp_path / "job"
    async with FakeHubSpot(
        FakeConfig(rate_limit=10, interval_ms=1000, latency=(0.05, 0.1))
    ) as fake:
        proc = await anyio.open_process(
            cmd(
                *create(src, out),
                "--id-property",
                "external_id",
                "--rate-limit",
                10,
                "--base-url",
                fake.url,
                "--progress",
                "none",
            ),
            env=env(),
        )
        with anyio.fail_after(30):  # wait for some progress, however slow the machine is
            while len(fake.records("tickets")) < 300:  # noqa: ASYNC110 - polling another process
                await anyio.sleep(0.05)
        if proc.returncode is not None and proc.stderr:
            pytest.fail((await proc.stderr.receive()).decode())
        proc.send_signal(sig)
        with anyio.fail_after(20):
            code = await proc.wait()
        stderr = await proc.stderr.receive() if proc.stderr else b""
        await proc.aclose()
        assert code == 3
        assert b"bulkops resume" in stderr
        report = assert_report_matches_files(out)  # outcomes of the grace period counted
        assert report["stop"]["reason"] == "interrupted"
        assert f"{report['rows']['succeeded']:,} succeeded".encode() in stderr
        partial_ok = read_jsonl(out / "succeeded.jsonl")
        assert 0 < len(partial_ok) < rows
        # What finished is in the store, and nothing in flight was lost: resume finishes it.
        done = await run_cli(
            "resume", out, "--base-url", fake.url, "--rate-limit", 0, "--progress", "none"
        )
        assert done.returncode == 0, done.stderr.decode()
        assert_accounted(out, rows)
        assert_no_duplicates(fake)
        assert len(fake.records("tickets")) == rows


async def test_resume_refuses_a_changed_input(tmp_path):
    src = tmp_path / "in.csv"
    write_csv(src, 50)
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        done = await run_cli(
            *create(src, tmp_path / "job"),
            "--base-url",
            fake.url,
            "--rate-limit",
            0,
            "--progress",
            "none",
        )
        assert done.returncode == 0
        write_csv(src, 51)
        again = await run_cli("resume", tmp_path / "job", "--base-url", fake.url)
        assert again.returncode == 2
        assert b"changed since the job started" in again.stderr
        rerun = await run_cli(*create(src, tmp_path / "job"), "--base-url", fake.url)
        assert rerun.returncode == 2 and b"already holds a job" in rerun.stderr


async def test_retry_reruns_fixed_failed_rows(tmp_path):
    src = tmp_path / "in.csv"
    write_csv(src, 400, bad={2, 150, 399})
    out = tmp_path / "job"
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        first = await run_cli(
            *create(src, out),
            "--base-url",
            fake.url,
            "--rate-limit",
            0,
            "--id-property",
            "external_id",
            "--progress",
            "none",
        )
        assert first.returncode == 1
        _, bad = assert_accounted(out, 400)
        assert sorted(bad) == [2, 150, 399]
        # The user fixes the data in failed.jsonl and re-runs only those rows.
        fixed = []
        for line in read_jsonl(out / "failed.jsonl"):
            line["input"]["hs_ticket_priority"] = "HIGH"
            fixed.append(orjson.dumps(line))
        (out / "failed.jsonl").write_bytes(b"\n".join(fixed) + b"\n")
        again = await run_cli("retry", out, "--base-url", fake.url, "--progress", "none")
        assert again.returncode == 0, again.stderr.decode()
        ok, bad = assert_accounted(out, 400)
        assert not bad
        assert fake.stored("tickets", ok[150]["id"])["properties"]["hs_ticket_priority"] == "HIGH"
        assert len(fake.records("tickets")) == 400


@pytest.mark.parametrize("api", ["v3", "v1"])
async def test_daily_limit_stops_keeps_results_and_resumes(tmp_path, api):
    src = tmp_path / "in.csv"
    write_csv(src, 1000)
    out = tmp_path / "job"
    # 1 schema request + 4 batches fit in today's quota.
    async with FakeHubSpot(FakeConfig(rate_limit=None, daily_limit=5)) as fake:
        # One request at a time, so the quota ends between batches, never inside one.
        opts = ["--base-url", fake.url, "--rate-limit", 0, "--concurrency", 1, "--progress", "none"]
        done = await run_cli(*create(src, out), "--api", api, *opts)
        assert done.returncode == 3, done.stderr.decode()
        assert b"daily" in done.stderr and b"midnight" in done.stderr
        kept = read_jsonl(out / "succeeded.jsonl")
        assert len(kept) == 400
        assert {line["id"] for line in kept} <= {r["id"] for r in fake.records("tickets")}
        # Each new day allows 4 more batches: resume until the job is complete.
        for _ in range(4):
            fake.new_day()
            again = await run_cli("resume", out, *opts)
            if again.returncode != 3:
                break
        assert again.returncode == 0, again.stderr.decode()
        assert_accounted(out, 1000)
        assert len(fake.records("tickets")) == 1000


async def test_retry_with_an_id_property_settles_ambiguous_rows_by_reading_back(tmp_path):
    """A job run without --id-property leaves AMBIGUOUS creates (some were written, some not);
    `retry --id-property` reads each back and creates only the missing: no duplicate."""
    src = tmp_path / "in.csv"
    write_csv(src, 600)
    out = tmp_path / "job"
    faults = FaultPlan(seed=3, p_write_then_fail=0.2, p_5xx=0.2)
    async with FakeHubSpot(FakeConfig(rate_limit=None, faults=faults)) as fake:
        first = await run_cli(
            *create(src, out), "--base-url", fake.url, "--rate-limit", 0, "--progress", "none"
        )
        assert first.returncode == 1, first.stderr.decode()
        _, bad = assert_accounted(out, 600)
        assert {b["error"]["category"] for b in bad.values()} == {"AMBIGUOUS"}
        written_before = len(fake.records("tickets"))
        assert written_before > 600 - len(bad)  # some AMBIGUOUS rows were in fact created
        again = await run_cli(
            "retry", out, "--id-property", "external_id", "--base-url", fake.url,
            "--progress", "none",
        )  # fmt: skip
        assert again.returncode == 0, again.stderr.decode()
        ok, bad = assert_accounted(out, 600)
        assert not bad
        assert_no_duplicates(fake)
        assert len(fake.records("tickets")) == 600
        for row, line in ok.items():
            assert fake.stored("tickets", line["id"])["properties"]["external_id"] == f"cli-{row}"


async def test_a_header_mistake_is_one_error_with_a_suggestion(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("subject,hs_ticket_priorty,hs_pipeline_stage\n" + "T,HIGH,1\n" * 500)
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        done = await run_cli(
            *create(src, tmp_path / "job"), "--base-url", fake.url, "--progress", "none"
        )
        writes = sum(n for k, n in fake.stats.by_endpoint.items() if "properties" not in k)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "hs_ticket_priorty" in stderr and "did you mean hs_ticket_priority" in stderr
    assert stderr.count("\n") <= 3 and "Traceback" not in stderr  # one error, not 500
    assert writes == 0
    assert read_jsonl(tmp_path / "job" / "failed.jsonl") == []
