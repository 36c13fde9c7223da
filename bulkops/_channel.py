"""The one request path: every request of a job goes through :class:`Channel`.

Batches, read-backs, the schema read and outage probes alike: the limiter's turn, the job's
daily budget, counting (in :class:`~bulkops._stats.JobStats`, nowhere else), the transport
with its per-request timeout, learning from the answer's headers, and whether HubSpot looks
down. What an answer *means* is not decided here but in ``_policy``.

Outages. After ``RetryPolicy.outage_after`` transient failures in a row with no good answer
between them, HubSpot is taken to be down: no batch leaves (so no record spends an attempt, and
no create becomes ambiguous), and one cheap read (the schema GET) probes, with a capped backoff,
until an answer comes. After ``outage_timeout`` seconds down the job stops, resumable.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ._http import HttpRequest, HttpResponse, Transport, TransportFailure
from ._log import http_log, with_fields
from ._pacer import Pacer
from ._retry import RetryPolicy
from ._stats import JobStats, Stop, StopLatch, StopReason

__all__ = ["Channel", "RequestDone", "Waiting"]

Answer = HttpResponse | TransportFailure
_PROBE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Waiting:
    """What the job is waiting for, and until when (``anyio.current_time()`` clock)."""

    reason: str
    until: float


@dataclass(frozen=True, slots=True)
class RequestDone:
    """One request that came back (an answer or a transport failure), for observers such as
    the OpenTelemetry request-duration histogram. Counting stays in ``JobStats``."""

    method: str
    kind: str  # schema, write, verify, isolation, probe
    status: int | None  # None: no HTTP answer (see ``failure``)
    failure: str | None  # the TransportFailure's kind
    duration_s: float
    host: str


class Channel:
    def __init__(
        self,
        transport: Transport,
        limiter: Pacer,
        stats: JobStats,
        latch: StopLatch,
        *,
        retry: RetryPolicy,
        timeout: float,
        probe_path: str,
        daily_budget: int | None = None,
        daily_share: float | None = None,
        clock: Callable[[], float] = anyio.current_time,
        rng: random.Random | None = None,
        on_request: Callable[[RequestDone], None] | None = None,
        log_fields: Mapping[str, Any] | None = None,
        budget_spent: Callable[[], str | None] | None = None,
    ) -> None:
        """``log_fields``: the job's ``extra`` fields (job id, operation) for every record."""
        self._log_fields: Mapping[str, Any] = log_fields or {}
        self.transport = transport
        self._on_request = on_request
        self.in_flight = 0  # requests sent and not yet answered
        self.limiter = limiter
        self.stats = stats
        self._latch = latch
        self._retry = retry
        self._timeout = timeout
        self._probe = HttpRequest("GET", probe_path)
        self._daily_cap = daily_budget
        self._daily_share = daily_share
        self._clock = clock
        self._rng = rng or random.Random()
        # A shared account's daily budget: why a turn just taken may not be used, else None.
        self._budget_spent = budget_spent
        self.answered = False  # any HTTP answer yet? Before one, "cannot connect" is fatal.
        self.hubspot_seen = False  # any answer that looked like HubSpot's (JSON, or a 204)?
        self._throttled_since: float | None = None
        self._failures_in_row = 0
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._probes = 0
        self._probing = False
        self._changed = anyio.Event()
        self.waiting: Waiting | None = None

    @property
    def host(self) -> str:
        return self.transport.host

    @property
    def in_outage(self) -> bool:
        return self._down_since is not None

    @property
    def throttled_for(self) -> float:
        since = self._throttled_since
        return 0.0 if since is None else self._clock() - since

    def wake(self) -> None:
        """Something changed (an outage ended, the job stopped): waiters look again."""
        self._changed.set()
        self._changed = anyio.Event()

    # -- sending -----------------------------------------------------------------------------
    async def turn(self) -> float | None:
        """Wait until a request may leave; its send time, or None when the job stopped."""
        if self._down_since is not None and not await self._wait_for_recovery():
            return None
        stats = self.stats
        if self._daily_cap is not None and stats.total_requests >= self._daily_cap:
            self._latch.set(
                Stop(
                    StopReason.DAILY_BUDGET,
                    f"the job's daily budget of {self._daily_cap} requests is spent; "
                    "resume it tomorrow (bulkops resume OUT)",
                )
            )
            return None
        sent_at = await self.limiter.wait_turn()
        if self._latch.is_set:
            return None  # stopped while we waited: the request does not leave
        spent = self._budget_spent() if self._budget_spent is not None else None
        if spent is not None:
            self._latch.set(Stop(StopReason.DAILY_BUDGET, spent))
            return None
        return sent_at

    async def send(self, request: HttpRequest, kind: str, sent_at: float) -> Answer:
        """Send one request whose turn was taken at ``sent_at``; counts it under ``kind``."""
        self.stats.requests[kind] += 1
        started = self._clock()
        self.in_flight += 1
        try:
            response = await self.transport.send(request, timeout=self._timeout)
        except TransportFailure as failure:
            self.stats.transport_failures[failure.kind] += 1
            self._failed()
            self._done(request, kind, None, failure, started)
            self._log_request(request, kind, started, None, failure.kind)
            return failure
        finally:
            self.in_flight -= 1
        self._answer(response, sent_at, started)
        self._done(request, kind, response, None, started)
        self._log_request(request, kind, started, response.status, None)
        return response

    def _log_request(
        self,
        request: HttpRequest,
        kind: str,
        started: float,
        status: int | None,
        failure: str | None,
    ) -> None:
        if not http_log.isEnabledFor(logging.DEBUG):
            return  # the hot path: one check per request when nobody listens
        elapsed_ms = round((self._clock() - started) * 1000, 1)
        # The method and path only: the token travels in a header, which is never logged.
        outcome = str(status) if status is not None else f"no answer ({failure})"
        http_log.debug(
            "%s %s (%s) -> %s in %.0f ms",
            request.method,
            request.path,
            kind,
            outcome,
            elapsed_ms,
            extra=with_fields(
                self._log_fields,
                kind=kind,
                method=request.method,
                path=request.path,
                status=status,
                elapsed_ms=elapsed_ms,
            ),
        )

    def _done(
        self,
        request: HttpRequest,
        kind: str,
        response: HttpResponse | None,
        failure: TransportFailure | None,
        started: float,
    ) -> None:
        if self._on_request is None:
            return
        self._on_request(
            RequestDone(
                method=request.method,
                kind=kind,
                status=None if response is None else response.status,
                failure=None if failure is None else failure.kind,
                duration_s=self._clock() - started,
                host=self.host,
            )
        )

    async def call(self, request: HttpRequest, kind: str) -> Answer | None:
        sent_at = await self.turn()
        if sent_at is None:
            return None
        return await self.send(request, kind, sent_at)

    def throttle(self, policy: str, retry_after: float | None) -> float:
        """A rolling or secondly 429: every sender pauses; returns the pause in seconds."""
        self.stats.throttled[policy] += 1
        capped = None if retry_after is None else min(retry_after, self._retry.retry_after_cap)
        pause = self.limiter.on_rate_limited(policy, capped)
        http_log.info(
            "HubSpot answered 429 (%s): every request pauses %.1f s",
            policy,
            pause,
            extra=with_fields(self._log_fields, policy=policy, status=429, delay_s=pause),
        )
        if retry_after is not None and retry_after >= 5:
            # Worth saying: a long Retry-After would otherwise look like a hung job.
            note = f"HubSpot asked to wait {retry_after:.0f} s (Retry-After"
            note += f", capped at {capped:.0f} s)" if capped != retry_after else ")"
            self.waiting = Waiting(note, self._clock() + pause)
        return pause

    # -- what answers tell -------------------------------------------------------------------
    def _answer(self, response: HttpResponse, sent_at: float, started: float) -> None:
        now = self._clock()
        self.answered = True
        if not self.hubspot_seen and (response.status == 204 or response.json() is not None):
            self.hubspot_seen = True
        stats = self.stats
        stats.answered(response.status, now - started)
        self.limiter.observe(response.headers, sent_at, now)
        self._take_daily_share()
        status = response.status
        if status == 429:
            if self._throttled_since is None:
                self._throttled_since = now
        else:
            self._throttled_since = None
            if self.waiting is not None and self.waiting.until <= now:
                self.waiting = None
        if status >= 500:
            self._failed()
        else:
            self._failures_in_row = 0

    def _take_daily_share(self) -> None:
        """The first answer that tells the daily quota left sets this job's share of it."""
        share, left = self._daily_share, self.limiter.daily_remaining
        if share is None or left is None:
            return
        self._daily_share = None
        # What was left before this job's first request.
        cap = max(1, math.floor(share * (left + self.stats.total_requests)))
        self._daily_cap = cap if self._daily_cap is None else min(self._daily_cap, cap)

    # -- outages -----------------------------------------------------------------------------
    def _failed(self) -> None:
        self._failures_in_row += 1
        if self._down_since is None and self._failures_in_row >= self._retry.outage_after:
            self._down_since = self._clock()
            self._next_probe = self._down_since + self._probe_delay()
            http_log.warning(
                "%s looks down (%d failed requests in a row): holding every batch, probing",
                self.host,
                self._failures_in_row,
                extra=with_fields(self._log_fields, attempt=self._failures_in_row),
            )

    def _probe_delay(self) -> float:
        # Capped exponential backoff, at least the base: probes are cheap, but each counts.
        return self._retry.delay(self._probes + 1, minimum=self._retry.backoff_base, rng=self._rng)

    async def _wait_for_recovery(self) -> bool:
        """Hold every sender while HubSpot is down; one of them probes. False: stopped."""
        while self._down_since is not None:
            if self._latch.is_set:
                return False
            now = self._clock()
            if now - self._down_since > self._retry.outage_timeout:
                self._latch.set(
                    Stop(
                        StopReason.OUTAGE,
                        f"{self.host} has not answered for {now - self._down_since:.0f} s "
                        f"({self._failures_in_row} failed requests in a row). Finished records "
                        "are kept; continue with `bulkops resume OUT` once HubSpot is back.",
                    )
                )
                return False
            self.waiting = Waiting("HubSpot is not answering; probing", self._next_probe)
            if not self._probing and now >= self._next_probe:
                await self._probe_once()
                continue
            changed = self._changed
            with anyio.move_on_after(max(0.05, self._next_probe - now)):
                await changed.wait()
        return not self._latch.is_set

    async def _probe_once(self) -> None:
        self._probing = True
        try:
            self._probes += 1
            sent_at = await self.limiter.wait_turn()
            self.stats.requests["probe"] += 1
            started = self._clock()
            self.in_flight += 1
            response: HttpResponse | None
            try:
                response = await self.transport.send(self._probe, timeout=_PROBE_TIMEOUT)
            except TransportFailure as failure:
                self.stats.transport_failures[failure.kind] += 1
                response = None
                self._done(self._probe, "probe", None, failure, started)
                self._log_request(self._probe, "probe", started, None, failure.kind)
            finally:
                self.in_flight -= 1
            if response is not None:
                self._answer(response, sent_at, started)
                self._done(self._probe, "probe", response, None, started)
                self._log_request(self._probe, "probe", started, response.status, None)
            if response is not None and response.status < 500:
                self._down_since = None
                self._probes = 0
                self.waiting = None
                http_log.info(
                    "%s answers again; batches resume",
                    self.host,
                    extra=with_fields(self._log_fields, status=response.status),
                )
            else:
                self._next_probe = self._clock() + self._probe_delay()
        finally:
            self._probing = False
            self.wake()
