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

__all__ = ["backoff_delay", "parse_retry_after"]


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
