"""The HTTP value types and the transport seam.

Dialects build :class:`HttpRequest` values and read :class:`HttpResponse` values; the engine
sends them through anything that satisfies :class:`Transport`. The aiohttp implementation lives
in ``_transport``; ``bulkops.testing.MockTransport`` answers from a function, so policy and
engine tests run without sockets (the shape of httpx's ``MockTransport``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

__all__ = ["HttpRequest", "HttpResponse", "Transport", "TransportFailure"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    body: Any = None
    params: Sequence[tuple[str, str]] = ()


_UNPARSED: Any = object()


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    # The parsed body, kept once read: the policy and the dialect both look at it, and a
    # 100-record answer costs a microsecond a record to parse.
    _parsed: Any = field(default=_UNPARSED, init=False, repr=False, compare=False)

    def json(self) -> Any:
        """The parsed body, or None when it is empty or not JSON (parsed once)."""
        parsed = self._parsed
        if parsed is _UNPARSED:
            parsed = None
            if self.body:
                try:
                    parsed = orjson.loads(self.body)
                except orjson.JSONDecodeError:
                    parsed = None
            object.__setattr__(self, "_parsed", parsed)
        return parsed

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", "")).split(";")[0].strip().lower()


class TransportFailure(Exception):
    """No HTTP answer. ``kind`` is connect, timeout or reset; ``maybe_sent`` says whether the
    server may have acted on the request (what decides whether a create can be resent)."""

    def __init__(self, kind: str, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.maybe_sent = maybe_sent


class Transport(Protocol):
    """Sends one request and returns the answer, or raises :class:`TransportFailure`.

    Never follows redirects (the token must not travel to another host) and never raises
    anything else for a network problem."""

    @property
    def host(self) -> str:
        """The host requests go to, for messages and reports (no credentials, no path)."""
        ...

    # ``timeout`` is the HTTP client's own per-request limit (connect to last byte), given per
    # call so a probe or a schema read can use another; it is not a cancel scope.
    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse: ...  # noqa: ASYNC109
