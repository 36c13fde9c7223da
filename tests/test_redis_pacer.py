"""One account's budget across processes through a REAL redis-server (no Redis mock):
one exact window, a shared 429 pause, one daily budget, keys that never hold the token, and
the fallback when Redis goes away (``bulkops._redis_pacer``)."""

from __future__ import annotations

import itertools
import logging

import anyio
import pytest

from bulkops import ConfigError, JobConfig, Operation, Secret
from bulkops._limiter import RateLimiter
from bulkops._redis_pacer import RedisPacer, account_key

from .redisserver import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, used by name

TOKEN = Secret("pat-test-redis-test-token-1234")
LIMIT, INTERVAL = 20, 1.0


def most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def take(pacers: list[RedisPacer], turns: int, workers: int = 3) -> list[list[float]]:
    """``turns`` turns per pacer, ``workers`` tasks each; the send times per pacer."""
    got: list[list[float]] = [[] for _ in pacers]

    async def worker(n: int, count: int) -> None:
        for _ in range(count):
            got[n].append(await pacers[n].wait_turn())

    async with anyio.create_task_group() as tg:
        for n in range(len(pacers)):
            for w in range(workers):
                tg.start_soon(worker, n, turns // workers + (w < turns % workers))
    return got


def pacer(server: RedisServer, **kw: object) -> RedisPacer:
    kw.setdefault("rate_limit", LIMIT)
    kw.setdefault("interval", INTERVAL)
    return RedisPacer(server.url, TOKEN, **kw)  # type: ignore[arg-type]


async def close(*pacers: RedisPacer) -> None:
    for p in pacers:
        await p.aclose()


async def test_two_processes_share_one_exact_window(redis_server: RedisServer) -> None:
    a, b = pacer(redis_server), pacer(redis_server)
    try:
        got = await take([a, b], 30)
    finally:
        await close(a, b)
    both = got[0] + got[1]
    assert len(both) == 60
    # Never more than the limit in any window, counted over both processes together...
    assert most_in_window(both, INTERVAL) <= LIMIT
    # ...which they filled together (two at the ceiling alone would have made 40).
    assert most_in_window(both, INTERVAL + 0.1) >= LIMIT - 2
    assert a.processes == 2 and b.processes == 2


@pytest.mark.parametrize("burst", [1.0, 4.0])
async def test_the_accounts_spacing_is_the_limiters_burst_pace(
    redis_server: RedisServer, burst: float
) -> None:
    """The script's GCRA spaces the account's turns ``window / (limit x burst)`` apart: the
    window's budget may go at ``burst`` times the even pace (read back from the key)."""
    import redis.asyncio

    a = pacer(redis_server)
    a.local = RateLimiter(LIMIT, INTERVAL, burst=burst)
    try:
        at = (await take([a], 1, workers=1))[0][0]
    finally:
        await close(a)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        raw = await client.get(account_key(TOKEN) + "next")
        assert raw is not None
        next_ms = float(raw)
    finally:
        await client.aclose()
    window = a.local.window + a._skew
    assert next_ms / 1000 + a._offset - at == pytest.approx(window / (LIMIT * burst), abs=1e-3)


async def test_processes_are_served_first_come_first_served(redis_server: RedisServer) -> None:
    """One caller per process (the account's gate serialises a process's turns): a free turn
    goes to the process that waited longest, not to whoever asks first after it frees."""
    pacers = [pacer(redis_server) for _ in range(3)]
    counts = [0, 0, 0]
    total = 45

    async def one(n: int) -> None:
        while sum(counts) < total:
            await pacers[n].wait_turn()
            counts[n] += 1

    try:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for n in range(3):
                    tg.start_soon(one, n)
    finally:
        await close(*pacers)
    assert all(abs(c - total / 3) <= 2 for c in counts), counts


async def test_a_late_process_paces_by_what_the_others_learned(redis_server: RedisServer) -> None:
    """A new process starts at HubSpot's lowest tier (100 per window) until its first answer;
    where the account already sends more than that per window, the guess must not hold it back
    until the others have drained the window for it."""
    early, late = pacer(redis_server, rate_limit=None), pacer(redis_server, rate_limit=None)
    headers = {
        "X-HubSpot-RateLimit-Max": "150",
        "X-HubSpot-RateLimit-Remaining": "149",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "1000",
    }
    early.observe(headers, 0.0)
    assert early.stats().limit == 150
    try:
        with anyio.fail_after(10):
            await take([early], 140, workers=1)  # about 140 sends in the last window
            started = anyio.current_time()
            await late.wait_turn()
            waited = anyio.current_time() - started
    finally:
        await close(early, late)
    assert waited < 0.1, waited  # one spacing at 150 per s, not the ~0.3 s a drain takes


async def test_the_others_sends_count_as_the_accounts_own(redis_server: RedisServer) -> None:
    a, b = pacer(redis_server), pacer(redis_server)
    try:
        await take([b], 8, workers=1)
        sent_at = (await take([a], 1, workers=1))[0][0]
    finally:
        await close(a, b)
    # HubSpot counted 9 of the account's requests: 8 from process b, 1 from a.
    a.observe({"X-HubSpot-RateLimit-Max": "20", "X-HubSpot-RateLimit-Remaining": "11"}, sent_at)
    assert a.stats().others == 0


async def test_a_429_seen_by_one_process_pauses_the_other(redis_server: RedisServer) -> None:
    a, b = pacer(redis_server), pacer(redis_server)
    b_times: list[float] = []
    after_429: list[float] = []
    pause = 0.6

    a_done = anyio.Event()

    async def run_b() -> None:
        while not a_done.is_set():  # bounded by a's turns (and the fail_after below)
            b_times.append(await b.wait_turn())

    async def run_a() -> None:
        for _ in range(4):
            await a.wait_turn()
        t429 = anyio.current_time()
        a.on_rate_limited("TEN_SECONDLY_ROLLING", pause)
        await a.wait_turn()
        after_429.append(anyio.current_time() - t429)
        for _ in range(2):
            await a.wait_turn()
        a_done.set()

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run_b)
                tg.start_soon(run_a)
    finally:
        await close(a, b)
    gaps = [y - x for x, y in itertools.pairwise(b_times)]
    # b saw no 429 and was held all the same, for about a's pause...
    assert max(gaps) >= pause - 0.15, gaps
    # ...which a waited out once, not once locally and again in Redis.
    assert pause - 0.05 <= after_429[0] <= pause + 0.3, after_429


