# Dask and pandas are typed loosely (a cluster's result comes back as object).
# mypy: disable-error-code="attr-defined"
"""The Dask adapter end to end: a LocalCluster of worker PROCESSES writes a dataframe's
partitions as bulkops jobs sharing one account budget through a real redis-server, against one
HTTP fake; the results come back merged. A partition run again (Dask's retry) resumes."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pytest

from bulkops import JobConfig, Operation, Secret
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

from .accounting import assert_report_matches_files, read_jsonl
from .redisserver import RedisServer, redis_server

pd = pytest.importorskip("pandas")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

__all__ = ["redis_server"]  # the fixture, used by name

LIMIT, INTERVAL_MS = 40, 1000
ROWS, PARTITIONS = 400, 4


def frame(rows: int = ROWS) -> object:
    return pd.DataFrame(
        {
            "subject": [f"s{n}" for n in range(1, rows + 1)],
            "hs_pipeline": "0",
            "hs_pipeline_stage": "1",
            "external_id": [f"x{n}" for n in range(1, rows + 1)],
        }
    )


def config(fake: FakeHubSpot, redis_url: str, out: Path) -> JobConfig:
    return JobConfig(
        operation=Operation.CREATE,
        token=Secret(DEFAULT_FAKE_TOKEN),
        base_url=fake.url,
        out_dir=out,
        batch_size=10,
        id_property="external_id",
        redis_url=redis_url,
    )


async def test_a_dataframe_is_written_by_worker_processes_on_one_budget(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    from bulkops.dask_jobs import write_dataframe

    out = tmp_path / "out"
    async with FakeHubSpot(FakeConfig(rate_limit=LIMIT, interval_ms=INTERVAL_MS)) as fake:
        df = dd.from_pandas(frame(), npartitions=PARTITIONS)
        cfg = config(fake, redis_server.url, tmp_path / "unused")

        def run() -> object:
            with (
                distributed.LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                ) as cluster,
                distributed.Client(cluster) as client,
            ):
                return write_dataframe(client, df, cfg, out_dir=out)

        # The cluster blocks; the fake serves on this loop meanwhile.
        with anyio.fail_after(120):
            report = await anyio.to_thread.run_sync(run)
        assert report.rows == ROWS and report.succeeded == ROWS and report.shards == PARTITIONS
        ok = read_jsonl(out / "merged" / "succeeded.jsonl")
        assert [r["row"] for r in ok] == list(range(1, ROWS + 1))
        for folder in sorted(out.glob("part-*")):
            assert_report_matches_files(folder)
        assert len(fake.records("tickets")) == ROWS  # nothing created twice
        assert fake.max_requests_in_window() <= LIMIT
        assert fake.stats.by_status.get(429, 0) == 0
        merged = orjson.loads((out / "merged" / "report.json").read_bytes())
        assert merged["kind"] == "merge" and len(merged["folders"]) == PARTITIONS


async def test_a_partition_run_again_resumes_and_creates_nothing_twice(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    from bulkops.dask_jobs import write_partition

    part = frame(50).iloc[20:50]  # the second partition of a split at row 20
    async with FakeHubSpot(FakeConfig(rate_limit=LIMIT, interval_ms=INTERVAL_MS)) as fake:
        cfg = config(fake, redis_server.url, tmp_path / "unused")
        args = (part, 1, 2, 20, cfg, str(tmp_path), "t")
        first = await anyio.to_thread.run_sync(write_partition, *args)
        again = await anyio.to_thread.run_sync(write_partition, *args)
        assert first["rows"]["succeeded"] == 30
        assert again["this_run"]["mode"] == "resume" and again["this_run"]["requests"] <= 2
        assert len(fake.records("tickets")) == 30
        rows = [r["row"] for r in read_jsonl(tmp_path / "part-00001" / "succeeded.jsonl")]
        assert sorted(rows) == list(range(21, 51))  # the dataframe's row numbers
