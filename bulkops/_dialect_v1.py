"""The legacy v1 ticket batch API (``/crm-objects/v1/objects/tickets/batch-*``).

Bodies are lists of ``{"name", "value"}`` pairs, records are addressed by numeric ``objectId``,
and there is no partial success: one bad input fails the whole batch with a 400, which the
dispatcher answers by splitting the batch to isolate the bad record. ``batch-delete`` is
permanent (no recycle bin), unlike v3 archive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._dialect import (
    Fatal,
    Parsed,
    Rejected,
    error_message,
    field_errors,
    match_by_content,
    read_error,
)
from ._models import Item, Operation, Outcome
from ._transport import HttpRequest, HttpResponse

__all__ = ["V1Dialect"]

_BASE = "/crm-objects/v1/objects/tickets"
_ENDPOINT = {
    Operation.CREATE: "batch-create",
    Operation.UPDATE: "batch-update",
    Operation.ARCHIVE: "batch-delete",
    Operation.READ: "batch-read",
}


def _pairs(properties: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in properties.items()]


def _flat(ticket: Mapping[str, Any]) -> dict[str, Any]:
    """v1 nests each value as ``{"value": ..., "timestamp": ..., "versions": [...]}``."""
    props = ticket.get("properties")
    if not isinstance(props, Mapping):
        return {}
    return {k: (v.get("value") if isinstance(v, Mapping) else v) for k, v in props.items()}


class V1Dialect:
    def __init__(
        self,
        operation: Operation,
        *,
        id_property: str | None = None,
        properties: Sequence[str] = (),
    ) -> None:
        if operation not in _ENDPOINT:
            raise ValueError(f"v1 has no {operation.value}")
        self.operation = operation
        self.id_property = id_property
        self.path = f"{_BASE}/{_ENDPOINT[operation]}"
        self._read_props = list(properties)

    def request(self, items: Sequence[Item]) -> HttpRequest:
        op = self.operation
        if op is Operation.CREATE:
            return HttpRequest("POST", self.path, [_pairs(it.properties) for it in items])
        if op is Operation.UPDATE:
            body = [
                {"objectId": int(it.record_id or 0), "properties": _pairs(it.properties)}
                for it in items
            ]
            return HttpRequest("POST", self.path, body)
        ids = {"ids": [int(it.record_id or 0) for it in items]}
        if op is Operation.ARCHIVE:
            return HttpRequest("POST", self.path, ids)
        params = [("properties", p) for p in self._read_props]
        return HttpRequest("POST", self.path, ids, params)

    def parse_fast(self, items: Sequence[Item], response: HttpResponse) -> Parsed | None:
        return None  # v1 answers are read in full (one ticket per request, no batch body)

    def parse_ok(self, items: Sequence[Item], response: HttpResponse) -> Parsed:
        op = self.operation
        if op is Operation.ARCHIVE:
            return Parsed([Outcome(it, True, hubspot_id=it.record_id) for it in items])
        body = response.json()
        if op is Operation.READ:
            if not isinstance(body, Mapping):
                return Parsed(unmentioned=list(items), stray_error=error_message(body, response))
            parsed = Parsed()
            for it in items:
                ticket = body.get(str(it.record_id))
                if isinstance(ticket, Mapping):
                    parsed.outcomes.append(
                        Outcome(it, True, hubspot_id=it.record_id, properties=_flat(ticket))
                    )
                else:
                    # batch-read leaves missing ids out of its answer.
                    parsed.outcomes.append(
                        Outcome(
                            it,
                            False,
                            category="OBJECT_NOT_FOUND",
                            message=f"ticket {it.record_id} does not exist",
                        )
                    )
            return parsed
        if not isinstance(body, list):
            return Parsed(unmentioned=list(items), stray_error=error_message(body, response))
        tickets = [t for t in body if isinstance(t, Mapping)]
        if op is Operation.UPDATE:
            by_id = {str(it.record_id): it for it in items}
            parsed = Parsed()
            for t in tickets:
                item = by_id.pop(str(t.get("objectId")), None)
                if item is not None:
                    parsed.outcomes.append(Outcome(item, True, hubspot_id=item.record_id))
            parsed.unmentioned = sorted(by_id.values(), key=lambda it: it.row)
            return parsed
        # create: no trace ids in v1; pair by the unique value, else by content.
        pairs, rest, _ = match_by_content(items, tickets, _flat)
        outcomes = [
            Outcome(item, True, hubspot_id=str(t.get("objectId")), new=True) for item, t in pairs
        ]
        return Parsed(outcomes, rest)

    def parse_rejection(
        self, items: Sequence[Item], response: HttpResponse
    ) -> Parsed | Rejected | Fatal:
        body, message, category = read_error(response)
        if response.status == 404 and not category:
            if self.operation is not Operation.CREATE and _names_an_id(items, message):
                # An unknown objectId: that record's failure, not a wrong URL (the route
                # exists, or it would not name our id). Isolated like any bad record.
                return Rejected("OBJECT_NOT_FOUND", message, isolatable=True)
            return Fatal(f"HubSpot answered 404 for {self.path}: {message}. Check --base-url.")
        if response.status in (400, 404, 409, 413, 422):
            return Rejected(
                category or "VALIDATION_ERROR",
                message,
                isolatable=True,
                fields=field_errors(body),
            )
        return Fatal(f"HubSpot answered {response.status} for {self.path}: {message}")


def _names_an_id(items: Sequence[Item], message: str) -> bool:
    numbers = set(re.findall(r"\d+", message))
    return any(it.record_id in numbers for it in items if it.record_id is not None)
