"""The testing kit: the pytest plugin's fixtures, and the fake's counters over HTTP."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import aiohttp

import bulkops
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot
from bulkops.testing._fake_stats import STATS_PATH

from .accounting import assert_accounted, assert_report_matches_files
from .fakeprocess import fake_server_process, stop_with_sigterm

ROOT = Path(__file__).resolve().parent.parent


def tickets(n: int) -> list[dict[str, str]]:
    return [
        {"subject": f"t{i}", "hs_pipeline": "0", "hs_pipeline_stage": "1", "external_id": f"e{i}"}
        for i in range(n)
    ]


def test_the_plugin_is_registered_for_pytest() -> None:
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "bulkops"]
    assert plugin.value == "bulkops.testing.pytest_plugin"


async def test_the_fixtures_give_a_started_fake_and_a_config_pointed_at_it(
    fake_hubspot: FakeHubSpot, bulkops_config: bulkops.JobConfig, tmp_path: Path
) -> None:
    assert bulkops_config.base_url == fake_hubspot.url
    assert bulkops_config.out_dir.parent == tmp_path
    report = await bulkops.run_job(bulkops_config, tickets(120))
    assert report.succeeded == 120 and len(fake_hubspot.records("tickets")) == 120
    assert_accounted(bulkops_config.out_dir, 120)


async def test_the_fake_revokes_a_token_the_config_uses(
    fake_hubspot: FakeHubSpot, bulkops_config: bulkops.JobConfig
) -> None:
    fake_hubspot.revoke_token(DEFAULT_FAKE_TOKEN)
    report = await bulkops.run_job(bulkops_config, tickets(5))
    assert report.stop is not None and report.stop.reason is bulkops.StopReason.AUTH
    assert_report_matches_files(bulkops_config.out_dir)
    assert [r.status for r in fake_hubspot.requests] == [401]


def test_a_project_using_only_the_plugin_in_strict_asyncio_mode(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import dataclasses
            import pytest
            import bulkops

            @pytest.fixture
            def fake_hubspot_config():
                from bulkops.testing import FakeConfig, ScriptedAnswer
                return FakeConfig(rate_limit=None, script={2: ScriptedAnswer(status=503)})

            @pytest.mark.asyncio
            async def test_upsert(fake_hubspot, bulkops_config):
                config = dataclasses.replace(
                    bulkops_config, operation=bulkops.Operation.UPSERT,
                    id_property="external_id", backoff_base=0.001, backoff_cap=0.002,
                )
                rows = [{"external_id": "e1", "subject": "s", "hs_pipeline": "0",
                         "hs_pipeline_stage": "1"}]
                report = await bulkops.run_job(config, rows)
                assert report.succeeded == 1
                assert [r.status for r in fake_hubspot.requests][:2] == [200, 503]
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
         "asyncio_mode=strict", "test_user.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


async def test_the_counters_over_http_do_not_count_themselves(tmp_path: Path) -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        config = dataclasses.replace(
            bulkops.JobConfig(
                operation=bulkops.Operation.CREATE,
                token=bulkops.Secret(DEFAULT_FAKE_TOKEN),
                base_url=fake.url,
                out_dir=tmp_path,
                rate_limit=0,
            ),
            id_property="external_id",
        )
        await bulkops.run_job(config, tickets(250))
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.get(fake.url + STATS_PATH) as response:
                    assert response.status == 200
                    stats = await response.json()
    assert stats["records_created"] == {"tickets": 250}
    assert stats["requests"] == stats["requests_seen"] == fake.requests.count == 4
    assert stats["by_status"] == {"200": 1, "201": 3}
    assert stats["duplicate_creates"] == 0
    assert DEFAULT_FAKE_TOKEN not in str(stats)


async def test_the_fake_server_process_serves_its_counters(tmp_path: Path) -> None:
    async with fake_server_process("--rate-limit", "0") as (proc, url):
        config = bulkops.JobConfig(
            operation=bulkops.Operation.CREATE,
            token=bulkops.Secret(DEFAULT_FAKE_TOKEN),
            base_url=url,
            out_dir=tmp_path,
            rate_limit=0,
        )
        report = await bulkops.run_job(config, tickets(30))
        assert_accounted(tmp_path, 30)
        async with aiohttp.ClientSession() as session:
            async with session.get(url + STATS_PATH) as response:
                stats = await response.json()
        assert stats["records_created"] == {"tickets": report.succeeded} == {"tickets": 30}
        await stop_with_sigterm(proc)


def test_stats_json_of_fresh_counters() -> None:
    from bulkops.testing._fake_config import FakeStats
    from bulkops.testing._fake_stats import stats_json

    body = stats_json(FakeStats(), requests_seen=0)
    assert body["requests"] == 0 and body["by_status"] == {} and body["counted_requests"] == 0