async def test_the_daily_budget_is_counted_across_processes(redis_server: RedisServer) -> None:
    a, b = pacer(redis_server, daily_budget=5), pacer(redis_server, daily_budget=5)
    try:
        await take([a, b], 3, workers=1)
    finally:
        await close(a, b)
    spent = [p.budget_spent() for p in (a, b)]
    assert any(spent) and "daily budget of 5" in next(s for s in spent if s)


async def test_the_keys_hold_a_hash_of_the_token_never_the_token(
    redis_server: RedisServer,
) -> None:
    import redis.asyncio

    a = pacer(redis_server)
    try:
        await take([a], 2, workers=1)
    finally:
        await close(a)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        keys = [k.decode() async for k in client.scan_iter("*")]
        values = [await client.dump(k) for k in keys]
    finally:
        await client.aclose()
    assert keys and all(k.startswith(account_key(TOKEN)) for k in keys)
    secret = TOKEN.reveal()
    assert all(secret not in k for k in keys)
    assert all(secret.encode() not in (v or b"") for v in values)


async def test_losing_redis_falls_back_to_a_share_with_one_warning_and_rejoins(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pacer(redis_server), pacer(redis_server)
    try:
        await take([a, b], 4, workers=1)
        assert a.processes == 2
        redis_server.kill()
        with caplog.at_level(logging.WARNING, logger="bulkops.coordinator"):
            solo = (await take([a], 12))[0]
        assert not a.connected
        warned = [r for r in caplog.records if "not answering" in r.getMessage()]
        assert len(warned) == 1 and "1/2" in warned[0].getMessage()
        assert a.stats().limit <= LIMIT / 2  # a conservative share of the window
        assert most_in_window(solo, INTERVAL) <= LIMIT / 2
        redis_server.start()  # back, empty, on the same port
        a._next_try = 0.0  # do not wait out the retry interval
        with caplog.at_level(logging.WARNING, logger="bulkops.coordinator"):
            await take([a], 1, workers=1)
        assert a.connected
        assert any("is back" in r.getMessage() for r in caplog.records)
    finally:
        await close(a, b)


def test_redis_url_is_checked_and_never_journaled() -> None:
    from bulkops._config import config_to_meta

    base: dict[str, object] = {"operation": Operation.CREATE, "token": TOKEN}
    with pytest.raises(ConfigError, match="redis_url"):
        JobConfig(redis_url="http://x", **base)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rate_limit 0"):
        JobConfig(redis_url="redis://x", rate_limit=0, **base)  # type: ignore[arg-type]
    config = JobConfig(redis_url="redis://:hunter2@127.0.0.1:1/0", **base)  # type: ignore[arg-type]
    assert "hunter2" not in repr(config_to_meta(config))


def test_the_cli_names_a_bad_redis_url_without_a_traceback(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bulkops._cli import main

    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN.reveal())
    source = tmp_path / "in.csv"
    source.write_text("subject\na\n", encoding="utf-8")
    args = ["run", "create", "-i", str(source), "--out", str(tmp_path / "o")]
    assert main([*args, "--redis-url", "http://:s3cr3tpw@x"]) == 2
    err = capsys.readouterr().err
    assert "--redis-url must start with redis://" in err and "Traceback" not in err
    assert "s3cr3tpw" not in err
