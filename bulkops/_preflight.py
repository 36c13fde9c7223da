"""Local validation of record properties against the account's property schema.

Catching a bad value before it is sent saves a request, and without ``objectWriteTraceId`` one
bad value fails a whole batch of 100. The rules mirror HubSpot's error codes; the fake server
implements the same rules on its own, so the two must agree exactly.

Validation runs once per record on the hot path, so ``from_hubspot`` turns each property into a
ready checker (a plain ``str -> bool`` callable, or ``None`` for "anything goes") and
``validate`` is a dict lookup and at most one call per property.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

__all__ = ["REFUSE", "FieldError", "PropertySchema"]

# Objects HubSpot will not create without these, by name and by type id. Facts only: the
# tickets guide says "If a pipeline isn't specified, the default pipeline will be used", so
# hs_pipeline is not required (docs/hubspot-api.md section 2); subject and the stage are.
_REQUIRED_ON_CREATE: dict[str, frozenset[str]] = {
    "tickets": frozenset({"subject", "hs_pipeline_stage"}),
    "0-5": frozenset({"subject", "hs_pipeline_stage"}),
}
_SHOWN_VALUE = 60  # longest value quoted in full in a message
_SHOWN_OPTIONS = 10  # allowed options listed in an INVALID_OPTION message
_DAY_MS = 86_400_000

# ASCII digits only: `\d` and str.isdigit() also take other scripts' digits and superscripts.
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)
_BOOLEANS = frozenset({"true", "false"})

_Check = Callable[[str], bool]
_Explain = Callable[[str, str], str]


@dataclass(frozen=True, slots=True)
class FieldError:
    """Why one property value would be refused, with HubSpot's error code."""

    property: str
    code: str
    message: str


def _show(value: str) -> str:
    if len(value) > _SHOWN_VALUE:
        value = value[: _SHOWN_VALUE - 3] + "..."
    return repr(value)


# --- checkers: each takes a non-empty string ------------------------------------------------


def _is_integer(value: str) -> bool:
    digits = value[1:] if value[0] in "+-" else value
    return digits.isdigit() and digits.isascii()


def _is_number(value: str) -> bool:
    if value.isdigit():  # the common case, no regex
        return value.isascii()
    # float() alone would take " 5", "1_000", "nan" and "inf"; the pattern rules those out.
    return _NUMBER.fullmatch(value) is not None and math.isfinite(float(value))


def _is_boolean(value: str) -> bool:
    return len(value) <= 5 and value.lower() in _BOOLEANS


def _is_date(value: str) -> bool:
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        year, month, day = value[:4], value[5:7], value[8:]
        if not (year + month + day).isdigit() or not value.isascii():
            return False
        try:
            date(int(year), int(month), int(day))  # rejects 2024-02-30
        except ValueError:
            return False
        return True
    # Epoch milliseconds are a date only at midnight UTC.
    return _is_integer(value) and int(value) % _DAY_MS == 0


def _is_datetime(value: str) -> bool:
    if _is_integer(value):
        return True  # epoch milliseconds
    if value[-1] == "Z":
        value = value[:-1] + "+00:00"
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _refuse(value: str) -> bool:
    """The checker of unknown and read-only properties: no value, not even "", is accepted."""
    return False


REFUSE: _Check = _refuse


# --- building the per-property rules --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    check: _Check
    code: str
    explain: _Explain


def _explain_as(what: str) -> _Explain:
    return lambda name, value: f'Property "{name}": {_show(value)} is not {what}'


_UNKNOWN = _Rule(
    _refuse, "PROPERTY_DOESNT_EXIST", lambda name, value: f'Property "{name}" does not exist'
)
_READ_ONLY = _Rule(
    _refuse,
    "READ_ONLY_VALUE",
    lambda name, value: f'Property "{name}" is read-only; cannot set it to {_show(value)}',
)
_BY_TYPE: dict[str, _Rule] = {
    # HubSpot answers INVALID_INTEGER for any bad number, decimals included.
    "number": _Rule(_is_number, "INVALID_INTEGER", _explain_as("a number")),
    "bool": _Rule(_is_boolean, "INVALID_BOOLEAN", _explain_as('"true" or "false"')),
    "date": _Rule(
        _is_date,
        "INVALID_DATE",
        _explain_as("a date (YYYY-MM-DD, or epoch milliseconds at midnight UTC)"),
    ),
    "datetime": _Rule(
        _is_datetime,
        "INVALID_DATETIME",
        _explain_as("a datetime (ISO-8601, or epoch milliseconds)"),
    ),
}


