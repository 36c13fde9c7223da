"""Seeded fault injection for the fake HubSpot, and outage windows on the fake's clock."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

# Fault kinds as counted in FakeStats.faults (which also counts "outage_503", "outage_drop" and
# "scripted" answers).
RESET = "reset"
SERVER_ERROR = "5xx"
LOCKED = "423"
HANG = "hang"
WRITE_THEN_500 = "write_then_500"
WRITE_THEN_RESET = "write_then_reset"

_ROTATING_5XX = (500, 502, 503, 504)

# Outage kinds: every request answers 503, or every connection is dropped; nothing is written.
OUTAGE_503 = "503"
OUTAGE_DROP = "drop"
OUTAGE_KINDS = (OUTAGE_503, OUTAGE_DROP)

# (start_s, duration_s, kind), start measured from the fake's start on its clock.
OutageWindow = tuple[float, float, str]


def check_outage(start_s: float, duration_s: float, kind: str) -> None:
    if kind not in OUTAGE_KINDS:
        raise ValueError(f"outage kind must be one of {OUTAGE_KINDS}, got {kind!r}")
    if not start_s >= 0 or not duration_s > 0:
        raise ValueError(f"outage needs start_s >= 0 and duration_s > 0, got {start_s, duration_s}")


@dataclass(kw_only=True)
class FaultPlan:
    """Per-request fault probabilities. The kinds are mutually exclusive (one draw per counted
    request), so their sum must be <= 1. Seeded: the same request sequence gets the same faults."""

    seed: int = 0
    p_5xx: float = 0.0  # answer 500/502/503/504 (rotating), nothing written
    p_423: float = 0.0  # 423 Locked, nothing written
    p_reset: float = 0.0  # drop the TCP connection before processing, nothing written
    p_write_then_fail: float = 0.0  # apply the writes, then 500 or a dropped connection (50/50)
    p_hang: float = 0.0  # process normally, then wait hang_seconds before answering
    hang_seconds: float = 30.0
    # Outage windows (start_s, duration_s, "503" | "drop") measured from the fake's start; they
    # take precedence over everything, auth included, as a load balancer in front would.
    outages: Sequence[OutageWindow] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        ps = (self.p_5xx, self.p_423, self.p_reset, self.p_write_then_fail, self.p_hang)
        if any(not 0.0 <= p <= 1.0 for p in ps) or sum(ps) > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities must be in [0, 1] and sum to <= 1: {ps}")
        if self.hang_seconds < 0:
            raise ValueError("hang_seconds must be >= 0")
        for start_s, duration_s, kind in self.outages:
            check_outage(start_s, duration_s, kind)

    @property
    def active(self) -> bool:
        return (self.p_5xx + self.p_423 + self.p_reset + self.p_write_then_fail + self.p_hang) > 0


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    status: int = 0  # for SERVER_ERROR / LOCKED / WRITE_THEN_500


class FaultInjector:
    """Decides the fault (if any) of each counted request."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed)
        self._n5xx = 0
        p = plan
        # Cumulative bands over one uniform draw; the order is part of the reproducibility
        # contract (same seed + same request order => same faults).
        self._bands = (
            (p.p_reset, RESET),
            (p.p_5xx, SERVER_ERROR),
            (p.p_423, LOCKED),
            (p.p_hang, HANG),
            (p.p_write_then_fail, "write_then_fail"),
        )

    def decide(self) -> Fault | None:
        if not self.plan.active:
            return None
        r = self._rng.random()
        acc = 0.0
        for p, kind in self._bands:
            acc += p
            if r < acc:
                return self._make(kind)
        return None

    def _make(self, kind: str) -> Fault:
        if kind == SERVER_ERROR:
            status = _ROTATING_5XX[self._n5xx % len(_ROTATING_5XX)]
            self._n5xx += 1
            return Fault(SERVER_ERROR, status)
        if kind == LOCKED:
            return Fault(LOCKED, 423)
        if kind == "write_then_fail":
            if self._rng.random() < 0.5:
                return Fault(WRITE_THEN_500, 500)
            return Fault(WRITE_THEN_RESET)
        return Fault(kind)


@dataclass(slots=True)
class _Window:
    start: float
    end: float  # math.inf: until end_outage()
    kind: str


class Outages:
    """Outage windows on the fake's clock: the planned ones of a FaultPlan plus those a test
    opens with ``begin``. Times are seconds since the fake started (``elapsed``)."""

    def __init__(self, planned: Sequence[OutageWindow]) -> None:
        self._windows = [_Window(s, s + d, k) for s, d, k in planned]

    def __repr__(self) -> str:
        return f"<Outages {[(w.start, w.end, w.kind) for w in self._windows]}>"

    def kind_at(self, elapsed: float) -> str | None:
        for w in self._windows:
            if w.start <= elapsed < w.end:
                return w.kind
        return None

    def begin(self, elapsed: float, duration_s: float | None, kind: str) -> None:
        """An outage from now for ``duration_s`` seconds, or until ``end_now`` when None."""
        end = math.inf if duration_s is None else elapsed + duration_s
        check_outage(elapsed, end - elapsed, kind)
        self._windows.append(_Window(elapsed, end, kind))

    def end_now(self, elapsed: float) -> None:
        """Cut short every window open at ``elapsed`` (planned ones included)."""
        for w in self._windows:
            if w.start <= elapsed < w.end:
                w.end = elapsed
