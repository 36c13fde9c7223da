"""Turn one input record (a dict from CSV, JSONL or Python) into an :class:`Item`.

Two input shapes are accepted:

* flat: ``{"id": "512", "subject": "Printer on fire", ...}``. Every key is a property except
  ``id`` (the record id) and association columns ``assoc:<typeId>`` or
  ``assoc:<CATEGORY>:<typeId>`` whose value is one or more target ids separated by ``;``.
* HubSpot-shaped: ``{"id": "512", "properties": {...}, "associations": [...]}``; a type in
  ``types`` may leave out ``associationCategory`` (then HUBSPOT_DEFINED, as for a column).

Everything wrong with a record raises :class:`InputError` naming the field, so the row can go to
``failed.jsonl`` with a reason and the job can go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ._errors import InputError
from ._models import Api, Item, Operation

__all__ = ["Normalizer", "jsonable_input", "property_text"]

_CATEGORIES = frozenset({"HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"})
# pandas' missing values, known by their type's name so that pandas stays optional.
_MISSING_TYPES = frozenset({"NAType", "NaTType"})
# A Decimal is written out in full (1E+2 is "100") unless that would be absurdly long.
_DECIMAL_DIGITS = 100
_INT64 = range(-(2**63), 2**64)  # what orjson writes as a number
_SHOWN = 200  # characters of a value kept in a failed line's stand-in


def property_text(name: str, value: Any) -> str | None:
    """The text HubSpot gets for one input value; None means "no value given".

    HubSpot property values are strings. Python and pandas values become the text HubSpot
    reads them as: bool -> "true"/"false", Decimal in full ("1E+2" -> "100"), date ->
    "YYYY-MM-DD", a timezone-aware datetime or pandas Timestamp -> ISO 8601 UTC with
    milliseconds ("2026-01-02T03:04:05.000Z"), numpy scalars as their Python kind. None, NaN,
    NaT and ``pd.NA`` are no value. numpy and pandas are never imported: their values are
    recognised by what they look like.

    Raises:
        InputError: naming the property, for a value HubSpot would take as something it is
            not: a naive datetime (its time zone is unknown), infinity, a nested dict or list,
            or any other type.
    """
    if isinstance(value, str):
        return value  # JsonNumber included: the number as written
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _int_text(name, value)
    if type(value).__name__ in _MISSING_TYPES:
        return None  # checked before datetime: pd.NaT is a datetime
    if isinstance(value, float):  # numpy.float64 too
        return _float_text(name, float(value))
    if isinstance(value, Decimal):
        return _decimal_text(name, value)
    if isinstance(value, datetime):  # pandas.Timestamp too
        return _datetime_text(name, value)
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "dtype") and hasattr(value, "item"):
        return _numpy_text(name, value)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        what = "nested object" if isinstance(value, Mapping) else "list"
        raise InputError(
            f"property {name!r} must be a single value, not a {what} ({type(value).__name__})",
            field=name,
        )
    raise InputError(
        f"property {name!r} must be a string, number, boolean, date or null, "
        f"not {type(value).__name__}",
        field=name,
    )


def _int_text(name: str, value: int) -> str:
    try:
        return int.__repr__(value)  # not str(): an IntEnum's str() may be its name
    except ValueError:  # more than sys.get_int_max_str_digits() digits
        raise InputError(f"property {name!r}: the number has too many digits", field=name) from None


def _float_text(name: str, value: float) -> str | None:
    if math.isnan(value):
        return None  # pandas' "no value"
    if math.isinf(value):
        raise InputError(f"property {name!r}: {value} is not a number HubSpot takes", field=name)
    return repr(value)


def _decimal_text(name: str, value: Decimal) -> str | None:
    if value.is_nan():
        return None
    if value.is_infinite():
        raise InputError(f"property {name!r}: {value} is not a number HubSpot takes", field=name)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if abs(exponent) > _DECIMAL_DIGITS or abs(value.adjusted()) > _DECIMAL_DIGITS:
        return str(value)  # exact still, in scientific notation rather than a huge string
    return format(value, "f")  # exact, and "1E+2" is "100"


def _datetime_text(name: str, value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(
            f"property {name!r}: the datetime {value.isoformat()} has no time zone, so "
            "HubSpot cannot know when it is; give it one (e.g. UTC) or send ISO 8601 text",
            field=name,
        )
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def _numpy_text(name: str, value: Any) -> str | None:
    """A numpy scalar (duck-typed: a ``dtype`` and an ``item()``), by its dtype's kind."""
    kind = getattr(value.dtype, "kind", "")
    if kind in "biu":  # bool, signed, unsigned
        return property_text(name, value.item())
    if kind == "f":
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            return _float_text(name, number)
        # numpy's str() is the shortest text for the value's own precision: "0.1" for a
        # float32 0.1, where float() would make it 0.10000000149011612.
        return str(value)
    if kind in "mM":
        if value != value:
            return None  # NaT
        raise InputError(
            f"property {name!r}: a numpy {value.dtype} has no time zone, so HubSpot cannot "
            "know when it is; convert it to a timezone-aware datetime",
            field=name,
        )
    if kind in "US":  # numpy str_ and bytes_ scalars
        return property_text(name, value.item())
    raise InputError(
        f"property {name!r} must be a string, number, boolean, date or null, "
        f"not numpy {value.dtype}",
        field=name,
    )