def _enumeration_rule(options: Iterable[str], *, multiple: bool) -> _Rule:
    allowed = frozenset(options)
    listed = sorted(allowed)
    shown = ", ".join(map(repr, listed[:_SHOWN_OPTIONS]))
    if len(listed) > _SHOWN_OPTIONS:
        shown += f" and {len(listed) - _SHOWN_OPTIONS} more"
    if not listed:
        shown = "none"

    if multiple:
        # A multi-checkbox value is "a;b;c"; every part must be an option.
        def check(value: str) -> bool:
            # An option value may itself hold ";", so the whole value is tried first.
            return value in allowed or allowed.issuperset(value.split(";"))

        def explain(name: str, value: str) -> str:
            bad = next((part for part in value.split(";") if part not in allowed), value)
            return (
                f'Property "{name}": {_show(bad)} (in {_show(value)}) is not one of '
                f"the allowed options: {shown}"
            )

        return _Rule(check, "INVALID_OPTION", explain)

    def explain_one(name: str, value: str) -> str:
        return f'Property "{name}": {_show(value)} is not one of the allowed options: {shown}'

    return _Rule(allowed.__contains__, "INVALID_OPTION", explain_one)


def _rule_for(prop: Mapping[str, Any]) -> _Rule | None:
    meta = prop.get("modificationMetadata") or {}
    if meta.get("readOnlyValue") is True or prop.get("calculated") is True:
        return _READ_ONLY
    kind = prop.get("type")
    if kind == "enumeration":
        if prop.get("externalOptions") is True:
            # Options live elsewhere (hubspot_owner_id lists owners, with "options": []);
            # checking against the empty list would refuse every value.
            return None
        options = [str(opt["value"]) for opt in prop.get("options") or () if "value" in opt]
        return _enumeration_rule(options, multiple=prop.get("fieldType") == "checkbox")
    # string, phone_number and any type we do not know accept anything.
    return _BY_TYPE.get(str(kind))


def _option_labels(prop: Mapping[str, Any]) -> dict[str, str]:
    if prop.get("type") != "enumeration":
        return {}
    found: dict[str, str] = {}
    for option in prop.get("options") or ():
        if not isinstance(option, Mapping) or "value" not in option:
            continue
        label = option.get("label")
        if isinstance(label, str) and label.strip():
            found.setdefault(label.strip(), str(option["value"]))
    return found


