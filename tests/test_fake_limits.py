"""Rate limits of the fake HubSpot over real HTTP (docs/hubspot-api.md §7)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

AUTH = {"Authorization": f"Bearer {DEFAULT_FAKE_TOKEN}"}
PROPS = "/crm/v3/properties/tickets"  # the cheapest counted request


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as s:
        yield s


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any, Any]:
    async with http.get(url) as r:
        return r.status, await r.json(), r.headers


class ManualClock:
    """The fake's clock, stepped by the test: windows age without anyone sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_rolling_window_429_headers_and_recovery(http: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    cfg = FakeConfig(rate_limit=5, interval_ms=500, daily_limit=100, clock=clock)
    async with FakeHubSpot(cfg) as f:
        remaining = []
        for _ in range(5):
            status, _, h = await get(http, f.url + PROPS)
            assert status == 200
            assert h["X-HubSpot-RateLimit-Max"] == "5"
            assert h["X-HubSpot-RateLimit-Interval-Milliseconds"] == "500"
            remaining.append(int(h["X-HubSpot-RateLimit-Remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        status, body, h = await get(http, f.url + PROPS)
        assert status == 429
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        assert body["errorType"] == "RATE_LIMIT" and body["policyName"] == "TEN_SECONDLY_ROLLING"
        assert body["status"] == "error" and "category" not in body
        assert body["groupName"].startswith("publicapi:private_app-api-calls-ten-secondly:")
        assert body["correlationId"] == h["X-HubSpot-Correlation-Id"]
        assert h["X-HubSpot-RateLimit-Remaining"] == "0"
        assert h["X-HubSpot-RateLimit-Daily-Remaining"] == "95"  # the 429 was not counted
        assert "Retry-After" not in h
        clock.now += 0.55
        status, _, h = await get(http, f.url + PROPS)
        assert status == 200 and h["X-HubSpot-RateLimit-Remaining"] == "4"
        assert f.stats.rate_limited["TEN_SECONDLY_ROLLING"] == 1
        assert len(f.stats.arrivals[DEFAULT_FAKE_TOKEN]) == 6
        assert f.max_requests_in_window() == 5
        assert f.max_requests_in_window(window_s=5.0) == 6


async def test_window_is_rolling_not_fixed(http: aiohttp.ClientSession) -> None:
    clock = ManualClock()
    async with FakeHubSpot(FakeConfig(rate_limit=4, interval_ms=600, clock=clock)) as f:
        for _ in range(2):
            assert (await get(http, f.url + PROPS))[0] == 200
        clock.now += 0.35
        for _ in range(2):
            assert (await get(http, f.url + PROPS))[0] == 200
        clock.now += 0.35  # first pair aged out, second pair still inside
        statuses = [(await get(http, f.url + PROPS))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]


async def test_retry_after_is_optional(http: aiohttp.ClientSession) -> None:
    cfg = FakeConfig(rate_limit=2, interval_ms=2_500, retry_after_on_429=True)
    async with FakeHubSpot(cfg) as f:
        for _ in range(2):
            await get(http, f.url + PROPS)
        status, _, h = await get(http, f.url + PROPS)
        assert status == 429 and h["Retry-After"] == "3"


async def test_daily_limit(http: aiohttp.ClientSession) -> None:
    cfg = FakeConfig(rate_limit=None, daily_limit=10, daily_used=8)
    async with FakeHubSpot(cfg) as f:
        status, _, h = await get(http, f.url + PROPS)
        assert status == 200
        assert h["X-HubSpot-RateLimit-Daily"] == "10"
        assert h["X-HubSpot-RateLimit-Daily-Remaining"] == "1"
        assert "X-HubSpot-RateLimit-Max" not in h  # no rolling limit, no rolling headers
        await get(http, f.url + PROPS)
        status, body, h = await get(http, f.url + PROPS)
        assert status == 429
        assert body["policyName"] == "DAILY" and body["errorType"] == "RATE_LIMIT"
        assert body["message"] == "You have reached your daily limit."
        assert body["requestId"]
        assert h["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
        assert f.stats.rate_limited == {"DAILY": 1}


async def test_unlimited_sends_no_limit_headers(http: aiohttp.ClientSession) -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=None, daily_limit=None)) as f:
        _, _, h = await get(http, f.url + PROPS)
    assert not [k for k in h if k.lower().startswith("x-hubspot-ratelimit")]


async def test_secondly_limit(http: aiohttp.ClientSession) -> None:
    async with FakeHubSpot(FakeConfig(secondly_limit=2)) as f:
        statuses = [(await get(http, f.url + PROPS))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]
        _, body, h = await get(http, f.url + PROPS)
        assert body["policyName"] == "SECONDLY"
        assert body["message"] == "You have reached your secondly limit."
        assert h["X-HubSpot-RateLimit-Secondly"] == "2"


async def test_limits_are_per_token(http: aiohttp.ClientSession) -> None:
    cfg = FakeConfig(tokens=frozenset({"a", "b"}), rate_limit=1)
    async with FakeHubSpot(cfg) as f, aiohttp.ClientSession() as s:
        for token in ("a", "b"):
            async with s.get(f.url + PROPS, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
        async with s.get(f.url + PROPS, headers={"Authorization": "Bearer a"}) as r:
            assert r.status == 429
        assert set(f.stats.arrivals) == {"a", "b"}


async def test_external_load_takes_window_slots(http: aiohttp.ClientSession) -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=20, interval_ms=1_000)) as f:
        f.add_external_load(10)  # one slot every 100 ms
        await asyncio.sleep(0.52)
        _, _, h = await get(http, f.url + PROPS)
        remaining = int(h["X-HubSpot-RateLimit-Remaining"])
        assert 12 <= remaining <= 14  # ~6 external + our 1 of 20
        f.stop_external_load()
        await asyncio.sleep(0.2)
        _, _, h2 = await get(http, f.url + PROPS)
        assert int(h2["X-HubSpot-RateLimit-Remaining"]) == remaining - 1
        assert f.max_requests_in_window() == 2  # external load is not ours


async def test_external_load_can_be_set_before_start(http: aiohttp.ClientSession) -> None:
    f = FakeHubSpot(FakeConfig(rate_limit=3, interval_ms=10_000))
    f.add_external_load(3_000)  # every 3.3 ms: fills the window at once
    async with f:
        await asyncio.sleep(0.05)
        status, body, _ = await get(http, f.url + PROPS)
    assert status == 429 and body["policyName"] == "TEN_SECONDLY_ROLLING"


async def test_concurrent_burst_never_exceeds_limit(http: aiohttp.ClientSession) -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=10, interval_ms=300)) as f:
        t0 = time.monotonic()
        statuses = []
        while time.monotonic() - t0 < 0.7:
            rs = await asyncio.gather(*(get(http, f.url + PROPS) for _ in range(8)))
            statuses += [r[0] for r in rs]
        assert statuses.count(200) >= 20 and statuses.count(429) > 0
        assert f.max_requests_in_window() == 10
