"""The aiohttp transport: the only module of the engine that imports aiohttp.

One reused session, orjson bodies, the Bearer token, a timeout per request given at the call
site. aiohttp's many exceptions are mapped here, in one place, onto :class:`TransportFailure`,
whose ``maybe_sent`` says whether HubSpot may have acted on the request: that is what decides
whether a create can be resent (see ``_policy``).
"""

from __future__ import annotations

from types import TracebackType
from urllib.parse import urlsplit

import aiohttp
import orjson

from ._config import Secret
from ._http import HttpRequest, HttpResponse, Transport, TransportFailure

__all__ = [
    "AiohttpTransport",
    "Borrowed",
    "HttpRequest",
    "HttpResponse",
    "Transport",
    "TransportFailure",
]

_USER_AGENT = "bulkops/0.1 (+https://github.com/bulkops/bulkops)"


class AiohttpTransport:
    """:class:`~bulkops._http.Transport` over one aiohttp session; an async context manager."""

    def __init__(self, base_url: str, token: Secret, *, max_connections: int = 256) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc.rpartition("@")[2]

    async def __aenter__(self) -> AiohttpTransport:
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={
                "Authorization": f"Bearer {self._token.reveal()}",
                "User-Agent": _USER_AGENT,
                "Accept": "application/json",
            },
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

    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse:  # noqa: ASYNC109
        assert self._session is not None, "use AiohttpTransport as an async context manager"
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
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                body = await resp.read()
                return HttpResponse(resp.status, resp.headers, body)
        # Messages name the host only: aiohttp's own reprs can carry request headers, and with
        # them the token.
        except aiohttp.ClientConnectorError as exc:
            raise TransportFailure(
                "connect",
                f"cannot connect to {self.host}: {exc.strerror or exc.os_error}",
                maybe_sent=False,
            ) from None
        except TimeoutError:
            raise TransportFailure(
                "timeout", f"no answer from {self.host} within {timeout:g}s", maybe_sent=True
            ) from None
        except aiohttp.InvalidURL:
            raise TransportFailure(
                "connect", f"invalid URL for {self.host}{request.path}", maybe_sent=False
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportFailure(
                "reset", f"connection to {self.host} broke: {type(exc).__name__}", maybe_sent=True
            ) from None


class Borrowed:
    """A caller's transport: used, not opened or closed."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def __aenter__(self) -> Transport:
        return self._transport

    async def __aexit__(self, *exc: object) -> None:
        return None
