"""Job configuration: one frozen object, checked when it is built.

The CLI builds the same object and has no defaults of its own, so the library and the command
line cannot drift apart.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._auth import TokenLike, is_token_provider
from ._checks import check_base_url, check_object_type, check_property_name, check_token_text
from ._errors import ConfigError
from ._mapping import ColumnMapping
from ._models import Api, Operation
from ._retry import RetryPolicy
from ._versions import DEFAULT_API_VERSION, ApiVersion

if TYPE_CHECKING:
    import zoneinfo

__all__ = [
    "DEFAULT_BASE_URL",
    "MIN_ROWS_FOR_SHARE",
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


# Compared by identity: only a JobConfig built without out_dir gets a folder of its own.
_UNSET_OUT_DIR = Path("bulkops-out")


def library_out_dir(operation: Operation, object_type: str) -> Path:
    """The CLI's folder name plus a random suffix: two configs made in one second (a loop
    in a program, two tasks of one DAG) never share a job folder."""
    import secrets

    base = default_out_dir(operation, object_type)
    return base.with_name(f"{base.name}-{secrets.token_hex(3)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobConfig:
    """Everything a job needs. Defaults are safe for a real HubSpot account."""

    operation: Operation  # a string ("create") is converted at construction
    # A Secret (a str is converted), or an async token provider asked before expiry and once
    # after a 401 (see _auth): a long job outlives a 30-minute OAuth token.
    token: Secret | TokenLike
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
    # Default: a new folder per job under bulkops-jobs/ (see library_out_dir).
    out_dir: Path = field(default_factory=lambda: _UNSET_OUT_DIR)
    max_outstanding: int = 10_000  # records inside the engine at once: the memory bound
    journal: bool = True
    # Input columns -> properties (renames, ignored columns, constants, label matching).
    mapping: ColumnMapping = field(default_factory=ColumnMapping)
    # Check everything locally and write nothing (``bulkops.dry_run``; a Job refuses it).
    dry_run: bool = False
    # With dry_run: also read the target records back to count those that exist.
    dry_run_reads: bool = False
    # A trial run: send only the first N rows of the input; resume goes on with the rest.
    limit: int | None = None
    # Input columns that are not sent to HubSpot but carried into the result lines and the
    # Outcome (the source's primary key, say), so results join back by key, not by position.
    passthrough: tuple[str, ...] = ()
    # Stop the job (resumable) once this many rows failed (an int >= 1), or once this share of
    # the rows read failed (a float in (0, 1), judged once MIN_ROWS_FOR_SHARE rows finished).
    max_failures: int | float | None = None

    # The zone of naive datetimes (an IANA name, e.g. "Europe/Paris"); None: a naive datetime
    # is an error for its row, since HubSpot cannot know when it is. See docs/values.md.
    timezone: str | None = None
    # Per-property coercion hooks, property name -> f(value) -> text (None: no value); they win
    # over the default table (docs/values.md) and see every value of their property.
    coerce: Mapping[str, Callable[[Any], str | None]] = field(default_factory=dict)
    # Sent with every request (an API gateway's key, a tracing header); never Authorization.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold keys
    proxy: str | None = field(default=None, repr=False)  # http(s)://; may hold a password
    # Use the environment's proxy settings (HTTPS_PROXY, NO_PROXY...). Off by default: it
    # sends the token through whatever proxy the environment names.
    trust_env: bool = False
    # Share the account's window and daily budget with every bulkops process using the same
    # token through this Redis (redis://, rediss:// or unix://); see docs/shared-budget.md.
    redis_url: str | None = None
    # (i, n): run only shard i (0-based) of n of the input: the rows whose number r has
    # (r - 1) % n == i. Row numbers stay the input's; see docs/shared-budget.md.
    shard: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self._settle_operation_and_token()
        self._settle_api_version()
        self._check_values()
        self._check_transport()
        self._check_wire_values()
        for name, allowed, why in _RANGES:
            value = getattr(self, name)
            if value is not None and not allowed(value):
                raise ConfigError(f"{name} {why}")
        if self.backoff_cap < self.backoff_base:
            raise ConfigError("backoff_base must be <= backoff_cap")
        if self.max_outstanding < self.batch_size:
            raise ConfigError("max_outstanding must be at least batch_size")
        problem = _operation_problem(self)
        if problem:
            raise ConfigError(problem)
        self._check_passthrough()
        self._check_sharing()
        check_max_failures(self.max_failures)
        if self.out_dir is _UNSET_OUT_DIR:
            object.__setattr__(self, "out_dir", library_out_dir(self.operation, self.object_type))

    def _check_wire_values(self) -> None:
        """What reaches the request line, headers and bodies (see _checks); the token's text
        is checked where it is settled."""
        # These values reach the request line, headers and bodies: see _checks.
        check_object_type(self.object_type)
        check_base_url(self.base_url)
        if self.id_property is not None:
            check_property_name(self.id_property, option="id_property (--id-property)")
        for name in self.properties:
            check_property_name(name, option="properties (--properties)")
        for name in self.properties_with_history:
            check_property_name(name, option="properties_with_history (--properties-with-history)")

    def _check_sharing(self) -> None:
        if self.shard is not None:
            i, n = self.shard
            if not (isinstance(i, int) and isinstance(n, int) and n >= 1 and 0 <= i < n):
                raise ConfigError(f"shard must be i/n with 0 <= i < n (got {i}/{n})")
        if self.redis_url is not None:
            if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigError("redis_url must start with redis://, rediss:// or unix://")
            if self.rate_limit == 0:
                raise ConfigError("redis_url shares a rate limit: it cannot go with rate_limit 0")

    def _check_passthrough(self) -> None:
        names = self.passthrough
        if isinstance(names, str):
            raise ConfigError("passthrough must be a tuple of column names, not one string")
        object.__setattr__(self, "passthrough", tuple(names))
        for name in self.passthrough:
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"passthrough column {name!r} must be a non-empty name")
        duplicates = sorted({n for n in self.passthrough if self.passthrough.count(n) > 1})
        if duplicates:
            raise ConfigError(f"passthrough column {duplicates[0]!r} is given twice")
        if self.id_property and self.id_property in self.passthrough:
            raise ConfigError(
                f"passthrough column {self.id_property!r} is the id property: it is sent to "
                "HubSpot, and its value is in every result line already (as key)"
            )
        by_record_id = self.operation in (Operation.UPDATE, Operation.ARCHIVE, Operation.READ)
        if "id" in self.passthrough and by_record_id and not self.id_property:
            raise ConfigError(
                f"passthrough column 'id' is the record id {self.operation.value} needs; "
                "it is in every result line already (as id and key)"
            )

    def _settle_operation_and_token(self) -> None:
        # Plain values a user would naturally type are converted here, once, so a mistake is
        # a ConfigError now rather than an AttributeError mid-run.
        op = self.operation
        if not isinstance(op, Operation):
            try:
                object.__setattr__(self, "operation", Operation(str(op).lower()))
            except ValueError:
                choices = ", ".join(o.value for o in Operation)
                raise ConfigError(f"operation {op!r} is not one of: {choices}") from None
        token = self.token
        if isinstance(token, str):
            check_token_text(token.strip(), source="token")
            if not token.strip():
                raise ConfigError("token is empty")
            object.__setattr__(self, "token", Secret(token.strip()))
        elif isinstance(token, Secret):
            check_token_text(token.reveal(), source="token")
        elif not is_token_provider(token):
            raise ConfigError(
                f"token must be a Secret, a str or an async token provider, "
                f"not {type(token).__name__}"
            )

    def _check_transport(self) -> None:
        if not isinstance(self.headers, Mapping):
            raise ConfigError("headers must be a mapping of header name to value")
        object.__setattr__(self, "headers", dict(self.headers))
        for name, value in self.headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise ConfigError(f"headers: {name!r} must map a str name to a str value")
            if name.lower() in _OUR_HEADERS:
                raise ConfigError(
                    f"headers may not set {name}: bulkops sets it (the token goes in "
                    "Authorization from token=)"
                )
            if not name or any(not "!" <= c <= "~" or c == ":" for c in name):
                raise ConfigError(f"headers: {name!r} is not a valid header name")
            if any(c in "\r\n\0" for c in value):
                raise ConfigError(f"headers: the value of {name} holds a line break or NUL")
        if self.proxy is not None:
            parts = urlsplit(self.proxy) if isinstance(self.proxy, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                # Not echoed: a proxy URL may carry a password.
                raise ConfigError("proxy must be an http:// or https:// URL with a host")

    def _check_values(self) -> None:
        if self.timezone is not None:
            import zoneinfo  # here: ~2 ms of every start, for the jobs that name a zone

            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
                raise ConfigError(
                    f"timezone {self.timezone!r} is not a time zone name (e.g. 'UTC', "
                    "'Europe/Paris')"
                ) from None
        if not isinstance(self.coerce, Mapping):
            raise ConfigError("coerce must be a mapping of property name to a function")
        # Copies: the caller's dict changed after the check would bypass it. (Plain dicts,
        # not MappingProxyType, so that a config still pickles.)
        object.__setattr__(self, "coerce", dict(self.coerce))
        for name, hook in self.coerce.items():
            if not isinstance(name, str) or not callable(hook):
                raise ConfigError(
                    f"coerce[{name!r}] must map a property name to a function of the value"
                )

    @property
    def zone(self) -> zoneinfo.ZoneInfo | None:
        """``timezone`` as a tzinfo (None when not set)."""
        if self.timezone is None:
            return None
        import zoneinfo

        return zoneinfo.ZoneInfo(self.timezone)

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
        # HubSpot caps reads with property history at 50 inputs (docs/hubspot-api.md section 2).
        return min(self.batch_size, 50) if self.properties_with_history else self.batch_size


# (field, allowed when set, why not): the simple range checks, one table.
_RANGES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("rate_limit", lambda v: v >= 0, "must be >= 0 (0 = unlimited)"),
    ("interval", lambda v: v > 0, "must be > 0"),
    ("batch_size", lambda v: 1 <= v <= 100, "must be between 1 and 100 (HubSpot's batch limit)"),
    ("concurrency", lambda v: v >= 1, "must be >= 1"),
    ("max_attempts", lambda v: v >= 1, "must be >= 1"),
    ("backoff_base", lambda v: v >= 0, "must be >= 0"),
    ("timeout", lambda v: v > 0, "must be > 0"),
    ("retry_after_cap", lambda v: v > 0, "must be > 0 seconds"),
    ("throttled_timeout", lambda v: v > 0, "must be > 0 seconds"),
    ("outage_timeout", lambda v: v > 0, "must be > 0 seconds"),
    ("daily_budget", lambda v: v >= 1, "must be >= 1"),
    ("daily_share", lambda v: 0 < v <= 1, "must be in (0, 1]"),
    ("limit", lambda v: v >= 1, "must be >= 1"),
)


def _operation_problem(config: JobConfig) -> str | None:
    """What the operation, the API and the id property say together, or None."""
    op, api, idp = config.operation, config.api, config.id_property
    if op is Operation.UPSERT and not idp:
        return "id_property is required for upsert (the unique property to match on)"
    if op is Operation.ARCHIVE and idp and api is Api.V3:
        return "id_property is not supported by archive: HubSpot archives by record id"
    if api is Api.V1:
        if config.object_type not in ("tickets", "0-5"):
            return "api v1 supports tickets only"
        if op is Operation.UPSERT:
            return "operation upsert does not exist in the v1 ticket API"
        if idp and op is not Operation.CREATE:
            return "id_property: v1 addresses tickets by objectId only"
    if op is not Operation.READ and (config.properties or config.properties_with_history):
        return "properties only apply to read"
    if config.dry_run_reads and not config.dry_run:
        return "dry_run_reads needs dry_run"
    if config.dry_run_reads and op not in (Operation.UPDATE, Operation.UPSERT, Operation.ARCHIVE):
        return "dry_run_reads applies to update, upsert and archive only"
    return None


MIN_ROWS_FOR_SHARE = 100  # a share of failures means nothing over fewer finished rows


def check_max_failures(value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"max_failures must be a count (int) or a share (float), not {type(value).__name__}"
        )
    if isinstance(value, int) and value < 1:
        raise ConfigError("max_failures must be >= 1 (a count of failed rows)")
    if isinstance(value, float) and not 0 < value < 1:
        raise ConfigError("max_failures as a share must be in (0, 1), e.g. 0.05 for 5%")


# A trial run's limit and a dry run are choices of one run, not of the job: resume goes on.
# Not journaled either: secrets (the token; headers and proxy may carry keys) and functions.
_META_SKIP = frozenset(
    {
        "token",
        "out_dir",
        "limit",
        "dry_run",
        "dry_run_reads",
        "coerce",
        "headers",
        "proxy",
        "redis_url",  # it may hold a password
    }
)
# Headers the transport owns.
_OUR_HEADERS = frozenset({"authorization", "content-type", "content-length", "host"})


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
        elif isinstance(value, ColumnMapping):
            value = value.to_meta()
        meta[f.name] = value
    return meta


def config_from_meta(
    meta: dict[str, Any], *, token: Secret | TokenLike, out_dir: Path
) -> JobConfig:
    values = dict(meta)
    values["operation"] = Operation(values["operation"])
    values["api"] = Api(values["api"])
    # A job journaled before api_version existed spoke the paths of its api (v3 or v1).
    values["api_version"] = ApiVersion.parse(values.get("api_version") or values["api"].value)
    for name in ("properties", "properties_with_history", "passthrough"):
        values[name] = tuple(values.get(name) or ())
    values["mapping"] = ColumnMapping.from_meta(values.get("mapping"))
    if values.get("shard") is not None:
        values["shard"] = tuple(values["shard"])
    known = {f.name for f in fields(JobConfig)}
    return JobConfig(
        token=token, out_dir=out_dir, **{k: v for k, v in values.items() if k in known}
    )
