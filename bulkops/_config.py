"""Job configuration: one frozen object, checked when it is built.

The CLI builds the same object and has no defaults of its own, so the library and the command
line cannot drift apart.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ._checks import check_base_url, check_object_type, check_property_name, check_token_text
from ._errors import ConfigError
from ._models import Api, Operation
from ._retry import RetryPolicy
from ._versions import DEFAULT_API_VERSION, ApiVersion

__all__ = [
    "DEFAULT_BASE_URL",
    "JobConfig",
    "Secret",
    "config_from_meta",
    "config_to_meta",
    "default_out_dir",
]

DEFAULT_BASE_URL = "https://api.hubapi.com"


class Secret:
    """A token that never prints itself: repr, str and format all show ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def from_env_or_file(cls, token_file: str | None = None) -> Secret:
        """The token from ``--token-file`` or ``HUBSPOT_ACCESS_TOKEN``; never from argv, where
        ``ps`` and shell history would show it."""
        if token_file:
            try:
                value = Path(token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read --token-file {token_file}: {exc.strerror}"
                ) from None
            except UnicodeDecodeError:
                raise ConfigError(f"--token-file {token_file} is not a text file") from None
            if not value:
                raise ConfigError(f"--token-file {token_file} is empty")
            check_token_text(value, source=f"--token-file {token_file}")
            return cls(value)
        value = os.environ.get("HUBSPOT_ACCESS_TOKEN", "").strip()
        if not value:
            raise ConfigError(
                "no HubSpot token: set HUBSPOT_ACCESS_TOKEN or pass --token-file PATH"
            )
        check_token_text(value, source="HUBSPOT_ACCESS_TOKEN")
        return cls(value)


def default_out_dir(operation: Operation, object_type: str) -> Path:
    """A new folder per job, named so that ``ls`` sorts jobs by start time."""
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("bulkops-jobs") / f"{stamp}-{operation.value}-{object_type}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


