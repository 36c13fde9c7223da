"""The pacer: even spacing, the rolling-window guarantee, learning from headers, 429 pauses."""

from __future__ import annotations

import itertools
import time

import anyio
import pytest
from aiolimiter import AsyncLimiter

from bulkops._limiter import DEFAULT_BURST, MIN_BURST_SPACING, RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def test_burst_one_spaces_requests_evenly_from_the_first_one() -> None:
    clock = FakeTime()
    limiter = RateLimiter(10, 1.0, margin=0.0, burst=1.0, clock=clock, sleep=clock.sleep)
    sent = [await limiter.wait_turn() for _ in range(30)]
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(abs(g - 0.1) < 1e-9 for g in gaps)
    assert max_in_window(sent, 1.0) == 10


async def test_margin_widens_the_window() -> None:
    clock = FakeTime()
    limiter = RateLimiter(190, 10.0, burst=1.0, clock=clock, sleep=clock.sleep)
    sent = [await limiter.wait_turn() for _ in range(400)]
    assert max_in_window(sent, 10.1) <= 190
    rate = (len(sent) - 1) / (sent[-1] - sent[0])
    assert rate == pytest.approx(190 / 10.1, rel=1e-6)  # 99% of 19/s


async def test_late_wakeups_do_not_drift_the_pace() -> None:
    """Each sleep overshoots by 3 ms (a busy event loop); the schedule must not slip."""
    clock = FakeTime()

    async def late_sleep(seconds: float) -> None:
        clock.now += seconds + 0.003

    limiter = RateLimiter(190, 10.0, burst=1.0, clock=clock, sleep=late_sleep)
    sent = [await limiter.wait_turn() for _ in range(600)]
    rate = (len(sent) - 1) / (sent[-1] - sent[0])
    assert rate >= 0.995 * 190 / 10.1
    assert max_in_window(sent, 10.1) <= 190


async def test_timer_lateness_does_not_drift_a_fast_pace() -> None:
    """At 3,000 per 10 s the spacing is 3.4 ms, and the loop's timers wake up to a millisecond
    late (libuv counts in whole ms): more than a quarter spacing, yet the schedule must hold."""
    clock = FakeTime()

    async def late_sleep(seconds: float) -> None:
        clock.now += seconds + 0.001

    limiter = RateLimiter(3_000, 10.0, margin=0.0, burst=1.0, clock=clock, sleep=late_sleep)
    sent = [await limiter.wait_turn() for _ in range(9_000)]
    rate = (len(sent) - 1) / (sent[-1] - sent[0])
    assert rate >= 0.98 * 3_000 / 10.0
    assert max_in_window(sent, 10.0) <= 3_000


async def test_a_windows_budget_goes_at_burst_times_the_even_pace() -> None:
    """The default: the first window's budget goes in a quarter of the window, never more than
    the limit in any window; each later window frees its slots in the same pattern."""
    clock = FakeTime()
    limiter = RateLimiter(190, 10.0, clock=clock, sleep=clock.sleep)
    assert limiter.burst == DEFAULT_BURST == 4.0
    sent = [await limiter.wait_turn() for _ in range(401)]
    gaps = [b - a for a, b in itertools.pairwise(sent[:190])]
    assert all(g == pytest.approx(10.1 / 190 / 4) for g in gaps)
    assert max_in_window(sent, 10.1) == 190
    # Request 191 waits for the first to leave the window, and so on: the 401st goes two
    # windows after the 21st, where even spacing would have sent it 400 spacings after the
    # first (21.26 s).
    assert sent[190] == pytest.approx(sent[0] + 10.1)
    assert sent[400] - sent[0] == pytest.approx(20.2 + 20 * 10.1 / 760)
    assert limiter.rate_per_second == pytest.approx(4 * 190 / 10.1)


async def test_a_burst_learned_from_the_first_answer_never_exceeds_the_window() -> None:
    """Starting at 100 per 10 s, the first answer says 190: the window takes 190 at once from
    there, counting what went before, and never more in any window."""
    clock = FakeTime()
    limiter = RateLimiter(None, 10.0, clock=clock, sleep=clock.sleep)
    first = await limiter.wait_turn()
    sent = [first] + [await limiter.wait_turn() for _ in range(10)]
    clock.now = first + 0.2  # the first answer
    limiter.observe(
        {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "189"}, first
    )
    sent += [await limiter.wait_turn() for _ in range(500)]
    assert max_in_window(sent, 10.1) == 190
    assert limiter.stats().ceiling == 190
    assert sent[189] - sent[0] < 10.1 / 4 + 0.2  # the budget went at once, not over 10 s


