"""Turn one input record (a dict from CSV, JSONL or Python) into an :class:`Item`.

Two input shapes are accepted:

* flat: ``{"id": "512", "subject": "Printer on fire", ...}``. Every key is a property except
  ``id`` (the record id) and association columns ``assoc:<typeId>`` or
  ``assoc:<CATEGORY>:<typeId>`` whose value is one or more target ids separated by ``;``.
* HubSpot-shaped: ``{"id": "512", "properties": {...}, "associations": [...]}``.

Everything wrong with a record raises :class:`InputError` naming the field, so the row can go to
``failed.jsonl`` with a reason and the job can go on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import InputError
from ._models import Api, Item, Operation

__all__ = ["Normalizer"]

_CATEGORIES = frozenset({"HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"})


def _to_text(name: str, value: Any) -> str | None:
    """HubSpot property values are strings; None means "no value given"."""
    if isinstance(value, str):
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise InputError(
        f"property {name!r} must be a string, number, boolean or null, not {type(value).__name__}",
        field=name,
    )


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
    if not isinstance(value, list):
        raise InputError("associations must be a list", field="associations")
    for assoc in value:
        to = assoc.get("to") if isinstance(assoc, dict) else None
        if not isinstance(to, dict) or not str(to.get("id", "")).strip():
            raise InputError("each association needs to.id", field="associations")
        if not isinstance(assoc.get("types"), list) or not assoc["types"]:
            raise InputError("each association needs a non-empty types list", field="associations")
    return value


class Normalizer:
    """Builds items for one job; holds the per-job choices so the per-record path stays short."""

    def __init__(
        self,
        operation: Operation,
        *,
        api: Api = Api.V3,
        id_property: str | None = None,
        empty_clears: bool = False,
    ) -> None:
        self.operation = operation
        self.api = api
        self.id_property = id_property
        self.empty_clears = empty_clears
        self._wants_properties = operation in (Operation.CREATE, Operation.UPDATE, Operation.UPSERT)

    def __call__(self, row: int, data: Mapping[str, Any]) -> Item:
        raw = data if isinstance(data, dict) else dict(data)
        props_in = raw.get("properties")
        associations: list[dict[str, Any]] | None = None
        properties: dict[str, str] = {}
        if isinstance(props_in, Mapping):
            source: Mapping[str, Any] = props_in
            if raw.get("associations") is not None:
                associations = _check_associations(raw["associations"])
        else:
            source = raw
        keep_empty = self.empty_clears
        flat = source is raw
        for name, value in source.items():
            # The common case first: a string value (every CSV cell is one).
            if type(value) is str:
                if not value and not keep_empty:
                    continue
            else:
                value = _to_text(name, value)
                if value is None or (not value and not keep_empty):
                    continue
            if flat and (name == "id" or name[:6] == "assoc:"):
                if name != "id":
                    associations = (associations or []) + _association_column(name, value)
                continue
            properties[name] = value
        return self._finish(row, raw, properties, associations)

    def _finish(
        self,
        row: int,
        raw: dict[str, Any],
        properties: dict[str, str],
        associations: list[dict[str, Any]] | None,
    ) -> Item:
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
            record_id = _to_text("id", raw.get("id")) or ""
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
