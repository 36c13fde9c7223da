"""The answer policy as plain values: one answer in, one verdict out, no I/O."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bulkops._dialect_v3 import V3Dialect
from bulkops._http import HttpResponse, TransportFailure
from bulkops._models import Batch, Item, Operation, Phase
from bulkops._policy import (
    Context,
    Halt,
    Resend,
    Retry,
    SchemaBody,
    Settle,
    Split,
    Throttle,
    Verdict,
    Wait,
    conflicting,
    decide,
    decide_schema,
    rate_limit_policy,
)
from bulkops._retry import RetryPolicy
from bulkops._stats import StopReason
from bulkops.testing import json_response

RETRY = RetryPolicy(max_attempts=3, backoff_base=0.5, backoff_cap=4.0)


def ctx(op: Operation = Operation.CREATE, **kw: Any) -> Context:
    return Context(operation=op, retry=RETRY, rng=random.Random(1), **kw)


def items(n: int, **props: str) -> list[Item]:
    return [
        Item(r, {}, {"subject": f"s{r}", "external_id": f"e{r}", **props}, key=f"e{r}")
        for r in range(1, n + 1)
    ]


def dialect(op: Operation = Operation.CREATE, **kw: Any) -> V3Dialect:
    return V3Dialect(op, "tickets", **kw)


def kinds(verdict: Verdict) -> list[type]:
    return [type(a) for a in verdict.actions]


def test_a_connect_failure_before_any_answer_halts_unreachable() -> None:
    failure = TransportFailure("connect", "cannot connect", maybe_sent=False)
    v = decide(Batch(items(2)), failure, dialect(), ctx(answered_before=False))
    assert isinstance(v.actions[0], Halt) and v.actions[0].stop.reason is StopReason.UNREACHABLE
    v = decide(Batch(items(2)), failure, dialect(), ctx(answered_before=True))
    assert kinds(v) == [Retry] and v.charge


def test_an_unknown_create_is_read_back_with_an_id_property_else_ambiguous() -> None:
    reset = TransportFailure("reset", "broke", maybe_sent=True)
    v = decide(Batch(items(2)), reset, dialect(), ctx(read_back=True))
    (retry,) = v.actions
    assert isinstance(retry, Retry) and retry.phase is Phase.VERIFY and retry.maybe_written
    v = decide(Batch(items(2)), reset, dialect(), ctx(read_back=False))
    (settle,) = v.actions
    assert isinstance(settle, Settle)
    assert {o.category for o in settle.outcomes} == {"AMBIGUOUS"}


def test_an_idempotent_operation_is_resent_on_an_unknown_outcome() -> None:
    reset = TransportFailure("timeout", "slow", maybe_sent=True)
    v = decide(Batch(items(2)), reset, dialect(Operation.UPSERT, id_property="external_id"),
               ctx(Operation.UPSERT))  # fmt: skip
    (retry,) = v.actions
    assert isinstance(retry, Retry) and retry.phase is Phase.WRITE and not retry.maybe_written


def test_the_last_attempt_settles_as_retries_exhausted() -> None:
    batch = Batch(items(2))
    for it in batch.items:
        it.attempts = 2
    v = decide(batch, json_response(423, {"message": "locked"}), dialect(), ctx())
    (settle,) = v.actions
    assert isinstance(settle, Settle)
    assert {o.category for o in settle.outcomes} == {"RETRIES_EXHAUSTED"}


def test_during_an_outage_nothing_is_charged_or_exhausted() -> None:
    batch = Batch(items(2))
    for it in batch.items:
        it.attempts = 2
    v = decide(batch, json_response(503, {}), dialect(Operation.UPDATE), ctx(
        Operation.UPDATE, in_outage=True))  # fmt: skip
    assert kinds(v) == [Retry] and not v.charge


def test_423_waits_at_least_two_seconds() -> None:
    v = decide(Batch(items(1)), json_response(423, {}), dialect(), ctx())
    (retry,) = v.actions
    assert isinstance(retry, Retry) and retry.delay >= 2.0


@pytest.mark.parametrize(
    ("body", "headers", "policy"),
    [
        ({"policyName": "DAILY"}, {}, "DAILY"),
        ({"message": "You have reached your daily limit."}, {}, "DAILY"),
        ({"message": "x"}, {"X-HubSpot-RateLimit-Daily-Remaining": "0"}, "DAILY"),
        ({"message": "You have reached your secondly limit."}, {}, "SECONDLY"),
        ({"message": "You have reached your ten_secondly_rolling limit."}, {},
         "TEN_SECONDLY_ROLLING"),
        ({"policyName": "TEN_SECONDLY_ROLLING"}, {}, "TEN_SECONDLY_ROLLING"),
        (None, {}, "TEN_SECONDLY_ROLLING"),
    ],
)  # fmt: skip
def test_a_429s_policy(body: Any, headers: dict[str, str], policy: str) -> None:
    assert rate_limit_policy(json_response(429, body, headers)) == policy


def test_a_429_throttles_without_charge_then_stops_when_it_lasts() -> None:
    answer = json_response(429, {"policyName": "TEN_SECONDLY_ROLLING"}, {"Retry-After": "7"})
    v = decide(Batch(items(2)), answer, dialect(), ctx())
    assert v.actions == (Throttle("TEN_SECONDLY_ROLLING", 7.0),) and not v.charge
    v = decide(Batch(items(2)), answer, dialect(), ctx(throttled_for=RETRY.throttled_timeout + 1))
    assert isinstance(v.actions[0], Halt)
    assert v.actions[0].stop.reason is StopReason.RATE_LIMITED


@pytest.mark.parametrize(("status", "reason"), [(401, StopReason.AUTH), (403, StopReason.AUTH)])
def test_auth_answers_halt(status: int, reason: StopReason) -> None:
    v = decide(Batch(items(1)), json_response(status, {"category": "X"}), dialect(), ctx())
    assert isinstance(v.actions[0], Halt) and v.actions[0].stop.reason is reason


def test_an_html_2xx_is_not_hubspot_until_hubspot_has_answered() -> None:
    page = HttpResponse(200, {"Content-Type": "text/html"}, b"<html></html>")
    v = decide(Batch(items(2)), page, dialect(), ctx(hubspot_seen=False, host="h.example"))
    assert isinstance(v.actions[0], Halt)
    assert v.actions[0].stop.reason is StopReason.NOT_HUBSPOT
    assert "h.example answered 200 text/html" in v.actions[0].stop.message
    v = decide(Batch(items(2)), page, dialect(), ctx(hubspot_seen=True, read_back=True))
    assert isinstance(v.actions[0], Retry) and v.actions[0].phase is Phase.VERIFY


def test_a_blind_rejection_is_split_in_halves_within_the_budget() -> None:
    answer = json_response(400, {"category": "VALIDATION_ERROR", "message": "something"})
    v = decide(Batch(items(10)), answer, dialect(), ctx())
    (split,) = v.actions
    assert isinstance(split, Split) and [len(g) for g in split.groups] == [5, 5] and not v.charge
    v = decide(Batch(items(10)), answer, dialect(), ctx(may_isolate=False))
    (settle,) = v.actions
    assert isinstance(settle, Settle)
    assert {o.category for o in settle.outcomes} == {"BATCH_REJECTED"}


def test_a_split_half_that_fails_transiently_keeps_its_shape() -> None:
    half = Batch(items(4), split_depth=1)
    v = decide(half, json_response(502, {}), dialect(Operation.UPDATE), ctx(Operation.UPDATE))
    (resend,) = v.actions
    assert isinstance(resend, Resend) and resend.batch is half


def test_a_named_conflict_settles_that_row_and_resends_the_rest() -> None:
    batch = Batch(items(5))
    answer = json_response(
        409,
        {"category": "CONFLICT",
         "message": "A ticket with external_id=e3 already exists. Existing ID: 42"},
    )  # fmt: skip
    v = decide(batch, answer, dialect(), ctx())
    settle, retry = v.actions
    assert isinstance(settle, Settle) and isinstance(retry, Retry)
    (outcome,) = settle.outcomes
    assert outcome.item.row == 3 and outcome.category == "CONFLICT"
    assert outcome.extra == {"existing_id": "42"}
    assert sorted(it.row for it in retry.items) == [1, 2, 4, 5]


def test_a_conflict_after_an_unknown_create_means_it_was_created() -> None:
    batch = Batch(items(2))
    batch.items[0].maybe_written = True
    answer = json_response(
        207,
        {"status": "COMPLETE", "results": [
            {"id": "7", "properties": {}, "objectWriteTraceId": "2"}],
         "errors": [{"category": "CONFLICT", "context": {"objectWriteTraceId": ["1"]},
                     "message": "A ticket with external_id=e1 already exists. Existing ID: 99"}]},
    )  # fmt: skip
    v = decide(batch, answer, dialect(id_property="external_id"), ctx(read_back=True))
    (settle,) = v.actions
    assert isinstance(settle, Settle)
    by_row = {o.item.row: o for o in settle.outcomes}
    assert by_row[1].ok and by_row[1].hubspot_id == "99" and by_row[1].new is True
    assert by_row[2].ok and by_row[2].hubspot_id == "7"


def test_a_read_back_that_finds_nothing_creates_again_without_charge() -> None:
    batch = Batch(items(2), Phase.VERIFY)
    read_back = dialect(Operation.READ, id_property="external_id", properties=["external_id"])
    answer = json_response(
        207,
        {"status": "COMPLETE",
         "results": [{"id": "5", "properties": {"external_id": "e1"}}],
         "errors": [{"category": "OBJECT_NOT_FOUND", "context": {"ids": ["e2"]}}]},
    )  # fmt: skip
    v = decide(batch, answer, read_back, ctx(read_back=True))
    settle, retry = v.actions
    assert isinstance(settle, Settle) and settle.outcomes[0].hubspot_id == "5"
    assert isinstance(retry, Retry) and retry.phase is Phase.WRITE
    assert [it.row for it in retry.items] == [2] and not v.charge


def test_conflicting_names_only_rows_that_carry_the_value() -> None:
    rows = items(12)
    assert [it.row for it in conflicting(rows, "A ticket with external_id=e1 already exists.")] == [
        1
    ]
    assert conflicting(rows, "Contact already exists. Existing ID: 501") == []


def test_the_schema_read_uses_the_same_readings() -> None:
    c = ctx(answered_before=False, hubspot_seen=False)
    ok = decide_schema(json_response(200, {"results": []}), 1, c, what="tickets")
    assert ok == SchemaBody({"results": []})
    refused = TransportFailure("connect", "refused", maybe_sent=False)
    halted = decide_schema(refused, 1, c, what="tickets")
    assert isinstance(halted, Halt) and halted.stop.reason is StopReason.UNREACHABLE
    later = decide_schema(refused, 1, ctx(answered_before=True), what="tickets")
    assert isinstance(later, Wait)
    assert decide_schema(json_response(502, {}), RETRY.max_attempts, ctx(), what="t") is None
    page = HttpResponse(200, {"Content-Type": "text/html"}, b"<html>")
    html = decide_schema(page, 1, c, what="tickets")
    assert isinstance(html, Halt) and html.stop.reason is StopReason.NOT_HUBSPOT
    daily = decide_schema(json_response(429, {"policyName": "DAILY"}), 1, c, what="t")
    assert isinstance(daily, Halt) and daily.stop.reason is StopReason.DAILY_LIMIT
    missing = decide_schema(json_response(404, {"message": "no such type"}), 1, c, what="x")
    assert isinstance(missing, Halt) and missing.stop.reason is StopReason.CONFIG


def test_a_redirect_stops_the_job_naming_its_target() -> None:
    moved = json_response(301, None, {"Location": "https://elsewhere.example/x"})
    v = decide(Batch(items(1)), moved, dialect(), ctx(host="h.test"))
    assert isinstance(v.actions[0], Halt) and v.actions[0].stop.reason is StopReason.CONFIG
    assert "elsewhere.example" in v.actions[0].stop.message
    schema = decide_schema(moved, 1, ctx(), what="tickets")
    assert isinstance(schema, Halt) and "never follows redirects" in schema.stop.message
