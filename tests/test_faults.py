"""Every record accounted for under injected faults: 5xx, resets, write-then-fail, 423, invalid
rows, shuffled results. Nothing lost, nothing created twice, no valid row reported failed."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from bulkops import JobConfig, Operation, Secret, run_job
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot, FaultPlan

from .accounting import assert_accounted

FAULTS = FaultPlan(seed=11, p_5xx=0.05, p_reset=0.01, p_write_then_fail=0.02, p_423=0.01)
ROWS = 3000


def rows_with_invalid(seed: int) -> tuple[list[dict[str, Any]], set[int]]:
    rng = random.Random(seed)
    rows, invalid = [], set()
    for n in range(1, ROWS + 1):
        row = {
            "subject": f"Ticket {n}",
            "hs_pipeline": "0",
            "hs_pipeline_stage": "1",
            "external_id": f"soak-{n}",
            "hs_ticket_priority": "HIGH",
        }
        if rng.random() < 0.03:
            row["hs_ticket_priority"] = "NOT_A_PRIORITY"
            invalid.add(n)
        rows.append(row)
    return rows, invalid


def soak_config(fake: FakeHubSpot, out, op: Operation, **kw: Any) -> JobConfig:
    return JobConfig(
        operation=op,
        token=Secret(DEFAULT_FAKE_TOKEN),
        base_url=fake.url,
        out_dir=out,
        rate_limit=0,
        batch_size=10,
        backoff_base=0.005,
        backoff_cap=0.05,
        max_attempts=12,
        timeout=5,
        **kw,
    )


def assert_no_duplicates(fake: FakeHubSpot) -> None:
    values = Counter(r["properties"].get("external_id") for r in fake.records("tickets"))
    twice = [v for v, c in values.items() if c > 1]
    assert not twice, f"created twice: {twice[:5]}"
    assert max(fake.stats.creates_by_unique.values(), default=0) <= 1


@pytest.mark.parametrize("preflight", [True, False])
async def test_create_with_id_property_under_faults(tmp_path, preflight):
    rows, invalid = rows_with_invalid(1)
    async with FakeHubSpot(FakeConfig(rate_limit=None, faults=FAULTS)) as fake:
        report = await run_job(
            soak_config(
                fake, tmp_path, Operation.CREATE, id_property="external_id", preflight=preflight
            ),
            rows,
        )
        ok, bad = assert_accounted(tmp_path, ROWS)
        assert set(bad) == invalid, "a valid row failed or an invalid one passed"
        for line in bad.values():
            assert "hs_ticket_priority" in line["error"]["message"]
        assert_no_duplicates(fake)
        for row, line in ok.items():
            stored = fake.record("tickets", line["id"])
            assert stored is not None and stored["properties"]["external_id"] == f"soak-{row}"
        assert len(fake.records("tickets")) == ROWS - len(invalid)
        faults = fake.stats.faults
        assert faults["write_then_500"] + faults["write_then_reset"] > 0
        assert report.requests.by_kind.get("verify", 0) > 0  # unknown outcomes were read back
        print(
            f"\ncreate preflight={preflight}: rows={ROWS} duplicates=0 "
            f"requests={report.to_json()['requests']} faults={dict(faults)}"
        )


async def test_create_without_id_property_never_resends_blindly(tmp_path):
    rows, _ = rows_with_invalid(2)
    for row in rows:
        row["hs_ticket_priority"] = "HIGH"
    async with FakeHubSpot(FakeConfig(rate_limit=None, faults=FAULTS)) as fake:
        await run_job(soak_config(fake, tmp_path, Operation.CREATE), rows)
        ok, bad = assert_accounted(tmp_path, ROWS)
        assert bad, "the fault plan should have left some creates ambiguous"
        assert {b["error"]["category"] for b in bad.values()} == {"AMBIGUOUS"}
        assert "--id-property" in next(iter(bad.values()))["error"]["message"]
        assert_no_duplicates(fake)
        # Every succeeded id is real, and nothing succeeded was created twice.
        stored = {r["id"] for r in fake.records("tickets")}
        assert {line["id"] for line in ok.values()} <= stored


@pytest.mark.parametrize("op", [Operation.UPSERT, Operation.UPDATE, Operation.ARCHIVE])
async def test_idempotent_operations_under_faults(tmp_path, op):
    rows, invalid = rows_with_invalid(3)
    async with FakeHubSpot(FakeConfig(rate_limit=None, faults=FAULTS)) as fake:
        seeded = fake.seed_records(
            "tickets",
            [{**r, "hs_ticket_priority": "LOW"} for r in rows[: ROWS // 2]],
        )
        if op is Operation.UPSERT:
            job_rows = rows
            kw: dict[str, Any] = {"id_property": "external_id"}
        elif op is Operation.UPDATE:
            job_rows = [
                {"id": i, "hs_ticket_priority": r["hs_ticket_priority"]}
                for i, r in zip(seeded, rows, strict=False)
            ]
            invalid = {n for n in invalid if n <= len(seeded)}
            kw = {}
        else:
            job_rows = [{"id": i} for i in seeded]
            invalid = set()
            kw = {}
        report = await run_job(soak_config(fake, tmp_path, op, **kw), job_rows)
        ok, bad = assert_accounted(tmp_path, len(job_rows))
        assert set(bad) == invalid
        assert_no_duplicates(fake)
        if op is Operation.UPSERT:
            assert len(fake.records("tickets")) == ROWS - len(invalid - set(range(1, 1501)))
            for row, line in ok.items():
                assert fake.stored("tickets", line["id"])["properties"]["external_id"] == (
                    f"soak-{row}"
                )
        elif op is Operation.ARCHIVE:
            assert fake.records("tickets") == []
        else:
            for line in ok.values():
                assert fake.stored("tickets", line["id"])["properties"]["hs_ticket_priority"] == (
                    "HIGH"
                )
        assert report.to_json()["requests"]["resent_batches"] > 0
