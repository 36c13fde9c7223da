"""The fake's benchmark mode, ``FakeConfig(store_records=False)`` / ``fake-server --no-store``:
creates answered exactly as with the store, nothing kept."""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import pytest

from bulkops.testing import (
    DEFAULT_FAKE_TOKEN,
    FakeConfig,
    FakeHubSpot,
    add_fake_server_arguments,
)
from bulkops.testing._fake_cli import config_from_args

AUTH = {"Authorization": f"Bearer {DEFAULT_FAKE_TOKEN}"}
CREATE = "/crm/objects/2026-09/tickets/batch/create"
READ = "/crm/objects/2026-09/tickets/batch/read"
V1_CREATE = "/crm-objects/v1/objects/tickets/batch-create"
# Values that change from one run to the next (times); everything else must be equal.
TIMES = ("createdAt", "updatedAt", "createdate", "hs_lastmodifieddate", "startedAt", "completedAt")


def creates(n: int, start: int = 0) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "properties": {
                    "subject": f"subject {i}",
                    "hs_pipeline_stage": "1",
                    "external_id": f"ext-{i}",
                },
                "objectWriteTraceId": f"t{i}",
            }
            for i in range(start, start + n)
        ]
    }


def without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def config(store: bool) -> FakeConfig:
    return FakeConfig(rate_limit=None, store_records=store)


async def post(fake: FakeHubSpot, path: str, body: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers=AUTH) as s,
        s.post(fake.url + path, json=body) as r,
    ):
        return r.status, await r.json()


def assert_empty(fake: FakeHubSpot) -> None:
    assert fake.records("tickets", include_archived=True) == []
    table = fake._store.table(fake.types["tickets"])
    assert not table.by_id and not table.created and not table.associations
    assert all(not values for values in table.unique.values())
    assert not fake.stats.creates_by_unique


async def test_a_create_answers_the_same_and_nothing_is_kept() -> None:
    answers = {}
    for store in (True, False):
        async with FakeHubSpot(config(store)) as fake:
            answers[store] = [await post(fake, CREATE, creates(100, start=k)) for k in (0, 100)]
            assert fake.stats.records_created["tickets"] == 200
            if not store:
                assert_empty(fake)
                async with (
                    aiohttp.ClientSession(headers=AUTH) as s,
                    s.get(fake.url + "/__fake__/stats") as r,
                ):
                    stats = await r.json()
                assert stats["records_created"] == {"tickets": 200}
                assert stats["duplicate_creates"] is None
    for (status, body), (stored_status, stored_body) in zip(
        answers[False], answers[True], strict=True
    ):
        assert status == stored_status == 201
        assert without_times(body) == without_times(stored_body)
        result = body["results"][0]
        assert set(result) == {
            "id",
            "properties",
            "createdAt",
            "updatedAt",
            "archived",
            "objectWriteTraceId",
        }
        assert result["properties"]["hs_object_id"] == result["id"]
        assert result["properties"]["hs_pipeline"] == "0"
    ids = [r["id"] for _, body in answers[False] for r in body["results"]]
    assert len(set(ids)) == 200  # fresh ids all the same


async def test_v1_batch_create_answers_the_same_and_nothing_is_kept() -> None:
    body = [
        [
            {"name": "subject", "value": f"s{i}"},
            {"name": "hs_pipeline", "value": "0"},
            {"name": "hs_pipeline_stage", "value": "1"},
        ]
        for i in range(3)
    ]
    answers = {}
    for store in (True, False):
        async with FakeHubSpot(config(store)) as fake:
            answers[store] = await post(fake, V1_CREATE, body)
            if not store:
                assert_empty(fake)

    def strip(answer: Any) -> Any:  # timestamps differ between the two runs
        for obj in answer:
            for prop in obj["properties"].values():
                prop.pop("timestamp")
                prop["versions"][0].pop("timestamp")
                if prop["source"] == "CALCULATED":
                    prop.pop("value")
                    prop["versions"][0].pop("value")
        return answer

    assert answers[False][0] == answers[True][0] == 200
    assert strip(answers[False][1]) == strip(answers[True][1])


async def test_what_the_benchmark_mode_does_not_offer() -> None:
    async with FakeHubSpot(config(False)) as fake:
        first = await post(fake, CREATE, creates(2))
        # A read of a created record does not find it; a second create with the same unique
        # value is not refused across requests...
        ids = [{"id": r["id"]} for r in first[1]["results"]]
        assert (await post(fake, READ, {"inputs": ids}))[0] == 404
        assert (await post(fake, CREATE, creates(2)))[0] == 201
        # ...while within one batch it still is.
        twice = creates(1)
        twice["inputs"] *= 2
        status, body = await post(fake, CREATE, twice)
        assert status == 207 and body["errors"][0]["category"] == "CONFLICT"
        with pytest.raises(ValueError, match="store_records=False"):
            fake.seed_records("tickets", [{"subject": "x", "hs_pipeline_stage": "1"}])
        assert_empty(fake)


def test_no_store_flag() -> None:
    parser = argparse.ArgumentParser()
    add_fake_server_arguments(parser)
    assert config_from_args(parser.parse_args([])).store_records is True
    assert config_from_args(parser.parse_args(["--no-store"])).store_records is False
    assert FakeConfig().store_records is True
    assert "BENCHMARK MODE" in parser.format_help()
