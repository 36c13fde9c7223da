"""A user's program written against bulkops' documented API; it must pass ``mypy --strict``.

tests/test_typing.py runs mypy on this file. It is never run: it only has to type-check.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd

import bulkops
from bulkops.testing import FakeHubSpot


class OAuthTokens:
    """A token provider as the docs show it: refreshes an OAuth token."""

    def __init__(self) -> None:
        self.refreshes = 0

    async def token(self) -> bulkops.AccessToken:
        self.refreshes += 1
        return bulkops.AccessToken("access-token", expires_at=time.time() + 1800)


async def rows() -> AsyncIterator[Mapping[str, Any]]:
    for n in range(3):
        yield {"subject": f"t{n}", "hs_pipeline_stage": "1"}


def describe(report: bulkops.JobReport) -> str:
    stop: bulkops.Stop | None = report.stop
    status: bulkops.JobStatus = report.status
    if stop is not None and stop.reason is bulkops.StopReason.AUTH:
        return "the token was refused"
    return f"{status.value}: {report.succeeded} ok, {report.failed} failed"


async def main(out: Path) -> list[str]:
    config = bulkops.JobConfig(
        operation=bulkops.Operation.UPSERT,
        object_type="contacts",
        id_property="email",
        token=OAuthTokens(),
        out_dir=out,
        timezone="Europe/Paris",
        coerce={"phone": lambda v: str(v).replace(" ", "")},
        headers={"X-Team": "data"},
        trust_env=False,
    )
    frame = pd.DataFrame({"email": ["a@example.com"], "firstname": ["Ada"]})
    sources: list[bulkops.Source] = [
        "contacts.csv",
        Path("contacts.parquet"),
        frame,
        frame.to_dict("records"),
        [{"email": "b@example.com"}],
        rows(),
        bulkops.read_parquet("contacts.parquet"),
    ]
    seen: list[str] = []
    for source in sources:
        report = await bulkops.run_job(config, source)
        seen.append(describe(report))

    static = bulkops.JobConfig(
        operation=bulkops.Operation.CREATE,
        token=bulkops.Secret("pat-test-..."),
        out_dir=out / "static",
    )
    async with aiohttp.ClientSession() as session:
        transport = bulkops.AiohttpTransport.from_config(static, session=session)
        async with transport:
            report = await bulkops.run_job(static, frame, transport=transport)
            seen.append(describe(report))
    async with FakeHubSpot() as fake:
        seen.append(fake.url)
    return seen
