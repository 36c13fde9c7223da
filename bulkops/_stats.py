"""One owner for each count of a running job, and the one place its stop is held.

:class:`JobStats` counts requests (by kind and status), 429s by policy, transport failures and
outcomes; the report, the progress display and the exit code read it and nothing else.
:class:`StopLatch` holds the first :class:`Stop` a job gets; every later one is ignored, so the
reason a job reports is the reason it stopped.
"""

from __future__ import annotations

import enum
import operator
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import anyio

from ._models import Outcome

__all__ = ["JobStats", "Stop", "StopLatch", "StopReason"]


_new_of = operator.attrgetter("new")
_ok_of = operator.attrgetter("ok")


class StopReason(enum.StrEnum):
    """Why a job ended before every row was finished."""

    AUTH = "auth"  # 401/403: the token is bad or lacks scopes
    DAILY_LIMIT = "daily_limit"  # HubSpot's daily quota is spent
    DAILY_BUDGET = "daily_budget"  # the job's own share of it is spent
    RATE_LIMITED = "rate_limited"  # 429s went on for longer than the job waits
    OUTAGE = "outage"  # every request failed for longer than the job waits
    UNREACHABLE = "unreachable"  # the host never answered
    NOT_HUBSPOT = "not_hubspot"  # the host answered, but not as HubSpot does
    CONFIG = "config"  # every batch would fail the same way (object, id property...)
    INPUT = "input"  # the input cannot be read on (a damaged file, a bad header)
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM / Job.stop()
    LIMIT = "limit"  # a trial run (--limit N) sent its N rows; resume sends the rest
    MAX_FAILURES = "max_failures"  # more rows failed than JobConfig.max_failures allows

    @property
    def exit_code(self) -> int:
        """2: fix the command or the environment; 3: cut short, ``bulkops resume`` goes on."""
        return 2 if self in _FIX_FIRST else 3


_FIX_FIRST = frozenset(
    {StopReason.CONFIG, StopReason.UNREACHABLE, StopReason.NOT_HUBSPOT, StopReason.INPUT}
)


@dataclass(frozen=True, slots=True)
class Stop:
    reason: StopReason
    message: str
    # The HTTP status behind the stop, where one answer decided it (401 or 403 for AUTH).
    status: int | None = None


class StopLatch:
    """The first stop wins. ``on_stop`` runs once, when it is set (the scheduler halts)."""

    def __init__(
        self,
        on_stop: Callable[[], None] = lambda: None,
        *,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        """``redact``: applied to every stop's message (a server may echo the token in the
        error text a stop quotes; the message goes to the report, logs and exceptions)."""
        self.stop: Stop | None = None
        self._on_stop = on_stop
        self._redact = redact
        self._event = anyio.Event()

    def set(self, stop: Stop) -> None:
        if self.stop is not None:
            return
        if self._redact is not None:
            stop = replace(stop, message=self._redact(stop.message))
        self.stop = stop
        self._event.set()
        self._on_stop()

    @property
    def is_set(self) -> bool:
        return self.stop is not None

    async def wait(self) -> None:
        await self._event.wait()


@dataclass(slots=True)
class JobStats:
    """Everything one run counts. Requests are counted when they leave, by kind:
    ``schema``, ``write``, ``verify`` (read-backs of creates), ``isolation`` (split batches)
    and ``probe`` (checks whether HubSpot is back after an outage)."""

    requests: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)  # 429s by policyName
    transport_failures: Counter[str] = field(default_factory=Counter)
    resent_batches: int = 0
    splits: int = 0
    latency_ewma: float = 0.0
    succeeded: int = 0
    failed: int = 0
    created: int = 0
    updated: int = 0
    new_unknown: int = 0
    failed_by_category: Counter[str] = field(default_factory=Counter)
    last_success_at: float | None = None  # wall clock (time.time) of the last row written

    @property
    def total_requests(self) -> int:
        return self.requests.total()

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    def answered(self, status: int, latency: float) -> None:
        self.by_status[status] += 1
        self.latency_ewma = (
            latency if not self.latency_ewma else 0.9 * self.latency_ewma + (0.1 * latency)
        )

    def outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """A batch's outcomes: the same counts as :meth:`outcome` for each, the clock read
        once."""
        n = len(outcomes)
        if list(map(_new_of, outcomes)).count(True) == n == list(map(_ok_of, outcomes)).count(True):
            succeeded = n  # every one created (a create's batch): counted without a loop
        else:
            succeeded = 0
            for outcome in outcomes:
                if outcome.ok and outcome.new is True:
                    succeeded += 1
                else:
                    self.outcome(outcome)  # the rarer kinds, counted one by one
        if succeeded:
            self.succeeded += succeeded
            self.created += succeeded
            self.last_success_at = time.time()

    def outcome(self, outcome: Outcome) -> None:
        if outcome.ok:
            self.succeeded += 1
            self.last_success_at = time.time()
            if outcome.new is True:
                self.created += 1
            elif outcome.new is False:
                self.updated += 1
            elif outcome.item.maybe_written:
                self.new_unknown += 1
        else:
            self.failed += 1
            self.failed_by_category[str(outcome.category or "ERROR")] += 1
