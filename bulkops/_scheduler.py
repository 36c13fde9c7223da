"""Forms batches from fresh and returning records, and knows when the job is done.

Invariants it protects:

* At most ``max_outstanding`` records are inside the engine at once (read but not finished);
  ``put`` blocks beyond that, so a slow API slows the reader and memory stays flat.
* Two records with the same key (record id or unique value) are never in flight together: the
  later one waits until the earlier one has *finished*, so no batch holds a duplicate id (which
  HubSpot rejects whole) and writes to one record land in input order.
* Records that come back for a retry are packed into full batches again (requests, not records,
  are what the rate limit counts). Halves of a batch being split to isolate a bad record are the
  exception: they go out exactly as formed.
* The job is done when the intake is closed and every record has finished, or halted (a stop:
  no batch leaves any more). Workers learn it from ``next_batch`` returning None, the engine
  from ``wait_over``; that is the only termination rule.
* A record's phase is given to it, never carried on it: ``put(item, phase=Phase.VERIFY)`` (a
  resumed create that was in flight) and ``retry(items, phase=...)`` queue read-backs.

Single event loop, no awaits inside the bookkeeping: no locks are needed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import operator
from collections import deque
from collections.abc import Callable, Sequence

import anyio

from ._models import Batch, Item, Phase

_key_of = operator.attrgetter("key")  # C-level walks of a chunk: no Python per record

__all__ = ["Scheduler"]


class Scheduler:
    def __init__(
        self,
        *,
        batch_size: int,
        max_outstanding: int,
        verify_batch_size: int = 100,
        linger: float = 0.02,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.verify_batch_size = verify_batch_size
        self.max_outstanding = max_outstanding
        self.linger = linger
        # The event loop's own clock by default: anyio.current_time finds the backend anew on
        # every call, and the scheduler reads the clock for every row.
        self._clock = clock or _loop_time
        self._ready: deque[Item] = deque()
        self._ready_since = math.inf
        self._waiting: dict[str, deque[tuple[Item, Phase]]] = {}
        self._busy: set[str] = set()
        self._seq = itertools.count()
        self._retry: list[tuple[float, int, Item]] = []
        self._verify: list[tuple[float, int, Item]] = []
        self._preformed: list[tuple[float, int, Batch]] = []
        self.outstanding = 0
        self.intake_closed = False
        self.halted = False
        self._idle: deque[anyio.Event] = deque()  # workers waiting in next_batch, in order
        self._space = anyio.Event()
        self._intake_waiting = False
        self._low_water = max(0, max_outstanding - batch_size)
        self._over = anyio.Event()

    # -- intake ------------------------------------------------------------------------------
    async def put(self, item: Item, *, phase: Phase = Phase.WRITE) -> bool:
        """Admit one record; waits while the engine is full. False once the job is halted."""
        while self.outstanding >= self.max_outstanding and not self.halted:
            self._intake_waiting = True
            space = self._space
            await space.wait()
        admitted = self.try_put(item, phase=phase)
        assert admitted is not None  # there is room, or the job is halted
        return admitted

    def try_put(self, item: Item, *, phase: Phase = Phase.WRITE) -> bool | None:
        """:meth:`put` without waiting: None when the engine is full (then ``await put``)."""
        if self.halted:
            return False
        if self.outstanding >= self.max_outstanding:
            return None
        self.outstanding += 1
        if not self._waits_for_key(item, phase):
            self._admit(item, phase)
        return True

    def _waits_for_key(self, item: Item, phase: Phase) -> bool:
        """Hold ``item``'s key for it; True when an earlier item holds it, and ``item`` then
        waits behind that one (admitted when it finishes)."""
        key = item.key
        if key is None:
            return False
        if key in self._busy:
            self._waiting.setdefault(key, deque()).append((item, phase))
            return True
        self._busy.add(key)
        return False

    def try_put_many(self, items: Sequence[Item]) -> int | None:
        """:meth:`try_put` for each of ``items`` (fresh writes) while there is room: how many
        were admitted, from the first (all of them unless the engine filled up), or None once
        the job is halted. One call for a chunk of rows instead of one for each."""
        if self.halted:
            return None
        room = self.max_outstanding - self.outstanding
        if room <= 0 or not items:
            return 0
        taken = items if len(items) <= room else items[:room]
        self.outstanding += len(taken)
        ready = self._ready
        before = len(ready)
        if not all(map(operator.is_, map(_key_of, taken), itertools.repeat(None))):
            for item in taken:
                if not self._waits_for_key(item, Phase.WRITE):
                    ready.append(item)
        else:
            ready.extend(taken)  # no keys (a create without an id property): nothing to wait for
        after = len(ready)
        if after > before:
            if not before:
                self._ready_since = self._clock()
            if not before or after // self.batch_size > before // self.batch_size:
                self._notify()  # a first record, or a batch's worth more: as _admit does
        return len(taken)

    def _admit(self, item: Item, phase: Phase) -> None:
        if phase is Phase.VERIFY:
            heapq.heappush(self._verify, (self._clock(), next(self._seq), item))
            self._notify()
            return
        ready = self._ready
        if not ready:
            self._ready_since = self._clock()
        ready.append(item)
        n = len(ready)
        if n == 1 or n % self.batch_size == 0:
            self._notify()

    def close_intake(self) -> None:
        self.intake_closed = True
        self._notify_all()  # a partial batch may go now, and idle workers may be done
        if self.outstanding == 0:
            self._over.set()

    @property
    def over(self) -> bool:
        """Done (every record finished) or halted."""
        return self._over.is_set()

    @property
    def done(self) -> bool:
        """Every record admitted has finished and no more will come."""
        return self.intake_closed and self.outstanding == 0

    async def wait_over(self) -> None:
        await self._over.wait()

    # -- feedback from workers ---------------------------------------------------------------
    def finish(self, item: Item) -> None:
        """The item has its final outcome: free its slot and let the next write to its key go."""
        self.finish_many((item,))

    def finish_many(self, items: Sequence[Item]) -> None:
        """:meth:`finish` for each item (a batch's settled rows), waking the others once."""
        self.outstanding -= len(items)
        waiting, busy = self._waiting, self._busy
        for item in items if busy else ():  # no key held (a create without one): no loop
            key = item.key
            if key is None:
                continue
            queue = waiting.get(key) if waiting else None
            if queue:
                nxt, phase = queue.popleft()
                if not queue:
                    del waiting[key]
                self._admit(nxt, phase)  # the key stays busy, now held by nxt
            else:
                busy.discard(key)
        # Wake a waiting intake once a batch's worth of room is free, not for every slot.
        if self._intake_waiting and self.outstanding <= self._low_water:
            self._intake_waiting = False
            self._space.set()
            self._space = anyio.Event()
        if self.outstanding == 0 and self.intake_closed:
            self._notify_all()
            self._over.set()

    def retry(self, items: list[Item], *, delay: float = 0.0, phase: Phase = Phase.WRITE) -> None:
        """Send these again after ``delay`` seconds, packed with whatever else is waiting."""
        at = self._clock() + delay
        heap = self._verify if phase is Phase.VERIFY else self._retry
        for item in items:
            heapq.heappush(heap, (at, next(self._seq), item))
        self._notify()

    def retry_batch(self, batch: Batch, *, delay: float = 0.0) -> None:
        """Send this exact batch again (isolation halves keep their shape)."""
        heapq.heappush(self._preformed, (self._clock() + delay, next(self._seq), batch))
        self._notify()

    def halt(self) -> None:
        """No new batches from now on; what is in flight may finish."""
        self.halted = True
        self._notify_all()
        self._space.set()
        self._over.set()

    # -- workers -----------------------------------------------------------------------------
    async def next_batch(self) -> Batch | None:
        """The next batch to send, or None when the job is over (done or stopped)."""
        while True:
            if self.halted:
                return None
            now = self._clock()
            batch = self._take(now)
            if batch is not None:
                if self._ready or self._retry or self._verify or self._preformed:
                    self._notify()  # more may be due: pass the turn on to another worker
                return batch
            if self.intake_closed and self.outstanding == 0:
                return None
            wake = self._next_wake(now)
            woken = anyio.Event()
            self._idle.append(woken)
            try:
                if wake < math.inf:
                    with anyio.move_on_after(max(0.0, wake - now)):
                        await woken.wait()
                else:
                    await woken.wait()
            except BaseException:
                if woken.is_set():
                    self._notify()  # cancelled with a wake-up it cannot use: pass it on
                else:
                    self._idle.remove(woken)
                raise
            if not woken.is_set():
                self._idle.remove(woken)  # the wait timed out: no longer idle

    def _take(self, now: float) -> Batch | None:
        if self._preformed and self._preformed[0][0] <= now:
            return heapq.heappop(self._preformed)[2]
        verify = _pop_due(self._verify, now, self.verify_batch_size)
        if verify:
            return Batch(verify, Phase.VERIFY)
        items = _pop_due(self._retry, now, self.batch_size)
        ready = self._ready
        need = self.batch_size - len(items)
        if (
            need
            and ready
            and (
                len(ready) >= need
                or items
                or self.intake_closed
                or now - self._ready_since >= self.linger
            )
        ):
            take = min(need, len(ready))
            items.extend(itertools.starmap(ready.popleft, itertools.repeat((), take)))
            self._ready_since = now if ready else math.inf
        return Batch(items) if items else None

    def _next_wake(self, now: float) -> float:
        wake = math.inf
        for heap in (self._preformed, self._verify, self._retry):
            if heap:
                wake = min(wake, heap[0][0])
        if self._ready:
            wake = min(wake, self._ready_since + self.linger)
        return wake

    def _notify(self) -> None:
        """Something may be due: wake one idle worker (it passes the turn on if there is more).
        Waking them all would have sixteen workers look for one batch, each time."""
        if self._idle:
            self._idle.popleft().set()

    def _notify_all(self) -> None:
        idle = self._idle
        while idle:
            idle.popleft().set()

    @property
    def queued(self) -> int:
        """Records waiting to be sent (fresh, returning or held back behind their key)."""
        return (
            len(self._ready)
            + len(self._retry)
            + len(self._verify)
            + sum(len(b[2]) for b in self._preformed)
            + sum(len(q) for q in self._waiting.values())
        )

    def __repr__(self) -> str:
        return (
            f"<Scheduler outstanding={self.outstanding} ready={len(self._ready)} "
            f"retry={len(self._retry)} verify={len(self._verify)} "
            f"preformed={len(self._preformed)} waiting_keys={len(self._waiting)} "
            f"halted={self.halted}>"
        )


def _loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()  # what anyio.current_time gives on asyncio
    except RuntimeError:  # another backend
        return anyio.current_time()


def _pop_due(heap: list[tuple[float, int, Item]], now: float, limit: int) -> list[Item]:
    items: list[Item] = []
    while heap and heap[0][0] <= now and len(items) < limit:
        items.append(heapq.heappop(heap)[2])
    return items
