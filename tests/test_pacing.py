"""Pacing against the fake's rolling window: never over the limit, close to the ceiling, and
yielding to another integration that shares the window."""

from __future__ import annotations

import pytest

from bulkops import JobConfig, Operation, Secret, run_job
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

from .accounting import assert_accounted

LIMIT, INTERVAL_MS = 40, 2000  # 20 requests/s
ROWS, BATCH = 1000, 10  # 100 write requests


def rows() -> list[dict[str, str]]:
    return [
        {"subject": f"s{n}", "hs_pipeline": "0", "hs_pipeline_stage": "1", "external_id": f"p{n}"}
        for n in range(1, ROWS + 1)
    ]


def job_config(fake: FakeHubSpot, out) -> JobConfig:
    # rate_limit is left at its default (100 per 10 s): the limit must be learned from headers.
    return JobConfig(
        operation=Operation.CREATE,
        token=Secret(DEFAULT_FAKE_TOKEN),
        base_url=fake.url,
        out_dir=out,
        batch_size=BATCH,
        id_property="external_id",
    )


async def test_never_exceeds_the_window_and_runs_near_the_ceiling(tmp_path):
    fake_config = FakeConfig(rate_limit=LIMIT, interval_ms=INTERVAL_MS, latency=(0.02, 0.06))
    async with FakeHubSpot(fake_config) as fake:
        report = await run_job(job_config(fake, tmp_path), rows())
        assert_accounted(tmp_path, ROWS)
        assert fake.max_requests_in_window() <= LIMIT
        assert fake.stats.by_status.get(429, 0) == 0
        rl = report.to_json()["rate_limit"]
        assert rl["learned_ceiling"] == LIMIT and rl["interval_s"] == pytest.approx(2.0)
        # The share of the ceiling is measured by benchmarks/bench_ceiling.py, not asserted
        # here: a test asserts what must never happen (over the window, 429s).


async def test_yields_to_another_integration_on_the_same_window(tmp_path):
    others = 12  # 30% of the window
    fake_config = FakeConfig(rate_limit=LIMIT, interval_ms=INTERVAL_MS, latency=(0.02, 0.06))
    async with FakeHubSpot(fake_config) as fake:
        fake.add_external_load(others)
        report = await run_job(job_config(fake, tmp_path), rows())
        fake.stop_external_load()
        assert_accounted(tmp_path, ROWS)
        requests = report.to_json()["requests"]["total"]
        throttled = sum(report.to_json()["rate_limit"]["429_by_policy"].values())
        assert throttled <= 0.02 * requests + 1, report.to_json()["rate_limit"]
        assert report.to_json()["rate_limit"]["others_estimate"] > 0


async def test_an_explicit_rate_limit_is_never_exceeded_even_if_hubspot_allows_more(tmp_path):
    # HubSpot would allow 190 per second; the user asked for at most 20.
    async with FakeHubSpot(FakeConfig(rate_limit=190, interval_ms=1000)) as fake:
        cfg = JobConfig(
            operation=Operation.CREATE,
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=tmp_path,
            batch_size=10,
            rate_limit=20,
        )
        await run_job(cfg, rows()[:600])
        assert_accounted(tmp_path, 600)
        assert fake.max_requests_in_window(1.0) <= 20