def jsonable_input(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` made safe for ``orjson.dumps``, to be written as a result line's ``input``.

    Values orjson cannot write (Decimal, numpy and pandas values, NaN, integers past 64 bits,
    strings with lone surrogates, non-string keys) become what the normaliser would send
    (a string, or None for no value), so a ``failed.jsonl`` fed back in is read the same way.
    A value the normaliser refuses becomes ``{"type": ..., "value": ...}``, which it refuses
    again.
    """
    return {_json_key(key): _jsonable(value) for key, value in raw.items()}


def _json_key(key: Any) -> str:
    return _safe_str(key) if isinstance(key, str) else str(key)


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return value if value.isascii() else _safe_str(value)
    if value is None or kind is bool:
        return value
    if kind is int:
        return value if value in _INT64 else _stand_in(value)
    if kind is float:
        return value if math.isfinite(value) else _stand_in(value)
    if isinstance(value, Mapping):
        return {_json_key(k): _jsonable(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_jsonable(v) for v in value]
    return _stand_in(value)


def _stand_in(value: Any) -> Any:
    try:
        text = property_text("", value)
    except InputError:
        shown = str(value)
        return {"type": type(value).__name__, "value": _safe_str(shown[:_SHOWN])}
    return None if text is None else _safe_str(text)


def _safe_str(text: str) -> str:
    """``text`` without lone surrogates (which orjson refuses): each becomes a \\udcxx escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _association_column(name: str, value: str) -> list[dict[str, Any]]:
    parts = name.split(":")
    if len(parts) == 2:
        category, type_id = "HUBSPOT_DEFINED", parts[1]
    elif len(parts) == 3:
        category, type_id = parts[1].upper(), parts[2]
    else:
        raise InputError(
            f"association column {name!r} must be assoc:<typeId> or assoc:<CATEGORY>:<typeId>",
            field=name,
        )
    if category not in _CATEGORIES or not type_id.isdigit():
        raise InputError(
            f"association column {name!r}: category must be one of {sorted(_CATEGORIES)} "
            "and the type id a number",
            field=name,
        )
    spec = [{"associationCategory": category, "associationTypeId": int(type_id)}]
    return [
        {"to": {"id": target.strip()}, "types": spec}
        for target in value.split(";")
        if target.strip()
    ]


def _check_associations(value: Any) -> list[dict[str, Any]]:
    """Check a record's ``associations`` and return them with every type in the one shape
    both API versions take: ``{"associationCategory", "associationTypeId"}``."""
    if not isinstance(value, list):
        raise InputError("associations must be a list", field="associations")
    out: list[dict[str, Any]] = []
    for assoc in value:
        to = assoc.get("to") if isinstance(assoc, dict) else None
        if not isinstance(to, dict) or not str(to.get("id", "")).strip():
            raise InputError("each association needs to.id", field="associations")
        if not isinstance(assoc.get("types"), list) or not assoc["types"]:
            raise InputError("each association needs a non-empty types list", field="associations")
        out.append({**assoc, "types": [_association_type(t) for t in assoc["types"]]})
    return out


def _association_type(spec: Any) -> dict[str, Any]:
    # Dated versions document types with or without associationCategory, v3 requires it
    # (docs/hubspot-api.md §2, §14). A type id given alone is taken as one of HubSpot's default
    # (HUBSPOT_DEFINED) types, as an assoc:<typeId> column is; a custom label must come with
    # its category. So both versions get the category, which both accept.
    type_id = spec.get("associationTypeId") if isinstance(spec, dict) else None
    if isinstance(type_id, str) and type_id.strip().isdigit():
        type_id = int(type_id)
    if not isinstance(type_id, int) or isinstance(type_id, bool):
        raise InputError(
            "each association type needs a numeric associationTypeId", field="associations"
        )
    category = spec.get("associationCategory") or "HUBSPOT_DEFINED"
    if not isinstance(category, str) or category.upper() not in _CATEGORIES:
        raise InputError(
            f"associationCategory {category!r} is not one of {sorted(_CATEGORIES)}",
            field="associations",
        )
    return {"associationCategory": category.upper(), "associationTypeId": type_id}


_PLAIN_NAMES_KEPT = 10_000  # bounded: a source whose rows all have other keys stays small


class Normalizer:
    """Builds items for one job; holds the per-job choices so the per-record path stays short."""

    def __init__(
        self,
        operation: Operation,
        *,
        api: Api = Api.V3,
        id_property: str | None = None,
        empty_clears: bool = False,
        coerce: Callable[[str, Any], str | None] | None = None,
    ) -> None:
        """``coerce``: turns a non-string value into text (default :func:`property_text`);
        a ``_coerce.Coercer`` with per-property hooks also sees the string values."""
        self.operation = operation
        self.api = api
        self.id_property = id_property
        self.empty_clears = empty_clears
        self._coerce = coerce or property_text
        self._hooked = bool(getattr(coerce, "has_hooks", False))
        self._wants_properties = operation in (Operation.CREATE, Operation.UPDATE, Operation.UPSERT)
        # Column names already known to be plain properties (a text, not "id", not "assoc:..."):
        # every row of a file repeats them, so each is checked once, not once per row.
        self._plain: set[str] = set()

    def seen_plain(self, name: str) -> None:
        """Note ``name`` (a str) as a plain property column, as a flat record with a value in
        it would: for ``RowCheck``'s flat path, which reads such records without this."""
        if len(self._plain) < _PLAIN_NAMES_KEPT:
            self._plain.add(name)

    def __call__(self, row: int, data: Mapping[str, Any]) -> Item:
        raw = data if isinstance(data, dict) else dict(data)
        props_in = raw.get("properties")
        associations: list[dict[str, Any]] | None = None
        properties: dict[str, str] = {}
        if props_in is not None and isinstance(props_in, Mapping):
            source: Mapping[str, Any] = props_in
            if raw.get("associations") is not None:
                associations = _check_associations(raw["associations"])
        else:
            source = raw
        keep_empty = self.empty_clears
        flat = source is raw
        coerce, hooked = self._coerce, self._hooked
        plain = self._plain if flat else None
        for name, value in source.items():
            # The common case first: a string value (every CSV cell is one).
            if type(value) is str and not hooked:
                if not value and not keep_empty:
                    continue
            else:
                value = coerce(name, value)
                if value is None:
                    if not keep_empty:
                        continue
                    value = ""  # None, NaN, NaT, pd.NA: empty, so --empty-clears clears
                elif not value and not keep_empty:
                    continue
            if plain is not None and name in plain:
                properties[name] = value  # a column seen before: a plain property
                continue
            if type(name) is not str:
                raise InputError(f"property name {name!r} is not a string", field=str(name))
            if flat and (name == "id" or name[:6] == "assoc:"):
                if name != "id":
                    associations = (associations or []) + _association_column(name, value)
                continue
            if plain is not None and len(plain) < _PLAIN_NAMES_KEPT:
                plain.add(name)
            properties[name] = value
        return self.finish(row, raw, properties, associations)

    def finish(
        self,
        row: int,
        raw: dict[str, Any],
        properties: dict[str, str],
        associations: list[dict[str, Any]] | None,
    ) -> Item:
        """The item of a record whose properties and associations are gathered: its id and
        batch key checked for the operation (``RowCheck``'s flat path calls this directly)."""
        op, idp = self.operation, self.id_property
        if associations and op is not Operation.CREATE:
            raise InputError("associations can only be given when creating", field="associations")
        if op is Operation.CREATE:
            key = None
            if idp:
                value = properties.get(idp)
                if not value:
                    raise InputError(f"no value for the id property {idp!r}", field=idp)
                key = value.strip().lower()
            return Item(row, raw, properties, None, associations, key)

        if idp:
            record_id = properties.get(idp) or ""
            field = idp
        else:
            record_id = property_text("id", raw.get("id")) or ""
            field = "id"
        record_id = record_id.strip()
        if not record_id:
            what = f"the id property {idp!r}" if idp else "the record id (column 'id')"
            raise InputError(f"no value for {what}", field=field)
        # isascii: str.isdigit() also accepts "²" and other Unicode digits, which int() and
        # HubSpot do not.
        if not idp and not (record_id.isascii() and record_id.isdigit()):
            raise InputError(f"record id {record_id!r} is not a HubSpot id (digits)", field="id")
        if not self._wants_properties:
            properties = {}
        # HubSpot compares unique values case-insensitively (it lowercases emails), so the
        # batch-hygiene key does too: two spellings of one value never share a batch.
        return Item(row, raw, properties, record_id, None, record_id.lower())
