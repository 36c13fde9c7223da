"""``bulkops status OUT`` and the report.json the engine keeps current while a job runs:
against a running CLI job (a slow fake-server subprocess), a SIGKILLed one, a finished one,
and in-process for the snapshot itself."""

from __future__ import annotations

import csv
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulkops._cli import main
from bulkops._engine import Job
from bulkops._journal import Journal
from bulkops._status import journal_counts, read_status

from .accounting import assert_accounted, assert_report_matches_files
from .mockhub import MockHub, tickets
from .test_engine import config

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["subject", "hs_pipeline", "hs_pipeline_stage", "external_id"]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for n in range(1, rows + 1):
            w.writerow([f"T{n}", "0", "1", f"st-{n}"])


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    e["HUBSPOT_ACCESS_TOKEN"] = "fake-hubspot-token"
    e["PYTHONPATH"] = str(ROOT)
    return e


def bulkops(*args: Any) -> list[str]:
    return [sys.executable, "-m", "bulkops", *map(str, args)]


async def start_fake(*args: Any) -> tuple[anyio.abc.Process, str]:
    proc = await anyio.open_process(bulkops("fake-server", *args), env=env())
    assert proc.stdout is not None
    line = b""
    with anyio.fail_after(20):
        while not line.endswith(b"\n"):
            line += await proc.stdout.receive(1)
    text = line.decode().strip()
    assert text.startswith("FAKE_HUBSPOT_URL="), text
    return proc, text.split("=", 1)[1]


async def wait_for(predicate: Any, *, limit: float = 30) -> Any:
    """Poll another process's progress (bounded): the job runs in its own process."""
    with anyio.fail_after(limit):
        while not (found := predicate()):  # noqa: ASYNC110 (another process: no event)
            await anyio.sleep(0.05)
    return found


def listing(folder: Path) -> dict[str, float]:
    # journal.sqlite-shm is SQLite's shared-memory index, which every WAL reader updates
    # (after a crash the first reader rebuilds it); the journal and its log are untouched.
    return {p.name: p.stat().st_mtime for p in folder.iterdir() if not p.name.endswith("-shm")}


async def test_status_of_a_running_job_then_a_killed_one_then_a_finished_one(tmp_path, capsys):
    src = tmp_path / "in.csv"
    rows = 3000  # 30 batches one at a time, 0.4 s each: 12 s, killed after the first snapshot
    write_csv(src, rows)
    out = tmp_path / "job"
    fake, url = await start_fake("--rate-limit", 0, "--latency-ms", 400)
    try:
        job = await anyio.open_process(
            bulkops(
                *("run", "create", "--input", src, "--out", out, "--base-url", url),
                *("--id-property", "external_id", "--rate-limit", 0, "--concurrency", 1),
                *("--progress", "none"),
            ),
            env=env(),
        )
        try:
            running = await wait_for(
                lambda: (s := _status(out)) and s.state == "running" and s.done > 0 and s
            )
            assert running.pid == job.pid
            assert running.operation == "create" and running.object_type == "tickets"
            assert running.total == rows and running.total_estimated  # not read to the end yet
            assert running.left == rows - running.done and not running.killed
            # The engine's first report.json snapshot brings a rate and an ETA.
            snap = await wait_for(lambda: (s := _status(out)) and s.rate_per_s and s)
            assert snap.eta_s is not None and snap.eta_s > 0
            report = orjson.loads((out / "report.json").read_bytes())
            assert report["status"] == "running" and report["stop"] is None
            # Reading takes nothing: the job still holds its folder and goes on.
            assert main(["status", str(out), "--json"]) == 0
            shown = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
            assert shown["state"] == "running" and shown["pid"] == job.pid
            assert shown["rows"]["done"] >= running.done
            job.send_signal(signal.SIGKILL)
            await job.wait()
        finally:
            if job.returncode is None:
                job.kill()
                await job.wait()

        before = listing(out)
        killed = read_status(out)
        assert killed.state == "stopped" and killed.killed and killed.pid is None
        assert 0 < killed.done < rows and killed.rate_per_s is None and killed.eta_s is None
        assert listing(out) == before  # read-only: no file created, none touched
        assert main(["status", str(out)]) == 0
        text = capsys.readouterr().out
        assert "stopped" in text and "killed" in text and f"bulkops resume {out}" in text

        resumed = await anyio.run_process(
            bulkops("resume", out, "--base-url", url, "--concurrency", 8, "--progress", "none"),
            env=env(),
            check=False,
        )
        assert resumed.returncode == 0, resumed.stderr.decode()
        assert_accounted(out, rows)
        assert_report_matches_files(out)
        done = read_status(out)
        assert done.state == "finished" and not done.killed and done.pid is None
        assert (done.succeeded, done.failed, done.total, done.left) == (rows, 0, rows, 0)
        assert not done.total_estimated and done.last_error is None
    finally:
        fake.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            await fake.wait()


