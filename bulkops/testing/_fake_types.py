"""Built-in object types of the fake HubSpot (tickets, contacts, companies, deals), custom
types from FakeConfig.schemas, and the property JSON of GET /crm/v3/properties/{type}."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bulkops.testing._fake_schema import (
    ObjectType,
    PropertyDef,
    checker_for,
    fast_set,
)

# --- default schemas ------------------------------------------------------------------------


def _p(name: str, type_: str = "string", field_type: str = "text", **kw: Any) -> PropertyDef:
    return PropertyDef(
        name=name, label=kw.pop("label", name), type=type_, field_type=field_type, **kw
    )


def _ro(name: str, type_: str = "datetime", **kw: Any) -> PropertyDef:
    ft = {"datetime": "date", "number": "number"}.get(type_, "text")
    return _p(name, type_, ft, read_only=True, **kw)


def _enum(name: str, options: Sequence[str], field_type: str = "select", **kw: Any) -> PropertyDef:
    return _p(name, "enumeration", field_type, options=tuple(options), **kw)


def _unique(name: str) -> PropertyDef:
    return _p(name, unique=True)


_TICKETS = (
    _p("subject", required=True),
    _p("content", field_type="textarea"),
    # Not required: "If a pipeline isn't specified, the default pipeline will be used".
    _enum("hs_pipeline", ["0"]),
    _enum("hs_pipeline_stage", ["1", "2", "3", "4"], required=True),
    _enum("hs_ticket_priority", ["LOW", "MEDIUM", "HIGH", "URGENT"]),
    _enum(
        "hs_ticket_category",
        ["PRODUCT_ISSUE", "BILLING_ISSUE", "FEATURE_REQUEST", "GENERAL_INQUIRY"],
        field_type="checkbox",
    ),
    _enum("source_type", ["EMAIL", "CHAT", "PHONE", "FORM"]),
    _p("createdate", "datetime", "date"),  # writable on tickets (back-dated imports)
    _ro("hs_lastmodifieddate"),
    _ro("hs_object_id", "number"),
    _ro("hs_ticket_id", "number", calculated=True),
    _unique("external_id"),
    _p("customer_score", "number", "number"),
    _p("is_escalated", "bool", "booleancheckbox"),
    _p("due_date", "date", "date"),
)

_CONTACTS = (
    _unique("email"),
    _p("firstname"),
    _p("lastname"),
    _p("phone"),
    _p("company"),
    _enum(
        "lifecyclestage",
        [
            "subscriber",
            "lead",
            "marketingqualifiedlead",
            "salesqualifiedlead",
            "opportunity",
            "customer",
            "evangelist",
            "other",
        ],
    ),
    _ro("hs_object_id", "number"),
    _ro("createdate"),
    _ro("lastmodifieddate"),
    _ro("hs_lastmodifieddate"),
    _unique("external_id"),
)

_COMPANIES = (
    _p("name"),
    _p("domain"),  # deliberately NOT unique: update/upsert by it is the non-unique 400
    _p("industry"),
    _p("numberofemployees", "number", "number"),
    _unique("external_id"),
    _ro("hs_object_id", "number"),
    _ro("createdate"),
    _ro("hs_lastmodifieddate"),
)

_DEALS = (
    _p("dealname"),
    _p("amount", "number", "number"),
    _enum("dealstage", ["appointmentscheduled", "qualifiedtobuy", "closedwon", "closedlost"]),
    _enum("pipeline", ["default"]),
    _p("closedate", "datetime", "date"),
    _unique("external_id"),
    _ro("hs_object_id", "number"),
    _ro("createdate"),
    _ro("hs_lastmodifieddate"),
)

# name -> (type id, singular, properties)
DEFAULT_TYPES: dict[str, tuple[str, str, tuple[PropertyDef, ...]]] = {
    "tickets": ("0-5", "ticket", _TICKETS),
    "contacts": ("0-1", "contact", _CONTACTS),
    "companies": ("0-2", "company", _COMPANIES),
    "deals": ("0-3", "deal", _DEALS),
}

# Every record carries these; custom schemas get them added when missing.
SYSTEM_PROPS = (_ro("hs_object_id", "number"), _ro("createdate"), _ro("hs_lastmodifieddate"))


def compile_type(
    name: str, type_id: str, singular: str, upper: str, props: Sequence[PropertyDef]
) -> ObjectType:
    have = {p.name for p in props}
    allp = tuple(props) + tuple(p for p in SYSTEM_PROPS if p.name not in have)
    writable = {
        p.name: (fast_set(p), checker_for(p)) for p in allp if not (p.read_only or p.calculated)
    }
    return ObjectType(
        name=name,
        type_id=type_id,
        singular=singular,
        upper=upper,
        properties=allp,
        writable=writable,
        read_only=frozenset(p.name for p in allp if p.read_only or p.calculated),
        unique_props=tuple(p.name for p in allp if p.unique),
        required_props=tuple(p.name for p in allp if p.required),
    )


def build_types(extra: Mapping[str, Sequence[PropertyDef]] | None) -> dict[str, ObjectType]:
    """All object types keyed by name AND type id (both address the same type)."""
    types: dict[str, ObjectType] = {}
    for name, (type_id, singular, props) in DEFAULT_TYPES.items():
        ot = compile_type(name, type_id, singular, singular.upper(), props)
        types[name] = types[type_id] = ot
    for key, custom in (extra or {}).items():
        old = types.get(key)
        if old is not None:  # override the properties of a built-in type
            ot = compile_type(old.name, old.type_id, old.singular, old.upper, custom)
            types[old.name] = types[old.type_id] = ot
        else:  # a custom object type: its key is both its name and its id
            types[key] = compile_type(key, key, key, key, custom)
    return types


def property_json(ot: ObjectType, p: PropertyDef) -> dict[str, Any]:
    """One property in the shape of GET /crm/v3/properties/{type}."""
    return {
        "name": p.name,
        "label": p.label or p.name,
        "type": p.type,
        "fieldType": p.field_type,
        "description": "",
        "groupName": p.group_name or f"{ot.singular}information",
        "options": [
            {"label": o, "value": o, "displayOrder": i, "hidden": False}
            for i, o in enumerate(p.options)
        ],
        "displayOrder": -1,
        "calculated": p.calculated,
        "externalOptions": False,
        "hasUniqueValue": p.unique,
        "hidden": False,
        "modificationMetadata": {
            "archivable": True,
            "readOnlyDefinition": p.read_only or p.calculated,
            "readOnlyValue": p.read_only or p.calculated,
        },
        "formField": True,
    }
