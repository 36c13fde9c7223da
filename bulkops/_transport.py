"""The HTTP edge: the only module of the engine that imports aiohttp.

One reused session, orjson bodies, the Bearer token, a timeout per request. aiohttp's many
exceptions are mapped here, in one place, onto :class:`TransportFailure`, whose ``maybe_sent``
says whether HubSpot may have acted on the request: that is what decides if a create can be
resent (see ``_dispatcher``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from ._config import Secret

__all__ = ["HttpRequest", "HttpResponse", "Transport", "TransportFailure"]

_USER_AGENT = "bulkops/0.1 (+https://github.com/bulkops/bulkops)"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    body: Any = None
    params: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The parsed body, or None when it is empty or not JSON."""
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


class TransportFailure(Exception):
    """No HTTP answer. ``kind`` is connect, timeout or reset."""

    def __init__(self, kind: str, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.maybe_sent = maybe_sent


class Transport:
    def __init__(
        self, base_url: str, token: Secret, *, timeout: float = 60.0, max_connections: int = 256
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Transport:
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            headers={
                "Authorization": f"Bearer {self._token.reveal()}",
                "User-Agent": _USER_AGENT,
                "Accept": "application/json",
            },
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
            # Never send our token to another host if a proxy or server redirects us.
            trust_env=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: HttpRequest) -> HttpResponse:
        assert self._session is not None, "use Transport as an async context manager"
        url = self.base_url + request.path
        data = None if request.body is None else orjson.dumps(request.body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self._session.request(
                request.method,
                url,
                data=data,
                params=list(request.params) or None,
                headers=headers,
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                return HttpResponse(resp.status, resp.headers, body)
        # Messages name the host and path only: aiohttp's own reprs can carry request headers,
        # and with them the token.
        except aiohttp.ClientConnectorError as exc:
            raise TransportFailure(
                "connect",
                f"cannot connect to {self.base_url}: {exc.strerror or exc.os_error}",
                maybe_sent=False,
            ) from None
        except TimeoutError:
            raise TransportFailure(
                "timeout",
                f"no answer from {self.base_url} within {self._timeout.total:g}s",
                maybe_sent=True,
            ) from None
        except aiohttp.InvalidURL:
            raise TransportFailure(
                "connect", f"invalid URL {self.base_url}{request.path}", maybe_sent=False
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportFailure(
                "reset",
                f"connection to {self.base_url} broke: {type(exc).__name__}",
                maybe_sent=True,
            ) from None
