"""Legacy v1 ticket batch endpoints of the fake HubSpot (docs/hubspot-api.md §10)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

AUTH = {"Authorization": f"Bearer {DEFAULT_FAKE_TOKEN}"}
V1 = "/crm-objects/v1/objects/tickets/"


def nv(**props: str) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in props.items()]


def new_ticket(i: int, **extra: str) -> list[dict[str, str]]:
    return nv(subject=f"s{i}", hs_pipeline="0", hs_pipeline_stage="1", **extra)


@pytest.fixture
async def fake() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as f:
        yield f


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as s:
        yield s


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, data=orjson.dumps(body)) as r:
        raw = await r.read()
        return r.status, (orjson.loads(raw) if raw else None)


async def test_v1_create_update_read_delete(fake: FakeHubSpot, http: aiohttp.ClientSession) -> None:
    status, out = await post(http, fake.url + V1 + "batch-create",
                             [new_ticket(1, content="c"), new_ticket(2)])  # fmt: skip
    assert status == 200 and isinstance(out, list) and len(out) == 2
    t = out[0]
    assert t["objectType"] == "TICKET" and t["isDeleted"] is False
    assert isinstance(t["objectId"], int) and isinstance(t["portalId"], int)
    subject = t["properties"]["subject"]
    assert subject["value"] == "s1" and subject["source"] == "API"
    assert isinstance(subject["timestamp"], int)
    assert subject["versions"][0]["name"] == "subject" and subject["sourceId"] is None
    assert t["properties"]["hs_object_id"]["source"] == "CALCULATED"
    ids = [o["objectId"] for o in out]

    upd = [{"objectId": ids[0], "properties": nv(hs_pipeline_stage="4")}]
    status, out = await post(http, fake.url + V1 + "batch-update", upd)
    assert status == 200 and out[0]["properties"]["hs_pipeline_stage"]["value"] == "4"
    stage = out[0]["properties"]["hs_pipeline_stage"]["timestamp"]
    assert stage >= out[0]["properties"]["subject"]["timestamp"]

    url = fake.url + V1 + "batch-read?properties=subject&properties=hs_pipeline_stage"
    status, out = await post(http, url, {"ids": [ids[0], 999, ids[1]]})
    assert status == 200
    assert set(out) == {str(ids[0]), str(ids[1])}  # missing ids are simply absent
    assert set(out[str(ids[0])]["properties"]) == {"subject", "hs_pipeline_stage"}
    status, out = await post(http, fake.url + V1 + "batch-read", {"ids": [ids[0]]})
    assert out[str(ids[0])]["properties"] == {}

    async with http.post(fake.url + V1 + "batch-delete", json={"ids": [ids[0], 5]}) as r:
        assert r.status == 204
    # permanent: not even an archived v3 read finds it
    assert fake.record("tickets", str(ids[0])) is None
    assert len(fake.records("tickets", include_archived=True)) == 1
    assert fake.stats.by_endpoint["v1 tickets batch-create"] == 1


async def test_v1_is_all_or_nothing(fake: FakeHubSpot, http: aiohttp.ClientSession) -> None:
    bad = [new_ticket(1), new_ticket(2, hs_ticket_priority="NOW"), nv(subject="x")]
    status, out = await post(http, fake.url + V1 + "batch-create", bad)
    assert status == 400
    assert out["status"] == "error" and out["message"] == "Property values were not valid"
    assert out["correlationId"]
    errs = {(v["name"], v["error"]) for v in out["validationResults"]}
    assert errs == {("hs_ticket_priority", "INVALID_OPTION"),
                    ("hs_pipeline", "REQUIRED_PROPERTY"),
                    ("hs_pipeline_stage", "REQUIRED_PROPERTY")}  # fmt: skip
    assert all(v["isValid"] is False and v["message"] for v in out["validationResults"])
    assert fake.records("tickets") == []

    [tid] = fake.seed_records("tickets", [{"subject": "a", "hs_pipeline": "0",
                                           "hs_pipeline_stage": "1"}])  # fmt: skip
    upd = [{"objectId": int(tid), "properties": nv(content="new")},
           {"objectId": 123, "properties": nv(content="x")}]  # fmt: skip
    status, out = await post(http, fake.url + V1 + "batch-update", upd)
    assert status == 400
    assert out["category"] == "OBJECT_NOT_FOUND" and out["context"] == {"ids": ["123"]}
    rec = fake.record("tickets", tid)
    assert rec is not None and "content" not in rec["properties"]

    status, out = await post(
        http, fake.url + V1 + "batch-create", [new_ticket(i) for i in range(101)]
    )
    assert status == 400 and len(fake.records("tickets")) == 1
    status, out = await post(http, fake.url + V1 + "batch-read", {"ids": list(range(101))})
    assert status == 400


async def test_v1_update_names_every_unknown_id(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    [tid] = fake.seed_records("tickets", [{"subject": "a", "hs_pipeline": "0",
                                           "hs_pipeline_stage": "1"}])  # fmt: skip
    upd = [{"objectId": 777, "properties": nv(content="x")},
           {"objectId": int(tid), "properties": nv(content="new")},
           {"objectId": "778", "properties": nv(content="y")}]  # fmt: skip
    status, out = await post(http, fake.url + V1 + "batch-update", upd)
    # the documented missing-records shape (docs/hubspot-api.md §4), every unknown id listed
    assert status == 400 and out["category"] == "OBJECT_NOT_FOUND"
    assert out["message"] == (
        "Could not get some TICKET objects, they may be deleted or not exist. "
        "Check that ids are valid. Missing ids: [777, 778]"
    )
    assert out["context"] == {"ids": ["777", "778"]}
    rec = fake.record("tickets", tid)
    assert rec is not None and "content" not in rec["properties"]  # still all-or-nothing


async def test_v1_needs_auth_and_counts_in_the_window() -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=1)) as f, aiohttp.ClientSession() as s:
        async with s.post(f.url + V1 + "batch-read", json={"ids": []}) as r:
            assert r.status == 401
        async with s.post(f.url + V1 + "batch-read", json={"ids": []}, headers=AUTH) as r:
            assert r.status == 200 and await r.json() == {}
        async with s.post(f.url + V1 + "batch-read", json={"ids": []}, headers=AUTH) as r:
            assert r.status == 429
