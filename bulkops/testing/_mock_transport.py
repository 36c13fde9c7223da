"""A transport that answers from a function: engine and policy tests without sockets."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bulkops._http import HttpRequest, HttpResponse, TransportFailure

__all__ = ["Handler", "MockTransport", "TransportFailure", "json_response"]

Handler = Callable[[HttpRequest], "HttpResponse | Awaitable[HttpResponse]"]


def json_response(
    status: int, body: Any = None, headers: dict[str, str] | None = None
) -> HttpResponse:
    """An answer with a JSON body (``body=None``: empty)."""
    data = b"" if body is None else orjson.dumps(body)
    return HttpResponse(status, {"Content-Type": "application/json", **(headers or {})}, data)


class MockTransport:
    """Calls ``handler(request)`` for each request; the handler returns an
    :class:`HttpResponse` (or an awaitable of one) or raises :class:`TransportFailure`.
    ``requests`` keeps every request sent, in order."""

    def __init__(self, handler: Handler, *, host: str = "mock.invalid") -> None:
        self._handler = handler
        self._host = host
        self.requests: list[HttpRequest] = []

    @property
    def host(self) -> str:
        return self._host

    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse:  # noqa: ASYNC109
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        assert isinstance(answer, HttpResponse), "a handler returns an HttpResponse"
        return answer
