"""The public view of one row's result: what ``on_outcome``, ``Job.outcomes()`` and
:func:`~bulkops.read_results` give a program.

The engine's own :class:`~bulkops._models.Outcome` holds the live item (mutable, with
attempts and digests); this one is a frozen snapshot made from it in ``settle()``, or read back
from a result line, so a program can keep it, compare it and put it in a frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _models
from ._results import item_key

__all__ = ["Outcome", "outcome_from_line", "public_outcome"]

_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One input row's final word; every row gets exactly one.

    ``row``: the 1-based input record number. ``key``: the id property's value as sent (else the
    record id for update/archive/read by id; None for a create without an id property).
    ``ok``: written or read. ``hubspot_id``: the record's id in HubSpot. ``new``: created (True),
    updated (False), unknown (None). ``category`` and ``message``: why a row failed (None when
    ``ok``). ``input``: the row as given (empty for a row the reader could not parse, and for
    succeeded rows read back from files, which do not keep it). ``passthrough``: the job's
    passthrough columns, as the row gave them.
    """

    row: int
    key: str | None
    ok: bool
    hubspot_id: str | None
    new: bool | None
    category: str | None
    message: str | None
    input: Mapping[str, Any]
    passthrough: Mapping[str, Any]


def public_outcome(outcome: _models.Outcome, *, id_property: str | None) -> Outcome:
    item = outcome.item
    return Outcome(
        row=item.row,
        key=item_key(item, id_property),
        ok=outcome.ok,
        hubspot_id=outcome.hubspot_id,
        new=outcome.new,
        category=None if outcome.ok else (outcome.category or "ERROR"),
        message=None if outcome.ok else (outcome.message or ""),
        input=item.raw,
        passthrough=item.passthrough if item.passthrough is not None else _EMPTY,
    )


def outcome_from_line(line: Mapping[str, Any], *, ok: bool) -> Outcome:
    """An Outcome from one line of ``succeeded.jsonl`` (``ok``) or ``failed.jsonl``."""
    passthrough = line.get("passthrough")
    key = line.get("key")
    if ok:
        new = line.get("new")
        return Outcome(
            row=int(line["row"]),
            key=key if isinstance(key, str) else None,
            ok=True,
            hubspot_id=_text(line.get("id")),
            new=new if isinstance(new, bool) else None,
            category=None,
            message=None,
            input=_EMPTY,
            passthrough=passthrough if isinstance(passthrough, dict) else _EMPTY,
        )
    error = line.get("error")
    error = error if isinstance(error, dict) else {}
    given = line.get("input")
    return Outcome(
        row=int(line["row"]),
        key=key if isinstance(key, str) else None,
        ok=False,
        hubspot_id=None,
        new=None,
        category=str(error.get("category") or "ERROR"),
        message=str(error.get("message") or ""),
        input=given if isinstance(given, dict) else _EMPTY,
        passthrough=passthrough if isinstance(passthrough, dict) else _EMPTY,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
