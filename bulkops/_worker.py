"""Workers: next batch, turn, sent mark, send, decide, apply. The I/O loop around ``_policy``.

:class:`Workers` is the pool (grown to rate x latency as latency becomes known, by the workers
themselves after each answer: no polling loop) and the one place a verdict is applied, so the
one place an item changes while it is in the engine (``attempts``, ``maybe_written``).
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from ._channel import Channel
from ._config import JobConfig
from ._dialect import Dialect
from ._dialect_v1 import V1Dialect
from ._dialect_v3 import V3Dialect
from ._journal import Journal
from ._log import http_log, with_fields
from ._models import Api, Batch, Item, Operation, Outcome, Phase
from ._policy import Context, Halt, Resend, Retry, Settle, Split, Throttle, Verdict, decide
from ._retry import RetryPolicy
from ._scheduler import Scheduler
from ._stats import JobStats, StopLatch

__all__ = ["Dialects", "Workers", "dialects_for"]


@dataclass(frozen=True, slots=True)
class Dialects:
    """The job's write dialect and, for creates with an id property, the read dialect that
    settles creates whose outcome is unknown. ``for_phase`` is the only way to pick one, so a
    read-back can never go out with the write dialect (a blind re-create)."""

    write: Dialect
    read_back: Dialect | None = None

    def for_phase(self, phase: Phase) -> Dialect:
        if phase is Phase.VERIFY:
            if self.read_back is None:
                raise AssertionError("a read-back batch in a job that cannot read back")
            return self.read_back
        return self.write


def dialects_for(config: JobConfig) -> Dialects:
    """The job's write dialect, and the read dialect for creates with an id property."""
    write: Dialect
    if config.api is Api.V1:
        write = V1Dialect(
            config.operation, id_property=config.id_property, properties=config.properties
        )
    else:
        write = V3Dialect(
            config.operation,
            config.object_type,
            id_property=config.id_property,
            properties=config.properties,
            version=config.api_version,
            properties_with_history=config.properties_with_history,
            archived=config.archived,
        )
    read_back = None
    if config.operation is Operation.CREATE and config.id_property:
        # Creates with a unique property are settled by a read on it in the job's version (v1
        # tickets are the same records, and a v1 version reads through v3, so this serves the
        # v1 dialect too).
        object_type = "tickets" if config.api is Api.V1 else config.object_type
        read_back = V3Dialect(
            Operation.READ,
            object_type,
            version=config.api_version,
            id_property=config.id_property,
            properties=[config.id_property],
        )
    return Dialects(write, read_back)


_item_of = operator.attrgetter("item")
_maybe_written = operator.attrgetter("maybe_written")
_row_of = operator.attrgetter("row")


