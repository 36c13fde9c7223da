"""Legacy v1 ticket batch endpoints of the fake HubSpot (docs/hubspot-api.md §10).

v1 is all-or-nothing: any invalid input fails the whole batch with a 400 and nothing is
written; unknown ids in batch-update give one OBJECT_NOT_FOUND 400 naming all of them.
Answers keep input order (nothing documents v1 shuffling).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bulkops.testing import _fake_bodies as B
from bulkops.testing._fake_config import FakeConfig, FakeStats
from bulkops.testing._fake_schema import MalformedBody, ObjectType, PropertyProblem, validate_props
from bulkops.testing._fake_store import Props, Store, Table, ms_from_iso, now_stamp

JSON = dict[str, Any]
Reply = tuple[int, Any]

MAX_INPUTS = 100
OPS = frozenset({"batch-create", "batch-update", "batch-read", "batch-delete"})
# Values HubSpot computes itself are reported with source CALCULATED (§10).
_CALCULATED = frozenset(
    {"hs_object_id", "hs_ticket_id", "hs_lastmodifieddate", "createdate", "lastmodifieddate"}
)
_MODIFIED = frozenset({"hs_lastmodifieddate", "lastmodifieddate"})


def _object_id(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if type(v) is str and v.isascii() and v.isdigit():
        return str(int(v))
    raise MalformedBody(f"Cannot deserialize value of type `long` from {v!r}")


def _name_values(items: Any) -> dict[str, Any]:
    if type(items) is not list:
        raise MalformedBody("Cannot deserialize value of type `java.util.ArrayList`")
    props: dict[str, Any] = {}
    for it in items:
        if type(it) is not dict or type(it.get("name")) is not str:
            raise MalformedBody("Cannot deserialize property from non-Object value")
        props[it["name"]] = it.get("value")
    return props


def _invalid(problems: list[PropertyProblem]) -> JSON:
    return B.error(
        "Property values were not valid",
        validationResults=[
            {"isValid": False, "message": m, "error": c, "name": n} for n, c, m in problems
        ],
    )


def v1_object(
    table: Table,
    rid: str,
    portal: int,
    only: Iterable[str] | None = None,
    *,
    new: tuple[Props, str] | None = None,
) -> JSON:
    """The v1 object of a stored record, or of ``new`` = (props, createdAt) just created (a
    fake with ``store_records=False`` has not stored it)."""
    rp, created = new if new is not None else (table.by_id[rid], table.created[rid])
    created_ms = ms_from_iso(created)
    updated_ms = ms_from_iso(rp["hs_lastmodifieddate"])
    changed: dict[str, int] = {}  # prop -> time of its last update
    for ms, keys, _ in table.log.get(rid, ()):
        for k in keys:
            changed[k] = ms
    props: JSON = {}
    for name in rp if only is None else only:
        v = rp.get(name)
        if v is None:
            continue
        if name in _CALCULATED:
            src = "CALCULATED"
            ts = updated_ms if name in _MODIFIED else created_ms
        else:
            src = "API"
            ts = changed.get(name, created_ms)
        props[name] = {
            "value": v,
            "timestamp": ts,
            "source": src,
            "sourceId": None,
            "versions": [
                {"name": name, "value": v, "timestamp": ts, "source": src, "sourceVid": []}
            ],
        }
    return {
        "objectType": "TICKET",
        "portalId": portal,
        "objectId": int(rid),
        "isDeleted": False,
        "properties": props,
    }


class V1:
    def __init__(self, store: Store, config: FakeConfig, stats: FakeStats) -> None:
        self.store = store
        self.config = config
        self.stats = stats

    def handle(self, ot: ObjectType, op: str, body: Any, query_props: list[str]) -> Reply:
        if op == "batch-create":
            return self._create(ot, body)
        if op == "batch-update":
            return self._update(ot, body)
        if type(body) is not dict or type(body.get("ids")) is not list:
            raise MalformedBody("Cannot deserialize value of type `BatchIds` (expected ids)")
        ids = [_object_id(i) for i in body["ids"]]
        if len(ids) > MAX_INPUTS:
            return 400, B.too_many_inputs()
        table = self.store.table(ot)
        if op == "batch-delete":
            for rid in ids:
                table.delete(rid)  # permanent, not the v3 recycle bin; unknown ids ignored
            return 204, None
        portal = self.config.portal_id
        out: JSON = {}
        for rid in ids:
            # missing ids are simply absent; so are those the read lag still hides
            if table.live(rid) is not None and table.readable(rid):
                out[rid] = v1_object(table, rid, portal, query_props)
        return 200, out

    def _conflicts(self, ot: ObjectType, planned: list[tuple[str, Props]]) -> JSON | None:
        """First unique-value clash of the whole batch (against the store or the batch)."""
        index = self.store.table(ot).unique
        claims: dict[tuple[str, str], str] = {}
        for rid, clean in planned:
            for p in ot.unique_props:
                v = clean.get(p)
                if not v:
                    continue
                holder = claims.get((p, v)) or index[p].get(v)
                if holder is not None and holder != rid:
                    return B.error(B.conflict_message(ot, p, v, holder), "CONFLICT")
                claims[(p, v)] = rid
        return None

    def _create(self, ot: ObjectType, body: Any) -> Reply:
        if type(body) is not list:
            raise MalformedBody("Cannot deserialize value of type `java.util.ArrayList`")
        if len(body) > MAX_INPUTS:
            return 400, B.too_many_inputs()
        problems: list[PropertyProblem] = []
        planned: list[tuple[str, Props]] = []
        for item in body:
            # v1 batch-create: "pipeline and stage must be set" (docs/hubspot-api.md section 10).
            clean, bad = validate_props(ot, _name_values(item), True, ("hs_pipeline",))
            problems.extend(bad)
            planned.append((self.store.new_id(), clean))
        if problems:
            return 400, _invalid(problems)
        conflict = self._conflicts(ot, planned)
        if conflict is not None:
            return 409, conflict
        iso, _ = now_stamp()
        table = self.store.table(ot)
        stats = self.stats
        per_value = self.config.store_records  # benchmark mode keeps no per-value counts
        out = []
        for rid, clean in planned:
            table.create(rid, clean, iso)
            stats.records_created[ot.name] += 1
            for p in ot.unique_props if per_value else ():
                v = clean.get(p)
                if v:
                    stats.creates_by_unique[(ot.name, p, v)] += 1
            out.append(v1_object(table, rid, self.config.portal_id, new=(clean, iso)))
        return 200, out

    def _update(self, ot: ObjectType, body: Any) -> Reply:
        if type(body) is not list:
            raise MalformedBody("Cannot deserialize value of type `java.util.ArrayList`")
        if len(body) > MAX_INPUTS:
            return 400, B.too_many_inputs()
        table = self.store.table(ot)
        problems: list[PropertyProblem] = []
        planned: list[tuple[str, Props]] = []
        missing: list[str] = []
        for item in body:
            if type(item) is not dict:
                raise MalformedBody("Cannot deserialize update from non-Object value")
            oid = _object_id(item.get("objectId"))
            if table.live(oid) is None:
                missing.append(oid)
                continue
            clean, bad = validate_props(ot, _name_values(item.get("properties", [])), False)
            problems.extend(bad)
            planned.append((oid, clean))
        if missing:
            # docs/hubspot-api.md documents no v1 answer for unknown ids. v1 stays all-or-nothing
            # (a 400, nothing written) and the body takes the documented v3 shape of missing
            # records (§4): OBJECT_NOT_FOUND listing every unknown id in context.ids, so a
            # client can fail exactly those rows instead of bisecting the batch. The ids are
            # also appended to the message (our addition) for clients that read only text.
            message = f"{B.not_found_message(ot)} Missing ids: {B.java_list(missing)}"
            return 400, B.error(message, "OBJECT_NOT_FOUND", context={"ids": missing})
        if problems:
            return 400, _invalid(problems)
        conflict = self._conflicts(ot, planned)
        if conflict is not None:
            return 409, conflict
        iso, ms = now_stamp()
        out = []
        for rid, clean in planned:
            table.update(rid, table.by_id[rid], clean, iso, ms)
            out.append(v1_object(table, rid, self.config.portal_id))
        return 200, out
