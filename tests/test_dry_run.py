"""Dry runs against the embedded fake: every local check, the estimates, the optional reads,
and no write (the fake's request log holds reads only, and it stores nothing new)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkops import ConfigError, Job, JobConfig, Operation, Secret, dry_run
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

READ_PATHS = ("/crm/v3/properties/", "/batch/read")


def ticket(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "subject": f"Ticket {n}",
        "hs_pipeline": "0",
        "hs_pipeline_stage": str(1 + n % 4),
        "external_id": f"ext-{n}",
        **extra,
    }


def config(fake: FakeHubSpot, out: Path, op: Operation, **kw: Any) -> JobConfig:
    kw.setdefault("dry_run", True)
    return JobConfig(
        operation=op, token=Secret(DEFAULT_FAKE_TOKEN), base_url=fake.url, out_dir=out, **kw
    )


def assert_only_reads(fake: FakeHubSpot) -> None:
    requests = list(fake.requests)
    assert requests, "the dry run read nothing"
    for r in requests:
        is_read = r.method == "GET" or r.path.endswith("/batch/read")
        assert is_read, f"a dry run sent a write: {r}"


@pytest.fixture
async def fake():
    async with FakeHubSpot(FakeConfig(rate_limit=190, daily_limit=500_000)) as server:
        yield server


async def test_create_dry_run_counts_sends_failures_and_duplicates_and_writes_nothing(
    fake, tmp_path
):
    rows = [ticket(n) for n in range(1, 251)]
    rows[9]["hs_ticket_priority"] = "SUPER_URGENT"  # row 10: not an option
    del rows[19]["subject"]  # row 20: required on create
    rows[29]["external_id"] = "ext-1"  # row 30: the unique value of row 1
    rows[39] = {"subject": "x", "hs_pipeline_stage": "1"}  # row 40: no id property value
    out = tmp_path / "dry"
    report = await dry_run(config(fake, out, Operation.CREATE, id_property="external_id"), rows)

    assert report.rows_read == 250
    assert report.would_fail == 3
    assert report.would_send == 247
    assert [f["row"] for f in report.first_failures] == [10, 20, 40]
    assert report.failed_by_category == {"INPUT_ERROR": 1, "PREFLIGHT_VALIDATION": 2}
    assert report.duplicate_keys == 1
    assert report.first_duplicates[0] == {"row": 30, "same_as": 1, "key": "ext-1"}
    est = report.estimate
    assert est.write_requests == 3  # 247 rows in batches of 100
    assert (est.per_window, est.limit_source) == (190, "learned")
    assert est.wall_time_s == pytest.approx(3 * est.window_s / 190, abs=0.1)
    assert est.daily_limit == 500_000
    assert est.share_of_daily_limit == pytest.approx(3 / 500_000, abs=1e-4)
    assert report.exit_code == 1

    assert_only_reads(fake)
    assert fake.stats.requests == 1  # the schema read, nothing else
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]  # no journal, no results
    on_disk = orjson.loads((out / "report.json").read_bytes())
    assert on_disk["dry_run"] is True and on_disk["would_send"] == 247
    assert on_disk["exit_code"] == 1


async def test_dry_run_reads_count_existing_records_at_read_cost(fake, tmp_path):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 151)])
    rows = [{"id": i, "content": f"updated {i}"} for i in ids]
    # 150 unknown ids after them: a batch of 100 of which none exists is HubSpot's 404.
    rows += [{"id": str(900_000_000 + n), "content": "x"} for n in range(150)]
    report = await dry_run(config(fake, tmp_path, Operation.UPDATE, dry_run_reads=True), rows)
    assert report.stop is None
    assert report.reads is not None
    assert (report.reads.exist, report.reads.missing) == (150, 150)
    assert report.reads.first_missing == tuple(range(151, 171))
    assert report.reads.read_requests == 3
    assert report.requests_made == {"dry_run_read": 3, "schema": 1}
    assert_only_reads(fake)
    for i in ids[:3]:
        assert fake.stored("tickets", i)["properties"].get("content") is None


async def test_dry_run_reads_for_upsert_tell_creates_from_updates(fake, tmp_path):
    fake.seed_records("tickets", [ticket(n) for n in range(1, 11)])
    rows = [ticket(n) for n in range(1, 16)]  # 1..10 exist, 11..15 do not
    report = await dry_run(
        config(fake, tmp_path, Operation.UPSERT, id_property="external_id", dry_run_reads=True),
        rows,
    )
    assert report.reads is not None
    assert (report.reads.exist, report.reads.missing) == (10, 5)
    assert_only_reads(fake)


async def test_a_bad_header_stops_the_dry_run_with_one_message(fake, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("subjekt,hs_pipeline_stage\nT1,1\n")
    report = await dry_run(config(fake, tmp_path / "out", Operation.CREATE), src)
    assert report.stop is not None and "subjekt" in report.stop.message
    assert report.exit_code == 2


async def test_configured_and_unlimited_rates_in_the_estimate(fake, tmp_path):
    rows = [ticket(n) for n in range(1, 1001)]
    report = await dry_run(config(fake, tmp_path, Operation.CREATE, rate_limit=50), rows)
    assert (report.estimate.per_window, report.estimate.limit_source) == (50, "configured")
    assert report.estimate.wall_time_s == pytest.approx(10 * report.estimate.window_s / 50)
    report = await dry_run(config(fake, tmp_path, Operation.CREATE, rate_limit=0), rows)
    assert report.estimate.wall_time_s is None
    assert report.exit_code == 0


def test_a_job_refuses_a_dry_run_config(tmp_path):
    cfg = JobConfig(
        operation=Operation.CREATE, token=Secret("t" * 20), out_dir=tmp_path, dry_run=True
    )
    with pytest.raises(ConfigError, match="dry_run"):
        Job(cfg, [])


def test_dry_run_reads_only_where_records_are_addressed(tmp_path):
    with pytest.raises(ConfigError, match="dry_run_reads"):
        JobConfig(
            operation=Operation.CREATE, token=Secret("t" * 20), dry_run=True, dry_run_reads=True
        )
    with pytest.raises(ConfigError, match="needs dry_run"):
        JobConfig(operation=Operation.UPDATE, token=Secret("t" * 20), dry_run_reads=True)
