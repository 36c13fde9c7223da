"""Workers: take a batch, wait for a turn from the limiter, send it, and settle every item.

What each answer means for the items of a batch:

==========================  ==================================================================
2xx                         per-item results and errors from the body; items it does not
                            mention are retried (their create may have happened: see below)
401 / 403                   stop the job at once: the token is bad or lacks scopes
429                         by ``policyName``: rolling/secondly pause everyone and resend;
                            DAILY stops the job, keeping every finished result
423, 408, 5xx, no answer    transient: back off (full jitter, or Retry-After) and resend
other 4xx                   the dialect decides: isolate a bad record by splitting the batch,
                            fail the record, or stop the job when every batch would fail
==========================  ==================================================================

Retry safety. Update, upsert, archive and read are idempotent and resent freely. A create whose
outcome is unknown (timeout, reset after sending, 5xx, or a 2xx that does not mention it) is never
resent blindly: with an id property the records are read back by that unique value and only the
missing ones are created again; without one they fail as AMBIGUOUS.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from ._config import JobConfig
from ._dialect import Dialect, Fatal, Parsed, Rejected, suspects
from ._errors import AMBIGUOUS, BATCH_REJECTED, RETRIES_EXHAUSTED, UNACCOUNTED
from ._journal import Journal
from ._limiter import RateLimiter
from ._models import Batch, Item, Operation, Outcome, Phase
from ._results import ResultWriter
from ._retry import backoff_delay, parse_retry_after
from ._scheduler import Scheduler
from ._transport import HttpRequest, HttpResponse, Transport, TransportFailure

__all__ = ["Dispatcher", "JobStats", "StopReason"]


class StopReason:
    AUTH = "auth"
    DAILY_LIMIT = "daily_limit"
    DAILY_BUDGET = "daily_budget"
    UNREACHABLE = "unreachable"
    CONFIG = "config"
    INTERRUPTED = "interrupted"


@dataclass(slots=True)
class JobStats:
    requests: int = 0
    write_requests: int = 0
    verify_requests: int = 0
    isolation_requests: int = 0
    resent_batches: int = 0
    splits: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    transport_failures: Counter[str] = field(default_factory=Counter)
    latency_ewma: float = 0.0
    stop_message: str | None = None


class Dispatcher:
    def __init__(
        self,
        config: JobConfig,
        *,
        transport: Transport,
        limiter: RateLimiter,
        scheduler: Scheduler,
        writer: ResultWriter,
        dialect: Dialect,
        verify_dialect: Dialect | None,
        journal: Journal | None = None,
        isolation_share: float = 0.05,
        isolation_floor: int = 50,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.limiter = limiter
        self.scheduler = scheduler
        self.writer = writer
        self.dialect = dialect
        self.verify_dialect = verify_dialect
        self.stats = JobStats()
        self._journal = journal
        self._marks_sent = journal is not None and config.operation is Operation.CREATE
        self._isolation_share = isolation_share
        self._isolation_floor = isolation_floor
        self._rng = rng or random.Random()
        self._answered = False  # any HTTP answer yet? Before one, "cannot connect" is fatal.
        self._daily_cap: int | None = config.daily_budget
        self._share_set = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def worker(self) -> None:
        while True:
            batch = await self.scheduler.next_batch()
            if batch is None:
                return
            await self._send(batch)

    def stop(self, reason: str, message: str) -> None:
        if self.scheduler.stop_reason is None:
            self.stats.stop_message = message
        self.scheduler.stop(reason)

    def observe(self, response: HttpResponse, sent_at: float) -> None:
        """Learn from a response's headers; the first that tells the daily quota left sets
        this job's share of it (``daily_share``)."""
        self.limiter.observe(response.headers, sent_at, anyio.current_time())
        share = self.config.daily_share
        if share is not None and not self._share_set and self.limiter.daily_remaining is not None:
            self._share_set = True
            # What was left before this job's first request.
            left = self.limiter.daily_remaining + self.limiter.sent
            cap = max(1, math.floor(share * left))
            self._daily_cap = cap if self._daily_cap is None else min(self._daily_cap, cap)

    # -- one request -------------------------------------------------------------------------
    async def _send(self, batch: Batch) -> None:
        verify = batch.phase is Phase.VERIFY
        dialect = self.verify_dialect if verify and self.verify_dialect else self.dialect
        request = dialect.request(batch.items)
        if self._daily_cap is not None and self.limiter.sent >= self._daily_cap:
            self.stop(
                StopReason.DAILY_BUDGET,
                f"the job's daily budget of {self._daily_cap} requests is spent; "
                "resume it tomorrow (bulkops resume OUT)",
            )
            return
        sent_at = await self.limiter.wait_turn()
        if self.scheduler.stop_reason is not None:
            return  # stopped while we waited; the batch stays unprocessed
        stats = self.stats
        stats.requests += 1
        if verify:
            stats.verify_requests += 1
        elif batch.split_depth:
            stats.isolation_requests += 1
        else:
            stats.write_requests += 1
        for item in batch.items:
            item.attempts += 1
        mark = None
        if self._marks_sent and not verify and self._journal is not None:
            # Before the request leaves: a crash from here on must not lead to a blind resend.
            mark = self._journal.mark_sent(it.row for it in batch.items)
        # Not in a ``finally``: a request cancelled while in flight (Ctrl-C twice) may have been
        # written, so its rows must keep their sent mark and be read back on resume.
        await self._exchange(batch, dialect, request, sent_at)
        if mark is not None and self._journal is not None:
            # Settled: finished rows have outcomes, rows HubSpot certainly did not write (429,
            # 423, refused...) are no longer in flight and get a new mark when resent. Only rows
            # whose outcome is unknown keep this one. Applied with the group commit (every
            # 20 ms, or with the next batch's mark), together with the outcomes.
            self._journal.release_mark(
                mark, (it.row for it in batch.items if not it.done and it.ambiguous)
            )

    async def _exchange(
        self, batch: Batch, dialect: Dialect, request: HttpRequest, sent_at: float
    ) -> None:
        stats = self.stats
        started = anyio.current_time()
        try:
            response = await self.transport.send(request)
        except TransportFailure as failure:
            stats.transport_failures[failure.kind] += 1
            if failure.kind == "connect" and not self._answered:
                self.stop(StopReason.UNREACHABLE, str(failure))
                return
            self._transient(batch, str(failure), maybe_sent=failure.maybe_sent)
            return
        self._answered = True
        elapsed = anyio.current_time() - started
        stats.latency_ewma = (
            elapsed if not stats.latency_ewma else (0.9 * stats.latency_ewma + 0.1 * elapsed)
        )
        stats.by_status[response.status] += 1
        self.observe(response, sent_at)
        self._settle(batch, dialect, response)

    def _settle(self, batch: Batch, dialect: Dialect, response: HttpResponse) -> None:
        status = response.status
        if 200 <= status < 300:
            self._apply(batch, dialect.parse_ok(batch.items, response))
        elif status in (401, 403):
            self.auth_failure(response)
        elif status == 429:
            self._rate_limited(batch, response)
        elif status in (408, 423) or status >= 500:
            # 408/423: HubSpot did not act (423 = records locked by rapid upserts; wait >= 2 s).
            # 5xx: it may have (HubSpot has been seen to write and then fail).
            reason = _short_reason(response)
            self._transient(
                batch,
                reason,
                maybe_sent=status >= 500,
                minimum=2.0 if status == 423 else 0.0,
                retry_after=parse_retry_after(response.headers),
            )
        else:
            verdict = dialect.parse_rejection(batch.items, response)
            if isinstance(verdict, Parsed):
                self._apply(batch, verdict)
            elif isinstance(verdict, Fatal):
                self.stop(StopReason.CONFIG, verdict.message)
            else:
                self._rejected(batch, verdict)

    # -- outcomes ----------------------------------------------------------------------------
    def _finish(self, outcome: Outcome) -> None:
        outcome.item.done = True
        self.writer.record(outcome)
        self.scheduler.finish(outcome.item)

    def _fail(self, item: Item, category: str, message: str) -> None:
        self._finish(Outcome(item, False, category=category, message=message))

    def _apply(self, batch: Batch, parsed: Parsed) -> None:
        if batch.phase is Phase.VERIFY:
            self._apply_verify(batch, parsed)
            return
        for outcome in parsed.outcomes:
            self._finish(outcome)
        if parsed.unmentioned:
            reason = parsed.stray_error or "HubSpot's answer did not mention this record"
            self._unknown(parsed.unmentioned, reason, exhausted=UNACCOUNTED)

    def _apply_verify(self, batch: Batch, parsed: Parsed) -> None:
        """Read-back of creates with unknown outcome: found means created; missing, not."""
        missing: list[Item] = []
        for outcome in parsed.outcomes:
            item = outcome.item
            if outcome.ok:
                self._finish(
                    Outcome(
                        item,
                        True,
                        hubspot_id=outcome.hubspot_id,
                        new=True,
                        extra={"verified": True},
                    )
                )
            elif outcome.category == "OBJECT_NOT_FOUND":
                missing.append(item)
            else:
                self._fail(item, outcome.category or "ERROR", outcome.message or "")
        if missing:
            self._resend(missing, "not created (checked by reading it back)", phase=Phase.WRITE)
        if parsed.unmentioned:
            self._resend(
                parsed.unmentioned, parsed.stray_error or "read-back incomplete", phase=Phase.VERIFY
            )

    def _resend(
        self,
        items: list[Item],
        reason: str,
        *,
        phase: Phase,
        delay: float | None = None,
        split_batch: Batch | None = None,
        exhausted: str = RETRIES_EXHAUSTED,
    ) -> None:
        """Queue items again unless they are out of attempts (then fail as ``exhausted``)."""
        keep: list[Item] = []
        for item in items:
            item.last_error = reason
            if item.attempts >= self.config.max_attempts:
                self._fail(item, exhausted, f"gave up after {item.attempts} attempts: {reason}")
            else:
                keep.append(item)
        if not keep:
            return
        self.stats.resent_batches += 1
        attempt = max(it.attempts for it in keep)
        wait = self.backoff(attempt) if delay is None else delay
        if split_batch is not None and len(keep) == len(split_batch.items):
            self.scheduler.retry_batch(split_batch, delay=wait)
        else:
            self.scheduler.retry(keep, delay=wait, phase=phase)

    def _unknown(
        self,
        items: list[Item],
        reason: str,
        *,
        exhausted: str = RETRIES_EXHAUSTED,
        delay: float | None = None,
        batch: Batch | None = None,
    ) -> None:
        """HubSpot may or may not have acted on these items."""
        if self.config.operation.idempotent:
            self._resend(
                items,
                reason,
                phase=Phase.WRITE,
                delay=delay,
                split_batch=batch,
                exhausted=exhausted,
            )
            return
        for item in items:
            item.ambiguous = True
        if self.config.id_property and self.verify_dialect is not None:
            self._resend(
                items, f"{reason}; checking whether it was created", phase=Phase.VERIFY, delay=delay
            )
            return
        hint = (
            "HubSpot may or may not have created this record ({reason}). It was not sent again, "
            "to avoid a duplicate. Re-run with --id-property <a unique property> so bulkops can "
            "check before resending, or look the record up in HubSpot and feed this row back "
            "only if it is missing."
        )
        for item in items:
            self._fail(item, AMBIGUOUS, hint.format(reason=reason))

    def _transient(
        self,
        batch: Batch,
        reason: str,
        *,
        maybe_sent: bool,
        minimum: float = 0.0,
        retry_after: float | None = None,
    ) -> None:
        attempt = max(it.attempts for it in batch.items)
        delay = self.backoff(attempt, minimum=minimum, retry_after=retry_after)
        if batch.phase is Phase.VERIFY:
            self._resend(batch.items, reason, phase=Phase.VERIFY, delay=delay)
        elif maybe_sent:
            self._unknown(
                batch.items, reason, delay=delay, batch=batch if batch.split_depth else None
            )
        else:
            self._resend(
                batch.items,
                reason,
                phase=Phase.WRITE,
                delay=delay,
                split_batch=batch if batch.split_depth else None,
            )

    def throttled(self, response: HttpResponse) -> float | None:
        """A 429, by its ``policyName``: the pause before sending again, or None when the
        daily limit is reached (the job stops)."""
        body = response.json()
        policy = ""
        if isinstance(body, Mapping):
            policy = str(body.get("policyName") or "")
            if not policy and "secondly" in str(body.get("message", "")).lower():
                policy = "SECONDLY"
        policy = policy or "TEN_SECONDLY_ROLLING"
        if policy == "DAILY":
            self.daily_limit_reached()
            return None
        return self.limiter.on_rate_limited(policy, parse_retry_after(response.headers))

    def _rate_limited(self, batch: Batch, response: HttpResponse) -> None:
        for item in batch.items:
            item.attempts -= 1  # a 429 is HubSpot saying "not now", not a failed attempt
        pause = self.throttled(response)
        if pause is None:
            return
        if batch.split_depth:
            self.scheduler.retry_batch(batch, delay=pause)
        else:
            self.scheduler.retry(batch.items, delay=pause, phase=batch.phase)

    def daily_limit_reached(self) -> None:
        self.limiter.throttled["DAILY"] += 1
        self.stop(
            StopReason.DAILY_LIMIT,
            "HubSpot's daily API limit for this account is reached; it resets at midnight in "
            "the account's time zone. Every finished record is kept; continue with "
            "`bulkops resume OUT` after the reset.",
        )

    def auth_failure(self, response: HttpResponse) -> None:
        body = response.json()
        detail = str(body.get("message", "")) if isinstance(body, Mapping) else ""
        category = str(body.get("category", "")) if isinstance(body, Mapping) else ""
        if response.status == 401:
            message = (
                "HubSpot rejected the access token (401"
                + (f" {category}" if category else "")
                + "). Check HUBSPOT_ACCESS_TOKEN or --token-file."
            )
        else:
            message = (
                "the access token lacks a permission this job needs (403"
                + (f" {category}" if category else "")
                + f"): {detail[:300]}"
            )
        self.stop(StopReason.AUTH, message)

    def _rejected(self, batch: Batch, verdict: Rejected) -> None:
        items = batch.items
        if len(items) == 1:
            self._fail(items[0], verdict.category, verdict.message)
            return
        if verdict.isolatable and self._may_isolate():
            self.stats.splits += 1
            for item in items:
                item.attempts -= 1  # isolation is not the record's failed attempt
            suspected = suspects(items, verdict.fields, verdict.message)
            if suspected and len(suspected) < len(items):
                # The error names a property and value: send the records that carry it alone
                # and the rest together. One request per bad record instead of 2*log2(n).
                rows = {it.row for it in suspected}
                groups = [[it] for it in suspected] + [[it for it in items if it.row not in rows]]
            else:
                # Nothing to go by: split in halves until the bad records stand alone; the
                # others are written on the way. About 2*log2(n) requests per bad record.
                mid = len(items) // 2
                groups = [items[:mid], items[mid:]]
            for group in groups:
                self.scheduler.retry_batch(Batch(group, batch.phase, batch.split_depth + 1))
            return
        why = "isolation budget spent" if verdict.isolatable else "the error names no single record"
        for item in items:
            self._fail(
                item,
                BATCH_REJECTED,
                f"HubSpot rejected the whole batch of {len(items)} ({verdict.category}: "
                f"{verdict.message}); the record at fault was not isolated ({why}). Fix the data "
                "and feed failed.jsonl back in.",
            )

    def backoff(
        self, attempt: int, *, minimum: float = 0.0, retry_after: float | None = None
    ) -> float:
        c = self.config
        return backoff_delay(
            attempt,
            base=c.backoff_base,
            cap=c.backoff_cap,
            minimum=minimum,
            retry_after=retry_after,
            rng=self._rng,
        )

    def _may_isolate(self) -> bool:
        # HubSpot asks integrations to keep errors under 5% of requests; bisection spends
        # requests that mostly fail, so it has a budget: a share of the requests so far, with a
        # floor so a small job can still isolate a few bad rows.
        allowed = max(self._isolation_floor, self._isolation_share * self.stats.requests)
        return self.stats.isolation_requests + 2 <= allowed

    def target_workers(self) -> int:
        """Workers needed to hold the pace: rate x latency (Little's law), with head-room."""
        cap = self.config.concurrency
        rate = self.limiter.rate_per_second
        if rate is None:
            return cap or 16
        latency = self.stats.latency_ewma or 0.5
        need = math.ceil(rate * latency * 1.5) + 2
        return max(2, min(need, cap or 128))


def _short_reason(response: HttpResponse) -> str:
    body: Any = response.json()
    message = body.get("message") if isinstance(body, Mapping) else None
    return f"HTTP {response.status}" + (f": {str(message)[:200]}" if message else "")
