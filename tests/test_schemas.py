"""The output schemas shipped in ``bulkops/schemas``: valid JSON Schemas, in step with the
code's enums, and met by the real outputs of jobs against the fake: complete jobs with
failures, reads, upserts, unparsable input, stopped jobs, a running job's snapshot, the
summary line and ``bulkops status --json``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from bulkops import JobConfig, Operation, Secret, run_job
from bulkops._engine import Job
from bulkops._report import JobStatus
from bulkops._stats import StopReason
from bulkops._status import read_status
from bulkops.schemas import NAMES, load_schema
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

from .accounting import assert_accounted, assert_report_matches_files, read_jsonl
from .mockhub import MockHub, tickets
from .test_cli import run_cli, write_csv
from .test_engine import config as mock_config
from .test_status import _running_report, wait_for


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def check_folder(out: Path) -> dict[str, Any]:
    """Every line of both result files and report.json against their schemas."""
    for name in ("succeeded", "failed"):
        v = validator(name)
        for line in read_jsonl(out / f"{name}.jsonl"):
            v.validate(line)
    report: dict[str, Any] = orjson.loads((out / "report.json").read_bytes())
    validator("report").validate(report)
    return report


def ticket(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "subject": f"Ticket {n}",
        "hs_pipeline": "0",
        "hs_pipeline_stage": "1",
        "external_id": f"sch-{n}",
        **extra,
    }


def cfg(fake: FakeHubSpot, out: Path, op: Operation, **kw: Any) -> JobConfig:
    kw.setdefault("rate_limit", 0)
    return JobConfig(
        operation=op, token=Secret(DEFAULT_FAKE_TOKEN), base_url=fake.url, out_dir=out, **kw
    )


@pytest.mark.parametrize("name", NAMES)
def test_each_schema_is_a_valid_draft_2020_12_schema(name):
    Draft202012Validator.check_schema(load_schema(name))


def test_the_schemas_name_every_value_the_code_can_write():
    report = load_schema("report")["properties"]
    assert set(report["status"]["enum"]) == {s.value for s in JobStatus}
    assert report["version"]["const"] == 2  # REPORT_VERSION: bump both together
    reasons = report["stop"]["oneOf"][1]["properties"]["reason"]["enum"]
    assert set(reasons) == {r.value for r in StopReason}
    assert set(report["job"]["properties"]["operation"]["enum"]) == {o.value for o in Operation}
    summary = load_schema("summary")["properties"]
    assert set(summary["status"]["enum"]) == {s.value for s in JobStatus} - {"running"}
    with pytest.raises(ValueError, match="no schema 'nope'"):
        load_schema("nope")


async def test_outputs_of_finished_jobs_meet_their_schemas(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        rows = [ticket(n) for n in range(1, 251)]
        rows[9]["hs_ticket_priority"] = "SUPER_URGENT"  # pre-flight failure
        rows[19]["no_such_property"] = "x"
        await run_job(cfg(fake, tmp_path / "c", Operation.CREATE, id_property="external_id"), rows)
        assert_accounted(tmp_path / "c", 250)
        report = check_folder(tmp_path / "c")
        assert report["rows"]["failed"] == 2 and report["status"] == "complete"

        upserts = [ticket(n, content="v2") for n in range(200, 301)]
        await run_job(
            cfg(fake, tmp_path / "u", Operation.UPSERT, id_property="external_id"), upserts
        )
        assert_accounted(tmp_path / "u", 101)
        check_folder(tmp_path / "u")

        ids = [line["id"] for line in read_jsonl(tmp_path / "c" / "succeeded.jsonl")][:60]
        reads = [{"id": i} for i in ids] + [{"id": "777777777"}]
        await run_job(
            cfg(fake, tmp_path / "r", Operation.READ, properties_with_history=("subject",)), reads
        )
        assert_accounted(tmp_path / "r", 61)
        check_folder(tmp_path / "r")

        damaged = tmp_path / "in.jsonl"
        damaged.write_bytes(
            orjson.dumps(ticket(1)) + b"\n{not json\n" + orjson.dumps(ticket(3)) + b"\n"
        )
        await run_job(cfg(fake, tmp_path / "d", Operation.CREATE), damaged)
        _, bad = assert_accounted(tmp_path / "d", 3)
        assert bad[2]["line"] == 2 and bad[2]["input"] is None
        check_folder(tmp_path / "d")


async def test_outputs_of_stopped_jobs_meet_their_schemas(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None, daily_limit=1000, daily_used=995)) as fake:
        report = await run_job(
            cfg(fake, tmp_path / "s", Operation.CREATE, concurrency=1),
            [ticket(n) for n in range(1, 2001)],
        )
    assert report.exit_code == 3
    data = check_folder(tmp_path / "s")
    assert data["status"] == "stopped" and data["stop"]["reason"] in {"daily_limit", "daily_budget"}
    assert_report_matches_files(tmp_path / "s")
    status = read_status(tmp_path / "s").to_json()
    validator("status").validate(status)
    assert status["state"] == "stopped"


async def test_a_running_jobs_report_snapshot_meets_the_schema(tmp_path):
    hub = MockHub()
    seen: list[dict[str, Any]] = []

    async def source() -> AsyncIterator[dict[str, str]]:
        for n, row in enumerate(tickets(300), 1):
            yield row
            if n == 200:
                seen.append(await wait_for(lambda: _running_report(tmp_path), limit=10))

    job = Job(mock_config(tmp_path, concurrency=1), source(), transport=hub.transport)
    job.report_every = 0.01
    await job.run()
    validator("report").validate(seen[0])
    check_folder(tmp_path)


async def test_the_summary_line_and_status_json_meet_their_schemas(tmp_path):
    src = tmp_path / "in.csv"
    write_csv(src, 120, bad={4})
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        done = await run_cli(
            *("run", "create", "--input", src, "--out", tmp_path / "a", "--base-url", fake.url),
            *("--rate-limit", 0, "--progress", "none"),
        )
        stopped = await run_cli(
            *("run", "create", "--input", src, "--out", tmp_path / "b", "--base-url", fake.url),
            *("--progress", "none"),
            token="not-the-token",
        )
        status = await run_cli("status", tmp_path / "a", "--json")
    assert (done.returncode, stopped.returncode, status.returncode) == (1, 3, 0)
    v = validator("summary")
    for run in (done, stopped):
        v.validate(orjson.loads(run.stdout.splitlines()[-1]))
    check_folder(tmp_path / "a")
    check_folder(tmp_path / "b")
    validator("status").validate(orjson.loads(status.stdout))
