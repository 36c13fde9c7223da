"""The fake HubSpot's CLI hooks, and many concurrent writes."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time

import aiohttp
import orjson
import pytest

from bulkops.testing import (
    DEFAULT_FAKE_TOKEN,
    FakeConfig,
    FakeHubSpot,
    add_fake_server_arguments,
)
from bulkops.testing._fake_cli import config_from_args

from .fakeprocess import fake_server_process, stop_with_sigterm

AUTH = {"Authorization": f"Bearer {DEFAULT_FAKE_TOKEN}"}
ONE_TICKET = {
    "inputs": [
        {"properties": {"subject": "one", "hs_pipeline_stage": "1", "external_id": "loop-1"}}
    ]
}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_fake_server_arguments(parser)
    return parser.parse_args(argv)


def test_arguments_map_to_config() -> None:
    cfg = config_from_args(parse())
    assert cfg.rate_limit == 190 and cfg.daily_limit == 1_000_000
    assert cfg.tokens == frozenset({DEFAULT_FAKE_TOKEN}) and cfg.latency == (0.0, 0.0)
    args = parse(
        *("--rate-limit", "0", "--daily-limit", "0", "--latency-ms", "150-250"),
        *("--token", "a", "--token", "b", "--p-5xx", "0.1", "--p-reset", "0.05"),
        *("--seed", "9", "--no-shuffle", "--no-echo-trace-ids", "--interval-ms", "500"),
    )
    cfg = config_from_args(args)
    assert cfg.rate_limit is None and cfg.daily_limit is None
    assert cfg.latency == (0.15, 0.25) and cfg.tokens == frozenset({"a", "b"})
    assert cfg.faults.p_5xx == 0.1 and cfg.faults.p_reset == 0.05 and cfg.faults.seed == 9
    assert cfg.shuffle_results is False and cfg.echo_trace_ids is False
    assert cfg.interval_ms == 500
    assert config_from_args(parse("--latency-ms", "200")).latency == (0.2, 0.2)


@pytest.mark.parametrize(
    "command",
    [("-m", "bulkops.testing"), ("-m", "bulkops", "fake-server")],
    ids=["python -m bulkops.testing", "bulkops fake-server"],
)
async def test_server_process_prints_url_serves_and_stops_on_sigterm(
    command: tuple[str, ...],
) -> None:
    async with fake_server_process("--rate-limit", "7", command=command) as (proc, url):
        async with aiohttp.ClientSession(headers=AUTH) as s:
            async with s.get(url + "/crm/v3/properties/tickets") as r:
                assert r.status == 200
                assert r.headers["X-HubSpot-RateLimit-Remaining"] == "6"
        await stop_with_sigterm(proc)
        assert proc.stdout is not None
        assert await proc.stdout.read() == b""  # exactly one line on stdout


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
@pytest.mark.parametrize(("choice", "expected"), [("auto", "uvloop"), ("asyncio", "asyncio")])
async def test_the_server_process_serves_on_the_loop_asked_for(choice: str, expected: str) -> None:
    async with fake_server_process("--loop", choice) as (proc, url):
        async with aiohttp.ClientSession(headers=AUTH) as s:
            async with s.post(url + "/crm/v3/objects/tickets/batch/create", json=ONE_TICKET) as r:
                assert r.status == 201
            async with s.get(url + "/__fake__/stats") as r:
                stats = await r.json()
        assert stats["loop"] == expected and stats["records_created"] == {"tickets": 1}
        await stop_with_sigterm(proc)


async def test_many_concurrent_100_record_creates_are_all_stored() -> None:
    n, concurrency = 300, 8
    bodies = [
        orjson.dumps({"inputs": [
            {"properties": {"subject": f"s{i}-{j}", "content": "hello " * 8, "hs_pipeline": "0",
                            "hs_pipeline_stage": "2", "hs_ticket_priority": "HIGH",
                            "external_id": f"e{i}-{j}", "customer_score": "12.5",
                            "due_date": "2024-01-02"},
             "objectWriteTraceId": f"t{i}-{j}"}
            for j in range(100)
        ]})
        for i in range(n)
    ]  # fmt: skip
    cfg = FakeConfig(rate_limit=None, daily_limit=None)
    headers = {**AUTH, "Content-Type": "application/json"}
    async with FakeHubSpot(cfg) as f, aiohttp.ClientSession(headers=headers) as s:
        url = f.url + "/crm/v3/objects/tickets/batch/create"
        todo = list(reversed(bodies))

        async def worker() -> None:
            while todo:
                async with s.post(url, data=todo.pop()) as r:
                    assert r.status == 201
                    await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    rate = n / elapsed
    # Not a floor (benchmarks are not tests): shown for whoever runs this with -s.
    print(f"\nfake throughput: {rate:.0f} req/s, {rate * 100:.0f} records/s (client in-process)")
    assert f.stats.records_created["tickets"] == n * 100
