"""Request log and scripted answers of the fake HubSpot, for tests that need to see exactly what
a client sent ("the third request was a batch/read") or to force one answer ("the fifth request
gets a 429 DAILY") without a probability or a clock.

Requests are numbered from 1 in arrival order since the fake was built, every HTTP request
counted (unknown routes, 401s and 429s included), so a test can script request n knowing only
how many it has made.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bulkops.testing import _fake_bodies as B

REQUEST_LOG_SIZE = 10_000
DROP = 0  # the status of a dropped connection, in the log and in a scripted answer


class LoggedRequest(NamedTuple):
    n: int  # 1-based arrival number
    method: str
    path: str  # without the query string
    body_bytes: int  # Content-Length as sent; 0 when there was none
    status: int  # 0: the connection was dropped


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptedAnswer:
    """What request number n gets instead of being handled: nothing is counted against a rate
    limit and nothing is written. ``status=0`` drops the connection."""

    status: int
    body: Any = None  # JSON-serializable; None: no body
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status != DROP and not 100 <= self.status <= 599:
            raise ValueError(f"status must be 0 (drop) or an HTTP status, got {self.status}")

    @classmethod
    def rate_limited(cls, policy: str = "TEN_SECONDLY_ROLLING") -> ScriptedAnswer:
        """The fake's own 429 body for ``policy`` (TEN_SECONDLY_ROLLING, SECONDLY or DAILY)."""
        return cls(status=429, body=B.rate_limited(policy, 62515, 2_000_001, "scripted"))


class RequestLog:
    """The last ``size`` requests (a ring: old entries fall off) and the running count."""

    def __init__(self, size: int = REQUEST_LOG_SIZE) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=size)
        self.size = size
        self.count = 0

    def __repr__(self) -> str:
        return f"<RequestLog {self.count} requests, last {len(self._entries)} kept>"

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self._entries)

    def __getitem__(self, i: int) -> LoggedRequest:
        return self._entries[i]

    def arrive(self) -> int:
        self.count += 1
        return self.count

    def add(self, entry: LoggedRequest) -> None:
        self._entries.append(entry)


class Script:
    """Request number -> the answer it gets; each entry is used once."""

    def __init__(self, initial: Mapping[int, ScriptedAnswer]) -> None:
        self._answers: dict[int, ScriptedAnswer] = {}
        for n, answer in initial.items():
            self.add(n, answer, seen=0)

    def add(self, n: int, answer: ScriptedAnswer, *, seen: int) -> None:
        if n <= seen:
            raise ValueError(f"request {n} has already arrived ({seen} so far); script a later one")
        self._answers[n] = answer

    def take(self, n: int) -> ScriptedAnswer | None:
        return self._answers.pop(n, None) if self._answers else None
