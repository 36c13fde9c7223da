"""Property schemas of the fake HubSpot and the value rules it enforces.

The client has an independent pre-flight validator written from the same rules, so the rules
here are deliberately small and exact (see the checkers and ``validate_props``); anything
HubSpot might accept beyond them is out of scope for the fake.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

PropertyType = str  # "string" | "number" | "enumeration" | "bool" | "date" | "datetime"

PROPERTY_TYPES = frozenset({"string", "number", "enumeration", "bool", "date", "datetime"})
ASSOCIATION_CATEGORIES = frozenset({"HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"})

# (error code, message) of one invalid property value.
Problem = tuple[str, str]
Checker = Callable[[str], Problem | None]


@dataclass(frozen=True, kw_only=True)
class PropertyDef:
    """One CRM property as the fake knows it."""

    name: str
    label: str = ""
    type: PropertyType = "string"
    field_type: str = "text"
    options: Sequence[str] = ()
    read_only: bool = False
    unique: bool = False
    calculated: bool = False
    # Required when a record is created (create, or an upsert that creates).
    required: bool = False
    group_name: str | None = None

    def __post_init__(self) -> None:
        if self.type not in PROPERTY_TYPES:
            raise ValueError(f"unknown property type {self.type!r} for {self.name!r}")


@dataclass(frozen=True)
class ObjectType:
    """A CRM object type with its compiled property lookup."""

    name: str  # e.g. "tickets"
    type_id: str  # e.g. "0-5"
    singular: str  # e.g. "ticket" (used in CONFLICT messages)
    upper: str  # e.g. "TICKET" (used in OBJECT_NOT_FOUND messages)
    properties: tuple[PropertyDef, ...]
    # Writable property -> (values known good, checker or None = any string). The known-good
    # set starts with the enumeration options / "true", "false" and learns values that passed
    # (schemas never change, so a valid value stays valid): repeated values skip the checker.
    writable: dict[str, tuple[set[str], Checker | None]] = field(repr=False)
    read_only: frozenset[str]
    unique_props: tuple[str, ...]
    required_props: tuple[str, ...]


# --- value checkers (return None when valid) -----------------------------------------------

# Optional sign, ASCII digits, optional ".digits", optional exponent; then it must be finite.
# The same grammar as the client's pre-flight check (bulkops._preflight), on purpose.
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)
_DIGITS = frozenset("0123456789")
_DAY_MS = 86_400_000


def _check_number(v: str) -> Problem | None:
    # float() alone would also take "1_000", " 5 ", "nan" and "inf"; the pattern rules those
    # out, and plain digits (the common case) skip it.
    if v.isdigit() and v.isascii():
        return None
    if _NUMBER.fullmatch(v) is not None and math.isfinite(float(v)):
        return None
    return ("INVALID_INTEGER", f"{v} is not a valid number")


def _is_epoch_ms(v: str) -> bool:
    body = v[1:] if v[:1] in ("-", "+") else v
    return bool(body) and _DIGITS.issuperset(body)


def _check_bool(v: str) -> Problem | None:
    if v.lower() in ("true", "false"):
        return None
    return ("INVALID_BOOLEAN", f"{v} is not a valid boolean")


def _check_date(v: str) -> Problem | None:
    if len(v) == 10 and v[4] == "-" and v[7] == "-":
        # date.fromisoformat in 3.11 also takes week dates and YYYYMMDD; the shape check above
        # limits it to the plain calendar form.
        if _DIGITS.issuperset(v[:4] + v[5:7] + v[8:]):
            try:
                date.fromisoformat(v)
                return None
            except ValueError:
                pass
    elif _is_epoch_ms(v) and int(v) % _DAY_MS == 0:
        return None
    return ("INVALID_DATE", f"{v} is not a valid date")


def _check_datetime(v: str) -> Problem | None:
    if _is_epoch_ms(v):
        return None
    try:
        datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)
        return None
    except ValueError:
        return ("INVALID_DATETIME", f"{v} is not a valid datetime")


def _enum_checker(options: Sequence[str], multi: bool) -> Checker:
    allowed = frozenset(options)
    listing = "[" + ", ".join(options) + "]"

    def check(v: str) -> Problem | None:
        if v in allowed:
            return None
        # checkbox (multi-select) values are ";"-separated option values
        if multi and allowed.issuperset(v.split(";")):
            return None
        return ("INVALID_OPTION", f"{v} was not one of the allowed options: {listing}")

    return check


def checker_for(p: PropertyDef) -> Checker | None:
    if p.type == "number":
        return _check_number
    if p.type == "bool":
        return _check_bool
    if p.type == "date":
        return _check_date
    if p.type == "datetime":
        return _check_datetime
    if p.type == "enumeration":
        return _enum_checker(list(p.options), p.field_type == "checkbox")
    return None


# Bound on the learned known-good values per property (memory stays small on random data).
_KNOWN_GOOD_CAP = 4096


def fast_set(p: PropertyDef) -> set[str]:
    if p.type == "enumeration":
        return set(p.options)
    if p.type == "bool":
        return {"true", "false"}
    return set()


class MalformedBody(ValueError):
    """The request body does not have the JSON shape the endpoint deserializes (HubSpot: 400
    "Invalid input JSON ..." with no category)."""


# One invalid property of one input: (property name, error code, message).
PropertyProblem = tuple[str, str, str]


def _coerce(v: Any) -> str:
    # HubSpot's inputs are map<string,string>; JSON scalars are tolerated the way Jackson
    # coerces them, anything nested cannot be deserialized.
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int | float):
        return str(v)
    raise MalformedBody(
        "Cannot deserialize value of type `java.lang.String` from "
        f"{'Array' if isinstance(v, list) else 'Object'} value"
    )


def _structural_problem(ot: ObjectType, k: str) -> PropertyProblem:
    if k in ot.read_only:
        return (k, "READ_ONLY_VALUE", f'Property "{k}" is read-only')
    return (k, "PROPERTY_DOESNT_EXIST", f'Property "{k}" does not exist')


_NO_PROBLEMS: tuple[PropertyProblem, ...] = ()


def validate_props(
    ot: ObjectType, props: dict[str, Any], creating: bool, also_required: Sequence[str] = ()
) -> tuple[dict[str, str], Sequence[PropertyProblem]]:
    """Check one input's properties; returns (values to write, problems).

    Hot path (called per record, written for CPython's speed: subscripts over .get, no
    allocation when valid). For a clean input of plain strings the input dict itself is
    returned, no copy. On create, "" values are dropped (nothing to clear); on update they are
    kept and clear the value.
    """
    problems: list[PropertyProblem] | None = None
    rebuild = False
    writable = ot.writable
    for k, v in props.items():
        try:
            fast, checker = writable[k]
        except KeyError:
            problems = problems or []
            problems.append(_structural_problem(ot, k))
            continue
        if v.__class__ is not str:
            v = _coerce(v)
            rebuild = True
        if not v:
            rebuild = rebuild or creating
            continue
        if checker is None or v in fast:
            continue
        bad = checker(v)
        if bad is not None:
            problems = problems or []
            problems.append((k, bad[0], bad[1]))
        elif len(fast) < _KNOWN_GOOD_CAP:
            fast.add(v)
    if creating:
        for r in (*ot.required_props, *also_required) if also_required else ot.required_props:
            if r not in props or props[r] is None or props[r] == "":
                problems = problems or []
                problems.append((r, "REQUIRED_PROPERTY", f"{r} is required"))
    if problems:
        return props, problems
    if not rebuild:
        return props, _NO_PROBLEMS
    clean: dict[str, str] = {}
    for k, v in props.items():
        s = v if type(v) is str else _coerce(v)
        if s or not creating:
            clean[k] = s
    return clean, _NO_PROBLEMS


@dataclass(frozen=True, kw_only=True)
class ValidationRule:
    """A portal validation rule of the conditional-required kind: when ``when_property`` has
    ``when_value``, every property in ``requires`` must have a value (docs/hubspot-api.md §14).

    HubSpot checks such rules on writes from 2026-09 on; the fake does the same. Build one
    from text with :meth:`parse`.
    """

    when_property: str
    when_value: str
    requires: tuple[str, ...]
    message: str = ""

    def __post_init__(self) -> None:
        if not self.when_property or not self.requires or not all(self.requires):
            raise ValueError("a validation rule needs a property, a value and what it requires")

    @classmethod
    def parse(cls, text: str) -> ValidationRule:
        """``"hs_ticket_priority=HIGH requires content"`` (several: ``requires a,b``)."""
        condition, sep, required = text.partition(" requires ")
        name, eq, value = condition.strip().partition("=")
        names = tuple(r.strip() for r in required.split(",") if r.strip())
        if not sep or not eq or not name.strip() or not value.strip() or not names:
            raise ValueError(
                f"validation rule {text!r}: expected 'PROPERTY=VALUE requires PROPERTY[,...]'"
            )
        return cls(when_property=name.strip(), when_value=value.strip(), requires=names)

    def problems(self, values: dict[str, Any]) -> list[PropertyProblem]:
        """What this rule finds wrong with a record's values after the write."""
        if values.get(self.when_property) != self.when_value:
            return []
        return [
            (name, "VALIDATION_RULE", self.message_for(name))
            for name in self.requires
            if values.get(name) in (None, "")
        ]

    def message_for(self, name: str) -> str:
        return self.message or (
            f"{name} is required when {self.when_property} is {self.when_value} "
            "(a validation rule of this portal)"
        )
