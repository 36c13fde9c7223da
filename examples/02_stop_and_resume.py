"""Stop a job half way (as Ctrl-C or a deploy would), then resume it: the finished rows are
skipped and the final results cover the whole job, with nothing created twice.

    python examples/02_stop_and_resume.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio

from bulkops import Job, JobConfig, Mode, Operation, Secret
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

ROWS = [
    {"subject": f"T{n}", "hs_pipeline": "0", "hs_pipeline_stage": "1", "external_id": f"e{n}"}
    for n in range(1, 3001)
]


async def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="bulkops-example-"))
    async with FakeHubSpot(FakeConfig(rate_limit=20, interval_ms=1000)) as fake:
        config = JobConfig(
            operation=Operation.CREATE,
            id_property="external_id",
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=out,
        )
        job = Job(config, ROWS)
        async with anyio.create_task_group() as tg:

            async def stop_soon() -> None:
                await anyio.sleep(0.6)
                job.stop()  # what Ctrl-C does in the CLI

            tg.start_soon(stop_soon)
            first = await job.run()
        print("first run:", first.status, first.rows)

        second = await Job(config, ROWS, mode=Mode.RESUME).run()
        print("resumed:  ", second.status, second.rows)
        print("tickets in HubSpot:", len(fake.records("tickets")))


if __name__ == "__main__":
    anyio.run(main)