@dataclass(frozen=True, slots=True, kw_only=True)
class JobConfig:
    """Everything a job needs. Defaults are safe for a real HubSpot account."""

    operation: Operation
    token: Secret
    object_type: str = "tickets"
    api: Api = Api.V3
    # The paths spoken: a dated version (default: the newest tested), v3, or v1. ``api`` is
    # derived from it (api=Api.V1 alone still selects v1); see _versions.py.
    api_version: ApiVersion = DEFAULT_API_VERSION
    base_url: str = DEFAULT_BASE_URL
    # update/read: records are addressed by this unique property instead of the record id.
    # upsert: required, the unique property. create: lets an unknown outcome be settled by
    # reading back (never a blind resend) and keeps two rows with one value out of a batch.
    id_property: str | None = None
    properties: tuple[str, ...] = ()  # read: which properties to return
    properties_with_history: tuple[str, ...] = ()  # read: limits batches to 50 inputs
    archived: bool = False  # read: read archived records
    empty_clears: bool = False  # an empty CSV cell clears the value instead of leaving it alone
    # Requests per rolling window. None: start at HubSpot's lowest tier (100 per 10 s) and learn
    # the account's limit from the response headers. N: never more than N, even if HubSpot
    # allows more. 0: no limit at all (benchmarks against the fake).
    rate_limit: int | None = None
    interval: float = 10.0
    # Learn the limit from X-HubSpot-RateLimit-* headers and yield to other integrations.
    adaptive: bool = True
    daily_budget: int | None = None  # at most this many requests today for this job
    daily_share: float | None = None  # or: at most this share of Daily-Remaining at start
    concurrency: int | None = None  # cap on requests in flight; None = derived from latency
    batch_size: int = 100
    max_attempts: int = 6
    backoff_base: float = 0.5  # seconds; full jitter over base * 2**attempt ...
    backoff_cap: float = 30.0  # ... capped here
    timeout: float = 60.0
    # The longest pause a server's Retry-After may impose at once.
    retry_after_cap: float = 300.0
    # How long a job goes on while every answer is a 429 before it stops (resumable).
    throttled_timeout: float = 600.0
    # How long a job waits for HubSpot when every recent request failed before it stops.
    outage_timeout: float = 300.0
    preflight: bool = True
    out_dir: Path = field(default_factory=lambda: Path("bulkops-out"))
    max_outstanding: int = 10_000  # records inside the engine at once: the memory bound
    journal: bool = True
    # Share the account's window and daily budget with every bulkops process using the same
    # token through this Redis (redis://, rediss:// or unix://); see docs/shared-budget.md.
    redis_url: str | None = None
    # (i, n): run only shard i (0-based) of n of the input: the rows whose number r has
    # (r - 1) % n == i. Row numbers stay the input's; see docs/shared-budget.md.
    shard: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"{name} {why}")

        self._settle_api_version()
        # These values reach the request line, headers and bodies: see _checks.
        check_token_text(self.token.reveal(), source="token")
        check_object_type(self.object_type)
        check_base_url(self.base_url)
        if self.id_property is not None:
            check_property_name(self.id_property, option="id_property (--id-property)")
        for name in self.properties:
            check_property_name(name, option="properties (--properties)")
        for name in self.properties_with_history:
            check_property_name(name, option="properties_with_history (--properties-with-history)")
        if self.rate_limit is not None and self.rate_limit < 0:
            raise bad("rate_limit", "must be >= 0 (0 = unlimited)")
        if self.interval <= 0:
            raise bad("interval", "must be > 0")
        if not 1 <= self.batch_size <= 100:
            raise bad("batch_size", "must be between 1 and 100 (HubSpot's batch limit)")
        if self.concurrency is not None and self.concurrency < 1:
            raise bad("concurrency", "must be >= 1")
        if self.max_attempts < 1:
            raise bad("max_attempts", "must be >= 1")
        if self.backoff_base < 0 or self.backoff_cap < self.backoff_base:
            raise bad("backoff_base", "must be >= 0 and <= backoff_cap")
        if self.timeout <= 0:
            raise bad("timeout", "must be > 0")
        for name in ("retry_after_cap", "throttled_timeout", "outage_timeout"):
            if getattr(self, name) <= 0:
                raise bad(name, "must be > 0 seconds")
        if self.max_outstanding < self.batch_size:
            raise bad("max_outstanding", "must be at least batch_size")
        if self.daily_budget is not None and self.daily_budget < 1:
            raise bad("daily_budget", "must be >= 1")
        if self.daily_share is not None and not 0 < self.daily_share <= 1:
            raise bad("daily_share", "must be in (0, 1]")
        if self.shard is not None:
            i, n = self.shard
            if not (isinstance(i, int) and isinstance(n, int) and n >= 1 and 0 <= i < n):
                raise bad("shard", f"must be i/n with 0 <= i < n (got {i}/{n})")
        if self.redis_url is not None:
            if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
                raise bad("redis_url", "must start with redis://, rediss:// or unix://")
            if self.rate_limit == 0:
                raise bad("redis_url", "shares a rate limit: it cannot go with rate_limit 0")
        op = self.operation
        if op is Operation.UPSERT and not self.id_property:
            raise bad("id_property", "is required for upsert (the unique property to match on)")
        if op is Operation.ARCHIVE and self.id_property and self.api is Api.V3:
            raise bad("id_property", "is not supported by archive: HubSpot archives by record id")
        if self.api is Api.V1:
            if self.object_type not in ("tickets", "0-5"):
                raise bad("api", "v1 supports tickets only")
            if op is Operation.UPSERT:
                raise bad("operation", "upsert does not exist in the v1 ticket API")
            if self.id_property and op is not Operation.CREATE:
                raise bad("id_property", "v1 addresses tickets by objectId only")
        if op is not Operation.READ and (self.properties or self.properties_with_history):
            raise bad("properties", "only apply to read")

    def _settle_api_version(self) -> None:
        # Two fields say one thing: ``api`` (the older, dialect-only choice) and ``api_version``.
        # api=V1 with the default version means v1; otherwise the version decides the dialect.
        version = self.api_version
        if not isinstance(version, ApiVersion):
            raise ConfigError(f"api_version must be an ApiVersion, not {type(version).__name__}")
        if self.api is Api.V1 and not version.is_legacy_v1:
            if version != DEFAULT_API_VERSION:
                raise ConfigError(
                    f"api_version {version} contradicts api=v1 (v1 is api_version v1)"
                )
            object.__setattr__(self, "api_version", ApiVersion("v1"))
        object.__setattr__(self, "api", self.api_version.api)

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
            retry_after_cap=self.retry_after_cap,
            throttled_timeout=self.throttled_timeout,
            outage_timeout=self.outage_timeout,
        )

    @property
    def max_batch(self) -> int:
        # HubSpot caps reads with property history at 50 inputs (hubspot-api.md section 2).
        return min(self.batch_size, 50) if self.properties_with_history else self.batch_size


_META_SKIP = frozenset({"token", "out_dir", "redis_url"})  # redis_url: may hold a password


def config_to_meta(config: JobConfig) -> dict[str, Any]:
    """The job's settings as JSON for the journal; the token is never written."""
    meta: dict[str, Any] = {}
    for f in fields(config):
        if f.name in _META_SKIP:
            continue
        value = getattr(config, f.name)
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, ApiVersion):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        meta[f.name] = value
    return meta


def config_from_meta(meta: dict[str, Any], *, token: Secret, out_dir: Path) -> JobConfig:
    values = dict(meta)
    values["operation"] = Operation(values["operation"])
    values["api"] = Api(values["api"])
    # A job journaled before api_version existed spoke the paths of its api (v3 or v1).
    values["api_version"] = ApiVersion.parse(values.get("api_version") or values["api"].value)
    for name in ("properties", "properties_with_history"):
        values[name] = tuple(values.get(name) or ())
    if values.get("shard") is not None:
        values["shard"] = tuple(values["shard"])
    known = {f.name for f in fields(JobConfig)}
    return JobConfig(
        token=token, out_dir=out_dir, **{k: v for k, v in values.items() if k in known}
    )
