"""CRM v3-shaped batch endpoints of the fake HubSpot (create, update, upsert, archive, read),
served under ``/crm/v3/objects`` and the dated ``/crm/objects/{version}`` paths alike.

The versions differ in two things only (docs/hubspot-api.md §14): dated versions take association
``types`` without ``associationCategory``, and 2026-09 and later enforce the portal's
validation rules on writes.

Handlers are synchronous functions of the parsed body: everything between parsing and the
answer happens without an await, so a batch is applied atomically with respect to other
requests, as HubSpot's batches appear to be.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from bulkops.testing import _fake_bodies as B
from bulkops.testing._fake_config import (
    FakeConfig,
    FakeStats,
    enforces_validation_rules,
    is_dated,
)
from bulkops.testing._fake_schema import (
    ASSOCIATION_CATEGORIES,
    MalformedBody,
    ObjectType,
    PropertyProblem,
    ValidationRule,
    validate_props,
)
from bulkops.testing._fake_store import Props, Store, Table, iso_from_ms, now_stamp

JSON = dict[str, Any]
Reply = tuple[int, Any]  # (status, JSON body or None for no body)

MAX_INPUTS = 100
MAX_HISTORY_INPUTS = 50
_PERM_POOL = 64
OPS = frozenset({"create", "update", "upsert", "archive", "read"})
DEFAULT_TICKET_PIPELINE = "0"  # the id of every portal's default ticket pipeline


def _input_id(inp: JSON) -> str:
    v = inp.get("id")
    if type(v) is str:
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    raise MalformedBody("Missing required creator property 'id'")


def _duplicates(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    dups: list[str] = []
    for i in ids:
        if i in seen and i not in dups:
            dups.append(i)
        seen.add(i)
    return dups


def _association_problem(assocs: Any, category_required: bool) -> str | None:
    """Shape check of create ``associations`` (AssociationSpec, §2); None when fine. v3 wants
    ``associationCategory`` on every type; the dated references also show types without it."""
    if type(assocs) is not list:
        return "associations must be a list"
    for a in assocs:
        if type(a) is not dict:
            return "each association must be an object"
        to = a.get("to")
        if type(to) is not dict or type(to.get("id")) not in (str, int) or to.get("id") == "":
            return "to.id is required"
        types = a.get("types")
        if type(types) is not list or not types:
            return "types must be a non-empty list"
        for t in types:
            if type(t) is not dict:
                return "each type must be an object"
            category = t.get("associationCategory")
            if (category_required or category is not None) and (
                category not in ASSOCIATION_CATEGORIES
            ):
                return f"invalid associationCategory {t.get('associationCategory')!r}"
            if type(t.get("associationTypeId")) is not int:
                return "associationTypeId must be an integer"
    return None


class V3:
    def __init__(
        self, store: Store, config: FakeConfig, rng: random.Random, stats: FakeStats
    ) -> None:
        self.store = store
        self.config = config
        self.rng = rng
        self.stats = stats
        self._perms: dict[int, list[list[int]]] = {}

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _lookup(table: Table, key: str, id_prop: str | None) -> str | None:
        """Id of the live record with record id / unique property value ``key``."""
        if id_prop is None or id_prop == "hs_object_id":
            return key if table.live(key) is not None else None
        return table.unique[id_prop].get(key)

    @staticmethod
    def _lookup_archived(table: Table, key: str, id_prop: str | None) -> str | None:
        if id_prop is None or id_prop == "hs_object_id":
            return key if key in table.archived else None
        # archived records are not in the unique index; reading them by value is rare
        for rid in table.archived:
            if table.by_id[rid].get(id_prop) == key:
                return rid
        return None

    def _shuffled(self, items: list[JSON]) -> list[JSON]:
        # random.shuffle costs ~40 us per 100 items, a noticeable share of a request; a
        # pick from a small pool of seeded permutations per size is plenty to catch a client
        # that relies on order, at a tenth of the cost.
        n = len(items)
        if n < 2:
            return items
        pool = self._perms.get(n)
        if pool is None:
            pool = self._perms[n] = []
        if len(pool) < _PERM_POOL:
            perm = list(range(n))
            self.rng.shuffle(perm)
            pool.append(perm)
        else:
            perm = pool[self.rng.randrange(_PERM_POOL)]
        return [items[i] for i in perm]

    def _complete(self, results: list[JSON], errors: list[JSON], started: str) -> JSON:
        if self.config.shuffle_results:
            results = self._shuffled(results)
            errors = self._shuffled(errors)
        body: JSON = {"status": "COMPLETE", "results": results}
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
        body["startedAt"] = started
        body["completedAt"] = now_stamp()[0]
        return body

    # -- dispatch --------------------------------------------------------------------------

    def handle(
        self, ot: ObjectType, op: str, body: Any, archived: bool, version: str = "v3"
    ) -> Reply:
        """Answer one batch request; ``version`` is what the path names ("v3", "2026-09")."""
        started = now_stamp()[0]
        if type(body) is not dict:
            raise MalformedBody(
                "Cannot deserialize value of type `BatchInput$Json` from "
                f"{'Array' if type(body) is list else 'scalar'} value"
            )
        inputs = body.get("inputs")
        if inputs is None or inputs == []:
            # HubSpot silently accepts a body without inputs; a client must notice.
            return (204, None) if op == "archive" else (200, self._complete([], [], started))
        if type(inputs) is not list:
            raise MalformedBody("Cannot deserialize value of type `java.util.ArrayList`")
        if len(inputs) > MAX_INPUTS:
            return 400, B.too_many_inputs()
        for inp in inputs:
            if type(inp) is not dict:
                raise MalformedBody("Cannot deserialize input from non-Object value")
        if op == "create":
            return self._write(ot, op, inputs, started, version)
        if op == "read":
            return self._read(ot, body, inputs, archived, started)
        ids = [_input_id(inp) for inp in inputs]
        dups = _duplicates(ids)
        if dups:
            return 400, B.duplicate_ids(dups)
        if op == "archive":
            iso = now_stamp()[0]
            table = self.store.table(ot)
            for key in ids:
                table.archive(key, iso)  # unknown ids are ignored (§6)
            return 204, None
        for inp in inputs:
            idp = inp.get("idProperty")
            if op == "upsert" and idp is None:
                return 400, B.error("idProperty is required for upsert", "VALIDATION_ERROR")
            # hs_object_id (the record id) is a valid update key but cannot key an upsert
            if idp is not None and not (
                idp in ot.unique_props or (op == "update" and idp == "hs_object_id")
            ):
                return 400, B.non_unique_id_property(ot, str(idp))
        return self._write(ot, op, inputs, started, version)

    # -- create / update / upsert ----------------------------------------------------------

    def _write(
        self, ot: ObjectType, op: str, inputs: list[JSON], started: str, version: str
    ) -> Reply:
        # Multi-status only when EVERY input carries a trace id (§5); else all-or-nothing.
        traced = None not in [inp.get("objectWriteTraceId") for inp in inputs]
        category_required = not is_dated(version)
        rules = self.config.validation_rules if enforces_validation_rules(version) else ()
        broken_rules = 0
        default_pipeline = ot.name == "tickets"
        table = self.store.table(ot)
        index = table.unique
        by_id = table.by_id
        unique_props = ot.unique_props
        creating_op = op == "create"
        failures: list[JSON] = []
        missing: list[str] = []
        missing_traces: list[str] = []
        # (unique prop, value) -> id of the record that takes it in this batch; checked
        # before anything is written so an all-or-nothing batch can still be refused whole.
        claims: dict[str, dict[str, str]] = {p: {} for p in unique_props}
        ids = self.store.ids
        iso, ms = now_stamp()
        created_at = table.created
        echo = self.config.echo_trace_ids
        upsert = op == "upsert"
        # Results are built while checking: their "properties" is the very dict the write
        # below fills in (adopted input dict on create, stored dict on update), and they are
        # serialized before any other request runs, so they show the written state.
        results: list[JSON] = []
        to_create: list[tuple[str, Props, Any]] = []
        to_update: list[tuple[str, Props, Props]] = []
        for inp in inputs:
            trace = inp.get("objectWriteTraceId")
            if trace is not None and type(trace) is not str:
                trace = str(trace)
            props = inp.get("properties")
            if type(props) is not dict:
                if props is not None:
                    raise MalformedBody("Cannot deserialize value of type `java.util.HashMap`")
                props = {}
            own: str | None = None
            key = ""
            idp = None
            if not creating_op:
                key = _input_id(inp)
                idp = inp.get("idProperty")
                own = self._lookup(table, key, idp)
                if own is None and op == "update":
                    missing.append(key)
                    if trace is not None:
                        missing_traces.append(trace)
                    continue
            if own is None and default_pipeline and not props.get("hs_pipeline"):
                # "If a pipeline isn't specified, the default pipeline will be used" (§2); v1
                # still requires it.
                props = {**props, "hs_pipeline": DEFAULT_TICKET_PIPELINE}
            clean, problems = validate_props(ot, props, own is None)
            if problems:
                failures.append(B.validation_item(problems, trace))
                continue
            if rules:
                broken = _rule_problems(rules, clean, by_id[own] if own is not None else None)
                if broken:
                    broken_rules += 1
                    failures.append(B.validation_item(broken, trace))
                    continue
            assocs = inp.get("associations") if creating_op else None
            if assocs is not None:
                reason = _association_problem(assocs, category_required)
                if reason is not None:
                    failures.append(B.association_item(reason, trace))
                    continue
            if own is None and idp is not None:
                clean[idp] = key  # upsert-create: the record gets the key it was found by
            conflict = None
            for p in unique_props:
                v = clean.get(p)
                if v:
                    holder = claims[p].get(v) or index[p].get(v)
                    if holder is not None and holder != own:
                        conflict = (p, v, holder)
                        break
            if conflict is not None:
                failures.append(B.conflict_item(ot, *conflict, trace))
                continue
            if own is None:
                rid = str(next(ids))
                to_create.append((rid, clean, assocs))
                res: JSON = {
                    "id": rid,
                    "properties": clean,
                    "createdAt": iso,
                    "updatedAt": iso,
                    "archived": False,
                }
            else:
                rid = own
                existing = by_id[rid]
                to_update.append((rid, existing, clean))
                res = {
                    "id": rid,
                    "properties": existing,
                    "createdAt": created_at[rid],
                    "updatedAt": iso,
                    "archived": False,
                }
            if upsert:
                res["new"] = own is None
            if echo and trace is not None:
                res["objectWriteTraceId"] = trace
            results.append(res)
            for p in unique_props:
                v = clean.get(p)
                if v:
                    claims[p][v] = rid

        if broken_rules and not self.config.validation_rules_multi_status:
            # The unverified alternative: a broken rule refuses the whole batch even with
            # trace ids, naming the first record's missing property.
            first = next(f for f in failures if f["category"] == "VALIDATION_ERROR")
            return 400, B.as_whole_request(first)
        if failures and not traced:
            # One bad input fails the whole batch, nothing written. Values are validated
            # before uniqueness, so the first invalid input wins over the first conflict.
            invalid = [f for f in failures if f["category"] != "CONFLICT"]
            if invalid:
                return 400, B.as_whole_request(invalid[0])
            return 409, B.as_whole_request(failures[0])

        create = table.create
        for rid, clean, assocs in to_create:
            create(rid, clean, iso, assocs)
        for rid, existing, clean in to_update:
            table.update(rid, existing, clean, iso, ms)
        if to_create:
            self._count_creates(ot, [c for _, c, _ in to_create])
        if missing:
            failures.append(B.not_found_item(ot, missing, missing_traces))
        if failures:
            return 207, self._complete(results, failures, started)
        return (201 if creating_op else 200), self._complete(results, [], started)

    def _count_creates(self, ot: ObjectType, new_records: list[Props]) -> None:
        self.stats.records_created[ot.name] += len(new_records)
        if not self.config.store_records:
            return  # benchmark mode: nothing per record is kept, counts included
        by_unique = self.stats.creates_by_unique
        for p in ot.unique_props:
            for props in new_records:
                v = props.get(p)
                if v:
                    k = (ot.name, p, v)
                    by_unique[k] = by_unique.get(k, 0) + 1

    # -- read ------------------------------------------------------------------------------

    def _read(
        self, ot: ObjectType, body: JSON, inputs: list[JSON], archived: bool, started: str
    ) -> Reply:
        history = body.get("propertiesWithHistory") or []
        wanted = body.get("properties") or []
        if type(history) is not list or type(wanted) is not list:
            raise MalformedBody("Cannot deserialize value of type `java.util.ArrayList`")
        if history and len(inputs) > MAX_HISTORY_INPUTS:
            return 400, B.history_limit()
        idp = body.get("idProperty")
        if idp is not None and not (idp in ot.unique_props or idp == "hs_object_id"):
            return 400, B.non_unique_id_property(ot, str(idp))
        ids = [_input_id(inp) for inp in inputs]
        dups = _duplicates(ids)
        if dups:
            return 400, B.duplicate_ids(dups)
        find = self._lookup_archived if archived else self._lookup
        table = self.store.table(ot)
        results: list[JSON] = []
        missing: list[str] = []
        for key in ids:
            rid = find(table, key, idp)
            if rid is None or not table.readable(rid):  # read lag: not yet visible
                missing.append(key)
            else:
                results.append(self._read_result(table, rid, wanted, history))
        if missing and not results and self.config.read_all_missing_404:
            return 404, B.error(
                B.not_found_message(ot), "OBJECT_NOT_FOUND", context={"ids": missing}
            )
        errors = [B.not_found_item(ot, missing, [])] if missing else []
        return (207 if errors else 200), self._complete(results, errors, started)

    @staticmethod
    def _read_result(table: Table, rid: str, wanted: list[Any], history: list[Any]) -> JSON:
        rp = table.by_id[rid]
        props = {p: rp[p] for p in wanted if type(p) is str and p in rp}
        for p in ("hs_object_id", "createdate", "hs_lastmodifieddate"):
            v = rp.get(p)
            if v is not None:
                props[p] = v
        res: JSON = {
            "id": rid,
            "properties": props,
            "createdAt": table.created[rid],
            "updatedAt": rp["hs_lastmodifieddate"],
            "archived": rid in table.archived,
        }
        if rid in table.archived:
            res["archivedAt"] = table.archived[rid]
        if history:
            res["propertiesWithHistory"] = {
                p: [
                    {"value": v, "timestamp": iso_from_ms(ms), "sourceType": "API"}
                    for v, ms in reversed(table.history_of(rid, p))  # newest first
                ]
                for p in history
                if type(p) is str
            }
        return res


def _rule_problems(
    rules: Sequence[ValidationRule], values: Props, existing: Props | None
) -> list[PropertyProblem]:
    """The rules a write breaks, judged on the record as it would be after the write."""
    after = values if existing is None else {**existing, **values}
    found: list[PropertyProblem] = []
    for rule in rules:
        found.extend(rule.problems(after))
    return found
