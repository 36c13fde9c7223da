"""The fake's counters as JSON, for tests in another process (``GET /__fake__/stats``).

A test that starts ``bulkops fake-server`` (or a benchmark) cannot read ``FakeHubSpot.stats``;
this route gives the same counters. It is answered before the fake's own bookkeeping: not
numbered, not logged, not scripted, not rate-limited, so reading the counters never changes
them. Tokens never appear: the per-token arrival times are summed, not listed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bulkops.testing._fake_config import FakeStats

__all__ = ["STATS_PATH", "stats_json"]

STATS_PATH = "/__fake__/stats"


def stats_json(
    stats: FakeStats, *, requests_seen: int, counts_duplicates: bool = True
) -> dict[str, Any]:
    """``stats`` as plain JSON; ``requests_seen`` is the request log's count (every request
    that reached the fake, scripted and dropped ones too). ``counts_duplicates=False`` (a fake
    with ``store_records=False``, which keeps no per-value counts): duplicate_creates is None."""
    duplicates: int | None = None
    if counts_duplicates:
        duplicates = sum(1 for n in stats.creates_by_unique.values() if n > 1)
    return {
        "requests": stats.requests,
        "requests_seen": requests_seen,
        "by_status": _keys_as_text(stats.by_status),
        "by_endpoint": dict(stats.by_endpoint),
        "paths": dict(stats.paths),
        "rate_limited": dict(stats.rate_limited),
        "faults": dict(stats.faults),
        "records_created": dict(stats.records_created),
        # Requests counted against a rate limit, over all tokens.
        "counted_requests": sum(len(times) for times in stats.arrivals.values()),
        # Unique values created more than once: what "nothing is created twice" checks.
        "duplicate_creates": duplicates,
    }


def _keys_as_text(counts: Counter[int]) -> dict[str, int]:
    return {str(key): value for key, value in sorted(counts.items())}
