"""A trial run (JobConfig.limit): only the first N rows are sent, and the report says how many
are left; a limit the input does not reach changes nothing."""

from __future__ import annotations

import pytest

from bulkops import JobConfig, Operation, Secret, run_job
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

from .accounting import assert_accounted, assert_report_matches_files


def rows(n: int) -> list[dict[str, str]]:
    return [{"subject": f"T{i}", "hs_pipeline_stage": "1"} for i in range(1, n + 1)]


@pytest.mark.parametrize(("limit", "left"), [(1, 249), (100, 150), (250, None), (999, None)])
async def test_limit(tmp_path, limit, left):
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        cfg = JobConfig(
            operation=Operation.CREATE,
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=tmp_path,
            rate_limit=0,
            limit=limit,
        )
        report = await run_job(cfg, rows(250))
        assert report.rows_left == left
        if left is None:
            assert report.exit_code == 0 and report.stop is None
            assert_accounted(tmp_path, 250)
        else:
            assert report.exit_code == 3 and report.stop_reason == "limit"
            assert_report_matches_files(tmp_path)
            assert report.rows.read == limit and report.succeeded == limit
            assert len(fake.records("tickets")) == limit