class Workers:
    def __init__(
        self,
        *,
        channel: Channel,
        scheduler: Scheduler,
        dialects: Dialects,
        settle: Callable[[Sequence[Outcome]], None],
        stats: JobStats,
        latch: StopLatch,
        operation: Operation,
        retry: RetryPolicy,
        id_property: str | None,
        journal: Journal | None,
        concurrency: int | None,
        isolation_share: float = 0.05,
        isolation_floor: int = 50,
        rng: random.Random | None = None,
        log_fields: Mapping[str, Any] | None = None,
    ) -> None:
        self._log_fields: Mapping[str, Any] = log_fields or {}
        self._channel = channel
        self._scheduler = scheduler
        self._dialects = dialects
        self._settle = settle
        self._stats = stats
        self._latch = latch
        self._operation = operation
        self._retry = retry
        self._id_property = id_property
        self._journal = journal
        self._marks_sent = journal is not None and operation is Operation.CREATE
        self._concurrency = concurrency
        self._isolation_share = isolation_share
        self._isolation_floor = isolation_floor
        self._rng = rng or random.Random()
        self._tg: anyio.abc.TaskGroup | None = None
        self.started = 0
        self.running = 0
        self._idle = anyio.Event()
        self._idle.set()

    # -- the pool ----------------------------------------------------------------------------
    def start(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        self._grow()

    def _grow(self) -> None:
        if self._tg is None:
            return
        while self.started < self.target() and not self._scheduler.over:
            self.started += 1
            self.running += 1
            self._idle = anyio.Event()
            self._tg.start_soon(self._run)

    async def wait_idle(self) -> None:
        """Until every worker has returned (the job is over and requests in flight ended)."""
        await self._idle.wait()

    def target(self) -> int:
        """Workers needed to hold the pace: rate x latency (Little's law), with head-room."""
        cap = self._concurrency
        rate = self._channel.limiter.rate_per_second
        if rate is None:
            return cap or 16
        latency = self._stats.latency_ewma or 0.5
        need = math.ceil(rate * latency * 1.5) + 2
        return max(2, min(need, cap or 128))

    async def _run(self) -> None:
        try:
            while (batch := await self._scheduler.next_batch()) is not None:
                await self._one(batch)
                self._grow()
        finally:
            self.running -= 1
            if self.running == 0:
                self._idle.set()

    # -- one batch ---------------------------------------------------------------------------
    async def _one(self, batch: Batch) -> None:
        dialect = self._dialects.for_phase(batch.phase)
        request = dialect.request(batch.items)
        sent_at = await self._channel.turn()
        if sent_at is None:
            return  # the job stopped while we waited: the batch stays unprocessed
        mark = None
        if self._marks_sent and batch.phase is Phase.WRITE and self._journal is not None:
            # Before the request leaves: a crash from here on must not lead to a blind resend.
            mark = await self._journal.mark_sent_in_thread(map(_row_of, batch.items))
        kind = (
            "verify"
            if batch.phase is Phase.VERIFY
            else "isolation"
            if batch.split_depth
            else "write"
        )
        # Not in a ``finally``: a request cancelled in flight (Ctrl-C twice) may have been
        # written, so its rows keep their sent mark and are read back on resume.
        answer = await self._channel.send(request, kind, sent_at)
        verdict = decide(batch, answer, dialect, self._context())
        finished = self._apply(batch, verdict)
        if mark is not None and self._journal is not None:
            # Settled rows have outcomes; rows HubSpot certainly did not write (429, 423,
            # refused...) are no longer in flight and get a new mark when resent. Only rows
            # whose outcome is unknown keep this one. Applied with the next commit.
            unknown: list[int] = []
            if any(map(_maybe_written, batch.items)):  # rarely: map runs no Python per item
                settled = {item.row for item in finished}
                unknown = [
                    it.row for it in batch.items if it.maybe_written and it.row not in settled
                ]
            self._journal.release_mark(mark, unknown)

    def _context(self) -> Context:
        stats, channel = self._stats, self._channel
        allowed = max(self._isolation_floor, self._isolation_share * stats.total_requests)
        return Context(
            operation=self._operation,
            retry=self._retry,
            read_back=self._dialects.read_back is not None,
            answered_before=channel.answered,
            hubspot_seen=channel.hubspot_seen,
            # HubSpot asks integrations to keep errors under 5% of requests; bisection spends
            # requests that mostly fail, so it has a budget: a share of the requests so far,
            # with a floor so a small job can still isolate a few bad rows.
            may_isolate=stats.requests["isolation"] + 2 <= allowed,
            in_outage=channel.in_outage,
            throttled_for=channel.throttled_for,
            id_property=self._id_property,
            host=channel.host,
            rng=self._rng,
        )

    def _apply(self, batch: Batch, verdict: Verdict) -> list[Item]:
        """Carry out a verdict; returns the items it finished."""
        if verdict.charge:
            for item in batch.items:
                item.attempts += 1
        finished: list[Item] = []
        scheduler = self._scheduler
        for action in verdict.actions:
            if isinstance(action, Settle):
                outcomes = action.outcomes
                items = list(map(_item_of, outcomes))
                finished.extend(items)
                self._settle(outcomes)
                scheduler.finish_many(items)
            elif isinstance(action, Retry):
                _mark_maybe_written(action.items, action.maybe_written)
                self._stats.resent_batches += 1
                self._log_retry(action.items, action.delay, action.phase)
                scheduler.retry(action.items, delay=action.delay, phase=action.phase)
            elif isinstance(action, Resend):
                _mark_maybe_written(action.batch.items, action.maybe_written)
                self._stats.resent_batches += 1
                self._log_retry(action.batch.items, action.delay, action.batch.phase)
                scheduler.retry_batch(action.batch, delay=action.delay)
            elif isinstance(action, Split):
                self._stats.splits += 1
                http_log.info(
                    "HubSpot rejected a batch of %d rows: splitting it to find the bad row",
                    len(batch),
                    extra=with_fields(self._log_fields, rows=len(batch), kind="isolation"),
                )
                for group in action.groups:
                    scheduler.retry_batch(Batch(group, action.phase, action.depth))
            elif isinstance(action, Throttle):
                pause = self._channel.throttle(action.policy, action.retry_after)
                if batch.split_depth:
                    scheduler.retry_batch(batch, delay=pause)
                else:
                    scheduler.retry(batch.items, delay=pause, phase=batch.phase)
            elif isinstance(action, Halt):  # pragma: no branch - the set of actions is closed
                self._latch.set(action.stop)
        return finished

    def _log_retry(self, items: list[Item], delay: float, phase: Phase) -> None:
        attempt = max((it.attempts for it in items), default=0) + 1
        http_log.info(
            "retrying %d rows in %.1f s (attempt %d)",
            len(items),
            delay,
            attempt,
            extra=with_fields(
                self._log_fields,
                rows=len(items),
                delay_s=delay,
                attempt=attempt,
                kind="verify" if phase is Phase.VERIFY else "write",
            ),
        )


def _mark_maybe_written(items: list[Item], maybe_written: bool) -> None:
    if maybe_written:
        for item in items:
            item.maybe_written = True
