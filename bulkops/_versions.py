"""The HubSpot API version a job speaks, as a value.

HubSpot publishes date-versioned paths (``/crm/objects/2026-09/tickets/batch/create``) beside
the older ``/crm/v3/...`` ones, a new version every March and September (docs/hubspot-api.md §14).
The bodies are the v3 shapes on both, so one dialect serves them all and only the path changes:
:class:`ApiVersion` is the one place that knows how a version spells its paths.

``v1`` names the legacy ticket batch API (``/crm-objects/v1/...``, its own dialect); its
schema read and read-backs go through v3, as they always have, since v1 has no properties API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import ConfigError
from ._models import Api

__all__ = ["DEFAULT_API_VERSION", "ApiVersion"]

_DATED = re.compile(r"(\d{4})-(\d{2})")
# The first GA dated version; nothing earlier exists.
_FIRST = (2026, 3)
# From this version on HubSpot enforces the portal's validation rules on API writes.
_RULES_FROM = (2026, 9)
_LEGACY = ("v3", "v1")


@dataclass(frozen=True, slots=True)
class ApiVersion:
    """``2026-03``, ``2026-09`` (or a later ``YYYY-03``/``YYYY-09``), ``v3`` or ``v1``.

    Build it with :meth:`parse`; ``str()`` gives the text form back.
    """

    text: str

    def __post_init__(self) -> None:
        if self.text in _LEGACY:
            return
        match = _DATED.fullmatch(self.text)
        if match is None:
            raise ConfigError(
                f"api version {self.text!r} is not one of YYYY-03, YYYY-09, v3 or v1 "
                f"(e.g. {_DEFAULT_TEXT})"
            )
        year, month = int(match[1]), int(match[2])
        if month not in (3, 9):
            raise ConfigError(
                f"api version {self.text!r}: HubSpot releases versions in March and "
                "September only (YYYY-03 or YYYY-09)"
            )
        if (year, month) < _FIRST:
            raise ConfigError(
                f"api version {self.text!r} is older than the first dated version, 2026-03"
            )

    @classmethod
    def parse(cls, text: str) -> ApiVersion:
        """Read a version as a user types it (``" V3 "`` is ``v3``).

        :raises ConfigError: naming the text, when it is no version bulkops can speak.
        """
        return cls(text.strip().lower())

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"ApiVersion({self.text!r})"

    # -- what the version is ------------------------------------------------------------------
    @property
    def is_dated(self) -> bool:
        return self.text not in _LEGACY

    @property
    def is_legacy_v1(self) -> bool:
        return self.text == "v1"

    @property
    def enforces_validation_rules(self) -> bool:
        """Whether HubSpot checks the portal's validation rules (conditional required
        properties, required form fields) on writes: ``2026-09`` and later only."""
        return self.is_dated and self._date >= _RULES_FROM

    @property
    def api(self) -> Api:
        """The dialect: v1 bodies for ``v1``, v3 bodies for everything else."""
        return Api.V1 if self.is_legacy_v1 else Api.V3

    @property
    def _date(self) -> tuple[int, int]:
        year, _, month = self.text.partition("-")
        return int(year), int(month)

    # -- paths ------------------------------------------------------------------------------
    def objects_path(self, object_type: str, op: str) -> str:
        """The batch endpoint, e.g. ``/crm/objects/2026-09/tickets/batch/create`` or
        ``/crm/v3/objects/tickets/batch/create``. ``op`` is an :class:`Operation` or its
        text."""
        if self.is_dated:
            return f"/crm/objects/{self.text}/{object_type}/batch/{op}"
        return f"/crm/v3/objects/{object_type}/batch/{op}"

    def properties_path(self, object_type: str) -> str:
        """The schema: ``/crm/properties/2026-09/tickets`` or ``/crm/v3/properties/tickets``."""
        if self.is_dated:
            return f"/crm/properties/{self.text}/{object_type}"
        return f"/crm/v3/properties/{object_type}"


_DEFAULT_TEXT = "2026-09"
DEFAULT_API_VERSION = ApiVersion(_DEFAULT_TEXT)
"""The version a job speaks unless told otherwise: the newest dated version bulkops is tested
against (its fake serves it, its end-to-end tests run on it).

Why dated and not v3: HubSpot stops supporting v1, v2 and v3 in September 2027 and says to move
straight to the dated paths (docs/hubspot-api.md §14). Why not a later one: a version bulkops
has not been tested against may change shapes; pick it with ``--api-version`` once it is. Note that
2026-09 enforces the portal's validation rules, so a write can fail there that v3 accepted.
"""
