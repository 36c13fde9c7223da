"""Request pacing for HubSpot's rolling-window rate limit.

HubSpot counts requests per app in a *rolling* 10-second window. A leaky or token bucket (what
aiolimiter and most clients use) bursts up to the limit and then drains, which lets up to twice
the limit through one rolling window and earns 429s. This limiter instead

* keeps a log of its own send times and never lets more than ``limit`` of them fall inside any
  ``window``: a hard guarantee that holds while the limit changes under it; and
* spaces requests at least ``window / (limit x burst)`` apart (GCRA at ``burst`` times the
  even pace, and no closer than ``MIN_BURST_SPACING``): the window's budget may go at once,
  but not in one instant. ``burst`` 1 is
  even spacing. The default, 4, is what makes a job end to end close to the ceiling: the
  first window is empty, so its budget goes in a quarter of the window (no ramp while
  waiting), and the window then frees its slots in the same pattern, so each later window's
  budget, the last partial one too, also goes in a quarter of it. Even spacing would take a
  whole ``spacing`` per request to the very end (400 requests at 190 per 10.1 s: 21.3 s
  against 20.5 s). A quarter, not all at once: a burst of the whole window would need
  ``limit`` connections at once and load the loop, which is what turns latency into
  arrival jitter. While another integration is seen in the window, the spacing is even
  again (``pace_burst``), so a neighbour keeps the share we leave it.

``window`` is the server's interval plus a small margin (0.1 s): a request is counted when it
*arrives*, and network jitter can bring two requests sent one interval apart closer together.

It also learns. Every response carries ``X-HubSpot-RateLimit-Max`` / ``-Remaining`` /
``-Interval-Milliseconds``: the limit is taken from there (the user need not know their tier), and
``Max - Remaining`` minus our own requests in the window is what other integrations on the same
account are using right now, which we leave to them. A 429 with ``TEN_SECONDLY_ROLLING`` pauses
every sender and cuts the rate (multiplicative decrease); clean responses raise it again
(additive increase) up to what the headers allow.

A header value that makes no sense (not ASCII digits, zero, negative, absurdly large) is
ignored: pacing goes on from what is known, the header's name goes into ``ignored_headers``
and one warning per name is logged on ``bulkops.limiter``.

No I/O here; the clock and sleep are injectable so tests can check exact timings.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio

__all__ = ["LimiterStats", "RateLimiter"]

_DECREASE = 0.7  # multiplicative decrease on a rolling-window 429
_INCREASE = 0.25  # additive increase per clean response (about +1 request/window per 4 responses)
_SHARE_RESERVE = 0.02  # head-room kept below the learned ceiling when others share the window
_DEFAULT_START = 100  # HubSpot's lowest tier: 100 requests per 10 s
_NEIGHBOUR_SEEN = 2.0  # requests of others in a reading that turn the burst off for a window
_MARGIN_SHARE_MAX = 0.05  # of the window: the jitter margin on short windows
DEFAULT_BURST = 4.0  # the window's budget may go at up to this many times the even pace
# A burst faster than this turns into arrival jitter: the client's loop (a few ms of work per
# request) falls behind its turns, and the window margin has to absorb it. Measured on the fake
# at 190 per 10 s: 13 ms apart used 6 ms of the 0.1 s margin, 6.6 ms apart 56 ms.
MIN_BURST_SPACING = 0.012
# How late a sleep may wake and still count as on time: libuv's timers (uvloop) count in whole
# milliseconds. Without it a pace faster than one request per 4 ms restarted from "now" on
# nearly every send and lost a millisecond each time (77% of 3,000 per 10 s).
_WAKEUP_SLACK = 0.002

_log = logging.getLogger("bulkops.limiter")

_MAX = "X-HubSpot-RateLimit-Max"
_REMAINING = "X-HubSpot-RateLimit-Remaining"
_INTERVAL = "X-HubSpot-RateLimit-Interval-Milliseconds"
_DAILY = "X-HubSpot-RateLimit-Daily"
_DAILY_REMAINING = "X-HubSpot-RateLimit-Daily-Remaining"
# What a header may plausibly say. HubSpot's highest tier allows 250 requests per 10 s and a
# few million a day (docs/hubspot-api.md sections 7 and 14); these bounds leave a wide margin above
# that and still keep a broken proxy's 10**12 or 0 from setting the pace.
_PER_WINDOW_MAX = 100_000
_INTERVAL_MS_MAX = 3_600_000  # an hour
_DAILY_MAX = 1_000_000_000


@dataclass(frozen=True, slots=True)
class LimiterStats:
    limit: float  # requests per window we allow ourselves now
    ceiling: int  # the account's limit (learned from headers, else configured)
    window: float
    others: float  # estimated requests per window used by other integrations
    daily_remaining: int | None
    daily_limit: int | None


class RateLimiter:
    def __init__(
        self,
        limit: int | None,
        interval: float = 10.0,
        *,
        margin: float = 0.1,
        adaptive: bool = True,
        burst: float = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if burst < 1.0:
            raise ValueError("burst must be >= 1 (1: even spacing)")
        # None: start at HubSpot's lowest tier and learn; N > 0: learn, but never above N.
        self._unlimited = limit == 0
        self._user_cap = float(limit) if limit else math.inf
        start = limit if limit is not None else _DEFAULT_START
        self._ceiling = start
        self._limit = float(start)
        self._interval = interval
        self._margin = margin
        self._adaptive = adaptive
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._log: deque[float] = deque()  # our own send times, oldest first
        self._next_at = -math.inf  # earliest time the next request may go (even spacing)
        self._paused_until = -math.inf
        self._others = 0.0
        self._neighbour_until = -math.inf  # another integration seen in the window: even pace
        self._seen_ceiling = 0  # Max header last seen, even while unlimited
        self._last_decrease = -math.inf
        self._sends = 0  # for the repr only: JobStats counts the job's requests
        self._fraction = 1.0  # of the cap we hold to (a process that lost its coordinator)
        self._limit_before_hold: float | None = None
        self.daily_remaining: int | None = None
        self.daily_limit: int | None = None
        # Names of rate-limit headers whose value was ignored because it made no sense.
        self.ignored_headers: set[str] = set()

    @property
    def window(self) -> float:
        # The margin is for arrival jitter (the network, a busy loop at either end), which does
        # not shrink with the window: 0.1 s on HubSpot's 10 s (99% of the ceiling). On the
        # short windows tests use, up to 5% of the window: a burst (see ``burst``) loads the
        # loop, and a loop shared with an in-process fake shifts arrivals by milliseconds.
        return self._interval + min(self._margin, _MARGIN_SHARE_MAX * self._interval)

    def _earliest(self, now: float) -> float:
        t = max(now, self._next_at, self._paused_until)
        limit = max(1, int(self._limit))
        log = self._log
        self._prune(now)
        if len(log) >= limit:
            # The (limit)-th most recent send must leave the window before another may go.
            t = max(t, log[-limit] + self.window)
        return t

    def _prune(self, now: float) -> None:
        # Kept for two intervals, not one window: ``in_window`` looks back from a send time
        # up to a latency ago, and a log trimmed too soon would count our own requests as
        # another integration's.
        log = self._log
        horizon = now - 2 * self._interval - 1.0
        while log and log[0] <= horizon:
            log.popleft()

    async def wait_turn(self) -> float:
        """Wait until a request may be sent; counts it as sent and returns the send time."""
        if self._unlimited:
            now = self._clock()
            # Logged even now: if the server turns out to have a limit, what we sent is ours,
            # not another integration's.
            self._log.append(now)
            self._prune(now)
            self._sends += 1
            return now
        while True:
            now = self._clock()
            t = self._earliest(now)
            if t <= now:
                self._log.append(now)
                spacing = self.spacing
                # GCRA: the schedule advances from where it should be, not from when this
                # request actually went, so a little lateness on each send does not add up
                # (up to a quarter spacing, or a timer's lateness where that is more; after a
                # longer stall it restarts from now).
                on_time = now - self._next_at <= max(spacing / 4, _WAKEUP_SLACK)
                self._next_at = (self._next_at if on_time else now) + spacing
                self._sends += 1
                return now
            await self._sleep(t - now)

    def in_window(self, at: float, until: float | None = None) -> int:
        """How many of our requests were sent in the window ending at ``at`` (or, with
        ``until``, from ``at - interval`` to ``until``)."""
        start, end = at - self._interval, at if until is None else until
        return sum(1 for t in self._log if start < t <= end)

    def observe(
        self, headers: Mapping[str, str], sent_at: float, received_at: float | None = None
    ) -> None:
        """Learn from a response's rate-limit headers (any status). ``received_at``: when the
        answer came; requests of ours sent after ``sent_at`` may have arrived first."""
        daily_max = self._header(headers, _DAILY, 1, _DAILY_MAX)
        if daily_max is not None:
            self.daily_limit = daily_max
        daily = self._header(headers, _DAILY_REMAINING, 0, daily_max or _DAILY_MAX)
        if daily is not None:
            self.daily_remaining = daily
        ceiling = self._header(headers, _MAX, 1, _PER_WINDOW_MAX)
        if ceiling is None:
            return  # Remaining means nothing without the Max it counts down from
        rem = self._header(headers, _REMAINING, -ceiling, ceiling)
        self._seen_ceiling = ceiling
        if not self._adaptive:
            return
        interval_ms = self._header(headers, _INTERVAL, 1, _INTERVAL_MS_MAX)
        if interval_ms is not None:
            self._interval = interval_ms / 1000
        if self._unlimited:
            return
        if ceiling != self._ceiling:
            self._ceiling = ceiling
            # Take a higher limit at once (the user need not know their tier); a lower one too.
            self._limit = min(float(ceiling), self._user_cap)
        if rem is not None:
            used = ceiling - rem
            # The server counted this request on arrival, somewhere between sending and the
            # answer; with latency jitter, later requests of ours may have overtaken it. Count
            # ours sent up to the jitter margin after it (the margin the window guarantee
            # already assumes bounds the jitter), so jitter never looks like another
            # integration. Not all of ours up to the answer: in a burst a latency holds a
            # dozen requests sent after it, which reached the server after it, and taking
            # them for counted would hide a real neighbour of that size.
            until = sent_at + (self.window - self._interval)
            if received_at is not None:
                until = min(until, received_at)
            others = max(0.0, used - self.in_window(sent_at, until))
            if others >= _NEIGHBOUR_SEEN:
                # Even below the reserve: someone else is in the window; pace evenly for a
                # window (see ``pace_burst``).
                self._neighbour_until = self._clock() + self.window
            if others < max(1.0, _SHARE_RESERVE * ceiling):
                others = 0.0  # below the reserve we keep anyway: noise, not a neighbour
            # Rise fast, fall slowly: another integration's burst is respected at once and
            # forgotten only after several clean readings.
            self._others = others if others > self._others else self._others * 0.9 + others * 0.1
        cap = self.cap
        if self._limit < cap:
            self._limit = min(cap, self._limit + _INCREASE)
        elif self._limit > cap:
            self._limit = cap

    def _header(self, headers: Mapping[str, str], name: str, low: int, high: int) -> int | None:
        """The header as an int in [low, high]; None when absent or when it makes no sense."""
        text = headers.get(name)
        if text is None:
            return None
        text = text.strip()
        digits = text[1:] if text.startswith("-") else text
        # isascii: str.isdigit() accepts "²", which int() then refuses.
        if digits.isascii() and digits.isdigit() and len(digits) <= 18:
            value = int(text)
            if low <= value <= high:
                return value
        if name not in self.ignored_headers:
            self.ignored_headers.add(name)
            _log.warning(
                "ignoring %s: %r is not a count between %d and %d; pacing on what is known",
                name,
                text[:40],
                low,
                high,
            )
        return None

    @property
    def cap(self) -> float:
        """The most we allow ourselves: the ceiling less what others use and a little reserve."""
        if self._others < 0.5:
            whole = min(float(self._ceiling), self._user_cap)
        else:
            reserve = max(1.0, self._ceiling * _SHARE_RESERVE)
            whole = min(max(1.0, self._ceiling - self._others - reserve), self._user_cap)
        return whole if self._fraction >= 1.0 else max(1.0, whole * self._fraction)

    def record(self, at: float) -> None:
        """A send of the same account made elsewhere (another process, told by the
        coordinator): counted in the window like our own, so the header learning does not take
        it for another integration and the window check leaves room for it."""
        bisect.insort(self._log, at)  # the log stays oldest first
        self._prune(self._clock())

    def hold_to(self, fraction: float) -> None:
        """Allow ourselves only ``fraction`` of the cap (1.0: all of it) from now on."""
        fraction = min(1.0, max(0.0, fraction))
        if fraction < 1.0 and self._limit_before_hold is None:
            self._limit_before_hold = self._limit
        self._fraction = fraction
        if fraction >= 1.0 and self._limit_before_hold is not None:
            # Back to the whole: at once to where we were, not +0.25 a response from the share.
            self._limit = max(self._limit, self._limit_before_hold)
            self._limit_before_hold = None
        self._limit = min(self._limit, self.cap)

    def on_rate_limited(self, policy: str, retry_after: float | None) -> float:
        """A 429: pause every sender and slow down. Returns the pause in seconds."""
        now = self._clock()
        if self._unlimited and self._adaptive and self._seen_ceiling:
            # Told "no limit" but the server has one: pace by what its headers said from now on.
            self._unlimited = False
            self._ceiling = self._seen_ceiling
            self._limit = float(self._seen_ceiling)
        if policy == "SECONDLY":
            pause = retry_after if retry_after is not None else 1.0
        else:
            if not self._unlimited and now - self._last_decrease >= self.window:
                # One cut per window: the other 429s of the same burst were sent before the
                # first cut could take effect, and cutting for each would collapse the rate.
                self._limit = max(1.0, self._limit * _DECREASE)
                self._last_decrease = now
            # Room in the window appears as the oldest requests in it expire; one spacing period
            # of the slowed rate, and at least half a second, gives the window time to drain.
            spacing = self.window / self._limit if self._limit else 0.0
            pause = retry_after if retry_after is not None else max(0.5, spacing)
        self._paused_until = max(self._paused_until, now + pause)
        return pause

    def stats(self) -> LimiterStats:
        return LimiterStats(
            limit=round(self._limit, 2),
            ceiling=self._ceiling,
            window=self._interval,
            others=round(self._others, 1),
            daily_remaining=self.daily_remaining,
            daily_limit=self.daily_limit,
        )

    @property
    def burst(self) -> float:
        return self._burst

    @property
    def pace_burst(self) -> float:
        """The burst in force: ``burst`` alone on the window, 1 (even spacing) while another
        integration is seen in it (from a reading of 2 requests not ours, for a window). A
        neighbour that paces evenly would otherwise lose the window's free budget to our
        burst each time it frees, and go short of what we leave it (and the headers would
        not show it, so we would not leave it more)."""
        if self._others >= 0.5 or self._neighbour_until > self._clock():
            return 1.0
        return self._burst

    @property
    def spacing(self) -> float:
        """The least time between two sends now: the even spacing divided by the burst in
        force, but not below ``MIN_BURST_SPACING`` (unless even spacing itself is shorter)."""
        even = self.window / max(self._limit, 1.0)
        return max(even / self.pace_burst, min(even, MIN_BURST_SPACING))

    @property
    def rate_per_second(self) -> float | None:
        """The fastest pace we may send at now (a window's budget goes at ``burst`` times the
        even pace), for sizing concurrency; None when unlimited."""
        return None if self._unlimited else 1.0 / self.spacing

    def __repr__(self) -> str:
        lim = "unlimited" if self._unlimited else f"{self._limit:.1f}/{self.window:.2f}s"
        return (
            f"<RateLimiter {lim} ceiling={self._ceiling} others={self._others:.1f} "
            f"sends={self._sends}>"
        )