class PropertySchema:
    """The properties of one object type, ready to validate records against.

    Build it with :meth:`from_hubspot` from the body of ``GET /crm/v3/properties/{objectType}``.
    """

    __slots__ = (
        "_checks",
        "_labels",
        "_object_type",
        "_option_labels",
        "_required",
        "_required_order",
        "_rules",
        "_types",
        "_unique",
    )

    def __init__(
        self,
        *,
        object_type: str,
        rules: Mapping[str, _Rule | None],
        unique: Iterable[str] = (),
        legacy_v1: bool = False,
        labels: Mapping[str, str] | None = None,
        option_labels: Mapping[str, Mapping[str, str]] | None = None,
        types: Mapping[str, str] | None = None,
    ) -> None:
        self._object_type = object_type
        # property -> {option label: option value}: "High" is HIGH, a stage's label its id.
        self._option_labels = {name: dict(o) for name, o in (option_labels or {}).items()}
        # name -> HubSpot's type ("date", "datetime", "number", ...): what coercion follows.
        self._types = dict(types or {})
        self._rules = dict(rules)
        # UI label -> internal name: people export "Ticket name" where the API wants "subject".
        self._labels = dict(labels or {})
        # The hot path looks only at this: name -> checker, or None when anything goes.
        self._checks: dict[str, _Check | None] = {
            name: None if rule is None else rule.check for name, rule in self._rules.items()
        }
        self._unique = frozenset(unique)
        self._required = _REQUIRED_ON_CREATE.get(object_type.lower(), frozenset())
        if legacy_v1:
            # The v1 batch-create reference: "pipeline and stage must be set" (section 10).
            self._required |= {"hs_pipeline"}
        self._required_order = tuple(sorted(self._required))  # stable error order

    @classmethod
    def from_hubspot(
        cls, body: Mapping[str, Any], *, object_type: str, legacy_v1: bool = False
    ) -> PropertySchema:
        """Parse a ``GET /crm/v3/properties/{objectType}`` response body.

        Raises:
            ValueError: the body has no ``results`` list, or a property has no name.
        """
        results = body.get("results")
        if not isinstance(results, list):
            raise ValueError(f"{object_type} property schema: expected a 'results' list")
        rules: dict[str, _Rule | None] = {}
        unique = []
        labels: dict[str, str] = {}
        option_labels: dict[str, dict[str, str]] = {}
        types: dict[str, str] = {}
        for index, prop in enumerate(results):
            name = prop.get("name") if isinstance(prop, Mapping) else None
            if not isinstance(name, str) or not name:
                raise ValueError(f"{object_type} property schema: result {index} has no name")
            rules[name] = _rule_for(prop)
            if isinstance(prop.get("type"), str):
                types[name] = prop["type"]
            if prop.get("hasUniqueValue") is True:
                unique.append(name)
            label = prop.get("label")
            if isinstance(label, str) and label.strip():
                labels.setdefault(label.strip(), name)
            options = _option_labels(prop)
            if options:
                option_labels[name] = options
        return cls(
            object_type=object_type,
            rules=rules,
            unique=unique,
            labels=labels,
            option_labels=option_labels,
            legacy_v1=legacy_v1,
            types=types,
        )

    @property
    def object_type(self) -> str:
        return self._object_type

    def has(self, name: str) -> bool:
        return name in self._rules

    def names(self) -> list[str]:
        """The internal names of the object's properties, in the schema's order."""
        return list(self._rules)

    def labels(self) -> dict[str, str]:
        """Each property label as HubSpot's UI shows it, mapped to its internal name."""
        return dict(self._labels)

    def option_labels(self, name: str) -> dict[str, str]:
        """The options of an enumeration property, label -> value; empty for other kinds."""
        return dict(self._option_labels.get(name, {}))

    def types(self) -> dict[str, str]:
        """Each property's HubSpot type ("date", "datetime", ...), as the schema gives it."""
        return dict(self._types)

    def is_unique(self, name: str) -> bool:
        """Whether the property has unique values, as an upsert ``idProperty`` needs."""
        return name in self._unique

    def required_on_create(self) -> frozenset[str]:
        return self._required

    def column_check(self, name: str) -> _Check | None:
        """The hot path's checker of one property: None when anything goes, :data:`REFUSE`
        (which takes no value, not even "") when it is unknown or read-only, else a
        ``str -> bool`` for a non-empty value. What :meth:`validate` applies, for callers that
        check a row's values as they walk it (``_rowcheck``)."""
        return self._checks.get(name, _refuse)

    def required_order(self) -> tuple[str, ...]:
        """The properties required on create, in the order :meth:`validate` reports them."""
        return self._required_order

    def validate(self, properties: Mapping[str, str], *, creating: bool) -> list[FieldError]:
        """Return what HubSpot would refuse in ``properties``; an empty list when all is well.

        ``""`` (which clears a value) passes every value check, but not an unknown or read-only
        property, nor a property required on create.
        """
        checks = self._checks
        errors: list[FieldError] = []
        for name, value in properties.items():
            check = checks.get(name, _refuse)
            if check is None:
                continue
            # "" clears a value, so it passes every value check; but a property that does not
            # exist or is read-only cannot be cleared either.
            if check is not _refuse and (not value or check(value)):
                continue
            rule = self._rules.get(name) or _UNKNOWN
            errors.append(FieldError(name, rule.code, rule.explain(name, value)))
        if creating:
            for name in self._required_order:
                if not properties.get(name):
                    message = f'Property "{name}" is required to create {self._object_type}'
                    errors.append(FieldError(name, "REQUIRED_PROPERTY", message))
        return errors

    def __repr__(self) -> str:
        return f"<PropertySchema {self._object_type}: {len(self._rules)} properties>"
