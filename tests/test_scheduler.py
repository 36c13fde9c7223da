"""Batch forming: size, key hygiene and order per key, re-packing retries, the memory bound and
the one termination rule."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from bulkops._models import Batch, Item, Phase
from bulkops._scheduler import Scheduler


def item(row: int, key: str | None = None) -> Item:
    return Item(row, {}, {}, key=key)


async def test_full_batches_then_the_remainder_when_intake_closes() -> None:
    s = Scheduler(batch_size=10, max_outstanding=1000, linger=10.0)
    for n in range(1, 26):
        await s.put(item(n))
    first = await s.next_batch()
    second = await s.next_batch()
    assert first is not None and second is not None
    assert [len(first), len(second)] == [10, 10]
    s.close_intake()
    third = await s.next_batch()
    assert third is not None and len(third) == 5
    for b in (first, second, third):
        for it in b.items:
            s.finish(it)
    assert await s.next_batch() is None
    assert s.over


async def test_linger_sends_a_partial_batch_while_intake_is_open() -> None:
    s = Scheduler(batch_size=100, max_outstanding=1000, linger=0.05)
    await s.put(item(1))
    with anyio.fail_after(1):
        batch = await s.next_batch()
    assert batch is not None and len(batch) == 1


async def test_same_key_never_shares_a_batch_and_keeps_input_order() -> None:
    s = Scheduler(batch_size=10, max_outstanding=1000, linger=0.0)
    for n, key in enumerate(["a", "b", "a", "c", "a"], start=1):
        await s.put(item(n, key))
    s.close_intake()
    seen: list[list[int]] = []
    while True:
        with anyio.fail_after(1):
            batch = await s.next_batch()
        if batch is None:
            break
        keys = [it.key for it in batch.items]
        assert len(keys) == len(set(keys))
        seen.append([it.row for it in batch.items])
        for it in batch.items:
            s.finish(it)
    assert seen == [[1, 2, 4], [3], [5]]


async def test_later_write_to_a_key_waits_for_the_earlier_to_finish() -> None:
    s = Scheduler(batch_size=10, max_outstanding=1000, linger=0.0)
    await s.put(item(1, "k"))
    await s.put(item(2, "k"))
    first = await s.next_batch()
    assert first is not None and [it.row for it in first.items] == [1]
    with anyio.move_on_after(0.1) as scope:
        await s.next_batch()
    assert scope.cancelled_caught  # row 2 is held back while row 1 is in flight
    s.finish(first.items[0])
    second = await s.next_batch()
    assert second is not None and [it.row for it in second.items] == [2]


async def test_retries_from_several_batches_are_packed_together() -> None:
    s = Scheduler(batch_size=10, max_outstanding=1000, linger=10.0)
    s.close_intake()
    s.outstanding = 6  # six records in flight elsewhere
    s.retry([item(1), item(2), item(3)])
    s.retry([item(4), item(5), item(6)])
    batch = await s.next_batch()
    assert batch is not None and sorted(it.row for it in batch.items) == [1, 2, 3, 4, 5, 6]


async def test_retry_delay_is_respected() -> None:
    s = Scheduler(batch_size=10, max_outstanding=1000)
    s.outstanding = 1
    start = anyio.current_time()
    s.retry([item(1)], delay=0.2)
    batch = await s.next_batch()
    assert batch is not None
    assert anyio.current_time() - start >= 0.19


async def test_split_halves_go_out_as_formed() -> None:
    s = Scheduler(batch_size=10, max_outstanding=1000, linger=0.0)
    for n in range(1, 6):
        await s.put(item(n))
    half = Batch([item(100), item(101)], Phase.WRITE, split_depth=1)
    s.retry_batch(half)
    batch = await s.next_batch()
    assert batch is half


async def test_verify_items_form_their_own_batches() -> None:
    s = Scheduler(batch_size=10, max_outstanding=1000, linger=0.0)
    await s.put(item(1))
    s.retry([item(2)], phase=Phase.VERIFY)
    first = await s.next_batch()
    assert first is not None and first.phase is Phase.VERIFY
    assert [it.row for it in first.items] == [2]


async def test_put_blocks_at_the_memory_bound() -> None:
    s = Scheduler(batch_size=2, max_outstanding=4, linger=0.0)
    for n in range(4):
        await s.put(item(n))
    with anyio.move_on_after(0.1) as scope:
        await s.put(item(99))
    assert scope.cancelled_caught
    batch = await s.next_batch()
    assert batch is not None
    s.finish(batch.items[0])
    with anyio.fail_after(1):
        assert await s.put(item(100))


async def test_stop_ends_batches_and_refuses_new_records() -> None:
    s = Scheduler(batch_size=2, max_outstanding=4, linger=0.0)
    await s.put(item(1))
    s.halt()
    assert await s.next_batch() is None
    assert not await s.put(item(2))
    assert s.halted and s.over


@pytest.mark.parametrize("n", [0, 1, 99, 100, 101, 250])
async def test_every_record_comes_out_exactly_once(n: int) -> None:
    s = Scheduler(batch_size=100, max_outstanding=50, linger=0.0)
    out: list[int] = []

    async def producer() -> None:
        for r in range(1, n + 1):
            await s.put(item(r, key=str(r % 7)))
        s.close_intake()

    async def consumer() -> None:
        while (batch := await s.next_batch()) is not None:
            for it in batch.items:
                out.append(it.row)
                s.finish(it)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            tg.start_soon(consumer)
            tg.start_soon(consumer)
    assert sorted(out) == list(range(1, n + 1))


async def _drain(s: Scheduler) -> list[list[int]]:
    """Every batch the scheduler forms, finishing each as it comes (no waits: linger 0)."""
    seen: list[list[int]] = []
    s.close_intake()
    with anyio.fail_after(1):
        while (batch := await s.next_batch()) is not None:
            seen.append([it.row for it in batch.items])
            s.finish_many(batch.items)
    return seen


KEYED = [(n, None if n % 3 else str(n % 4)) for n in range(1, 40)]


async def test_try_put_many_admits_as_try_put_does_one_by_one() -> None:
    one_by_one = Scheduler(batch_size=10, max_outstanding=1000, linger=0.0)
    for n, key in KEYED:
        assert one_by_one.try_put(item(n, key)) is True
    many = Scheduler(batch_size=10, max_outstanding=1000, linger=0.0)
    chunk = [item(n, key) for n, key in KEYED]
    assert many.try_put_many(chunk[:7]) == 7
    assert many.try_put_many(chunk[7:]) == len(KEYED) - 7
    assert many.outstanding == one_by_one.outstanding == len(KEYED)
    assert await _drain(many) == await _drain(one_by_one)


async def test_try_put_many_stops_at_the_memory_bound_and_when_halted() -> None:
    s = Scheduler(batch_size=2, max_outstanding=5, linger=0.0)
    chunk = [item(n) for n in range(1, 9)]
    assert s.try_put_many(chunk) == 5  # the first five; the caller awaits put for the rest
    assert s.try_put_many(chunk[5:]) == 0
    assert s.try_put(chunk[5]) is None
    s.halt()
    assert s.try_put_many(chunk[5:]) is None
    assert s.try_put(chunk[5]) is False


async def test_try_put_many_wakes_a_waiting_worker() -> None:
    s = Scheduler(batch_size=3, max_outstanding=100, linger=10.0)
    got: list[list[int]] = []

    async def worker() -> None:
        batch = await s.next_batch()
        assert batch is not None
        got.append([it.row for it in batch.items])

    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            await anyio.lowlevel.checkpoint()  # the worker waits for a full batch
            assert s.try_put_many([item(n) for n in range(1, 5)]) == 4
    assert got == [[1, 2, 3]]
