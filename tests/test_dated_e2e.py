"""Jobs on the date-versioned API and on v3, end to end against the embedded fake: the paths
each version sends (the fake records them), the 2026-09 validation rules, and the accounting
invariant on every job."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bulkops import JobConfig, Operation, Secret, run_job
from bulkops._versions import ApiVersion
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot, FaultPlan, ValidationRule

from .accounting import assert_accounted

RULE = ValidationRule.parse("hs_ticket_priority=HIGH requires content")
VERSIONS = ["2026-09", "v3"]


def ticket(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "subject": f"Ticket {n}",
        "hs_pipeline": "0",
        "hs_pipeline_stage": str(1 + n % 4),
        "external_id": f"ext-{n}",
        **extra,
    }


def config(fake: FakeHubSpot, out: Path, op: Operation, **kw: Any) -> JobConfig:
    kw.setdefault("rate_limit", 0)
    return JobConfig(
        operation=op, token=Secret(DEFAULT_FAKE_TOKEN), base_url=fake.url, out_dir=out, **kw
    )


def objects(version: str, op: str) -> str:
    return ApiVersion.parse(version).objects_path("tickets", op)


def schema(version: str) -> str:
    return ApiVersion.parse(version).properties_path("tickets")


@pytest.fixture
async def fake():
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as server:
        yield server


@pytest.mark.parametrize("version", VERSIONS)
async def test_create(fake, tmp_path, version):
    rows = [ticket(n) for n in range(1, 151)]
    cfg = config(fake, tmp_path, Operation.CREATE, api_version=ApiVersion.parse(version))
    await run_job(cfg, rows)
    ok, bad = assert_accounted(tmp_path, 150)
    assert not bad
    assert fake.record("tickets", ok[7]["id"])["properties"]["subject"] == "Ticket 7"
    assert fake.stats.paths == Counter({schema(version): 1, objects(version, "create"): 2})


@pytest.mark.parametrize("version", VERSIONS)
async def test_update(fake, tmp_path, version):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 121)])
    rows = [{"id": i, "content": f"c{i}"} for i in ids]
    await run_job(
        config(fake, tmp_path, Operation.UPDATE, api_version=ApiVersion.parse(version)), rows
    )
    _, bad = assert_accounted(tmp_path, 120)
    assert not bad
    assert fake.record("tickets", ids[0])["properties"]["content"] == f"c{ids[0]}"
    assert fake.stats.paths == Counter({schema(version): 1, objects(version, "update"): 2})


@pytest.mark.parametrize("version", VERSIONS)
async def test_upsert(fake, tmp_path, version):
    fake.seed_records("tickets", [ticket(n) for n in range(1, 11)])
    cfg = config(
        fake,
        tmp_path,
        Operation.UPSERT,
        id_property="external_id",
        api_version=ApiVersion.parse(version),
    )
    report = await run_job(cfg, [ticket(n, content="v2") for n in range(1, 31)])
    _, bad = assert_accounted(tmp_path, 30)
    assert not bad
    assert report.data["written"] == {"created": 20, "updated": 10, "new_unknown": 0}
    assert fake.stats.paths == Counter({schema(version): 1, objects(version, "upsert"): 1})


@pytest.mark.parametrize("version", VERSIONS)
async def test_archive(fake, tmp_path, version):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 21)])
    cfg = config(
        fake, tmp_path, Operation.ARCHIVE, api_version=ApiVersion.parse(version), preflight=False
    )
    await run_job(cfg, [{"id": i} for i in ids[:15]])
    assert_accounted(tmp_path, 15)
    assert len(fake.records("tickets")) == 5
    assert fake.stats.paths == Counter({objects(version, "archive"): 1})


@pytest.mark.parametrize("version", VERSIONS)
async def test_read(fake, tmp_path, version):
    ids = fake.seed_records("tickets", [ticket(n, content=f"c{n}") for n in range(1, 6)])
    cfg = config(
        fake,
        tmp_path,
        Operation.READ,
        api_version=ApiVersion.parse(version),
        properties=("content",),
    )
    await run_job(cfg, [{"id": i} for i in ids] + [{"id": "777777777"}])
    ok, bad = assert_accounted(tmp_path, 6)
    assert ok[2]["properties"]["content"] == "c2"
    assert bad[6]["error"]["category"] == "OBJECT_NOT_FOUND"
    assert fake.stats.paths == Counter({schema(version): 1, objects(version, "read"): 1})


async def test_the_default_sends_only_dated_paths(tmp_path):
    # Served versions without v3 or v1: any legacy request would be a 404 and fail the job.
    cfg = FakeConfig(rate_limit=None, api_versions=frozenset({"2026-09"}))
    async with FakeHubSpot(cfg) as fake:
        report = await run_job(
            config(fake, tmp_path, Operation.CREATE, id_property="external_id"),
            [ticket(n) for n in range(1, 51)],
        )
        assert_accounted(tmp_path, 50)
        assert report.exit_code == 0
        assert set(fake.stats.paths) == {
            "/crm/properties/2026-09/tickets",
            "/crm/objects/2026-09/tickets/batch/create",
        }


async def test_read_backs_of_unknown_creates_use_the_jobs_version(tmp_path):
    # Writes that are applied and then answered 500 leave the outcome unknown: the engine
    # settles them by reading on the unique property, on the job's version too.
    faults = FaultPlan(seed=3, p_write_then_fail=0.3)
    async with FakeHubSpot(FakeConfig(rate_limit=None, faults=faults)) as fake:
        cfg = config(
            fake,
            tmp_path,
            Operation.CREATE,
            id_property="external_id",
            backoff_base=0.0,
            backoff_cap=0.0,
        )
        await run_job(cfg, [ticket(n) for n in range(1, 801)])
        _, bad = assert_accounted(tmp_path, 800)
        assert not bad
        assert fake.stats.paths["/crm/objects/2026-09/tickets/batch/read"] >= 1
        assert not [p for p in fake.stats.paths if "/v3/" in p]
        assert max(fake.stats.creates_by_unique.values()) == 1  # nothing created twice


def rule_rows(*, content: bool = False) -> list[dict[str, Any]]:
    """200 tickets; rows 5, 77 and 150 are HIGH without content. ``content``: every other row
    has content."""
    rows = [ticket(n, content=f"c{n}") if content else ticket(n) for n in range(1, 201)]
    for n in (5, 77, 150):
        rows[n - 1]["hs_ticket_priority"] = "HIGH"  # and no content: breaks the rule
        rows[n - 1].pop("content", None)
    rows[9]["hs_ticket_priority"] = "HIGH"
    rows[9]["content"] = "details"  # row 10 keeps the rule
    return rows


@pytest.mark.parametrize("preflight", [True, False])
async def test_a_2026_09_create_writes_the_rest_and_fails_rule_breakers(tmp_path, preflight):
    async with FakeHubSpot(FakeConfig(rate_limit=None, validation_rules=[RULE])) as fake:
        report = await run_job(
            config(fake, tmp_path, Operation.CREATE, preflight=preflight), rule_rows()
        )
        _, bad = assert_accounted(tmp_path, 200)
        assert sorted(bad) == [5, 77, 150]
        for line in bad.values():
            assert line["error"]["category"] == "VALIDATION_ERROR"
            assert (
                "content is required when hs_ticket_priority is HIGH" in (line["error"]["message"])
            )
        assert len(fake.records("tickets")) == 197
        assert report.exit_code == 1
        assert report.data["requests"]["isolation"] == 0  # a 207 names each record


async def test_the_same_job_on_v3_is_not_checked_against_the_rules(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None, validation_rules=[RULE])) as fake:
        cfg = config(fake, tmp_path, Operation.CREATE, api_version=ApiVersion.parse("v3"))
        await run_job(cfg, rule_rows())
        _, bad = assert_accounted(tmp_path, 200)
        assert not bad


async def test_a_whole_batch_400_for_a_rule_is_isolated(tmp_path):
    # Should HubSpot refuse the whole batch for a broken rule even with trace ids (not known),
    # the dispatcher's isolation sends the records lacking the named property alone. (When
    # most rows lack it without meeting the condition, every one of them is a suspect: that
    # is the dispatcher's heuristic, outside this test.)
    cfg = FakeConfig(rate_limit=None, validation_rules=[RULE], validation_rules_multi_status=False)
    async with FakeHubSpot(cfg) as fake:
        report = await run_job(config(fake, tmp_path, Operation.CREATE), rule_rows(content=True))
        _, bad = assert_accounted(tmp_path, 200)
        assert sorted(bad) == [5, 77, 150]
        assert all("content is required" in b["error"]["message"] for b in bad.values())
        assert len(fake.records("tickets")) == 197
        assert fake.stats.by_status[400] == 2 + 3  # two batches, then each breaker alone
        # Each breaker alone, and the rest of each batch together: (2 + 1) + (1 + 1).
        assert report.data["requests"]["isolation"] == 5


@pytest.mark.parametrize("version", VERSIONS)
async def test_associations_without_a_category_are_written(fake, tmp_path, version):
    contact = fake.seed_records("contacts", [{"email": "a@b.c"}])[0]
    rows = [
        {
            "properties": ticket(1),
            "associations": [{"to": {"id": contact}, "types": [{"associationTypeId": 16}]}],
        },
        {"subject": "t2", "hs_pipeline": "0", "hs_pipeline_stage": "1", "assoc:16": contact},
    ]
    cfg = config(fake, tmp_path, Operation.CREATE, api_version=ApiVersion.parse(version))
    await run_job(cfg, rows)
    ok, bad = assert_accounted(tmp_path, 2)
    assert not bad
    for line in ok.values():
        [assoc] = fake.record("tickets", line["id"])["associations"]
        assert assoc["to"]["id"] == contact
        assert assoc["types"] == [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16}
        ]
