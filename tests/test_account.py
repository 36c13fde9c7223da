"""One account, many jobs in one process: one limiter, fair turns, one learned "others"
estimate and one daily budget (``bulkops._account``)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from bulkops import Account, ConfigError, JobConfig, Operation, Secret, run_job
from bulkops._account import FairGate
from bulkops._engine import Job
from bulkops._stats import StopReason
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

from .accounting import assert_accounted, assert_report_matches_files
from .mockhub import MockHub, tickets


class FakeTime:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


async def test_the_gate_serves_members_in_turn_and_each_member_in_order() -> None:
    gate = FairGate()
    order: list[str] = []
    await gate.acquire(1)  # held, so everyone below queues

    async def waiter(member: int, name: str) -> None:
        await gate.acquire(member)
        order.append(name)
        gate.release()

    async with anyio.create_task_group() as tg:
        for name in ("a1", "a2", "a3", "a4"):
            tg.start_soon(waiter, 1, name)
        for name in ("b1", "b2"):
            tg.start_soon(waiter, 2, name)
        await anyio.wait_all_tasks_blocked()
        assert gate.waiting == 6
        gate.release()
    assert order == ["a1", "b1", "a2", "b2", "a3", "a4"]
    assert gate.waiting == 0 and "held=False" in repr(gate)


async def test_a_cancelled_waiter_leaves_the_queue_and_a_cancelled_holder_passes_on() -> None:
    gate = FairGate()
    order: list[str] = []
    await gate.acquire(1)

    async def waiter(member: int, name: str) -> None:
        await gate.acquire(member)
        order.append(name)
        gate.release()

    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as doomed:
            doomed.start_soon(waiter, 2, "gone")
            await anyio.wait_all_tasks_blocked()
            doomed.cancel_scope.cancel()
        assert gate.waiting == 0  # the cancelled waiter left the queue
        async with anyio.create_task_group() as doomed:
            doomed.start_soon(waiter, 2, "handed-then-cancelled")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(waiter, 3, "c1")
            await anyio.wait_all_tasks_blocked()
            gate.release()  # hands the gate to the first waiter...
            doomed.cancel_scope.cancel()  # ...which is cancelled before it can run
        await anyio.wait_all_tasks_blocked()
    # Woken before the cancel arrived, it used its turn (anyio delivers the cancel at its next
    # checkpoint); either way the gate went on to the next member and ended free.
    assert order[-1] == "c1" and "gone" not in order
    assert gate.waiting == 0 and "held=False" in repr(gate)


async def test_a_late_job_gets_its_fair_share_from_its_first_turn() -> None:
    t = FakeTime()
    account = Account(
        Secret("tok"), "http://hub.test", rate_limit=10, interval=1.0, clock=t.clock, sleep=t.sleep
    )
    config = JobConfig(operation=Operation.CREATE, token=Secret("tok"), base_url="http://hub.test")
    first, late = account.join(config), account.join(config)
    turns: list[tuple[str, float]] = []
    late_started = anyio.Event()

    async def busy(pacer: Any, name: str, n: int) -> None:
        for _ in range(n):
            turns.append((name, await pacer.wait_turn()))
            if name == "first" and len(turns) == 20:
                late_started.set()

    async def start_late() -> None:
        await late_started.wait()
        async with anyio.create_task_group() as tg:
            for _ in range(4):  # fewer workers than the first job: the share is per job
                tg.start_soon(busy, late, "late", 10)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(busy, first, "first", 10)
        tg.start_soon(start_late)
    assert len(turns) == 120
    joined = next(i for i, (name, _) in enumerate(turns) if name == "late")
    # From the late job's first turn on, the two alternate while both are busy.
    both = [name for name, _ in turns[joined : joined + 60]]
    assert both.count("late") == 30 and both.count("first") == 30, both
    assert all(a != b for a, b in itertools.pairwise(both)), both
    # And the account as a whole never goes over its window.
    times = [at for _, at in turns]
    assert all(times[i + 10] - times[i] >= 1.0 for i in range(len(times) - 10))
    assert account.requests == 120 and first.requests + late.requests == 120


def test_the_others_estimate_counts_every_job_of_the_account_as_its_own() -> None:
    t = FakeTime()
    account = Account(Secret("tok"), "http://hub.test", clock=t.clock, sleep=t.sleep)
    config = JobConfig(operation=Operation.CREATE, token=Secret("tok"), base_url="http://hub.test")
    a, b = account.join(config), account.join(config)

    async def take() -> float:
        for _ in range(10):
            await b.wait_turn()
        return await a.wait_turn()

    sent_at = anyio.run(take)
    # HubSpot saw 11 requests of this account: 10 of job b and this one of job a.
    a.observe({"X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "89"}, sent_at)
    assert a.stats().others == 0 and b.stats().ceiling == 100


def test_a_job_on_another_token_host_or_rate_limit_is_refused() -> None:
    account = Account(Secret("tok"), "http://hub.test")
    base: dict[str, Any] = {"operation": Operation.CREATE, "base_url": "http://hub.test"}
    with pytest.raises(ConfigError, match="token"):
        account.join(JobConfig(token=Secret("other"), **base))
    with pytest.raises(ConfigError, match="base_url"):
        account.join(
            JobConfig(operation=Operation.CREATE, token=Secret("tok"), base_url="http://x.test")
        )
    with pytest.raises(ConfigError, match="rate_limit"):
        account.join(JobConfig(token=Secret("tok"), rate_limit=50, **base))
    with pytest.raises(ConfigError, match="daily_budget"):
        Account(Secret("tok"), daily_budget=0)
    assert "tok" not in repr(account)


async def test_the_daily_budget_is_the_accounts_not_each_jobs(tmp_path: Path) -> None:
    account = Account(Secret("pat-test-x"), "http://hub.test", rate_limit=0, daily_budget=5)
    hubs = [MockHub(), MockHub()]
    reports = []
    for n, hub in enumerate(hubs):
        config = JobConfig(
            operation=Operation.CREATE,
            token=Secret("pat-test-x"),
            base_url="http://hub.test",
            out_dir=tmp_path / str(n),
            batch_size=10,
            rate_limit=0,
        )
        reports.append(
            await run_job(config, tickets(100), transport=hub.transport, account=account)
        )
    assert account.requests == 5
    assert sum(hub.n for hub in hubs) == 5
    for n, report in enumerate(reports):
        assert report.stop is not None and report.stop.reason is StopReason.DAILY_BUDGET
        assert "account's daily budget of 5" in report.stop.message
        assert_report_matches_files(tmp_path / str(n))


# -- end to end, against the HTTP fake ---------------------------------------------------------

LIMIT, INTERVAL_MS = 40, 1000
ROWS, BATCH = 600, 10  # 60 write requests per job


def rows(prefix: str) -> list[dict[str, str]]:
    fixed = {"hs_pipeline": "0", "hs_pipeline_stage": "1"}
    return [
        {"subject": f"s{n}", "external_id": f"{prefix}{n}", **fixed} for n in range(1, ROWS + 1)
    ]


async def gated(items: list[dict[str, str]], after: int, event: anyio.Event) -> AsyncIterator[Any]:
    """Yields ``items``, setting ``event`` once ``after`` of them are out: starts a late job."""
    for n, item in enumerate(items, 1):
        if n == after:
            event.set()
        yield item


async def test_two_jobs_started_apart_share_the_window_without_seeing_each_other(
    tmp_path: Path,
) -> None:
    fake_config = FakeConfig(rate_limit=LIMIT, interval_ms=INTERVAL_MS, latency=(0.02, 0.06))
    async with FakeHubSpot(fake_config) as fake:
        account = Account(Secret(DEFAULT_FAKE_TOKEN), fake.url)

        def config(name: str) -> JobConfig:
            return JobConfig(
                operation=Operation.CREATE,
                token=Secret(DEFAULT_FAKE_TOKEN),
                base_url=fake.url,
                out_dir=tmp_path / name,
                batch_size=BATCH,
                id_property="external_id",
            )

        first_going = anyio.Event()
        first = Job(config("first"), gated(rows("f"), 300, first_going), account=account)
        late = Job(config("late"), rows("l"), account=account)
        reports: dict[str, Any] = {}

        async def run_late() -> None:
            await first_going.wait()
            reports["late"] = await late.run()

        async def run_first() -> None:
            reports["first"] = await first.run()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_first)
            tg.start_soon(run_late)
        for name in ("first", "late"):
            assert_accounted(tmp_path / name, ROWS)
            rl = reports[name].to_json()["rate_limit"]
            assert rl["others_estimate"] == 0, rl  # neither took the other for a neighbour
        assert fake.max_requests_in_window() <= LIMIT
        assert fake.stats.by_status.get(429, 0) == 0
        assert account.stats().ceiling == LIMIT
