"""A kill-and-resume soak: SIGKILL during ``run``, ``resume`` and ``retry`` of one job, with
write-then-fail faults, and in the end every row exactly once, nothing created twice, the
user's fixes in ``failed.jsonl`` sent, and the report equal to the files."""

from __future__ import annotations

import contextlib
import random
import signal
from pathlib import Path
from typing import Any

import anyio
import orjson

from bulkops.testing import FakeConfig, FakeHubSpot, FaultPlan

from .accounting import assert_accounted, assert_report_matches_files, read_jsonl
from .test_cli import assert_no_duplicates, cmd, create, env, run_cli, write_csv

ROWS = 6000
BAD = set(range(5, ROWS, 4))  # 1,499 rows with an invalid priority, fixed by hand for the retry


async def _kill_mid_run(args: list[Any], fake: FakeHubSpot, rng: random.Random) -> bool:
    """Start the CLI, SIGKILL it after a random while; True if it was still running."""
    before = fake.stats.requests
    proc = await anyio.open_process(
        cmd(*args, "--base-url", fake.url, "--progress", "none"), env=env()
    )
    # Kill once the job is sending (however slowly this machine starts a process), at a
    # random point a few requests in.
    wanted = before + rng.randint(2, 6)
    with anyio.fail_after(60):
        while fake.stats.requests < wanted and proc.returncode is None:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    # Soon after: a job paced in bursts (a window's budget at 4x the even pace) may end
    # within a few tenths of a second of reaching ``wanted``.
    await anyio.sleep(rng.uniform(0.0, 0.1))
    running = proc.returncode is None
    with contextlib.suppress(ProcessLookupError):  # it may have just ended by itself
        proc.send_signal(signal.SIGKILL)
    await proc.wait()
    await proc.aclose()
    return running


def _fix_failed_file(out: Path) -> int:
    """What a user does: correct the bad value in every failed row, keep the rest."""
    lines = read_jsonl(out / "failed.jsonl")
    fixed = 0
    with (out / "failed.jsonl").open("wb") as f:
        for line in lines:
            if line["input"].get("hs_ticket_priority") == "WRONG":
                line["input"]["hs_ticket_priority"] = "HIGH"
                fixed += 1
            f.write(orjson.dumps(line) + b"\n")
    return fixed


async def test_sigkill_during_run_resume_and_retry_ends_exact(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    write_csv(src, ROWS, bad=BAD)
    out = tmp_path / "job"
    rng = random.Random(2026)
    faults = FaultPlan(seed=4, p_write_then_fail=0.05, p_5xx=0.03, p_reset=0.01)
    kills = 0
    # 10 requests per 0.5 s: the job's ~46 write requests take a few seconds without kills.
    async with FakeHubSpot(FakeConfig(rate_limit=10, interval_ms=500, faults=faults)) as fake:
        run = [*create(src, out), "--id-property", "external_id", "--rate-limit", 20]
        kills += await _kill_mid_run(run, fake, rng)
        for _ in range(2):
            kills += await _kill_mid_run(["resume", out], fake, rng)
        done = await run_cli("resume", out, "--base-url", fake.url, "--progress", "none")
        assert done.returncode == 1, done.stderr.decode()
        _, bad = assert_accounted(out, ROWS)
        assert set(bad) == BAD
        assert_no_duplicates(fake)

        assert _fix_failed_file(out) == len(BAD)
        retries = 0
        while retries < 3:
            retries += 1
            running = await _kill_mid_run(["retry", out], fake, rng)
            kills += running
            if not running:
                break
        done = await run_cli("retry", out, "--base-url", fake.url, "--progress", "none")
        assert done.returncode == 0, done.stderr.decode()
        ok, bad = assert_accounted(out, ROWS)
        assert not bad
        assert_no_duplicates(fake)
        stored = {r["id"]: r for r in fake.records("tickets")}
        assert len(stored) == ROWS
        for row, line in ok.items():
            props = stored[line["id"]]["properties"]
            assert props["external_id"] == f"cli-{row}"  # the id is this row's
            assert props["hs_ticket_priority"] == ("HIGH" if row in BAD else "LOW")
        report = assert_report_matches_files(out)
        # Killed runs leave no run report (SIGKILL); the ones that ended are all counted.
        assert report["status"] == "complete" and report["runs"] >= 2
    assert kills >= 5, f"only {kills} kills landed while a process ran"