async def test_a_neighbour_is_seen_beside_a_burst_in_flight_and_turns_the_burst_off() -> None:
    """A reading taken while a dozen of our burst's requests are in flight: those sent after
    it are not taken for counted (only up to the jitter margin after it), so the 12 requests
    of another integration show; the pace is then even, so the neighbour keeps its share,
    until the window has been clean for long enough."""
    clock = FakeTime()
    limiter = RateLimiter(190, 10.0, clock=clock, sleep=clock.sleep)
    sent = [await limiter.wait_turn() for _ in range(16)]  # 13.3 ms apart: 0.2 s
    assert limiter.pace_burst == 4.0
    # The first one's answer, 0.2 s later: the server had counted it and 12 of the other's.
    headers = {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "177"}
    limiter.observe(headers, sent[0], sent[-1])
    assert limiter.stats().others == pytest.approx(13 - 8)  # 8 of ours within 0.1 s of it
    assert limiter.pace_burst == 1.0
    assert limiter.rate_per_second == pytest.approx(limiter.stats().limit / 10.1)
    a, b = await limiter.wait_turn(), await limiter.wait_turn()
    assert b - a == pytest.approx(10.1 / limiter.stats().limit)  # even spacing
    clock.now += 10.1
    for _ in range(30):  # clean readings: the estimate fades, the burst comes back
        at = await limiter.wait_turn()
        mine = limiter.in_window(at)
        left = str(190 - mine)
        limiter.observe(
            {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": left}, at
        )
    assert limiter.stats().others < 0.5
    assert limiter.pace_burst == 4.0


async def test_noise_of_one_request_keeps_the_burst() -> None:
    clock = FakeTime()
    limiter = RateLimiter(190, 10.0, clock=clock, sleep=clock.sleep)
    at = await limiter.wait_turn()
    limiter.observe({"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": "188"}, at)
    assert limiter.pace_burst == 4.0 and limiter.stats().others == 0


async def test_a_burst_is_never_closer_than_the_least_spacing() -> None:
    """40 per 1 s would burst 6.6 ms apart: held to 12 ms, a pace the loop keeps. Where even
    spacing itself is closer (1,000 per 1 s), it stays even, never slower."""
    clock = FakeTime()
    limiter = RateLimiter(40, 1.0, clock=clock, sleep=clock.sleep)
    sent = [await limiter.wait_turn() for _ in range(40)]
    assert all(b - a == pytest.approx(MIN_BURST_SPACING) for a, b in itertools.pairwise(sent))
    assert max_in_window([*sent, await limiter.wait_turn()], 1.05) == 40
    fast = RateLimiter(1000, 1.0, clock=clock, sleep=clock.sleep)
    assert fast.spacing == pytest.approx(1.05 / 1000)


async def test_burst_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(10, burst=0.5)


async def test_own_requests_sent_a_latency_ago_are_not_mistaken_for_others() -> None:
    clock = FakeTime()
    limiter = RateLimiter(190, 10.0, clock=clock, sleep=clock.sleep)
    sent = [await limiter.wait_turn() for _ in range(300)]
    # The answer to a request sent 0.25 s ago: the server counted every one of our requests
    # in the 10 s before it arrived, and nobody else's.
    probe = sent[-6]
    ours = sum(1 for t in sent if probe - 10.0 < t <= probe)
    headers = {"X-HubSpot-RateLimit-Max": "190", "X-HubSpot-RateLimit-Remaining": str(190 - ours)}
    limiter.observe(headers, probe)
    assert limiter.stats().others == 0
    assert limiter.cap == 190


async def test_never_exceeds_window_when_limit_drops_mid_run() -> None:
    clock = FakeTime()
    limiter = RateLimiter(20, 2.0, margin=0.0, clock=clock, sleep=clock.sleep)
    sent = [await limiter.wait_turn() for _ in range(25)]
    # The server says the limit is 5 per 2 s.
    limiter.observe(
        {"X-HubSpot-RateLimit-Max": "5", "X-HubSpot-RateLimit-Interval-Milliseconds": "2000"},
        sent[-1],
    )
    after = [await limiter.wait_turn() for _ in range(20)]
    assert max_in_window(after, 2.0) <= 5
    assert limiter.stats().ceiling == 5


async def test_learns_others_usage_and_leaves_it_to_them() -> None:
    clock = FakeTime()
    limiter = RateLimiter(100, 10.0, margin=0.0, clock=clock, sleep=clock.sleep)
    at = await limiter.wait_turn()
    # One request of ours in the window, yet 31 used: others take 30.
    limiter.observe({"X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "69"}, at)
    assert limiter.stats().others == pytest.approx(30)
    assert limiter.cap == pytest.approx(100 - 30 - 2)
    assert limiter.stats().limit <= limiter.cap


async def test_rolling_429_pauses_and_cuts_the_rate() -> None:
    clock = FakeTime()
    limiter = RateLimiter(10, 1.0, margin=0.0, clock=clock, sleep=clock.sleep)
    await limiter.wait_turn()
    pause = limiter.on_rate_limited("TEN_SECONDLY_ROLLING", None)
    before = clock.now
    nxt = await limiter.wait_turn()
    assert nxt >= before + pause
    assert limiter.stats().limit == pytest.approx(7.0)


async def test_retry_after_is_honoured() -> None:
    clock = FakeTime()
    limiter = RateLimiter(10, 1.0, clock=clock, sleep=clock.sleep)
    await limiter.wait_turn()
    limiter.on_rate_limited("SECONDLY", 3.0)
    before = clock.now
    assert await limiter.wait_turn() >= before + 3.0


async def test_unlimited_never_waits() -> None:
    clock = FakeTime()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        await limiter.wait_turn()
    assert clock.slept == []
    assert limiter.rate_per_second is None


async def test_daily_headers_are_recorded() -> None:
    limiter = RateLimiter(10)
    limiter.observe(
        {"X-HubSpot-RateLimit-Daily": "250000", "X-HubSpot-RateLimit-Daily-Remaining": "1234"}, 0.0
    )
    assert limiter.daily_remaining == 1234
    assert limiter.daily_limit == 250000


async def test_aiolimiter_bursts_past_a_rolling_window_where_ours_does_not() -> None:
    """Why bulkops does not pace with aiolimiter: its leaky bucket lets a burst of ``limit``
    through and then keeps draining, so one rolling window sees nearly twice the limit."""

    async def drive(acquire) -> list[float]:
        times: list[float] = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and len(times) < 40:
            granted = await acquire()
            # Ours returns the time it counted the send at; reading the clock after the
            # await instead would add the event loop's wake-up lateness (large under
            # coverage) to some sends and not others, and squeeze 11 into a window.
            times.append(granted if granted is not None else time.monotonic())
        return times

    theirs = AsyncLimiter(10, 1.0)
    ours = RateLimiter(10, 1.0, margin=0.0)
    async with anyio.create_task_group() as tg:
        results: dict[str, list[float]] = {}

        async def run(name: str, acquire) -> None:
            results[name] = await drive(acquire)

        tg.start_soon(run, "aiolimiter", theirs.acquire)
        tg.start_soon(run, "bulkops", ours.wait_turn)
    assert max_in_window(results["aiolimiter"], 1.0) > 15
    assert max_in_window(results["bulkops"], 1.0) <= 10


async def test_unlimited_learns_the_servers_limit_from_a_429() -> None:
    clock = FakeTime()
    limiter = RateLimiter(0, 1.0, margin=0.0, clock=clock, sleep=clock.sleep)
    at = await limiter.wait_turn()
    limiter.observe({"X-HubSpot-RateLimit-Max": "10", "X-HubSpot-RateLimit-Remaining": "0"}, at)
    limiter.on_rate_limited("TEN_SECONDLY_ROLLING", None)
    sent = [await limiter.wait_turn() for _ in range(30)]
    assert max_in_window(sent, 1.0) <= 10
    assert limiter.rate_per_second is not None
