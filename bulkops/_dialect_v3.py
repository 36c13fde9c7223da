"""CRM v3-shaped batch endpoints, for tickets and any other object type.

``POST /crm/objects/{version}/{type}/batch/{create|update|upsert|archive|read}`` on a dated
version, ``/crm/v3/objects/{type}/batch/...`` on v3: the bodies are the same
(docs/hubspot-api.md §14), so the :class:`ApiVersion` given only spells the path. Every write input
carries ``objectWriteTraceId`` (the input row number), which makes HubSpot answer a partial
failure with 207 and per-input errors instead of failing the whole batch (docs/hubspot-api.md §5).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

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
from ._versions import DEFAULT_API_VERSION, ApiVersion

__all__ = ["V3Dialect"]


class _Result(msgspec.Struct):
    # What the fast path reads of a result; ``properties`` and the rest are skipped unread.
    id: str | None = None
    objectWriteTraceId: str | None = None
    new: bool | None = None


class _Answer(msgspec.Struct):
    results: list[_Result] = []
    errors: list[msgspec.Raw] = []


# Typed: decoding a 100-record answer into these costs ~0.3 us a record against ~1.7 us for
# building every dict of it (measured on the fake's answers).
_decode_answer = msgspec.json.Decoder(_Answer).decode
_row_of = operator.attrgetter("row")
_trace_of = operator.attrgetter("objectWriteTraceId")
_id_of = operator.attrgetter("id")
_FAST_OPERATIONS = frozenset({Operation.CREATE, Operation.UPDATE, Operation.UPSERT})


class V3Dialect:
    def __init__(
        self,
        operation: Operation,
        object_type: str,
        *,
        version: ApiVersion = DEFAULT_API_VERSION,
        id_property: str | None = None,
        properties: Sequence[str] = (),
        properties_with_history: Sequence[str] = (),
        archived: bool = False,
    ) -> None:
        self.operation = operation
        self.object_type = object_type
        self.version = version
        self.id_property = id_property
        self.path = version.objects_path(object_type, operation.value)
        read_props = list(properties)
        if id_property and id_property not in read_props:
            # Needed to match read results back to inputs addressed by a unique value.
            read_props.append(id_property)
        self._read_props = read_props
        self._history = list(properties_with_history)
        self._archived = archived

    # -- request -----------------------------------------------------------------------------
    def request(self, items: Sequence[Item]) -> HttpRequest:
        op, idp = self.operation, self.id_property
        inputs: list[dict[str, Any]]
        if op is Operation.CREATE:
            inputs = []
            for it in items:
                entry: dict[str, Any] = {
                    "properties": it.properties,
                    "objectWriteTraceId": str(it.row),
                }
                if it.associations:
                    entry["associations"] = it.associations
                inputs.append(entry)
            return HttpRequest("POST", self.path, {"inputs": inputs})
        if op in (Operation.UPDATE, Operation.UPSERT):
            if idp:
                inputs = [
                    {
                        "id": it.record_id,
                        "idProperty": idp,
                        "properties": it.properties,
                        "objectWriteTraceId": str(it.row),
                    }
                    for it in items
                ]
            else:
                inputs = [
                    {
                        "id": it.record_id,
                        "properties": it.properties,
                        "objectWriteTraceId": str(it.row),
                    }
                    for it in items
                ]
            return HttpRequest("POST", self.path, {"inputs": inputs})
        if op is Operation.ARCHIVE:
            return HttpRequest(
                "POST", self.path, {"inputs": [{"id": it.record_id} for it in items]}
            )
        body: dict[str, Any] = {
            # A read-back of creates addresses them by their unique value (they have no id yet).
            "inputs": [
                {"id": it.record_id if it.record_id is not None else it.properties[idp or ""]}
                for it in items
            ],
            "properties": self._read_props,
            "propertiesWithHistory": self._history,
        }
        if idp:
            body["idProperty"] = idp
        params = [("archived", "true" if self._archived else "false")]
        return HttpRequest("POST", self.path, body, params)

    # -- answers -----------------------------------------------------------------------------
    def parse_fast(self, items: Sequence[Item], response: HttpResponse) -> Parsed | None:
        op = self.operation
        if op not in _FAST_OPERATIONS or not response.body:
            return None
        try:
            answer = _decode_answer(response.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # not this shape (or not JSON): the full reading decides
        if answer.errors or len(answer.results) != len(items):
            return None
        # This runs for every record written: map() and zip(), no Python code per record (both
        # sides come from items, so one length; zip given strict= takes a slow call path).
        by_trace = dict(zip(map(str, map(_row_of, items)), items))  # noqa: B905
        if op is Operation.CREATE:
            # Every create is new. A missing trace id (None) or an unknown or repeated one
            # raises KeyError, as str(row) is never None and each is popped once.
            results = answer.results
            try:
                written = list(
                    map(
                        Outcome,
                        map(by_trace.pop, map(_trace_of, results)),
                        itertools.repeat(True),
                        map(_id_of, results),
                        itertools.repeat(True),
                    )
                )
            except KeyError:
                return None  # no trace id, an unknown or repeated one: match in full
            return Parsed(written, all_ok=True)
        outcomes: list[Outcome] = []
        for result in answer.results:
            trace = result.objectWriteTraceId
            item = by_trace.pop(trace, None) if trace is not None else None
            if item is None:
                return None  # no trace id, an unknown or repeated one: match in full
            new = _new_flag(op, item, result.new)
            outcomes.append(Outcome(item, True, result.id, new))
        return Parsed(outcomes, all_ok=True)

    def parse_ok(self, items: Sequence[Item], response: HttpResponse) -> Parsed:
        if self.operation is Operation.ARCHIVE:
            # 204, no body: HubSpot archived all of them (unknown ids are ignored, as by HubSpot).
            return Parsed([Outcome(it, True, hubspot_id=it.record_id) for it in items])
        body = response.json()
        if not isinstance(body, Mapping):
            return Parsed(unmentioned=list(items), stray_error=error_message(body, response))
        results = body.get("results") or []
        errors = body.get("errors") or []
        parsed = Parsed()
        by_trace = {str(it.row): it for it in items}
        by_key = {it.key: it for it in items if it.key is not None}
        settled: set[int] = set()

        def settle(item: Item, outcome: Outcome) -> None:
            if item.row not in settled:
                settled.add(item.row)
                parsed.outcomes.append(outcome)

        strays: list[Any] = []
        for result in results:
            if not isinstance(result, Mapping):
                continue
            item = self._match(result, by_trace, by_key)
            if item is None:
                strays.append(result)
            else:
                settle(item, self._success(item, result))

        stray_errors: list[str] = []
        for error in errors:
            if not isinstance(error, Mapping):
                continue
            targets = self._error_targets(error, by_trace, by_key)
            reason = error_message(error, response)
            category = str(error.get("category") or "ERROR")
            if not targets:
                stray_errors.append(reason)
            for item in targets:
                settle(item, Outcome(item, False, category=category, message=reason))

        rest = [it for it in items if it.row not in settled]
        if strays and rest and self.operation is Operation.CREATE:
            pairs, rest, _ = match_by_content(rest, strays, _props)
            for item, result in pairs:
                settle(item, self._success(item, result))
        parsed.unmentioned = rest
        parsed.stray_error = "; ".join(stray_errors)[:500] or None
        return parsed

    def _match(
        self, result: Mapping[str, Any], by_trace: dict[str, Item], by_key: dict[str, Item]
    ) -> Item | None:
        trace = result.get("objectWriteTraceId")
        if trace is not None and str(trace) in by_trace:
            return by_trace[str(trace)]
        if self.id_property:
            value = _props(result).get(self.id_property)
            return by_key.get(str(value).strip().lower()) if value is not None else None
        if self.operation is not Operation.CREATE and result.get("id") is not None:
            return by_key.get(str(result["id"]))
        return None

    def _error_targets(
        self, error: Mapping[str, Any], by_trace: dict[str, Item], by_key: dict[str, Item]
    ) -> list[Item]:
        context = error.get("context")
        if not isinstance(context, Mapping):
            return []
        found: dict[int, Item] = {}
        for trace in context.get("objectWriteTraceId") or []:
            item = by_trace.get(str(trace))
            if item is not None:
                found[item.row] = item
        for value in context.get("ids") or []:
            item = by_key.get(str(value).strip().lower())
            if item is not None:
                found[item.row] = item
        return list(found.values())

    def _success(self, item: Item, result: Mapping[str, Any]) -> Outcome:
        op = self.operation
        hubspot_id = str(result.get("id")) if result.get("id") is not None else None
        if op is Operation.READ:
            props = dict(_props(result))
            history = result.get("propertiesWithHistory")
            extra = {"propertiesWithHistory": history} if history else None
            return Outcome(item, True, hubspot_id=hubspot_id, properties=props, extra=extra)
        return Outcome(
            item, True, hubspot_id=hubspot_id, new=_new_flag(op, item, result.get("new"))
        )

    def parse_rejection(
        self, items: Sequence[Item], response: HttpResponse
    ) -> Parsed | Rejected | Fatal:
        body, message, category = read_error(response)
        status = response.status
        if status == 404 and self.operation is Operation.READ and category == "OBJECT_NOT_FOUND":
            # HubSpot answers a read in which *no* id exists with a whole-request 404.
            return Parsed([Outcome(it, False, category=category, message=message) for it in items])
        if status == 404:
            # A dated version HubSpot does not (yet) publish also answers 404.
            flags = (
                "--base-url, --object and --api-version"
                if self.version.is_dated
                else ("--base-url and --object")
            )
            return Fatal(f"HubSpot answered 404 for {self.path}: {message}. Check {flags}.")
        lowered = message.lower()
        if "unable to infer object type" in lowered or "non-unique" in lowered:
            return Fatal(message)
        if status in (400, 409, 413, 422):
            return Rejected(
                category or ("CONFLICT" if status == 409 else "VALIDATION_ERROR"),
                message,
                isolatable=True,
                fields=field_errors(body),
            )
        return Fatal(f"HubSpot answered {status} for {self.path}: {message}")


def _new_flag(op: Operation, item: Item, raw_new: Any) -> bool | None:
    """Whether the write created the record: always for a create, HubSpot's word for an
    upsert, unknown for an update."""
    if op is Operation.CREATE:
        return True
    if op is not Operation.UPSERT:
        return None
    new = raw_new if isinstance(raw_new, bool) else None
    if item.maybe_written and new is False:
        # An earlier attempt may have created it; "updated" would be a guess.
        return None
    return new


def _props(result: Mapping[str, Any]) -> Mapping[str, Any]:
    props = result.get("properties")
    return props if isinstance(props, Mapping) else {}
