"""One account's rate budget across processes and hosts, coordinated by Redis.

Every bulkops process of the account takes each turn from one Lua script
(``_redis_window.lua``) that runs atomically on the Redis server, on the server's clock: one
exact rolling window of the account's sends (the sliding log of the ``limits`` library's
moving window), one spacing (GCRA, at the limiter's ``burst`` times the even pace) so the
processes together go no faster than one job would, one
pause-until that a 429 seen by any process publishes, one cut limit after such a 429, one
daily count, and a register of the processes alive. One round trip per request; the reply
also carries the other processes' sends since the last turn, which are mirrored into the
local :class:`~bulkops._limiter.RateLimiter` so its header learning counts them as the
account's own (not another integration's).

Keys are ``bulkops:{<sha256 of the token, 16 hex>}:...``: the token itself never reaches
Redis, and the braces keep an account's keys in one cluster slot.

If Redis does not answer, the process paces alone from HubSpot's headers (one warning), at
``1 / N`` of the window, N the number of processes it last saw, so the account never goes
over because of it; it tries Redis again every ``_RETRY_S`` and rejoins (putting back the
sends it made alone), holding to its share for one more window while the others rejoin too.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import math
import os
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from ._config import Secret
from ._errors import ConfigError
from ._limiter import MIN_BURST_SPACING, LimiterStats, RateLimiter

__all__ = ["RedisPacer", "account_key"]

_log = logging.getLogger("bulkops.coordinator")

# How often a process that lost Redis tries it again. The try holds up that one turn (the
# account's turns are served one at a time) for at most the timeout, so keep both small.
_RETRY_S = 2.0
_REDIS_TIMEOUT_S = 0.5  # a coordinator slower than this is taken to be away
_DAY_S = 86_400
# A send is granted on Redis's clock and leaves the host a little later (half a round trip,
# scheduling); hosts with different round trips could bring two sends closer than the window
# by the difference. This margin, on top of the limiter's jitter margin, covers it.
DEFAULT_SKEW_MARGIN_S = 0.05


def account_key(token: Secret) -> str:
    """The Redis key prefix of an account: a hash of its token, never the token."""
    digest = hashlib.sha256(token.reveal().encode()).hexdigest()[:16]
    return f"bulkops:{{{digest}}}:"


def _script_text() -> str:
    return (importlib.resources.files("bulkops") / "_redis_window.lua").read_text("utf-8")


def _connect(url: str) -> Any:
    try:
        import redis.asyncio
    except ImportError:
        raise ConfigError(
            "--redis-url needs the redis client: pip install 'bulkops[redis]'"
        ) from None
    try:
        return redis.asyncio.Redis.from_url(
            url,
            socket_timeout=_REDIS_TIMEOUT_S,
            socket_connect_timeout=_REDIS_TIMEOUT_S,
            retry_on_timeout=False,
        )
    except ValueError as exc:
        raise ConfigError(f"--redis-url is not a Redis URL: {_no_password(str(exc))}") from None


def _no_password(text: str) -> str:
    # redis-py's messages may quote the URL; a password in it must not reach a log.
    return text.split("@")[-1] if "@" in text else text


class RedisPacer:
    """A :class:`~bulkops._pacer.Pacer` whose turns are the account's, across processes."""

    def __init__(
        self,
        url: str,
        token: Secret,
        *,
        rate_limit: int | None = None,
        interval: float = 10.0,
        adaptive: bool = True,
        daily_budget: int | None = None,
        skew_margin: float = DEFAULT_SKEW_MARGIN_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        client: Any = None,
    ) -> None:
        if rate_limit == 0:
            raise ConfigError("--redis-url shares a rate limit: it cannot go with rate_limit 0")
        self.local = RateLimiter(rate_limit, interval, adaptive=adaptive, clock=clock, sleep=sleep)
        self._url = url
        self._redis: Any = client if client is not None else _connect(url)
        self._script = self._redis.register_script(_script_text())
        prefix = account_key(token)
        self._keys = [
            prefix + k
            for k in ("log", "next", "pause", "cut", "procs", "day", "waiting", "due", "learned")
        ]
        self._proc = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._daily_budget = daily_budget
        self._skew = skew_margin
        self._clock = clock
        self._sleep = sleep
        self._offset = 0.0  # local clock minus Redis's, in seconds (last measured)
        self._since_ms = 0.0  # the newest send already mirrored
        self._pause_until_ms = 0.0  # a 429's pause (Redis's clock), published with the next turn
        self._cut = 0.0  # a 429's cut limit, published with the next turn
        self.processes = 1  # last seen
        self.connected = True
        self._lost_at: float | None = None  # when Redis went away (local clock)
        self._next_try = 0.0
        self._solo: deque[float] = deque()  # sends made alone, put back on rejoining
        self._probation_until = -math.inf  # after a rejoin: also hold to the share
        self._paused_until = -math.inf
        self._spent: str | None = None
        self.warnings = 0
        # Whether our limit is known (from HubSpot's headers, or set by the user) rather than
        # the starting guess; until then Redis paces us by what the other processes learned.
        self._learned = rate_limit is not None or not adaptive

    # -- Pacer --------------------------------------------------------------------------------
    @property
    def daily_remaining(self) -> int | None:
        return self.local.daily_remaining

    @property
    def rate_per_second(self) -> float | None:
        return self.local.rate_per_second

    def observe(
        self, headers: Mapping[str, str], sent_at: float, received_at: float | None = None
    ) -> None:
        self.local.observe(headers, sent_at, received_at)
        name = "X-HubSpot-RateLimit-Max"
        if not self._learned and name in headers:
            self._learned = name not in self.local.ignored_headers

    def on_rate_limited(self, policy: str, retry_after: float | None) -> float:
        pause = self.local.on_rate_limited(policy, retry_after)
        until = self._clock() + pause
        self._paused_until = max(self._paused_until, until)
        # Published with the next turn (which Redis then holds back like everyone's): every
        # process of the account pauses until the same moment and slows to the cut limit.
        self._pause_until_ms = max(self._pause_until_ms, (until - self._offset) * 1000)
        self._cut = self.local.stats().limit
        return pause

    @property
    def ignored_headers(self) -> set[str]:
        return self.local.ignored_headers

    def stats(self) -> LimiterStats:
        return self.local.stats()

    def budget_spent(self) -> str | None:
        return self._spent

    async def wait_turn(self) -> float:
        while True:
            now = self._clock()
            if not self.connected and now < self._next_try:
                if self._paused_until > now:
                    await self._sleep(self._paused_until - now)
                    continue
                return await self._solo_turn()
            granted = await self._redis_turn()
            if granted is None:
                continue
            if self.connected:
                if self._clock() < self._probation_until:
                    # Just rejoined: the others may still pace alone, their sends not in
                    # Redis yet; hold to the share as well for one window.
                    await self.local.wait_turn()
                elif self._probation_until > -math.inf:
                    self._probation_until = -math.inf
                    self.local.hold_to(1.0)
            return granted

    async def aclose(self) -> None:
        try:
            await self._redis.aclose()
        except Exception:  # closing a connection that is already gone
            _log.debug("closing the Redis connection failed", exc_info=True)

    # -- with Redis ---------------------------------------------------------------------------
    async def _redis_turn(self) -> float | None:
        """A turn from Redis (its local send time), or None after waiting as told. Falls
        back to pacing alone (returning that turn) when Redis does not answer."""
        local = self.local
        window_s = local.window + self._skew
        limit = max(1.0, local.stats().limit)
        back = [f"{(t - self._offset) * 1000:.1f}" for t in self._solo] if self._solo else []
        args = [
            f"{limit:.2f}",
            f"{window_s * 1000:.1f}",
            "1" if self._learned else "0",
            f"{self._since_ms:.1f}",
            self._proc,
            f"{self._pause_until_ms:.1f}",
            f"{self._cut:.2f}",
            str(self._daily_budget or 0),
            str(_DAY_S),
            f"{local.pace_burst:g}",
            f"{MIN_BURST_SPACING * 1000:.1f}",
            *back,
        ]
        before = self._clock()
        try:
            with anyio.fail_after(_REDIS_TIMEOUT_S * 2):
                reply = await self._script(keys=self._keys, args=args)
        except Exception as exc:  # redis errors, OSError, timeouts: the coordinator is away
            self._lost(exc)
            return await self._solo_turn()
        after = self._clock()
        if not self.connected:
            self._rejoined(after)
        self._pause_until_ms = 0.0
        self._cut = 0.0
        status, wait_ms, now_ms = int(reply[0]), float(reply[1]), float(reply[2])
        self.processes = max(1, int(reply[3]))
        self._offset = (before + after) / 2 - now_ms / 1000
        self._mirror(reply[4])
        if status == 1:
            local_at = now_ms / 1000 + self._offset
            local.record(local_at)
            return local_at
        if status == -1:
            self._spent = (
                f"the account's daily budget of {self._daily_budget} requests (shared by every "
                "process through Redis) is spent; resume tomorrow (bulkops resume OUT)"
            )
            return after
        await self._sleep(max(0.001, wait_ms / 1000))
        return None

    def _mirror(self, flat: list[Any]) -> None:
        """Count the other processes' sends since the last turn as the account's own."""
        mine = f":{self._proc}"
        for i in range(0, len(flat) - 1, 2):
            member, score = _text(flat[i]), float(flat[i + 1])
            self._since_ms = max(self._since_ms, score)
            if mine not in member:
                self.local.record(score / 1000 + self._offset)

    # -- without Redis ------------------------------------------------------------------------
    def _lost(self, exc: BaseException) -> None:
        now = self._clock()
        if self.connected:
            self.connected = False
            self._lost_at = now
            self.warnings += 1
            _log.warning(
                "the Redis coordinator at %s is not answering (%s); pacing alone from HubSpot's "
                "headers at 1/%d of the window until it is back",
                _no_password(self._url),
                type(exc).__name__,
                self.processes,
            )
            self.local.hold_to(1 / self.processes)
        self._next_try = now + _RETRY_S

    def _rejoined(self, now: float) -> None:
        self.connected = True
        self._solo.clear()
        _log.warning(
            "the Redis coordinator is back after %.1f s; pacing with the account's other "
            "processes again",
            now - (self._lost_at or now),
        )
        self._lost_at = None
        self._probation_until = now + self.local.window

    async def _solo_turn(self) -> float:
        at = await self.local.wait_turn()
        self._solo.append(at)
        horizon = at - 2 * self.local.window
        while self._solo and self._solo[0] < horizon:
            self._solo.popleft()
        return at

    def __repr__(self) -> str:
        state = "connected" if self.connected else "alone"
        return f"<RedisPacer {state} processes={self.processes} {self.local!r}>"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
