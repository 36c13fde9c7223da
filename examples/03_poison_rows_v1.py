"""The legacy v1 ticket API fails a whole batch for one bad record. bulkops splits such a batch
until the bad records stand alone, so the good ones are still written.

    python examples/03_poison_rows_v1.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
import orjson

from bulkops import Api, JobConfig, Operation, Secret, run_job
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot


async def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="bulkops-example-"))
    rows = [
        {"subject": f"T{n}", "hs_pipeline": "0", "hs_pipeline_stage": "9" if n % 250 == 0 else "1"}
        for n in range(1, 1001)
    ]
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        config = JobConfig(
            operation=Operation.CREATE,
            api=Api.V1,
            preflight=False,  # let HubSpot find the bad rows, to show isolation
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=out,
            rate_limit=0,
        )
        report = await run_job(config, rows)
    print(report.to_json()["rows"])
    print("requests spent isolating:", report.requests.by_kind.get("isolation", 0))
    for line in (out / "failed.jsonl").read_bytes().splitlines():
        failed = orjson.loads(line)
        print(failed["row"], failed["error"]["message"])


if __name__ == "__main__":
    anyio.run(main)
