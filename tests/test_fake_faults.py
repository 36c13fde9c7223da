"""Seeded fault injection of the fake HubSpot, seen from a real aiohttp client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot, FaultPlan

AUTH = {"Authorization": f"Bearer {DEFAULT_FAKE_TOKEN}"}
DROPPED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)


def one_ticket(i: int) -> dict[str, Any]:
    props = {"subject": "s", "hs_pipeline": "0", "hs_pipeline_stage": "1", "external_id": f"e{i}"}
    return {"inputs": [{"properties": props, "objectWriteTraceId": f"t{i}"}]}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as s:
        yield s


async def outcome(http: aiohttp.ClientSession, url: str, i: int, limit_s: float = 5) -> str:
    try:
        async with http.post(
            url, json=one_ticket(i), timeout=aiohttp.ClientTimeout(total=limit_s)
        ) as r:
            await r.read()
            return str(r.status)
    except DROPPED:
        return "dropped"


async def run(plan: FaultPlan, n: int) -> tuple[list[str], FakeHubSpot]:
    async with FakeHubSpot(FakeConfig(rate_limit=None, faults=plan)) as f:
        async with aiohttp.ClientSession(headers=AUTH) as s:
            url = f.url + "/crm/v3/objects/tickets/batch/create"
            results = [await outcome(s, url, i) for i in range(n)]
    return results, f


async def test_5xx_rotate_and_write_nothing() -> None:
    results, f = await run(FaultPlan(p_5xx=1.0), 5)
    assert results == ["500", "502", "503", "504", "500"]
    assert f.records("tickets") == []
    assert f.stats.faults["5xx"] == 5


async def test_423_writes_nothing() -> None:
    results, f = await run(FaultPlan(p_423=1.0), 2)
    assert results == ["423", "423"] and f.records("tickets") == []


async def test_reset_drops_the_connection_before_writing() -> None:
    results, f = await run(FaultPlan(p_reset=1.0), 3)
    assert results == ["dropped"] * 3
    assert f.records("tickets") == []
    assert f.stats.by_status[0] == 3 and f.stats.faults["reset"] == 3


async def test_write_then_fail_stores_the_records() -> None:
    results, f = await run(FaultPlan(p_write_then_fail=1.0, seed=4), 12)
    assert set(results) == {"500", "dropped"}  # both halves of the 50/50 show up
    assert len(f.records("tickets")) == 12  # yet every batch was written
    assert f.stats.faults["write_then_500"] + f.stats.faults["write_then_reset"] == 12


async def test_hang_outlasts_client_timeout_after_writing(http: aiohttp.ClientSession) -> None:
    plan = FaultPlan(p_hang=1.0, hang_seconds=0.5)
    async with FakeHubSpot(FakeConfig(faults=plan)) as f:
        url = f.url + "/crm/v3/objects/tickets/batch/create"
        with pytest.raises(asyncio.TimeoutError):
            await outcome(http, url, 1, limit_s=0.15)
        assert len(f.records("tickets")) == 1  # the classic "timed out but saved" (§11.1)
        assert await outcome(http, url, 2, limit_s=2) == "201"


async def test_faults_are_reproducible_by_seed() -> None:
    def plan(seed: int) -> FaultPlan:
        return FaultPlan(seed=seed, p_5xx=0.2, p_423=0.1, p_reset=0.1, p_write_then_fail=0.2)

    a, fa = await run(plan(7), 30)
    b, fb = await run(plan(7), 30)
    c, _ = await run(plan(8), 30)
    assert a == b and a != c
    assert {"201", "dropped"} <= set(a) and len(set(a)) >= 4
    assert [r["properties"]["external_id"] for r in fa.records("tickets")] == [
        r["properties"]["external_id"] for r in fb.records("tickets")
    ]


def test_fault_probabilities_are_checked() -> None:
    with pytest.raises(ValueError):
        FaultPlan(p_5xx=0.6, p_reset=0.6)
    with pytest.raises(ValueError):
        FaultPlan(p_423=-0.1)
