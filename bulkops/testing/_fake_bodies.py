"""JSON bodies of the fake HubSpot's error answers (shapes from docs/hubspot-api.md §4, §5, §7, §9).

Whole-request error bodies carry ``"correlationId": None``; the server fills it in just before
serializing, so the builders stay pure and the key keeps HubSpot's position in the object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from bulkops.testing._fake_schema import ObjectType, PropertyProblem

JSON = dict[str, Any]

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
HISTORY_LIMIT_MESSAGE = (
    "The maximum number of inputs supported in a batch request for property histories is 50. "
    "Please reduce the number of items and try again"
)
BATCH_LIMIT_MESSAGE = (
    "The maximum number of inputs supported in a batch request is 100. "
    "Please reduce the number of items and try again"
)


def error(message: str, category: str | None = None, **extra: Any) -> JSON:
    """A whole-request ``Error`` body."""
    body: JSON = {"status": "error", "message": message, "correlationId": None}
    if category is not None:
        body["category"] = category
    body.update(extra)
    return body


def java_list(items: Sequence[str]) -> str:
    # HubSpot's texts print lists the Java way: [a, b]
    return "[" + ", ".join(items) + "]"


def malformed(detail: str) -> JSON:
    # Real example (§4) has no category at all.
    return error(f"Invalid input JSON on line 1, column 1: {detail}")


def too_many_inputs() -> JSON:
    return error(BATCH_LIMIT_MESSAGE, "VALIDATION_ERROR")


def history_limit() -> JSON:
    return error(HISTORY_LIMIT_MESSAGE, "VALIDATION_ERROR")


def duplicate_ids(ids: Sequence[str]) -> JSON:
    return error(
        f"Duplicate IDs found in batch input: {java_list(ids)}. IDs must be unique",
        "VALIDATION_ERROR",
        context={"ids": list(ids)},
    )


def non_unique_id_property(ot: ObjectType, prop: str) -> JSON:
    return error(
        f"Unable to perform update/upsert by non-unique {ot.type_id} property {prop}",
        "VALIDATION_ERROR",
    )


def unknown_object_type(raw: str) -> JSON:
    return error(f"Unable to infer object type from: {raw}", "VALIDATION_ERROR")


def not_found_message(ot: ObjectType) -> str:
    return (
        f"Could not get some {ot.upper} objects, they may be deleted or not exist. "
        "Check that ids are valid."
    )


def not_found_item(ot: ObjectType, ids: Sequence[str], traces: Sequence[str]) -> JSON:
    """The single OBJECT_NOT_FOUND entry of a 207 ``errors`` list."""
    context: JSON = {"ids": list(ids)}
    if traces:
        context["objectWriteTraceId"] = list(traces)
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": not_found_message(ot),
        "context": context,
    }


def validation_item(problems: Sequence[PropertyProblem], trace: str | None) -> JSON:
    """Per-input VALIDATION_ERROR (an item of 207 ``errors``; also the base of the whole-batch
    400). The message embeds a compact JSON array, like HubSpot's."""
    embedded = orjson.dumps(
        [{"isValid": False, "message": m, "error": c, "name": n} for n, c, m in problems]
    ).decode()
    item: JSON = {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": f"Property values were not valid: {embedded}",
        "errors": [
            {"message": m, "code": c, "context": {"propertyName": [n]}} for n, c, m in problems
        ],
    }
    if trace is not None:
        item["context"] = {"objectWriteTraceId": [trace]}
    return item


def association_item(reason: str, trace: str | None) -> JSON:
    item: JSON = {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": f"Invalid association input: {reason}",
        "errors": [{"message": reason, "code": "INVALID_ASSOCIATION"}],
    }
    if trace is not None:
        item["context"] = {"objectWriteTraceId": [trace]}
    return item


def conflict_message(ot: ObjectType, prop: str, value: str, existing: str) -> str:
    return f"A {ot.singular} with {prop}={value} already exists. Existing ID: {existing}"


def conflict_item(ot: ObjectType, prop: str, value: str, existing: str, trace: str | None) -> JSON:
    item: JSON = {
        "status": "error",
        "category": "CONFLICT",
        "message": conflict_message(ot, prop, value, existing),
        "errors": [{"message": conflict_message(ot, prop, value, existing), "code": "CONFLICT"}],
    }
    if trace is not None:
        item["context"] = {"objectWriteTraceId": [trace]}
    return item


def as_whole_request(item: JSON) -> JSON:
    """Turn the first failing input's item into the body of a whole-batch 400/409."""
    body = error(item["message"], item["category"])
    if "errors" in item:
        body["errors"] = item["errors"]
    return body


def rate_limited(policy: str, portal: int, app: int, request_id: str) -> JSON:
    if policy == "DAILY":
        body = error("You have reached your daily limit.")
        group = f"publicapi:private_app-api-calls-daily:{portal}"
    elif policy == "SECONDLY":
        body = error("You have reached your secondly limit.")
        group = f"publicapi:private_app-api-calls-secondly:{portal}:{app}"
    else:
        body = error("You have reached your ten_secondly_rolling limit.")
        group = f"publicapi:private_app-api-calls-ten-secondly:{portal}:{app}"
    body["errorType"] = "RATE_LIMIT"
    body["policyName"] = policy
    body["groupName"] = group
    if policy == "DAILY":
        body["requestId"] = request_id
    return body


SERVER_ERROR_MESSAGES = {
    500: "internal error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    423: "The resource is locked (too many bulk writes in a short time); wait 2 seconds",
}
