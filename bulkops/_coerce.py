"""Schema-aware coercion: a Python value to the text HubSpot reads, by the property's type.

:func:`~bulkops._normalize.property_text` knows the value only. Dates and times also need the
property: HubSpot's ``date`` properties take a calendar day (``YYYY-MM-DD``), its ``datetime``
properties a moment (ISO 8601 or epoch milliseconds). So a :class:`Coercer` holds, per job,

* the property types from the schema (when it was read), to tell a date from a datetime;
* the configured time zone (``JobConfig.timezone``), the only way a naive datetime (no zone,
  so no moment) is sent at all;
* the user's per-property hooks (``JobConfig.coerce``), which win over every default.

The table of defaults is in ``docs/values.md``; every refusal is an :class:`InputError` naming
the property, so the row fails with a reason and the job goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from ._errors import InputError
from ._normalize import property_text

__all__ = ["CoerceHook", "Coercer"]

CoerceHook = Callable[[Any], "str | None"]
"""A per-property override: the value in, the text to send (None: no value) out."""


class Coercer:
    """Turns one value of one property into HubSpot text; one per job."""

    __slots__ = ("_hooks", "_types", "_zone")

    def __init__(
        self,
        *,
        types: Mapping[str, str] | None = None,
        zone: tzinfo | None = None,
        hooks: Mapping[str, CoerceHook] | None = None,
    ) -> None:
        self._types = dict(types or {})
        self._zone = zone
        self._hooks = dict(hooks or {})

    @property
    def has_hooks(self) -> bool:
        return bool(self._hooks)

    def __call__(self, name: str, value: Any) -> str | None:
        hook = self._hooks.get(name)
        if hook is not None:
            return _run_hook(name, hook, value)
        if isinstance(value, str):
            return value
        if not isinstance(value, date):
            value = _numpy_moment(value)
        if isinstance(value, date) and type(value).__name__ != "NaTType":
            kind = self._types.get(name)
            if kind == "date":
                return _as_day(name, value)
            if isinstance(value, datetime):
                return self._as_moment(name, value)
            if kind == "datetime":
                # A day has no zone: it is taken as midnight where the job's zone says.
                midnight = datetime.combine(value, time(), tzinfo=self._zone or UTC)
                return property_text(name, midnight)
        return property_text(name, value)

    def _as_moment(self, name: str, value: datetime) -> str | None:
        if (value.tzinfo is None or value.utcoffset() is None) and self._zone is not None:
            value = _plain(value).replace(tzinfo=self._zone)
        return property_text(name, value)

    def __repr__(self) -> str:
        zone = self._zone or "none"
        return f"<Coercer {len(self._types)} types, zone {zone}, hooks {sorted(self._hooks)}>"


def _run_hook(name: str, hook: CoerceHook, value: Any) -> str | None:
    try:
        text = hook(value)
    except InputError:
        raise
    except Exception as exc:  # the user's hook: its failure is this row's, not the job's
        raise InputError(
            f"property {name!r}: the coerce hook failed: {type(exc).__name__}: {exc}", field=name
        ) from None
    if text is not None and not isinstance(text, str):
        raise InputError(
            f"property {name!r}: the coerce hook must return a str or None, "
            f"not {type(text).__name__}",
            field=name,
        )
    return text


def _as_day(name: str, value: date) -> str:
    if isinstance(value, datetime):
        # A date property holds a day; a datetime at midnight (pandas reads "2026-01-02" as
        # one) is that day. Any other time would be silently cut, so it is refused.
        if value.time() != time():
            raise InputError(
                f"property {name!r} is a date property; {value.isoformat()} has a time of "
                "day, which HubSpot would drop: pass a date or a datetime at midnight",
                field=name,
            )
        value = value.date()
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _plain(value: datetime) -> datetime:
    # A pandas Timestamp as a datetime (its nanoseconds go; HubSpot keeps milliseconds).
    to_py = getattr(value, "to_pydatetime", None)
    return to_py() if callable(to_py) else value


def _numpy_moment(value: Any) -> Any:
    """A numpy datetime64 as a naive datetime (numpy has no zones); anything else as is."""
    dtype = getattr(value, "dtype", None)
    if getattr(dtype, "kind", "") != "M" or value != value:  # not datetime64, or NaT
        return value
    moment = value.astype("datetime64[us]").item()
    return moment if isinstance(moment, datetime) else value
