"""What a dialect is, and the parts both dialects share.

A dialect turns a batch of items into one HTTP request and reads the answer back into per-item
outcomes. It is the only place that knows body shapes: v3 (``_dialect_v3``) and the legacy v1
ticket API (``_dialect_v1``) plug into the same pipeline through this seam.

Results are matched to items by trace id, record id or unique value, never by position:
HubSpot returns them unordered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._models import Item, Outcome
from ._transport import HttpRequest, HttpResponse

__all__ = [
    "Dialect",
    "Fatal",
    "Parsed",
    "Rejected",
    "error_message",
    "field_errors",
    "match_by_content",
    "read_error",
    "suspects",
]


@dataclass(slots=True)
class Parsed:
    """Per-item reading of a response. Items in neither list were not mentioned."""

    outcomes: list[Outcome] = field(default_factory=list)
    unmentioned: list[Item] = field(default_factory=list)
    # An error the response carried that names no item; kept as the reason if retries run out.
    stray_error: str | None = None
    # Every outcome is a success (a fast reading): nothing for the policy to reconsider.
    all_ok: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """HubSpot refused the whole batch. ``isolatable``: one record may be to blame, so splitting
    the batch can save the others."""

    category: str
    message: str
    isolatable: bool
    # (property, code, message) for each invalid value the answer names: lets the dispatcher
    # set suspects apart instead of bisecting blindly.
    fields: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Fatal:
    """Every batch would fail the same way (bad object type, non-unique idProperty...)."""

    message: str


class Dialect(Protocol):
    def request(self, items: Sequence[Item]) -> HttpRequest: ...

    def parse_ok(self, items: Sequence[Item], response: HttpResponse) -> Parsed: ...

    def parse_fast(self, items: Sequence[Item], response: HttpResponse) -> Parsed | None:
        """The common 2xx answer (every row answered once, no errors) read without building
        the whole body; None for anything else, which :meth:`parse_ok` then reads in full."""
        ...

    def parse_rejection(
        self, items: Sequence[Item], response: HttpResponse
    ) -> Parsed | Rejected | Fatal: ...


def error_message(body: Any, response: HttpResponse, limit: int = 500) -> str:
    """A readable one-line reason from an error body, whatever its shape."""
    if isinstance(body, Mapping):
        message = str(body.get("message") or "")
        details = body.get("validationResults") or body.get("errors")
        if isinstance(details, list):
            parts = []
            for d in details[:5]:
                if not isinstance(d, Mapping):
                    continue
                name = d.get("name") or _first(d.get("context"), "propertyName")
                code = d.get("error") or d.get("code")
                text = d.get("message") or ""
                parts.append(" ".join(str(x) for x in (name and f"{name}:", code, text) if x))
            if parts and not message.startswith("Property values were not valid: ["):
                message = f"{message}: {'; '.join(parts)}" if message else "; ".join(parts)
        if message:
            return message[:limit]
    text = response.body[:200].decode("utf-8", "replace").strip()
    return f"HTTP {response.status}" + (f": {text}" if text else "")


def read_error(response: HttpResponse) -> tuple[Any, str, str]:
    """An error answer's parsed body, one-line message and category ("" when none)."""
    body = response.json()
    category = str(body.get("category") or "") if isinstance(body, Mapping) else ""
    return body, error_message(body, response), category


def field_errors(body: Any) -> tuple[tuple[str, str, str], ...]:
    """(property, code, message) of each invalid value in an error body, v1 or v3 shaped."""
    if not isinstance(body, Mapping):
        return ()
    details = body.get("validationResults") or body.get("errors")
    out: list[tuple[str, str, str]] = []
    if isinstance(details, list):
        for d in details:
            if not isinstance(d, Mapping):
                continue
            name = d.get("name") or _first(d.get("context"), "propertyName")
            if name:
                code = str(d.get("error") or d.get("code") or "")
                out.append((str(name), code, str(d.get("message") or "")))
    return tuple(out)


def _names_value(message: str, value: str) -> bool:
    # HubSpot puts the offending value first ("9 was not one of the allowed options: [...]")
    # or quotes it; a bare substring test would match "1" inside "[1, 2, 3, 4]".
    return bool(value) and (
        message.startswith(value + " ") or f'"{value}"' in message or f"'{value}'" in message
    )


def suspects(
    items: Sequence[Item], fields: Sequence[tuple[str, str, str]], message: str = ""
) -> list[Item]:
    """The items a whole-batch error most likely points at: by the value it names, a missing
    required field, a property that cannot be written, or a record id in its message."""
    found: dict[int, Item] = {}
    if message:
        tokens = set(re.findall(r"\d+", message))
        for it in items:
            if it.record_id is not None and it.record_id in tokens:
                found[it.row] = it
    for name, code, message in fields:
        if code == "REQUIRED_PROPERTY" or "required" in message.lower():
            hits = [it for it in items if not it.properties.get(name)]
        else:
            hits = [it for it in items if _names_value(message, it.properties.get(name, ""))]
            if not hits and code in ("PROPERTY_DOESNT_EXIST", "READ_ONLY_VALUE"):
                hits = [it for it in items if name in it.properties]
        for it in hits:
            found[it.row] = it
    return list(found.values())


def _first(context: Any, key: str) -> str | None:
    if isinstance(context, Mapping):
        values = context.get(key)
        if isinstance(values, list) and values:
            return str(values[0])
    return None


def _norm(value: Any) -> str:
    return str(value).strip().lower()


def match_by_content(
    items: Sequence[Item],
    results: Iterable[Any],
    props_of: Callable[[Any], Mapping[str, Any]],
) -> tuple[list[tuple[Item, Any]], list[Item], list[Any]]:
    """Pair created records with the inputs whose properties they carry, only where the
    pairing is provably right.

    Used for creates when the response echoes no trace id (v1 always; v3 as documented). A
    result *fits* an input when every value the input sent came back on it. Inputs that sent
    the same properties and values are interchangeable, so any pairing among them is right;
    a result that fits inputs of two different kinds (one row's non-empty cells a subset of
    another's: an empty CSV cell is enough) is never guessed: it and the inputs it could be
    stay unmatched, for the caller to read back or fail as AMBIGUOUS. Returns (pairs,
    unmatched items, unmatched results).
    """
    groups: dict[tuple[tuple[str, str], ...], list[Item]] = {}
    for item in items:
        fp = tuple(sorted((k, _norm(v)) for k, v in item.properties.items()))
        groups.setdefault(fp, []).append(item)
    fitting: list[tuple[Any, list[tuple[tuple[str, str], ...]]]] = []
    for result in results:
        props = props_of(result)
        norm = {k: _norm(v) for k, v in props.items()}
        fits = [fp for fp in groups if all(norm.get(k) == v for k, v in fp)]
        fitting.append((result, fits))
    # A group may be claimed only by results that fit it alone, and only if no result that
    # fits several kinds could also be one of its records.
    contested = {fp for _, fits in fitting if len(fits) > 1 for fp in fits}
    pairs: list[tuple[Item, Any]] = []
    stray: list[Any] = []
    for result, fits in fitting:
        if len(fits) == 1 and fits[0] not in contested and groups[fits[0]]:
            pairs.append((groups[fits[0]].pop(), result))
        else:
            stray.append(result)
    left = [item for group in groups.values() for item in group]
    left.sort(key=lambda item: item.row)
    return pairs, left, stray
