"""Rate limits of the fake HubSpot: rolling window, optional per-second limit, daily counter,
and simulated load from another integration sharing the same token."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TEN_SECONDLY = "TEN_SECONDLY_ROLLING"
SECONDLY = "SECONDLY"
DAILY = "DAILY"


@dataclass(slots=True)
class Verdict:
    """Outcome of one arrival: refused (policy set) or counted, plus header values."""

    policy: str | None  # None = counted; else the 429 policyName
    window_remaining: int | None  # None when no rolling limit
    secondly_remaining: int | None
    daily_remaining: int | None
    retry_after_s: int | None  # seconds until the refusing window has room


class TokenLimiter:
    """Limits of one token. The window deque holds every counted arrival, external load
    included; a request is refused when the window already holds ``limit`` arrivals."""

    def __init__(
        self,
        limit: int | None,
        interval_s: float,
        secondly: int | None,
        daily: int | None,
        daily_used: int,
    ) -> None:
        self.limit = limit
        self.interval_s = interval_s
        self.secondly = secondly
        self.daily = daily
        self.daily_used = daily_used
        self.window: deque[float] = deque()
        self.second: deque[float] = deque()

    def _prune(self, now: float) -> None:
        w = self.window
        cutoff = now - self.interval_s
        while w and w[0] <= cutoff:
            w.popleft()
        s = self.second
        cutoff = now - 1.0
        while s and s[0] <= cutoff:
            s.popleft()

    def _room_after(self, dq: deque[float], limit: int, span: float, now: float) -> int:
        # The window has room once the arrival that keeps it full ages out.
        if limit <= 0 or not dq:
            return max(1, math.ceil(span))
        oldest_blocking = dq[len(dq) - limit]
        return max(1, math.ceil(oldest_blocking + span - now))

    def remaining(self) -> tuple[int | None, int | None, int | None]:
        return (
            None if self.limit is None else max(0, self.limit - len(self.window)),
            None if self.secondly is None else max(0, self.secondly - len(self.second)),
            None if self.daily is None else max(0, self.daily - self.daily_used),
        )

    def arrive(self, now: float) -> Verdict:
        self._prune(now)
        policy: str | None = None
        retry: int | None = None
        if self.daily is not None and self.daily_used >= self.daily:
            policy = DAILY
        elif self.limit is not None and len(self.window) >= self.limit:
            policy = TEN_SECONDLY
            retry = self._room_after(self.window, self.limit, self.interval_s, now)
        elif self.secondly is not None and len(self.second) >= self.secondly:
            policy = SECONDLY
            retry = self._room_after(self.second, self.secondly, 1.0, now)
        else:
            self.window.append(now)
            if self.secondly is not None:
                self.second.append(now)
            self.daily_used += 1
        w, s, d = self.remaining()
        return Verdict(policy, w, s, d, retry)

    def count_external(self, now: float) -> bool:
        """One request of the other integration; False when HubSpot would have refused it."""
        self._prune(now)
        if self.limit is not None and len(self.window) >= self.limit:
            return False
        if self.daily is not None and self.daily_used >= self.daily:
            return False
        self.window.append(now)
        if self.secondly is not None:
            self.second.append(now)
        self.daily_used += 1
        return True


async def external_load(
    limiter: TokenLimiter, per_interval: int, clock: Callable[[], float]
) -> None:
    """Take ``per_interval`` slots per interval, evenly spaced, like a steady second integration
    on the same private app. Scheduled against absolute times so it does not drift."""
    step = limiter.interval_s / per_interval
    loop = asyncio.get_running_loop()
    start = loop.time()
    k = 0
    while True:
        limiter.count_external(clock())
        k += 1
        delay = start + k * step - loop.time()
        await asyncio.sleep(max(0.0, delay))


def max_in_window(arrivals: list[float], window_s: float) -> int:
    """Largest number of ``arrivals`` (sorted times) inside any half-open window of
    ``window_s`` seconds (the same (now - interval, now] rule the limiter uses)."""
    best = 0
    lo = 0
    for hi, t in enumerate(arrivals):
        while arrivals[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# -- 429 and header variants -------------------------------------------------------------------

DAILY_429_STYLES = ("policy", "message", "header")
BAD_RATE_HEADERS = ("garbage", "negative", "zero", "huge")
_DAILY_HEADERS = ("X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining")
# The rolling and daily headers a wrong server's nonsense always covers.
_RATE_HEADERS = (
    "X-HubSpot-RateLimit-Max",
    "X-HubSpot-RateLimit-Remaining",
    "X-HubSpot-RateLimit-Interval-Milliseconds",
    *_DAILY_HEADERS,
)
_NONSENSE = {"garbage": "n/a;q=soon", "negative": "-5", "zero": "0", "huge": str(10**30)}


def reshape_daily_429(style: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    """Make a DAILY 429 carry exactly one sign of being daily, so a client's detection of each
    sign can be tested alone: ``policy`` (policyName DAILY, the documented body), ``message``
    (no policyName, the message says daily, no daily headers), ``header`` (no policyName, a
    message that does not say which limit, X-HubSpot-RateLimit-Daily-Remaining: 0). The two
    undocumented shapes are our assumption of what a client may meet, not recorded answers."""
    if style == "policy":
        return
    body.pop("policyName", None)
    body.pop("groupName", None)  # it names the policy too ("...-api-calls-daily:...")
    if style == "message":
        for h in _DAILY_HEADERS:
            headers.pop(h, None)
    else:
        body["message"] = "You have reached your rate limit."
        headers["X-HubSpot-RateLimit-Daily-Remaining"] = "0"


def nonsense_rate_headers(mode: str, headers: dict[str, str]) -> None:
    """Replace every X-HubSpot-RateLimit-* value (and add the rolling and daily ones when
    missing) with ``mode``'s nonsense, as a misdirected base URL or a broken proxy might send."""
    value = _NONSENSE[mode]
    for name in (*headers, *_RATE_HEADERS):
        if name.startswith("X-HubSpot-RateLimit-"):
            headers[name] = value
