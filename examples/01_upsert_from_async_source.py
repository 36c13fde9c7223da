"""Upsert tickets from an async generator (say, rows streamed from your database) into the
embedded fake HubSpot, then show where every row ended.

    python examples/01_upsert_from_async_source.py
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio

from bulkops import JobConfig, Operation, Secret, run_job
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot


async def rows_from_somewhere(n: int) -> AsyncIterator[dict[str, Any]]:
    for i in range(1, n + 1):
        await anyio.sleep(0.0001)  # stands in for a database cursor
        yield {
            "subject": f"Order {i} arrived damaged",
            "hs_pipeline": "0",
            "hs_pipeline_stage": "1",
            "hs_ticket_priority": "HIGH" if i % 10 == 0 else "LOW",
            "external_id": f"order-{i}",
        }


async def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="bulkops-example-"))
    async with FakeHubSpot(FakeConfig(rate_limit=190)) as fake:
        config = JobConfig(
            operation=Operation.UPSERT,
            object_type="tickets",
            id_property="external_id",
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=out,
        )
        report = await run_job(config, rows_from_somewhere(2500))
    print(report.to_json()["rows"], report.to_json()["written"])
    print(f"results in {out}: succeeded.jsonl, failed.jsonl, report.json")


if __name__ == "__main__":
    anyio.run(main)
