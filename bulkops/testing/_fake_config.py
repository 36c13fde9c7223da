"""Configuration and statistics of the fake HubSpot."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bulkops.testing._fake_faults import FaultPlan
from bulkops.testing._fake_limits import BAD_RATE_HEADERS, DAILY_429_STYLES
from bulkops.testing._fake_log import ScriptedAnswer
from bulkops.testing._fake_schema import PropertyDef, ValidationRule

DEFAULT_FAKE_TOKEN = "fake-hubspot-token"
# The versions HubSpot serves today (docs/hubspot-api.md §14): the two dated ones and the legacy
# paths, which stay until September 2027.
DEFAULT_API_VERSIONS = frozenset({"2026-03", "2026-09", "v3", "v1"})
_DATED = re.compile(r"20\d\d-(03|09)")


def is_dated(version: str) -> bool:
    return _DATED.fullmatch(version) is not None


def enforces_validation_rules(version: str) -> bool:
    """HubSpot enforces the portal's validation rules on writes from 2026-09 on (§14). Written
    here, not taken from the client's ApiVersion, so the fake stays an independent reading."""
    return is_dated(version) and version >= "2026-09"


@dataclass(kw_only=True)
class FakeConfig:
    """How the fake behaves. The limits default to a private app on today's tiers.

    Tiers (docs/hubspot-api.md §7, §14; HubSpot changelog "increasing-our-api-limits"): Professional
    and Enterprise both allow 190 requests per rolling 10 s; a day allows 650,000 on
    Professional and 1,000,000 on Enterprise (the default here). Each API limit increase pack
    adds 1,000,000 a day (at most two) and raises the burst to 250 per 10 s (packs do not stack
    the burst). Free and Starter: 100 per 10 s and 250,000 a day. So Professional is
    ``FakeConfig(daily_limit=650_000)`` and Enterprise with one pack
    ``FakeConfig(rate_limit=250, daily_limit=2_000_000)``.
    """

    tokens: frozenset[str] = frozenset({DEFAULT_FAKE_TOKEN})
    # Requests per rolling window per token; None = unlimited (and no window headers).
    # 190 per 10 s: Professional and Enterprise; 250 with an API limit increase pack.
    rate_limit: int | None = 190
    interval_ms: int = 10_000
    # Optional per-second limit -> 429 SECONDLY.
    secondly_limit: int | None = None
    # Per token per "day" (the process lifetime); None = unlimited (and no daily headers).
    # 1,000,000: Enterprise; Professional 650,000; +1,000,000 per increase pack.
    daily_limit: int | None = 1_000_000
    daily_used: int = 0
    # Uniform random delay in seconds, applied after processing, before answering.
    latency: tuple[float, float] = (0.0, 0.0)
    shuffle_results: bool = True
    # Put objectWriteTraceId on result objects, on every version: the 2026-03 result schema
    # lists it; for v3 the model has the field (neither verified live).
    echo_trace_ids: bool = True
    read_all_missing_404: bool = True
    faults: FaultPlan = field(default_factory=FaultPlan)
    # Extra or overriding object types, e.g. {"2-123": [PropertyDef(...), ...]}.
    schemas: dict[str, list[PropertyDef]] | None = None
    seed: int = 0  # shuffling / latency RNG
    # Send Retry-After (whole seconds until the window has room) on rolling/secondly 429s.
    # Off by default: HubSpot does not document it for CRM 429s.
    retry_after_on_429: bool = False
    portal_id: int = 62515
    app_id: int = 2_000_001
    # Which versions the paths may name ("2026-09", "v3", "v1", ...); others answer 404 like
    # an unknown route (a version not published yet, or one HubSpot has switched off).
    api_versions: frozenset[str] = DEFAULT_API_VERSIONS
    # The portal's validation rules, checked on writes on 2026-09 and later only (§14), e.g.
    # ValidationRule.parse("hs_ticket_priority=HIGH requires content").
    validation_rules: Sequence[ValidationRule] = ()
    # How a broken rule is answered when every input has a trace id: per input in a 207 (like
    # any other invalid value), or, when False, the whole batch with a 400 and nothing written.
    # Which one HubSpot does is not verified live; False lets tests check the client copes.
    validation_rules_multi_status: bool = True
    # -- edge conditions, all off by default -------------------------------------------------
    # The fake's clock (seconds, monotonic): rate windows, outage windows and the read lag all
    # read it, so a test can step it instead of sleeping.
    clock: Callable[[], float] = time.monotonic
    # A record created less than this long ago is missing from batch reads (v3 and v1), yet
    # its unique values already conflict.
    read_lag_s: float = 0.0
    # How a DAILY 429 says it is daily: "policy" | "message" | "header" (see _fake_limits).
    daily_429_style: str = "policy"
    # Wrong-server modes: a 200 text/html page for every request, or nonsense
    # X-HubSpot-RateLimit-* values: "garbage" | "negative" | "zero" | "huge".
    answer_html: bool = False
    bad_rate_headers: str | None = None
    # Request number (from 1) -> the answer it gets instead of being handled.
    script: Mapping[int, ScriptedAnswer] = field(default_factory=dict)
    # -- benchmark mode -----------------------------------------------------------------------
    # False: a BENCHMARK MODE in which created records are answered exactly as usual (ids,
    # properties, trace ids) and then forgotten, so the fake's memory stays flat however many
    # records a job creates. Not available in it: reading, updating or upserting a created
    # record (it is not found), uniqueness checks across requests (within one batch they still
    # apply), seed_records, records()/record(), and the per-value create counts
    # (stats.creates_by_unique stays empty; /__fake__/stats says duplicate_creates null).
    store_records: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.latency
        if lo < 0 or hi < lo:
            raise ValueError(f"latency must be (lo, hi) with 0 <= lo <= hi, got {self.latency}")
        if self.interval_ms <= 0:
            raise ValueError("interval_ms must be > 0")
        if not self.tokens:
            raise ValueError("at least one token is needed")
        for version in self.api_versions:
            if version not in ("v1", "v3") and not (is_dated(version) and version >= "2026-03"):
                raise ValueError(
                    f"api version {version!r} is not v1, v3 or a dated YYYY-03/YYYY-09 "
                    "from 2026-03 on"
                )
        if not self.read_lag_s >= 0:
            raise ValueError(f"read_lag_s must be >= 0, got {self.read_lag_s}")
        if self.daily_429_style not in DAILY_429_STYLES:
            raise ValueError(f"daily_429_style must be one of {DAILY_429_STYLES}")
        if self.bad_rate_headers is not None and self.bad_rate_headers not in BAD_RATE_HEADERS:
            raise ValueError(f"bad_rate_headers must be None or one of {BAD_RATE_HEADERS}")
        if any(n < 1 for n in self.script):
            raise ValueError(f"script: request numbers start at 1, got {sorted(self.script)}")


@dataclass
class FakeStats:
    requests: int = 0  # every HTTP request, whatever its outcome
    by_status: Counter[int] = field(default_factory=Counter)  # dropped connections: status 0
    # e.g. "v3 tickets create": v3-shaped endpoints are counted under "v3" whichever version
    # the path names; ``paths`` tells the versions apart.
    by_endpoint: Counter[str] = field(default_factory=Counter)
    # Every request's path (no query), e.g. "/crm/objects/2026-09/tickets/batch/create".
    paths: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)  # by policyName
    faults: Counter[str] = field(default_factory=Counter)  # by fault kind
    records_created: Counter[str] = field(default_factory=Counter)  # by object type name
    # token -> monotonic times of our counted (non-429, authenticated) HTTP requests
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    # (object type name, unique prop, value) for every record created with that value set
    creates_by_unique: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def reset(self) -> None:
        self.requests = 0
        self.by_status.clear()
        self.by_endpoint.clear()
        self.paths.clear()
        self.rate_limited.clear()
        self.faults.clear()
        self.records_created.clear()
        self.arrivals.clear()
        self.creates_by_unique.clear()
