"""Request shapes and response reading for both dialects. Results are matched by trace id,
record id or unique value, never by position."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from bulkops._dialect import Fatal, Parsed, Rejected
from bulkops._dialect_v1 import V1Dialect
from bulkops._dialect_v3 import V3Dialect
from bulkops._models import Item, Operation
from bulkops._transport import HttpResponse
from bulkops._versions import ApiVersion

V3 = ApiVersion.parse("v3")


def resp(status: int, body: object = None) -> HttpResponse:
    data = b"" if body is None else orjson.dumps(body)
    return HttpResponse(status, {}, data)


def items(n: int, *, ids: bool = False, key_prop: str | None = None) -> list[Item]:
    out = []
    for row in range(1, n + 1):
        props = {"subject": f"s{row}", "hs_pipeline": "0"}
        key = None
        if key_prop:
            props[key_prop] = f"K{row}"
            key = f"k{row}"
        record_id = str(1000 + row) if ids else None
        out.append(Item(row, {}, props, record_id, None, record_id if ids else key))
    return out


def test_v3_create_request_carries_trace_ids_and_associations() -> None:
    its = items(2)
    its[0].associations = [
        {
            "to": {"id": "9"},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16}],
        }
    ]
    req = V3Dialect(Operation.CREATE, "tickets").request(its)
    assert req.path == "/crm/objects/2026-09/tickets/batch/create"  # the default version
    assert [i["objectWriteTraceId"] for i in req.body["inputs"]] == ["1", "2"]
    assert req.body["inputs"][0]["associations"][0]["to"]["id"] == "9"
    assert "associations" not in req.body["inputs"][1]


def test_v3_upsert_and_read_bodies() -> None:
    its = items(2, key_prop="external_id")
    for it in its:
        it.record_id = it.properties["external_id"]
    up = V3Dialect(Operation.UPSERT, "2-123", version=V3, id_property="external_id").request(its)
    assert up.path == "/crm/v3/objects/2-123/batch/upsert"
    assert up.body["inputs"][0] == {
        "id": "K1",
        "idProperty": "external_id",
        "properties": its[0].properties,
        "objectWriteTraceId": "1",
    }
    rd = V3Dialect(
        Operation.READ,
        "deals",
        id_property="external_id",
        properties=["dealname"],
        properties_with_history=["amount"],
    ).request(its)
    assert rd.body["properties"] == ["dealname", "external_id"]
    assert rd.body["propertiesWithHistory"] == ["amount"]
    assert rd.body["idProperty"] == "external_id"
    assert dict(rd.params) == {"archived": "false"}


def test_v3_results_matched_by_trace_id_whatever_the_order() -> None:
    its = items(50)
    results = [
        {"id": str(5000 + it.row), "objectWriteTraceId": str(it.row), "properties": {}}
        for it in its
    ]
    random.Random(1).shuffle(results)
    parsed = V3Dialect(Operation.CREATE, "tickets").parse_ok(its, resp(201, {"results": results}))
    assert isinstance(parsed, Parsed) and not parsed.unmentioned
    assert {o.item.row: o.hubspot_id for o in parsed.outcomes} == {
        r: str(5000 + r) for r in range(1, 51)
    }


def test_v3_create_without_echoed_trace_ids_matches_by_content() -> None:
    its = items(20)
    results = [
        {"id": str(7000 + it.row), "properties": {**it.properties, "hs_object_id": "x"}}
        for it in its
    ]
    results.reverse()
    errors = [
        {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "bad",
            "context": {"objectWriteTraceId": ["21"]},
        }
    ]
    its.append(Item(21, {}, {"subject": "bad"}))
    parsed = V3Dialect(Operation.CREATE, "tickets").parse_ok(
        its, resp(207, {"results": results, "errors": errors})
    )
    ok = {o.item.row: o.hubspot_id for o in parsed.outcomes if o.ok}
    assert ok == {r: str(7000 + r) for r in range(1, 21)}
    bad = [o for o in parsed.outcomes if not o.ok]
    assert [(o.item.row, o.category) for o in bad] == [(21, "VALIDATION_ERROR")]


def test_v3_update_object_not_found_lists_ids_and_unmentioned_are_reported() -> None:
    its = items(4, ids=True)
    body = {
        "results": [{"id": "1001", "properties": {}}],
        "errors": [
            {
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some TICKET objects",
                "context": {"ids": ["1002", "1003"]},
            }
        ],
    }
    parsed = V3Dialect(Operation.UPDATE, "tickets").parse_ok(its, resp(207, body))
    by_row = {o.item.row: o for o in parsed.outcomes}
    assert by_row[1].ok and by_row[1].hubspot_id == "1001"
    assert by_row[2].category == by_row[3].category == "OBJECT_NOT_FOUND"
    assert [it.row for it in parsed.unmentioned] == [4]


def test_v3_upsert_new_flag_and_ambiguous_earlier_attempt() -> None:
    its = items(2, key_prop="external_id")
    its[1].maybe_written = True
    body = {
        "results": [
            {"id": "1", "new": True, "properties": {"external_id": "K1"}},
            {"id": "2", "new": False, "properties": {"external_id": "k2"}},  # HubSpot lowercases
        ]
    }
    parsed = V3Dialect(Operation.UPSERT, "tickets", id_property="external_id").parse_ok(
        its, resp(200, body)
    )
    by_row = {o.item.row: o for o in parsed.outcomes}
    assert by_row[1].new is True
    assert by_row[2].new is None  # an earlier attempt may have created it


def test_v3_silent_empty_answer_leaves_everything_unmentioned() -> None:
    its = items(3)
    parsed = V3Dialect(Operation.CREATE, "tickets").parse_ok(
        its, resp(200, {"status": "COMPLETE", "results": []})
    )
    assert parsed.outcomes == [] and len(parsed.unmentioned) == 3


def test_v3_rejections() -> None:
    d = V3Dialect(Operation.UPSERT, "tickets", id_property="subject")
    its = items(2)
    non_unique = resp(
        400,
        {
            "category": "VALIDATION_ERROR",
            "message": "Unable to perform update/upsert by non-unique 0-5 property subject",
        },
    )
    assert isinstance(d.parse_rejection(its, non_unique), Fatal)
    whole = resp(400, {"category": "VALIDATION_ERROR", "message": "Property values were not valid"})
    verdict = d.parse_rejection(its, whole)
    assert isinstance(verdict, Rejected) and verdict.isolatable
    assert isinstance(d.parse_rejection(its, resp(404, {"message": "nope"})), Fatal)
    read = V3Dialect(Operation.READ, "tickets")
    gone = read.parse_rejection(
        items(2, ids=True), resp(404, {"category": "OBJECT_NOT_FOUND", "message": "x"})
    )
    assert isinstance(gone, Parsed) and all(o.category == "OBJECT_NOT_FOUND" for o in gone.outcomes)


def test_v1_bodies() -> None:
    its = items(2, ids=True)
    assert V1Dialect(Operation.CREATE).request(its).body[0] == [
        {"name": "subject", "value": "s1"},
        {"name": "hs_pipeline", "value": "0"},
    ]
    upd = V1Dialect(Operation.UPDATE).request(its)
    assert upd.path.endswith("/batch-update") and upd.body[1]["objectId"] == 1002
    dele = V1Dialect(Operation.ARCHIVE).request(its)
    assert dele.path.endswith("/batch-delete") and dele.body == {"ids": [1001, 1002]}
    rd = V1Dialect(Operation.READ, properties=["subject", "content"]).request(its)
    assert list(rd.params) == [("properties", "subject"), ("properties", "content")]


def test_v1_create_matches_unordered_tickets_by_content() -> None:
    its = items(3)
    tickets = [
        {
            "objectId": 900 + it.row,
            "properties": {k: {"value": v, "timestamp": 1} for k, v in it.properties.items()},
        }
        for it in reversed(its)
    ]
    parsed = V1Dialect(Operation.CREATE).parse_ok(its, resp(200, tickets))
    assert {o.item.row: o.hubspot_id for o in parsed.outcomes} == {1: "901", 2: "902", 3: "903"}


def test_v1_read_missing_ids_fail_as_not_found() -> None:
    its = items(2, ids=True)
    body = {"1001": {"objectId": 1001, "properties": {"subject": {"value": "x"}}}}
    parsed = V1Dialect(Operation.READ).parse_ok(its, resp(200, body))
    by_row = {o.item.row: o for o in parsed.outcomes}
    assert by_row[1].properties == {"subject": "x"}
    assert by_row[2].category == "OBJECT_NOT_FOUND"


@pytest.mark.parametrize("status", [400, 404])
def test_v1_whole_batch_errors_are_isolatable(status: int) -> None:
    body = {
        "status": "error",
        "message": "Property values were not valid",
        "category": "X",
        "validationResults": [
            {
                "isValid": False,
                "name": "hs_pipeline_stage",
                "error": "INVALID_OPTION",
                "message": "bad stage",
            }
        ],
    }
    verdict = V1Dialect(Operation.UPDATE).parse_rejection(items(2, ids=True), resp(status, body))
    assert isinstance(verdict, Rejected) and verdict.isolatable
    assert "hs_pipeline_stage" in verdict.message


def test_suspects_from_a_named_value_a_missing_required_field_or_a_bad_property() -> None:
    from bulkops._dialect import suspects

    its = items(6)
    its[2].properties["hs_pipeline_stage"] = "9"
    its[4].properties["bogus"] = "x"
    del its[5].properties["subject"]
    named = [
        ("hs_pipeline_stage", "INVALID_OPTION", "9 was not one of the allowed options: [1, 9x]")
    ]
    assert [it.row for it in suspects(its, named)] == [3]
    unknown = [("bogus", "PROPERTY_DOESNT_EXIST", 'Property "bogus" does not exist')]
    assert [it.row for it in suspects(its, unknown)] == [5]
    required = [("subject", "REQUIRED_PROPERTY", "subject is required")]
    assert [it.row for it in suspects(its, required)] == [6]
    # A value that only appears inside the list of allowed options is not a suspect.
    vague = [("hs_pipeline", "INVALID_OPTION", "x was not one of the allowed options: [0]")]
    assert suspects(its, vague) == []


async def test_missing_required_field_is_isolated_in_two_requests(tmp_path) -> None:
    """v1 rejects the batch naming the required property; the record lacking it is sent alone
    and the other 99 together."""
    from bulkops import JobConfig, Secret, run_job
    from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        rows = [
            {"subject": f"s{n}", "hs_pipeline": "0", "hs_pipeline_stage": "1"}
            for n in range(1, 101)
        ]
        del rows[36]["subject"]
        rows[36]["content"] = "x"
        cfg = JobConfig(
            operation=Operation.CREATE,
            api=__import__("bulkops").Api.V1,
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=tmp_path,
            rate_limit=0,
            preflight=False,
        )
        report = await run_job(cfg, rows)
        assert report.to_json()["rows"]["failed"] == 1
        assert len(fake.records("tickets")) == 99
        assert report.requests.by_kind.get("isolation", 0) == 2


@pytest.mark.parametrize(
    ("version", "path"),
    [
        ("2026-09", "/crm/objects/2026-09/deals/batch/update"),
        ("2026-03", "/crm/objects/2026-03/deals/batch/update"),
        ("v3", "/crm/v3/objects/deals/batch/update"),
    ],
)
def test_v3_dialect_spells_the_path_of_its_version(version: str, path: str) -> None:
    dialect = V3Dialect(Operation.UPDATE, "deals", version=ApiVersion.parse(version))
    req = dialect.request(items(1, ids=True))
    assert req.path == path
    assert req.body["inputs"][0]["id"] == "1001"  # same body on every version


def test_v3_dialect_404_names_the_flags_to_check() -> None:
    body = {"status": "error", "message": "No route found"}
    dated = V3Dialect(Operation.CREATE, "tickets", version=ApiVersion.parse("2027-03"))
    verdict = dated.parse_rejection(items(1), resp(404, body))
    assert isinstance(verdict, Fatal)
    assert "/crm/objects/2027-03/tickets/batch/create" in verdict.message
    assert "--api-version" in verdict.message
    legacy = V3Dialect(Operation.CREATE, "tickets", version=V3)
    verdict = legacy.parse_rejection(items(1), resp(404, body))
    assert isinstance(verdict, Fatal) and "--api-version" not in verdict.message


@pytest.mark.parametrize("version", ["2026-09", "v3"])
def test_association_types_with_or_without_a_category_are_sent_with_one(version: str) -> None:
    from bulkops._normalize import Normalizer

    record: dict[str, Any] = {
        "properties": {"subject": "x"},
        "associations": [
            {"to": {"id": "7"}, "types": [{"associationTypeId": 16}]},
            {
                "to": {"id": "8"},
                "types": [{"associationCategory": "user_defined", "associationTypeId": "42"}],
            },
        ],
    }
    item = Normalizer(Operation.CREATE)(1, record)
    column = Normalizer(Operation.CREATE)(2, {"subject": "y", "assoc:16": "9"})
    dialect = V3Dialect(Operation.CREATE, "tickets", version=ApiVersion.parse(version))
    sent = dialect.request([item, column]).body["inputs"]
    assert [t for a in sent[0]["associations"] for t in a["types"]] == [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16},
        {"associationCategory": "USER_DEFINED", "associationTypeId": 42},
    ]
    assert sent[1]["associations"][0]["types"] == [
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16}
    ]
    # The input itself is left as given (it goes to failed.jsonl as it was).
    assert record["associations"][0]["types"] == [{"associationTypeId": 16}]


@pytest.mark.parametrize(
    ("types", "says"),
    [
        ([{"associationCategory": "HUBSPOT_DEFINED"}], "numeric associationTypeId"),
        ([{"associationTypeId": "sixteen"}], "numeric associationTypeId"),
        ([{"associationTypeId": True}], "numeric associationTypeId"),
        (["16"], "numeric associationTypeId"),
        ([{"associationCategory": "MADE_UP", "associationTypeId": 1}], "'MADE_UP' is not one"),
    ],
)
def test_bad_association_types_name_the_field(types: list[object], says: str) -> None:
    from bulkops._errors import InputError
    from bulkops._normalize import Normalizer

    record = {"properties": {"subject": "x"}, "associations": [{"to": {"id": "7"}, "types": types}]}
    with pytest.raises(InputError, match=says) as caught:
        Normalizer(Operation.CREATE)(1, record)
    assert caught.value.field == "associations"


def test_content_matching_never_guesses_when_one_row_is_a_subset_of_another() -> None:
    """Row 2 left a cell empty: its values are a subset of row 1's, so the record made from
    row 1 fits both rows. Neither is guessed; they are left for a read-back or AMBIGUOUS."""
    full = Item(1, {}, {"subject": "same", "content": "x"})
    partial = Item(2, {}, {"subject": "same"})
    alone = Item(3, {}, {"subject": "other"})
    twins = [Item(4, {}, {"subject": "twin"}), Item(5, {}, {"subject": "twin"})]

    def ticket(oid: int, props: dict[str, str]) -> dict[str, Any]:
        return {"objectId": oid, "properties": {k: {"value": v} for k, v in props.items()}}

    answer = [
        ticket(901, {"subject": "same", "content": "x"}),
        ticket(902, {"subject": "same"}),
        ticket(903, {"subject": "other"}),
        ticket(904, {"subject": "twin"}),
        ticket(905, {"subject": "twin"}),
    ]
    random.Random(1).shuffle(answer)
    parsed = V1Dialect(Operation.CREATE).parse_ok([full, partial, alone, *twins], resp(200, answer))
    got = {o.item.row: o.hubspot_id for o in parsed.outcomes}
    assert got[3] == "903"
    assert {got[4], got[5]} == {"904", "905"}  # identical inputs are interchangeable
    assert sorted(it.row for it in parsed.unmentioned) == [1, 2]


def test_v1_404_naming_one_of_the_ids_is_that_rows_not_found() -> None:
    its = items(3, ids=True)
    body = {"status": "error", "message": "Object 1002 not found"}
    verdict = V1Dialect(Operation.UPDATE).parse_rejection(its, resp(404, body))
    assert isinstance(verdict, Rejected) and verdict.category == "OBJECT_NOT_FOUND"
    assert verdict.isolatable
    route = V1Dialect(Operation.UPDATE).parse_rejection(its, resp(404, {"message": "no route"}))
    assert isinstance(route, Fatal) and "--base-url" in route.message
