"""Backoff: capped exponential with full jitter, or the server's Retry-After when it gives one.

Full jitter (``sleep = U(0, min(cap, base * 2**attempt))``) spreads retries of many workers
apart; see https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/. Pure
functions: the caller sleeps, so tests can assert the delays.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RetryPolicy", "backoff_delay", "parse_retry_after"]


def backoff_delay(
    attempt: int,
    *,
    base: float = 0.5,
    cap: float = 30.0,
    minimum: float = 0.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = first retry)."""
    if retry_after is not None:
        # The server knows best; a little jitter keeps workers from returning in lockstep.
        return retry_after + (rng or random).uniform(0, 0.1 * max(retry_after, 1.0))
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return max(minimum, (rng or random).uniform(0, ceiling))


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds, from either form HTTP allows; None when absent or silly."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds < 0 or seconds > 24 * 3600:
        return None
    return seconds


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often a job insists. The one owner of backoff.

    ``max_attempts``: a record's own attempts (a 429, an isolation split or a request sent
    during an outage is not one). ``retry_after_cap``: the longest pause a server's
    ``Retry-After`` may impose at once. ``throttled_timeout``: how long a job keeps going while
    every answer is a 429 before it stops, resumable. ``outage_timeout``: how long it waits for
    HubSpot to come back when every recent request failed."""

    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_cap: float = 300.0
    throttled_timeout: float = 600.0
    outage_timeout: float = 300.0
    # Consecutive transient failures (no good answer between them) that mean "HubSpot is down".
    outage_after: int = 5

    def delay(
        self,
        attempt: int,
        *,
        minimum: float = 0.0,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        if retry_after is not None:
            retry_after = min(retry_after, self.retry_after_cap)
        return backoff_delay(
            attempt,
            base=self.backoff_base,
            cap=self.backoff_cap,
            minimum=minimum,
            retry_after=retry_after,
            rng=rng,
        )
