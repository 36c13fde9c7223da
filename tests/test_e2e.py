"""Each operation, both dialects, end to end against the embedded fake HubSpot. The accounting
invariant is asserted on every job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bulkops import Api, JobConfig, Operation, Secret, run_job
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot, PropertyDef

from .accounting import assert_accounted


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


@pytest.fixture
async def fake():
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as server:
        yield server


@pytest.mark.parametrize("preflight", [True, False])
async def test_create_maps_ids_to_rows_and_reports_invalid_rows(fake, tmp_path, preflight):
    rows = [ticket(n) for n in range(1, 451)]
    rows[9]["hs_ticket_priority"] = "SUPER_URGENT"  # row 10: not an option
    rows[99]["customer_score"] = "lots"  # row 100: not a number
    del rows[199]["subject"]  # row 200: required on create
    rows[299]["no_such_property"] = "x"  # row 300
    report = await run_job(
        config(fake, tmp_path, Operation.CREATE, preflight=preflight, id_property="external_id"),
        rows,
    )
    ok, bad = assert_accounted(tmp_path, 450)
    assert sorted(bad) == [10, 100, 200, 300]
    expected = "PREFLIGHT_VALIDATION" if preflight else "VALIDATION_ERROR"
    assert {b["error"]["category"] for b in bad.values()} == {expected}
    assert "hs_ticket_priority" in bad[10]["error"]["message"]
    assert "subject" in bad[200]["error"]["message"]
    for row, line in ok.items():
        stored = fake.record("tickets", line["id"])
        assert stored is not None
        assert stored["properties"]["external_id"] == f"ext-{row}"  # the id is this row's
    assert report.exit_code == 1
    assert report.requests.by_kind.get("isolation", 0) == 0  # trace ids made it 207, no splitting


async def test_create_without_echoed_trace_ids_still_maps_rows(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None, echo_trace_ids=False)) as fake:
        rows = [ticket(n) for n in range(1, 301)]
        await run_job(config(fake, tmp_path, Operation.CREATE), rows)
        ok, bad = assert_accounted(tmp_path, 300)
        assert not bad
        for row, line in ok.items():
            assert fake.stored("tickets", line["id"])["properties"]["subject"] == f"Ticket {row}"


async def test_update_by_id_reports_missing_records(fake, tmp_path):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 151)])
    rows = [{"id": i, "content": f"updated {i}"} for i in ids]
    rows += [{"id": "999999999", "content": "x"}, {"id": "888888888", "content": "y"}]
    report = await run_job(config(fake, tmp_path, Operation.UPDATE), rows)
    _ok, bad = assert_accounted(tmp_path, 152)
    assert {b["error"]["category"] for b in bad.values()} == {"OBJECT_NOT_FOUND"}
    assert sorted(bad) == [151, 152]
    assert all(fake.stored("tickets", i)["properties"]["content"] == f"updated {i}" for i in ids)
    assert report.exit_code == 1


async def test_update_by_unique_property(fake, tmp_path):
    fake.seed_records("tickets", [ticket(n) for n in range(1, 51)])
    rows = [{"external_id": f"ext-{n}", "content": f"c{n}"} for n in range(1, 51)]
    await run_job(config(fake, tmp_path, Operation.UPDATE, id_property="external_id"), rows)
    ok, bad = assert_accounted(tmp_path, 50)
    assert not bad
    for row, line in ok.items():
        assert fake.stored("tickets", line["id"])["properties"]["content"] == f"c{row}"


async def test_upsert_says_new_or_updated(fake, tmp_path):
    fake.seed_records("tickets", [ticket(n) for n in range(1, 101)])
    rows = [ticket(n, content="v2") for n in range(51, 251)]
    report = await run_job(
        config(fake, tmp_path, Operation.UPSERT, id_property="external_id"), rows
    )
    ok, bad = assert_accounted(tmp_path, 200)
    assert not bad
    assert {r for r, line in ok.items() if line["new"] is False} == set(range(1, 51))
    assert {r for r, line in ok.items() if line["new"] is True} == set(range(51, 201))
    assert report.to_json()["written"] == {"created": 150, "updated": 50, "new_unknown": 0}
    assert len(fake.records("tickets")) == 250


async def test_archive(fake, tmp_path):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 121)])
    await run_job(config(fake, tmp_path, Operation.ARCHIVE), [{"id": i} for i in ids[:100]])
    ok, _ = assert_accounted(tmp_path, 100)
    assert len(fake.records("tickets")) == 20
    assert {line["id"] for line in ok.values()} == set(ids[:100])


async def test_read_chosen_properties_and_missing_ids(fake, tmp_path):
    ids = fake.seed_records("tickets", [ticket(n, content=f"c{n}") for n in range(1, 131)])
    rows = [{"id": i} for i in ids] + [{"id": "777777777"}]
    await run_job(config(fake, tmp_path, Operation.READ, properties=("subject", "content")), rows)
    ok, bad = assert_accounted(tmp_path, 131)
    assert bad[131]["error"]["category"] == "OBJECT_NOT_FOUND"
    assert ok[7]["properties"]["content"] == "c7" and ok[7]["id"] == ids[6]


async def test_read_with_history_uses_batches_of_50(fake, tmp_path):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 121)])
    report = await run_job(
        config(fake, tmp_path, Operation.READ, properties_with_history=("subject",)),
        [{"id": i} for i in ids],
    )
    assert_accounted(tmp_path, 120)
    assert report.requests.by_kind.get("write", 0) == 3  # 50 + 50 + 20


@pytest.mark.parametrize("object_type", ["contacts", "0-3", "2-123"])
async def test_other_object_types(tmp_path, object_type):
    custom = {
        "2-123": [
            PropertyDef(name="name", label="Name", type="string", field_type="text"),
            PropertyDef(name="code", label="Code", type="string", field_type="text", unique=True),
        ]
    }
    async with FakeHubSpot(FakeConfig(rate_limit=None, schemas=custom)) as fake:
        if object_type == "contacts":
            rows = [{"email": f"P{n}@Example.com", "firstname": f"p{n}"} for n in range(1, 61)]
            cfg = config(
                fake, tmp_path, Operation.UPSERT, object_type="contacts", id_property="email"
            )
        elif object_type == "0-3":
            rows = [{"dealname": f"d{n}", "amount": str(n * 10)} for n in range(1, 61)]
            cfg = config(fake, tmp_path, Operation.CREATE, object_type="0-3")
        else:
            rows = [{"name": f"n{n}", "code": f"C{n}"} for n in range(1, 61)]
            cfg = config(fake, tmp_path, Operation.CREATE, object_type="2-123", id_property="code")
        await run_job(cfg, rows)
        _ok, bad = assert_accounted(tmp_path, 60)
        assert not bad
        assert len(fake.records(object_type)) == 60


async def test_create_with_associations(fake, tmp_path):
    contact_ids = fake.seed_records("contacts", [{"email": "a@b.c"}])
    rows = [
        {
            "properties": ticket(1),
            "associations": [
                {
                    "to": {"id": contact_ids[0]},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16}],
                }
            ],
        }
    ]
    await run_job(config(fake, tmp_path, Operation.CREATE), rows)
    ok, _ = assert_accounted(tmp_path, 1)
    assert fake.record("tickets", ok[1]["id"])["associations"][0]["to"]["id"] == contact_ids[0]


async def test_non_unique_id_property_stops_before_sending(fake, tmp_path):
    report = await run_job(
        config(fake, tmp_path, Operation.UPSERT, id_property="subject"), [ticket(1)]
    )
    assert report.stop_reason == "config" and report.exit_code == 2
    assert "unique" in report.to_json()["stop"]["message"]
    assert fake.stats.by_endpoint.get("v3 tickets upsert", 0) == 0


async def test_v1_dialect_isolates_poison_rows(fake, tmp_path):
    rows = [ticket(n) for n in range(1, 1001)]
    for n in (17, 333, 334, 901):
        rows[n - 1]["hs_pipeline_stage"] = "99"  # not a stage
    report = await run_job(
        config(fake, tmp_path, Operation.CREATE, api=Api.V1, preflight=False), rows
    )
    ok, bad = assert_accounted(tmp_path, 1000)
    assert sorted(bad) == [17, 333, 334, 901]
    assert all("hs_pipeline_stage" in b["error"]["message"] for b in bad.values())
    assert len(fake.records("tickets")) == 996
    for row, line in ok.items():
        assert fake.stored("tickets", line["id"])["properties"]["subject"] == f"Ticket {row}"
    assert 0 < report.requests.by_kind.get("isolation", 0) <= 60


async def test_v1_update_read_delete(fake, tmp_path):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 41)])
    rows = [{"id": i, "content": "v1"} for i in ids] + [{"id": "55555555", "content": "x"}]
    await run_job(config(fake, tmp_path / "u", Operation.UPDATE, api=Api.V1), rows)
    _, bad = assert_accounted(tmp_path / "u", 41)
    assert list(bad) == [41]
    assert fake.stored("tickets", ids[0])["properties"]["content"] == "v1"

    await run_job(
        config(fake, tmp_path / "r", Operation.READ, api=Api.V1, properties=("content",)),
        [{"id": i} for i in ids[:5]],
    )
    ok, _ = assert_accounted(tmp_path / "r", 5)
    assert ok[1]["properties"]["content"] == "v1"

    await run_job(
        config(fake, tmp_path / "d", Operation.ARCHIVE, api=Api.V1), [{"id": i} for i in ids[:10]]
    )
    assert_accounted(tmp_path / "d", 10)
    assert fake.record("tickets", ids[0]) is None  # v1 delete is permanent
    assert len(fake.records("tickets", include_archived=True)) == 30


async def test_bad_token_stops_at_once(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        cfg = JobConfig(
            operation=Operation.CREATE,
            token=Secret("wrong"),
            base_url=fake.url,
            out_dir=tmp_path,
            rate_limit=0,
        )
        report = await run_job(cfg, [ticket(n) for n in range(1, 1001)])
        assert report.stop_reason == "auth" and report.exit_code == 3
        assert fake.stats.requests == 1
        assert "401" in report.to_json()["stop"]["message"]


async def test_unreachable_url_stops_at_once(tmp_path):
    cfg = JobConfig(
        operation=Operation.CREATE,
        token=Secret("t"),
        base_url="http://127.0.0.1:9",
        out_dir=tmp_path,
        rate_limit=0,
    )
    report = await run_job(cfg, [ticket(1)])
    assert report.stop_reason == "unreachable" and report.exit_code == 2
    assert report.to_json()["requests"]["total"] == 1


async def test_writes_to_one_key_never_share_a_batch_and_keep_input_order(fake, tmp_path):
    # Every key appears three times, with its versions spread through the input.
    rows = [ticket(n % 100, content=f"v{n}") for n in range(1, 301)]
    report = await run_job(
        config(fake, tmp_path, Operation.UPSERT, id_property="external_id"), rows
    )
    _, bad = assert_accounted(tmp_path, 300)
    assert not bad
    assert report.to_json()["requests"]["by_status"].get("400", 0) == 0  # no duplicate-id rejection
    for key in range(100):
        last = max(n for n in range(1, 301) if n % 100 == key)
        (stored,) = [
            r for r in fake.records("tickets") if r["properties"]["external_id"] == f"ext-{key}"
        ]
        assert stored["properties"]["content"] == f"v{last}"  # the last write won


async def test_v1_update_with_poison_rows_and_a_missing_ticket(fake, tmp_path):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 1001)])
    rows = [{"id": i, "hs_pipeline_stage": "2"} for i in ids]
    rows[99]["hs_pipeline_stage"] = "77"
    rows[500]["hs_ticket_priority"] = "NOPE"
    rows[900]["id"] = "123456789"  # no such ticket
    report = await run_job(
        config(fake, tmp_path, Operation.UPDATE, api=Api.V1, preflight=False), rows
    )
    ok, bad = assert_accounted(tmp_path, 1000)
    assert sorted(bad) == [100, 501, 901]
    assert "hs_pipeline_stage" in bad[100]["error"]["message"]
    assert bad[901]["error"]["category"] == "OBJECT_NOT_FOUND"
    assert all(
        fake.stored("tickets", line["id"])["properties"]["hs_pipeline_stage"] == "2"
        for line in ok.values()
    )
    # Each bad record named by value or id is sent alone: 2 requests per rejected batch.
    assert report.requests.by_kind.get("isolation", 0) <= 6


@pytest.mark.parametrize("preflight", [True, False])
@pytest.mark.parametrize(("budget", "share"), [(4, None), (None, 0.5)])
async def test_daily_budget_leaves_quota_to_others(tmp_path, budget, share, preflight):
    # The account has 10 requests left today; the job may use 4 of them, or half.
    async with FakeHubSpot(FakeConfig(rate_limit=None, daily_limit=1000, daily_used=990)) as fake:
        cfg = config(
            fake,
            tmp_path,
            Operation.CREATE,
            daily_budget=budget,
            daily_share=share,
            concurrency=1,
            preflight=preflight,
        )
        report = await run_job(cfg, [ticket(n) for n in range(1, 2001)])
        assert report.stop_reason == "daily_budget" and report.exit_code == 3
        used = 4 if budget else 5  # 50% of the 10 left at start
        assert report.to_json()["requests"]["total"] == used
        writes = used - 1 if preflight else used  # the schema request counts too
        assert report.to_json()["rows"]["succeeded"] == writes * 100
        assert fake.stats.rate_limited.get("DAILY", 0) == 0  # stopped before HubSpot had to


async def test_progress_callback_sees_the_job_through(fake, tmp_path):
    seen: list[Any] = []
    report = await run_job(
        config(fake, tmp_path, Operation.CREATE),
        [ticket(n) for n in range(1, 301)],
        on_progress=seen.append,
        progress_interval=0.01,
    )
    assert seen and seen[-1].succeeded == 300 and seen[-1].reading_done
    assert report.succeeded == 300
