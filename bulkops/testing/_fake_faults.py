"""Seeded fault injection for the fake HubSpot."""

from __future__ import annotations

import random
from dataclasses import dataclass

# Fault kinds as counted in FakeStats.faults.
RESET = "reset"
SERVER_ERROR = "5xx"
LOCKED = "423"
HANG = "hang"
WRITE_THEN_500 = "write_then_500"
WRITE_THEN_RESET = "write_then_reset"

_ROTATING_5XX = (500, 502, 503, 504)


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

    def __post_init__(self) -> None:
        ps = (self.p_5xx, self.p_423, self.p_reset, self.p_write_then_fail, self.p_hang)
        if any(not 0.0 <= p <= 1.0 for p in ps) or sum(ps) > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities must be in [0, 1] and sum to <= 1: {ps}")
        if self.hang_seconds < 0:
            raise ValueError("hang_seconds must be >= 0")

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
