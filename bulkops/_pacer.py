"""What the request path needs from a pacer: a turn, learning from answers, slowing on a 429.

:class:`~bulkops._limiter.RateLimiter` is one job's pacer; :class:`~bulkops._account.Account`
hands each of its jobs a pacer that shares one limiter (and, with Redis, one window across
processes). The channel and the workers see only this protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ._limiter import LimiterStats

__all__ = ["Pacer"]


class Pacer(Protocol):
    @property
    def daily_remaining(self) -> int | None: ...

    @property
    def rate_per_second(self) -> float | None: ...

    async def wait_turn(self) -> float: ...

    def observe(
        self, headers: Mapping[str, str], sent_at: float, received_at: float | None = None
    ) -> None: ...

    def on_rate_limited(self, policy: str, retry_after: float | None) -> float: ...

    def stats(self) -> LimiterStats: ...

    @property
    def ignored_headers(self) -> set[str]:
        """Rate-limit headers it ignored because they made no sense (for the report)."""
        ...
