"""One HubSpot account, many jobs: a rate budget shared by every job started with it.

HubSpot counts the 10-second window and the daily quota per account, not per job. Two jobs with
a limiter each see each other as "another integration" in the rate-limit headers, and a job
started late cuts itself to a fraction of the window and climbs back slowly. An
:class:`Account` holds the one limiter of the account instead: one log of sends (so the header
learning's "others" estimate counts every request of the account as its own), one learned
limit, one 429 back-off and one daily budget. Each job gets an :class:`AccountPacer` from it.

Fair shares at once: the account's turns are served one at a time by a :class:`FairGate`,
round-robin across jobs and first come, first served within a job, so two busy jobs get half
the window each whatever their concurrency, and a job started late gets its share from its
first turn (which, when the jobs before it spent the window's budget in a burst, comes as the
window frees: see ``RateLimiter``'s ``burst``).

With ``redis_url`` the account's limiter is a :class:`~bulkops._redis_pacer.RedisPacer`: the
same, shared with every other process of the account through Redis. Without it, no I/O here.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import anyio

from ._checks import check_base_url, check_token_text
from ._config import DEFAULT_BASE_URL, JobConfig, Secret
from ._errors import ConfigError
from ._limiter import LimiterStats, RateLimiter
from ._pacer import Pacer

if TYPE_CHECKING:
    from ._redis_pacer import RedisPacer

__all__ = ["Account", "AccountPacer", "FairGate"]


class FairGate:
    """Lets one holder through at a time: round-robin across members, FIFO within each.

    Invariant: ``_held`` is True from an acquire until the matching release, and a release
    hands the gate straight to the next waiter (``_held`` stays True), so a member that
    releases and acquires again cannot overtake a member already waiting.
    """

    __slots__ = ("_held", "_order", "_queues")

    def __init__(self) -> None:
        self._queues: dict[int, deque[anyio.Event]] = {}
        self._order: deque[int] = deque()  # members with waiters, the next one first
        self._held = False

    async def acquire(self, member: int) -> None:
        if not self._held:
            self._held = True
            return
        event = anyio.Event()
        queue = self._queues.get(member)
        if queue is None:
            queue = self._queues[member] = deque()
            self._order.append(member)
        queue.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # handed the gate while being cancelled: pass it on
            else:
                self._forget(member, event)
            raise

    def release(self) -> None:
        if not self._order:
            self._held = False
            return
        member = self._order.popleft()
        queue = self._queues[member]
        event = queue.popleft()
        if queue:
            self._order.append(member)  # its next waiter goes after the other members'
        else:
            del self._queues[member]
        event.set()

    def _forget(self, member: int, event: anyio.Event) -> None:
        queue = self._queues[member]
        queue.remove(event)
        if not queue:
            del self._queues[member]
            self._order.remove(member)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def __repr__(self) -> str:
        return f"<FairGate held={self._held} waiting={self.waiting} members={len(self._queues)}>"


class Account:
    """One HubSpot account's rate budget, shared by every job started with ``account=``.

    ``rate_limit``, ``interval`` and ``adaptive`` mean what they mean on :class:`JobConfig`,
    for the account as a whole; ``daily_budget`` caps the requests of all its jobs together.
    """

    def __init__(
        self,
        token: Secret | str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        rate_limit: int | None = None,
        interval: float = 10.0,
        adaptive: bool = True,
        daily_budget: int | None = None,
        redis_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.token = token if isinstance(token, Secret) else Secret(token)
        check_token_text(self.token.reveal(), source="token")
        check_base_url(base_url)
        if rate_limit is not None and rate_limit < 0:
            raise ConfigError("rate_limit must be >= 0 (0 = unlimited)")
        if interval <= 0:
            raise ConfigError("interval must be > 0")
        if daily_budget is not None and daily_budget < 1:
            raise ConfigError("daily_budget must be >= 1")
        self.base_url = base_url
        self.rate_limit = rate_limit
        self.daily_budget = daily_budget
        self.redis: RedisPacer | None = None
        self.limiter: Pacer
        if redis_url is not None:
            from ._redis_pacer import RedisPacer

            # The daily budget is counted in Redis then, across every process of the account.
            self.limiter = self.redis = RedisPacer(
                redis_url,
                self.token,
                rate_limit=rate_limit,
                interval=interval,
                adaptive=adaptive,
                daily_budget=daily_budget,
                clock=clock,
                sleep=sleep,
            )
        else:
            self.limiter = RateLimiter(
                rate_limit, interval, adaptive=adaptive, clock=clock, sleep=sleep
            )
        self.requests = 0  # turns taken by all of the account's jobs
        self._gate = FairGate()
        self._clock = clock
        self._members = itertools.count(1)

    def join(self, config: JobConfig) -> AccountPacer:
        """A pacer for one job of this account; refuses a job on another account or host."""
        if config.token != self.token:
            raise ConfigError("the job's token is not the account's: one Account per token")
        if config.base_url.rstrip("/") != self.base_url.rstrip("/"):
            raise ConfigError(
                f"the job's base_url {config.base_url} is not the account's {self.base_url}"
            )
        if config.rate_limit is not None and config.rate_limit != self.rate_limit:
            raise ConfigError(
                "rate_limit is set on the job and differs from the account's: "
                "set it on the Account, which paces all of its jobs"
            )
        return AccountPacer(self, next(self._members))

    def budget_left(self) -> bool:
        if self.redis is not None:
            return True  # counted by the coordinator, across processes
        return self.daily_budget is None or self.requests < self.daily_budget

    async def aclose(self) -> None:
        """Close the connection to the coordinator, if any."""
        if self.redis is not None:
            await self.redis.aclose()

    async def __aenter__(self) -> Account:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def stats(self) -> LimiterStats:
        return self.limiter.stats()

    def __repr__(self) -> str:
        return f"<Account requests={self.requests} {self.limiter!r} {self._gate!r}>"


class AccountPacer:
    """One job's view of its account: turns through the account's fair gate, learning and
    back-off on the account's limiter. Satisfies :class:`~bulkops._pacer.Pacer`."""

    def __init__(self, account: Account, member: int) -> None:
        self.account = account
        self.member = member
        self.requests = 0  # this job's turns
        self._spent: str | None = None

    @property
    def daily_remaining(self) -> int | None:
        return self.account.limiter.daily_remaining

    @property
    def rate_per_second(self) -> float | None:
        return self.account.limiter.rate_per_second

    async def wait_turn(self) -> float:
        account = self.account
        gate = account._gate
        await gate.acquire(self.member)
        try:
            if not account.budget_left():
                self._spent = (
                    f"the account's daily budget of {account.daily_budget} requests (shared by "
                    "its jobs) is spent; resume tomorrow (bulkops resume OUT)"
                )
                return account._clock()
            sent_at = await account.limiter.wait_turn()
            account.requests += 1
            self.requests += 1
            return sent_at
        finally:
            gate.release()

    def budget_spent(self) -> str | None:
        """Why the last turn may not be used (the account's daily budget), else None."""
        redis = self.account.redis
        return self._spent or (redis.budget_spent() if redis is not None else None)

    def observe(
        self, headers: Mapping[str, str], sent_at: float, received_at: float | None = None
    ) -> None:
        self.account.limiter.observe(headers, sent_at, received_at)

    def on_rate_limited(self, policy: str, retry_after: float | None) -> float:
        return self.account.limiter.on_rate_limited(policy, retry_after)

    def stats(self) -> LimiterStats:
        return self.account.limiter.stats()

    @property
    def ignored_headers(self) -> set[str]:
        return self.account.limiter.ignored_headers

    def __repr__(self) -> str:
        return f"<AccountPacer member={self.member} requests={self.requests}>"
