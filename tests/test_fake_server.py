"""The fake HubSpot's v3 batch endpoints, driven over real HTTP
(docs/hubspot-api.md §2-§6, §9, §12)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from bulkops.testing import (
    DEFAULT_FAKE_TOKEN,
    FakeConfig,
    FakeHubSpot,
    PropertyDef,
    ValidationRule,
)

AUTH = {"Authorization": f"Bearer {DEFAULT_FAKE_TOKEN}"}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
V3 = "/crm/v3/objects"
DATED = "/crm/objects/2026-09"
RULE = ValidationRule.parse("hs_ticket_priority=HIGH requires content")


def ticket(i: int | str, **extra: str) -> dict[str, str]:
    return {
        "subject": f"subject {i}",
        "hs_pipeline": "0",
        "hs_pipeline_stage": "1",
        "external_id": f"ext-{i}",
        **extra,
    }


def creates(n: int, *, traced: bool = True, start: int = 0) -> dict[str, Any]:
    inputs = []
    for i in range(start, start + n):
        inp: dict[str, Any] = {"properties": ticket(i)}
        if traced:
            inp["objectWriteTraceId"] = f"t{i}"
        inputs.append(inp)
    return {"inputs": inputs}


@pytest.fixture
async def fake() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as f:
        yield f


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as s:
        yield s


async def post(http: aiohttp.ClientSession, url: str, body: Any, **kw: Any) -> tuple[int, Any, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(url, data=data, **kw) as r:
        raw = await r.read()
        return r.status, (orjson.loads(raw) if raw else None), r.headers


def by_trace(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["context"]["objectWriteTraceId"][0]: e for e in body.get("errors", [])}


# -- auth, envelope ------------------------------------------------------------------------


async def test_auth_missing_or_unknown_token_is_401_and_not_counted() -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=5)) as f, aiohttp.ClientSession() as s:
        url = f.url + V3 + "/tickets/batch/create"
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "x"}):
            async with s.post(url, json=creates(1), headers=headers) as r:
                assert r.status == 401
                assert r.headers["X-HubSpot-Auth-Failure"] == "401 Unauthorized"
                assert r.headers["Content-Type"] == "application/json;charset=utf-8"
                assert r.headers["X-HubSpot-Correlation-Id"]
                assert "X-HubSpot-RateLimit-Remaining" not in r.headers
                body = await r.json()
        assert body["category"] == "INVALID_AUTHENTICATION"
        assert body["status"] == "error"
        assert body["message"].startswith("Authentication credentials not found.")
        assert body["correlationId"] == r.headers["X-HubSpot-Correlation-Id"]
        assert f.stats.arrivals == {}
        assert f.records("tickets") == []
        async with s.post(url, json=creates(1), headers=AUTH) as r:
            assert r.status == 201
            assert r.headers["X-HubSpot-RateLimit-Remaining"] == "4"  # 401s took no slot


# -- create ----------------------------------------------------------------------------------


async def test_create_201_results_carry_ids_system_props_and_trace_ids(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    status, body, headers = await post(http, fake.url + V3 + "/tickets/batch/create", creates(3))
    assert status == 201
    assert headers["Content-Type"] == "application/json;charset=utf-8"
    assert body["status"] == "COMPLETE" and "errors" not in body
    assert ISO_MS.match(body["startedAt"]) and ISO_MS.match(body["completedAt"])
    results = body["results"]
    assert sorted(r["id"] for r in results) == ["10000001", "10000002", "10000003"]
    for r in results:
        props = r["properties"]
        i = r["objectWriteTraceId"][1:]
        assert props["subject"] == f"subject {i}"
        assert props["hs_object_id"] == r["id"] == props["hs_ticket_id"]
        assert ISO_MS.match(props["createdate"]) and ISO_MS.match(props["hs_lastmodifieddate"])
        assert ISO_MS.match(r["createdAt"]) and r["archived"] is False
    stored = fake.record("tickets", results[0]["id"])
    assert stored is not None and stored["properties"] == results[0]["properties"]
    assert fake.stats.records_created["tickets"] == 3
    assert fake.stats.by_endpoint["v3 tickets create"] == 1


async def test_create_207_with_trace_ids_reports_each_bad_input(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    body = creates(4)
    body["inputs"][1]["properties"]["hs_ticket_priority"] = "SOON"
    body["inputs"][2]["properties"]["no_such_prop"] = "x"
    body["inputs"][2]["properties"]["hs_object_id"] = "5"
    status, out, _ = await post(http, fake.url + V3 + "/tickets/batch/create", body)
    assert status == 207
    assert out["numErrors"] == 2 and len(out["results"]) == 2
    errors = by_trace(out)
    assert set(errors) == {"t1", "t2"}
    e1 = errors["t1"]
    assert e1["category"] == "VALIDATION_ERROR" and e1["status"] == "error"
    assert e1["errors"] == [
        {
            "message": "SOON was not one of the allowed options: [LOW, MEDIUM, HIGH, URGENT]",
            "code": "INVALID_OPTION",
            "context": {"propertyName": ["hs_ticket_priority"]},
        }
    ]
    embedded = orjson.loads(e1["message"].removeprefix("Property values were not valid: "))
    assert embedded == [
        {
            "isValid": False,
            "message": "SOON was not one of the allowed options: [LOW, MEDIUM, HIGH, URGENT]",
            "error": "INVALID_OPTION",
            "name": "hs_ticket_priority",
        }
    ]
    codes = {e["code"]: e["context"]["propertyName"] for e in errors["t2"]["errors"]}
    assert codes == {"PROPERTY_DOESNT_EXIST": ["no_such_prop"], "READ_ONLY_VALUE": ["hs_object_id"]}
    assert sorted(r["objectWriteTraceId"] for r in out["results"]) == ["t0", "t3"]
    stored = {r["properties"]["external_id"] for r in fake.records("tickets")}
    assert stored == {"ext-0", "ext-3"}


async def test_create_without_trace_ids_fails_whole_batch(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    body = creates(3, traced=False)
    body["inputs"][2]["properties"]["customer_score"] = "1,000"
    status, out, _ = await post(http, fake.url + V3 + "/tickets/batch/create", body)
    assert status == 400
    assert out["category"] == "VALIDATION_ERROR" and out["correlationId"]
    assert out["message"].startswith("Property values were not valid: [")
    assert '"name":"customer_score"' in out["message"]
    assert '"error":"INVALID_INTEGER"' in out["message"]
    assert fake.records("tickets") == []
    # only SOME trace ids is still all-or-nothing
    body["inputs"][0]["objectWriteTraceId"] = "only-one"
    status, out, _ = await post(http, fake.url + V3 + "/tickets/batch/create", body)
    assert status == 400 and fake.records("tickets") == []


async def test_required_ticket_properties_on_create(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    body = {
        "inputs": [
            {"properties": {"subject": "s", "hs_pipeline": "0"}, "objectWriteTraceId": "a"},
            {"properties": {"subject": "", "hs_pipeline": "0", "hs_pipeline_stage": "1"},
             "objectWriteTraceId": "b"},
        ]
    }  # fmt: skip
    status, out, _ = await post(http, fake.url + V3 + "/tickets/batch/create", body)
    assert status == 207 and out["results"] == []
    errs = by_trace(out)
    assert errs["a"]["errors"][0]["code"] == "REQUIRED_PROPERTY"
    assert errs["a"]["errors"][0]["message"] == "hs_pipeline_stage is required"
    assert errs["b"]["errors"][0]["context"] == {"propertyName": ["subject"]}


VALUE_CASES = [
    # (property, value, error code or None when valid)
    ("customer_score", "12", None),
    ("customer_score", "-12.50", None),
    ("customer_score", "+0.5", None),
    ("customer_score", "1e5", None),
    ("customer_score", "-2.5E-3", None),
    ("customer_score", 7, None),
    ("customer_score", ".5", "INVALID_INTEGER"),
    ("customer_score", "5.", "INVALID_INTEGER"),
    ("customer_score", "1e999", "INVALID_INTEGER"),
    ("customer_score", "١٢", "INVALID_INTEGER"),  # non-ASCII digits
    ("customer_score", "1_000", "INVALID_INTEGER"),
    ("customer_score", "nan", "INVALID_INTEGER"),
    ("customer_score", "inf", "INVALID_INTEGER"),
    ("customer_score", " 5", "INVALID_INTEGER"),
    ("customer_score", "1.2.3", "INVALID_INTEGER"),
    ("is_escalated", "TRUE", None),
    ("is_escalated", True, None),
    ("is_escalated", "yes", "INVALID_BOOLEAN"),
    ("due_date", "2024-02-29", None),
    ("due_date", "1704067200000", None),
    ("due_date", "2023-02-29", "INVALID_DATE"),
    ("due_date", "20240101", "INVALID_DATE"),
    ("due_date", "2024-W01-1", "INVALID_DATE"),
    ("due_date", "1704067200001", "INVALID_DATE"),
    ("due_date", "+0", None),
    ("createdate", "2024-01-02T03:04:05.678Z", None),
    ("createdate", "2024-01-02T03:04:05+02:00", None),
    ("createdate", "1704164645678", None),
    ("createdate", "yesterday", "INVALID_DATETIME"),
    ("hs_ticket_category", "BILLING_ISSUE;PRODUCT_ISSUE", None),
    ("hs_ticket_category", "BILLING_ISSUE;NOPE", "INVALID_OPTION"),
    ("source_type", "EMAIL;CHAT", "INVALID_OPTION"),  # not a checkbox: no multi-select
    ("source_type", "email", "INVALID_OPTION"),
    ("hs_ticket_id", "1", "READ_ONLY_VALUE"),
    ("hs_lastmodifieddate", "", "READ_ONLY_VALUE"),
    ("content", "", None),
]


async def test_value_rules(fake: FakeHubSpot, http: aiohttp.ClientSession) -> None:
    inputs = [
        {"properties": {**ticket(i), prop: value}, "objectWriteTraceId": str(i)}
        for i, (prop, value, _) in enumerate(VALUE_CASES)
    ]
    status, out, _ = await post(http, fake.url + V3 + "/tickets/batch/create", {"inputs": inputs})
    assert status == 207
    errors = by_trace(out)
    got = {i: errors[str(i)]["errors"][0]["code"] if str(i) in errors else None
           for i in range(len(VALUE_CASES))}  # fmt: skip
    want = {i: code for i, (_, _, code) in enumerate(VALUE_CASES)}
    assert got == want
    stored = {r["properties"]["external_id"]: r["properties"] for r in fake.records("tickets")}
    as_number = VALUE_CASES.index(("customer_score", 7, None))
    assert stored[f"ext-{as_number}"]["customer_score"] == "7"  # JSON values become strings
    as_bool = VALUE_CASES.index(("is_escalated", True, None))
    assert stored[f"ext-{as_bool}"]["is_escalated"] == "true"
    assert "content" not in stored[f"ext-{len(VALUE_CASES) - 1}"]  # "" stores nothing


async def test_associations_are_validated_and_stored(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    good = [{"to": {"id": "99"}, "types": [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16}]}]  # fmt: skip
    bad = [{"to": {"id": "99"}, "types": [
        {"associationCategory": "MADE_UP", "associationTypeId": 16}]}]  # fmt: skip
    body = creates(2)
    body["inputs"][0]["associations"] = good
    body["inputs"][1]["associations"] = bad
    status, out, _ = await post(http, fake.url + V3 + "/tickets/batch/create", body)
    assert status == 207
    assert by_trace(out)["t1"]["category"] == "VALIDATION_ERROR"
    [rec] = fake.records("tickets")
    assert rec["associations"] == good


async def test_unique_values_conflict(fake: FakeHubSpot, http: aiohttp.ClientSession) -> None:
    url = fake.url + V3 + "/tickets/batch/create"
    [existing] = fake.seed_records("tickets", [ticket(0)])
    body = creates(3)  # ext-0 exists; ext-1 appears twice in the batch
    body["inputs"][2]["properties"]["external_id"] = "ext-1"
    status, out, _ = await post(http, url, body)
    assert status == 207
    errs = by_trace(out)
    assert errs["t0"]["category"] == "CONFLICT"
    assert errs["t0"]["message"] == (
        f"A ticket with external_id=ext-0 already exists. Existing ID: {existing}"
    )
    [created] = out["results"]
    assert errs["t2"]["message"].endswith(f"Existing ID: {created['id']}")
    # without trace ids: the whole batch is refused, nothing written
    untraced = {"inputs": [{"properties": ticket(7)}, {"properties": ticket(0)}]}
    status, out, _ = await post(http, url, untraced)
    assert status == 409 and out["category"] == "CONFLICT"
    assert len(fake.records("tickets")) == 2
    assert fake.stats.creates_by_unique[("tickets", "external_id", "ext-1")] == 1


# -- update / upsert -------------------------------------------------------------------------


async def test_update_200_and_207_object_not_found(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    ids = fake.seed_records("tickets", [ticket(i) for i in range(2)])
    url = fake.url + V3 + "/tickets/batch/update"
    body = {"inputs": [{"id": ids[0], "properties": {"hs_pipeline_stage": "3", "content": "x"}}]}
    status, out, _ = await post(http, url, body)
    assert status == 200
    [res] = out["results"]
    assert res["properties"]["hs_pipeline_stage"] == "3"
    assert res["updatedAt"] >= res["createdAt"]
    body = {"inputs": [
        {"id": "1", "properties": {"content": "a"}, "objectWriteTraceId": "m1"},
        {"id": ids[1], "properties": {"content": ""}, "objectWriteTraceId": "ok"},
        {"id": "2", "properties": {"content": "b"}, "objectWriteTraceId": "m2"},
    ]}  # fmt: skip
    status, out, _ = await post(http, url, body)
    assert status == 207
    [err] = out["errors"]
    assert err["category"] == "OBJECT_NOT_FOUND"
    assert err["message"] == (
        "Could not get some TICKET objects, they may be deleted or not exist. "
        "Check that ids are valid."
    )
    assert err["context"] == {"ids": ["1", "2"], "objectWriteTraceId": ["m1", "m2"]}
    assert [r["id"] for r in out["results"]] == [ids[1]]
    stored = fake.record("tickets", ids[0])
    assert stored is not None and stored["properties"]["content"] == "x"


async def test_update_by_id_property_and_non_unique_id_property(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    [tid] = fake.seed_records("tickets", [ticket(1)])
    fake.seed_records("companies", [{"name": "Acme", "domain": "acme.test"}])
    url = fake.url + V3
    body = {"inputs": [{"id": "ext-1", "idProperty": "external_id",
                        "properties": {"external_id": "ext-1b", "content": "moved"}}]}  # fmt: skip
    status, out, _ = await post(http, url + "/tickets/batch/update", body)
    assert status == 200 and out["results"][0]["id"] == tid
    body["inputs"][0]["id"] = "ext-1b"
    body["inputs"][0]["properties"] = {"content": "again"}
    status, out, _ = await post(http, url + "/0-5/batch/update", body)  # type id, same store
    assert status == 200
    stored = fake.record("tickets", tid)
    assert stored is not None and stored["properties"]["content"] == "again"
    for path, prop, type_id in (("/companies", "domain", "0-2"), ("/tickets", "subject", "0-5")):
        for op in ("update", "upsert"):
            b = {"inputs": [{"id": "x", "idProperty": prop, "properties": {}}]}
            status, out, _ = await post(http, url + path + f"/batch/{op}", b)
            assert status == 400
            assert out["category"] == "VALIDATION_ERROR"
            assert out["message"] == (
                f"Unable to perform update/upsert by non-unique {type_id} property {prop}"
            )


async def test_upsert_new_true_then_false_and_idempotent(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    url = fake.url + V3 + "/tickets/batch/upsert"

    def body(stage: str) -> dict[str, Any]:
        return {"inputs": [
            {"id": f"ext-{i}", "idProperty": "external_id", "objectWriteTraceId": f"t{i}",
             "properties": {"subject": f"s{i}", "hs_pipeline": "0", "hs_pipeline_stage": stage}}
            for i in range(3)
        ]}  # fmt: skip

    status, out, _ = await post(http, url, body("1"))
    assert status == 200
    assert {r["new"] for r in out["results"]} == {True}
    assert {r["properties"]["external_id"] for r in out["results"]} == {"ext-0", "ext-1", "ext-2"}
    status, out, _ = await post(http, url, body("2"))
    assert status == 200
    assert {r["new"] for r in out["results"]} == {False}
    assert len(fake.records("tickets")) == 3
    assert {r["properties"]["hs_pipeline_stage"] for r in fake.records("tickets")} == {"2"}
    assert max(fake.stats.creates_by_unique.values()) == 1
    # upsert-create must still carry the ticket's required properties
    bad = {"inputs": [{"id": "ext-9", "idProperty": "external_id", "objectWriteTraceId": "x",
                       "properties": {"subject": "s"}}]}  # fmt: skip
    status, out, _ = await post(http, url, bad)
    assert status == 207 and out["errors"][0]["errors"][0]["code"] == "REQUIRED_PROPERTY"


async def test_duplicate_ids_and_too_many_inputs(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    url = fake.url + V3 + "/tickets/batch/"
    dup = {"inputs": [{"id": "7", "properties": {}, "objectWriteTraceId": "a"},
                      {"id": "8", "properties": {}, "objectWriteTraceId": "b"},
                      {"id": "7", "properties": {}, "objectWriteTraceId": "c"}]}  # fmt: skip
    for op in ("update", "archive", "read"):
        status, out, _ = await post(http, url + op, dup)
        assert status == 400, op
        assert out["message"] == "Duplicate IDs found in batch input: [7]. IDs must be unique"
        assert out["context"] == {"ids": ["7"]}
    status, out, _ = await post(http, url + "create", creates(101))
    assert status == 400 and out["category"] == "VALIDATION_ERROR"
    assert fake.records("tickets") == []
    status, out, _ = await post(http, url + "create", creates(100))
    assert status == 201


# -- read / archive --------------------------------------------------------------------------


async def test_read_partial_all_missing_and_history(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    ids = fake.seed_records("tickets", [ticket(i) for i in range(2)])
    url = fake.url + V3 + "/tickets/batch/read"
    body = {"inputs": [{"id": ids[0]}, {"id": "404"}], "properties": ["subject", "content"]}
    status, out, _ = await post(http, url, body)
    assert status == 207
    [res] = out["results"]
    assert set(res["properties"]) == {"subject", "hs_object_id", "createdate",
                                      "hs_lastmodifieddate"}  # fmt: skip
    assert out["errors"][0]["context"] == {"ids": ["404"]}
    status, out, _ = await post(http, url, {"inputs": [{"id": "1"}, {"id": "2"}]})
    assert status == 404
    assert out["category"] == "OBJECT_NOT_FOUND" and out["context"] == {"ids": ["1", "2"]}
    by_ext = {"inputs": [{"id": "ext-1"}], "idProperty": "external_id", "properties": []}
    status, out, _ = await post(http, url, by_ext)
    assert status == 200 and out["results"][0]["id"] == ids[1]

    upd = {"inputs": [{"id": ids[0], "properties": {"hs_pipeline_stage": "2"}}]}
    await post(http, fake.url + V3 + "/tickets/batch/update", upd)
    hist = {"inputs": [{"id": ids[0]}], "properties": [],
            "propertiesWithHistory": ["hs_pipeline_stage"]}  # fmt: skip
    status, out, _ = await post(http, url, hist)
    assert status == 200
    versions = out["results"][0]["propertiesWithHistory"]["hs_pipeline_stage"]
    assert [v["value"] for v in versions] == ["2", "1"]  # newest first
    assert versions[0]["sourceType"] == "API" and ISO_MS.match(versions[0]["timestamp"])
    hist["inputs"] = [{"id": str(i)} for i in range(51)]
    status, out, _ = await post(http, url, hist)
    assert status == 400
    assert "for property histories is 50" in out["message"]


async def test_archive_204_then_only_archived_read_finds_it(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    ids = fake.seed_records("tickets", [ticket(i) for i in range(2)])
    url = fake.url + V3 + "/tickets/batch/"
    async with http.post(url + "archive", json={"inputs": [{"id": ids[0]}, {"id": "1"}]}) as r:
        assert r.status == 204 and await r.read() == b""
    status, out, _ = await post(http, url + "read", {"inputs": [{"id": ids[0]}]})
    assert status == 404
    status, out, _ = await post(
        http, url + "read?archived=true", {"inputs": [{"id": ids[0]}, {"id": ids[1]}]}
    )
    assert status == 207
    [res] = out["results"]
    assert res["archived"] is True and ISO_MS.match(res["archivedAt"])
    assert [r["id"] for r in fake.records("tickets")] == [ids[1]]
    assert len(fake.records("tickets", include_archived=True)) == 2
    # the archived record's unique value is free again
    status, _, _ = await post(http, url + "create", creates(1))
    assert status == 201


# -- envelope edge cases ---------------------------------------------------------------------


async def test_missing_inputs_is_an_empty_complete(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    for op in ("create", "update", "upsert", "read"):
        status, out, _ = await post(http, fake.url + V3 + f"/tickets/batch/{op}", {"input": []})
        assert status == 200 and out["status"] == "COMPLETE" and out["results"] == []
    assert fake.records("tickets") == []


async def test_malformed_bodies_unknown_types_and_paths(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    url = fake.url + V3 + "/tickets/batch/create"
    for raw in (b"[1, 2]", b"{not json", b'{"inputs": {"a": 1}}'):
        status, out, _ = await post(http, url, raw)
        assert status == 400
        assert out["message"].startswith("Invalid input JSON")
        assert "category" not in out
    status, out, _ = await post(http, fake.url + V3 + "/widgets/batch/create", creates(1))
    assert status == 400
    assert out["message"] == "Unable to infer object type from: widgets"
    assert out["category"] == "VALIDATION_ERROR"
    for method, path in (("GET", "/nothing/here"), ("POST", V3 + "/tickets/batch/merge")):
        async with http.request(method, fake.url + path) as r:
            assert r.status == 404
            assert (await r.json())["status"] == "error"


async def test_results_are_shuffled_unless_disabled(http: aiohttp.ClientSession) -> None:
    orders = []
    for shuffle in (True, False):
        async with FakeHubSpot(FakeConfig(shuffle_results=shuffle, seed=3)) as f:
            status, out, _ = await post(http, f.url + V3 + "/tickets/batch/create", creates(50))
            assert status == 201
            orders.append([r["objectWriteTraceId"] for r in out["results"]])
    in_order = [f"t{i}" for i in range(50)]
    assert orders[0] != in_order and sorted(orders[0]) == sorted(in_order)
    assert orders[1] == in_order


async def test_trace_id_echo_can_be_turned_off(http: aiohttp.ClientSession) -> None:
    async with FakeHubSpot(FakeConfig(echo_trace_ids=False)) as f:
        _, out, _ = await post(http, f.url + V3 + "/tickets/batch/create", creates(2))
    assert all("objectWriteTraceId" not in r for r in out["results"])


async def test_other_object_types_and_custom_schema(http: aiohttp.ClientSession) -> None:
    custom = {
        "2-123": [PropertyDef(name="code", unique=True), PropertyDef(name="n", type="number")]
    }
    async with FakeHubSpot(FakeConfig(schemas=custom)) as f:
        url = f.url + V3
        body = {"inputs": [{"properties": {"email": "a@x.test", "lifecyclestage": "lead"}}]}
        status, out, _ = await post(http, url + "/contacts/batch/create", body)
        assert status == 201
        assert out["results"][0]["properties"]["lastmodifieddate"]
        status, out, _ = await post(http, url + "/0-1/batch/create", body)
        assert status == 409  # email is unique; untraced => whole batch
        custom_body = {
            "inputs": [{"properties": {"code": "c1", "n": "x"}, "objectWriteTraceId": "a"}]
        }
        status, out, _ = await post(http, url + "/2-123/batch/create", custom_body)
        assert status == 207 and out["errors"][0]["errors"][0]["code"] == "INVALID_INTEGER"
        upd = {"inputs": [{"id": "nope", "properties": {}}]}
        status, out, _ = await post(http, url + "/2-123/batch/update", upd)
        assert out["errors"][0]["message"].startswith("Could not get some 2-123 objects")
        deal = {"inputs": [{"id": "9", "properties": {"dealstage": "won"}}]}
        status, out, _ = await post(http, url + "/deals/batch/update", deal)
        assert status == 207 and out["errors"][0]["message"].startswith("Could not get some DEAL")


async def test_properties_endpoint_shape(fake: FakeHubSpot, http: aiohttp.ClientSession) -> None:
    async with http.get(fake.url + "/crm/v3/properties/tickets") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json;charset=utf-8"
        body = await r.json()
    props = {p["name"]: p for p in body["results"]}
    ext = props["external_id"]
    assert ext["hasUniqueValue"] is True and ext["type"] == "string"
    prio = props["hs_ticket_priority"]
    assert prio["type"] == "enumeration" and prio["fieldType"] == "select"
    assert prio["options"][0] == {"label": "LOW", "value": "LOW", "displayOrder": 0,
                                  "hidden": False}  # fmt: skip
    assert props["hs_ticket_category"]["fieldType"] == "checkbox"
    tid = props["hs_ticket_id"]
    assert tid["calculated"] is True
    assert tid["modificationMetadata"] == {"archivable": True, "readOnlyDefinition": True,
                                           "readOnlyValue": True}  # fmt: skip
    assert props["createdate"]["modificationMetadata"]["readOnlyValue"] is False
    for p in body["results"]:
        assert {"label", "groupName", "description", "externalOptions", "hidden",
                "formField"} <= set(p)  # fmt: skip
    async with http.get(fake.url + "/crm/v3/properties/0-2") as r:
        names = {p["name"] for p in (await r.json())["results"]}
    assert "domain" in names and "numberofemployees" in names
    assert fake.stats.arrivals[DEFAULT_FAKE_TOKEN]  # counted like any request


async def test_latency_is_applied(http: aiohttp.ClientSession) -> None:
    async with FakeHubSpot(FakeConfig(latency=(0.08, 0.1))) as f:
        t = time.monotonic()
        status, _, _ = await post(http, f.url + V3 + "/tickets/batch/create", creates(1))
        assert status == 201 and time.monotonic() - t >= 0.08


async def test_whole_batch_reports_invalid_values_before_conflicts(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    fake.seed_records("tickets", [ticket(0)])
    body = {"inputs": [{"properties": ticket(0)},  # conflict first...
                       {"properties": ticket(1, hs_pipeline="9")}]}  # fmt: skip
    status, out, _ = await post(http, fake.url + V3 + "/tickets/batch/create", body)
    assert status == 400 and out["category"] == "VALIDATION_ERROR"
    assert out["errors"][0]["context"] == {"propertyName": ["hs_pipeline"]}
    assert len(fake.records("tickets")) == 1


async def test_stats_reset_and_helpers(fake: FakeHubSpot, http: aiohttp.ClientSession) -> None:
    await post(http, fake.url + V3 + "/tickets/batch/create", creates(2))
    assert fake.stats.requests == 1 and fake.stats.by_status[201] == 1
    fake.stats.reset()
    assert fake.stats.requests == 0 and not fake.stats.by_status
    assert not fake.stats.creates_by_unique and not fake.stats.arrivals
    assert len(fake.records("0-5")) == 2  # the store is untouched
    with pytest.raises(KeyError):
        fake.records("widgets")
    with pytest.raises(ValueError):
        fake.seed_records("tickets", [ticket(0)])  # unique external_id already taken
    with pytest.raises(ValueError):
        fake.seed_records("tickets", [{"subject": "no pipeline"}])


# -- date-versioned paths (docs/hubspot-api.md §14) ------------------------------------------------


async def test_dated_and_v3_paths_share_one_store_and_are_counted_by_path(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(http, fake.url + DATED + "/tickets/batch/create", creates(2))
    assert status == 201
    ids = [{"id": r["id"]} for r in body["results"]]
    read = {"inputs": ids, "properties": ["subject"], "propertiesWithHistory": []}
    status, body, _ = await post(http, fake.url + V3 + "/tickets/batch/read", read)
    assert status == 200 and len(body["results"]) == 2
    status, body, _ = await post(http, fake.url + "/crm/objects/2026-03/tickets/batch/read", read)
    assert status == 200 and len(body["results"]) == 2
    async with http.get(fake.url + "/crm/properties/2026-09/tickets") as r:
        assert r.status == 200
        names = {p["name"] for p in (await r.json())["results"]}
    assert {"subject", "hs_pipeline_stage"} <= names
    assert fake.stats.paths == {
        "/crm/objects/2026-09/tickets/batch/create": 1,
        "/crm/v3/objects/tickets/batch/read": 1,
        "/crm/objects/2026-03/tickets/batch/read": 1,
        "/crm/properties/2026-09/tickets": 1,
    }
    # by_endpoint counts the endpoint, whichever version's path reached it.
    assert fake.stats.by_endpoint["v3 tickets read"] == 2
    fake.stats.reset()
    assert not fake.stats.paths


@pytest.mark.parametrize(
    "path",
    [
        "/crm/objects/2027-03/tickets/batch/create",  # not published (by this fake) yet
        "/crm/objects/2026-06/tickets/batch/create",  # no such version
        "/crm/objects/v3/tickets/batch/create",  # no such path
        "/crm/properties/2027-09/tickets",
    ],
)
async def test_versions_the_fake_does_not_serve_are_404(
    fake: FakeHubSpot, http: aiohttp.ClientSession, path: str
) -> None:
    if "properties" in path:
        async with http.get(fake.url + path) as r:
            status = r.status
    else:
        status, _, _ = await post(http, fake.url + path, creates(1))
    assert status == 404
    assert fake.records("tickets") == []
    assert fake.stats.paths[path] == 1


async def test_served_versions_are_configurable(http: aiohttp.ClientSession) -> None:
    # After the sunset: only dated paths answer.
    async with FakeHubSpot(FakeConfig(rate_limit=None, api_versions=frozenset({"2026-09"}))) as f:
        assert (await post(http, f.url + V3 + "/tickets/batch/create", creates(1)))[0] == 404
        v1 = f.url + "/crm-objects/v1/objects/tickets/batch-create"
        assert (await post(http, v1, [[{"name": "subject", "value": "x"}]]))[0] == 404
        assert (await post(http, f.url + DATED + "/tickets/batch/create", creates(1)))[0] == 201
    with pytest.raises(ValueError, match="2026-06"):
        FakeConfig(api_versions=frozenset({"2026-06"}))
    with pytest.raises(ValueError, match="2025-09"):
        FakeConfig(api_versions=frozenset({"2025-09"}))


async def test_dated_versions_take_association_types_without_a_category(
    fake: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    bare = [{"to": {"id": "99"}, "types": [{"associationTypeId": 16}]}]
    body = creates(1)
    body["inputs"][0]["associations"] = bare
    status, _, _ = await post(http, fake.url + DATED + "/tickets/batch/create", body)
    assert status == 201
    # v3's AssociationSpec requires the category.
    body = creates(1, start=1)
    body["inputs"][0]["associations"] = bare
    status, out, _ = await post(http, fake.url + V3 + "/tickets/batch/create", body)
    assert status == 207 and "associationCategory" in by_trace(out)["t1"]["message"]
    # A category given must still be a real one, on every version.
    body = creates(1, start=2)
    body["inputs"][0]["associations"] = [
        {"to": {"id": "99"}, "types": [{"associationCategory": "MADE_UP", "associationTypeId": 1}]}
    ]
    status, out, _ = await post(http, fake.url + DATED + "/tickets/batch/create", body)
    assert status == 207 and by_trace(out)["t2"]["category"] == "VALIDATION_ERROR"
    assert [r["associations"] for r in fake.records("tickets")] == [bare]


def test_validation_rule_parse() -> None:
    assert RULE == ValidationRule(
        when_property="hs_ticket_priority", when_value="HIGH", requires=("content",)
    )
    two = ValidationRule.parse(" source_type=PHONE requires content, hs_ticket_category ")
    assert two.requires == ("content", "hs_ticket_category")
    for text in (
        "hs_ticket_priority=HIGH",
        "HIGH requires content",
        "a= requires b",
        "a=b requires ",
    ):
        with pytest.raises(ValueError, match="PROPERTY=VALUE requires PROPERTY"):
            ValidationRule.parse(text)


@pytest.fixture
async def ruled() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot(FakeConfig(rate_limit=None, validation_rules=[RULE])) as f:
        yield f


def with_priority(body: dict[str, Any], *traces: int) -> dict[str, Any]:
    for n in traces:
        body["inputs"][n]["properties"]["hs_ticket_priority"] = "HIGH"
    return body


async def test_validation_rules_give_207_per_input_on_2026_09(
    ruled: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    body = with_priority(creates(4), 1, 2)
    body["inputs"][2]["properties"]["content"] = "the printer is on fire"
    status, out, _ = await post(http, ruled.url + DATED + "/tickets/batch/create", body)
    assert status == 207
    [error] = out["errors"]
    assert error["context"] == {"objectWriteTraceId": ["t1"]}
    assert error["category"] == "VALIDATION_ERROR"
    assert "content is required when hs_ticket_priority is HIGH" in error["message"]
    assert error["errors"][0]["context"] == {"propertyName": ["content"]}
    assert len(ruled.records("tickets")) == 3


async def test_validation_rules_without_trace_ids_fail_the_whole_batch(
    ruled: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    body = with_priority(creates(3, traced=False), 2)
    status, out, _ = await post(http, ruled.url + DATED + "/tickets/batch/create", body)
    assert status == 400 and out["category"] == "VALIDATION_ERROR"
    assert "content is required" in out["message"] and out["correlationId"]
    assert ruled.records("tickets") == []


@pytest.mark.parametrize("prefix", [V3, "/crm/objects/2026-03"])
async def test_validation_rules_apply_only_from_2026_09(
    ruled: FakeHubSpot, http: aiohttp.ClientSession, prefix: str
) -> None:
    status, _, _ = await post(
        http, ruled.url + prefix + "/tickets/batch/create", with_priority(creates(2), 0)
    )
    assert status == 201


async def test_validation_rules_judge_an_update_by_the_record_after_it(
    ruled: FakeHubSpot, http: aiohttp.ClientSession
) -> None:
    with_content, bare = ruled.seed_records("tickets", [ticket(1, content="c"), ticket(2)])
    update = {
        "inputs": [
            {"id": rid, "properties": {"hs_ticket_priority": "HIGH"}, "objectWriteTraceId": rid}
            for rid in (with_content, bare)
        ]
    }
    status, out, _ = await post(http, ruled.url + DATED + "/tickets/batch/update", update)
    assert status == 207
    assert list(by_trace(out)) == [bare]
    assert ruled.stored("tickets", with_content)["properties"]["hs_ticket_priority"] == "HIGH"
    assert "hs_ticket_priority" not in ruled.stored("tickets", bare)["properties"]


async def test_validation_rules_can_refuse_the_whole_batch_even_with_trace_ids(
    http: aiohttp.ClientSession,
) -> None:
    cfg = FakeConfig(rate_limit=None, validation_rules=[RULE], validation_rules_multi_status=False)
    async with FakeHubSpot(cfg) as f:
        url = f.url + DATED + "/tickets/batch/create"
        status, out, _ = await post(http, url, with_priority(creates(3), 1))
        assert status == 400 and "content is required" in out["message"]
        assert f.records("tickets") == []
        assert (await post(http, url, creates(3)))[0] == 201


def test_fake_server_command_line_takes_rules_and_versions() -> None:
    import argparse

    from bulkops.testing import add_fake_server_arguments
    from bulkops.testing._fake_cli import config_from_args

    parser = argparse.ArgumentParser()
    add_fake_server_arguments(parser)
    args = parser.parse_args(
        [
            "--validation-rule",
            "hs_ticket_priority=HIGH requires content",
            "--validation-rule",
            "source_type=PHONE requires content,hs_ticket_category",
            "--api-versions",
            "2026-09, v3",
        ]
    )
    cfg = config_from_args(args)
    assert list(cfg.validation_rules) == [
        RULE,
        ValidationRule.parse("source_type=PHONE requires content,hs_ticket_category"),
    ]
    assert cfg.api_versions == {"2026-09", "v3"}
    default = config_from_args(parser.parse_args([]))
    assert default.api_versions == {"2026-03", "2026-09", "v3", "v1"}
    assert not default.validation_rules


def test_fake_server_command_line_refuses_a_bad_rule_or_version(capsys) -> None:
    import argparse

    from bulkops.testing import add_fake_server_arguments, run_fake_server_from_args

    parser = argparse.ArgumentParser(prog="fake-server")
    add_fake_server_arguments(parser)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--validation-rule", "content is required"])
    assert exit_.value.code == 2
    assert "PROPERTY=VALUE requires PROPERTY" in capsys.readouterr().err
    # A version the fake cannot serve: one plain message and exit 2, no traceback.
    assert run_fake_server_from_args(parser.parse_args(["--api-versions", "2026-06"])) == 2
    assert "2026-06" in capsys.readouterr().err


@pytest.mark.parametrize("prefix", [V3, DATED])
async def test_a_ticket_created_without_a_pipeline_lands_in_the_default_one(
    fake: FakeHubSpot, http: aiohttp.ClientSession, prefix: str
) -> None:
    # docs/hubspot-api.md §2: hs_pipeline is optional on create (v1 still requires it).
    props = {"subject": "s", "hs_pipeline_stage": "1"}
    body = {"inputs": [{"properties": props, "objectWriteTraceId": "a"}]}
    status, out, _ = await post(http, fake.url + prefix + "/tickets/batch/create", body)
    assert status == 201
    assert out["results"][0]["properties"]["hs_pipeline"] == "0"
    [stored] = fake.records("tickets")
    assert stored["properties"]["hs_pipeline"] == "0"
    assert props == {"subject": "s", "hs_pipeline_stage": "1"}  # the input is not touched