def _status(out: Path) -> Any:
    try:
        return read_status(out)
    except Exception:  # the job has not created its journal yet
        return None


async def test_the_engine_refreshes_report_json_while_the_job_runs(tmp_path):
    hub = MockHub()
    seen: list[dict[str, Any]] = []

    async def source() -> AsyncIterator[dict[str, str]]:
        for n, row in enumerate(tickets(300), 1):
            yield row
            if n == 200:  # the job is half-way: a snapshot must appear before it goes on
                seen.append(await wait_for(lambda: _running_report(tmp_path), limit=10))

    job = Job(config(tmp_path, concurrency=1), source(), transport=hub.transport)
    job.report_every = 0.01
    report = await job.run()
    snapshot = seen[0]
    assert snapshot["status"] == "running" and snapshot["stop"] is None
    assert 0 < snapshot["rows"]["succeeded"] <= 200 and snapshot["rows"]["read"] <= 300
    assert not snapshot["rows"]["input_exhausted"]
    # The final report replaces it: the whole job, and one run in the journal's history.
    final = orjson.loads((tmp_path / "report.json").read_bytes())
    assert final["status"] == "complete" and report.runs == 1 == final["runs"]
    assert_accounted(tmp_path, 300)
    assert_report_matches_files(tmp_path)
    assert not list(tmp_path.glob(".report.json*"))  # no temporary file left behind


def _running_report(folder: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads((folder / "report.json").read_bytes())
    except FileNotFoundError:
        return None
    return data if data["status"] == "running" and data["rows"]["succeeded"] else None


async def test_status_of_a_job_with_failures_names_the_last_error(tmp_path, capsys):
    hub = MockHub()
    rows = tickets(120)
    rows[109]["hs_pipeline_stage"] = "9"  # row 110: not an option (pre-flight)
    await Job(config(tmp_path, concurrency=1), rows, transport=hub.transport).run()
    st = read_status(tmp_path)
    assert st.state == "finished" and (st.succeeded, st.failed) == (119, 1)
    # The engine's snapshots count through their own read-only connection, in a thread.
    journal = Journal.open(tmp_path / "journal.sqlite")
    try:
        assert journal_counts(journal.path) == journal.counts()
    finally:
        journal.close()
    assert st.last_error is not None and st.last_error.startswith("row 110: PREFLIGHT")
    assert main(["status", str(tmp_path), "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert data["version"] == 1 and data["rows"] == {
        "succeeded": 119,
        "failed": 1,
        "done": 120,
        "total": 120,
        "total_estimated": False,
        "left": 0,
    }


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_status_of_a_folder_without_a_job_is_a_usage_error(tmp_path, capsys, make):
    folder = tmp_path / "nothing"
    if make == "empty":
        folder.mkdir()
    assert main(["status", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bulkops: ") and str(folder) in err and "Traceback" not in err


async def test_status_of_a_job_without_a_journal_reads_its_report(tmp_path):
    hub = MockHub()
    await Job(config(tmp_path, journal=False), tickets(40), transport=hub.transport).run()
    assert not (tmp_path / "journal.sqlite").exists()
    st = read_status(tmp_path)
    assert (st.state, st.succeeded, st.failed, st.total, st.left) == ("finished", 40, 0, 40, 0)
