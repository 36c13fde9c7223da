"""Backoff as pure functions: the delays asked for, with a seeded random source."""

from __future__ import annotations

import email.utils
import random
import time

import pytest

from bulkops._retry import RetryPolicy, backoff_delay, parse_retry_after


def test_full_jitter_stays_under_the_capped_exponential() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, base=0.5, cap=30.0, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling  # jitter spreads over the whole range


def test_a_minimum_and_a_retry_after_win() -> None:
    rng = random.Random(1)
    assert backoff_delay(1, minimum=2.0, rng=rng) >= 2.0
    delay = backoff_delay(1, retry_after=7.0, rng=rng)
    assert 7.0 <= delay <= 7.7  # the server's word, with a little jitter


def test_the_policy_caps_retry_after() -> None:
    policy = RetryPolicy(retry_after_cap=60.0)
    assert policy.delay(1, retry_after=3600.0, rng=random.Random(2)) <= 66.0
    assert policy.delay(1, retry_after=5.0, rng=random.Random(2)) <= 5.5


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-1", None), ("999999", None), ("soon", None), ("", None)],
)
def test_retry_after_seconds(value: str, expected: float | None) -> None:
    assert parse_retry_after({"Retry-After": value} if value else {}) == expected


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = parse_retry_after({"Retry-After": when})
    assert seconds is not None and 25 <= seconds <= 31
