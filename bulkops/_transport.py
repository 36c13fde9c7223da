"""The aiohttp transport: the only module of the engine that imports aiohttp.

One reused session, orjson bodies, the Bearer token, a timeout per request given at the call
site. aiohttp's many exceptions are mapped here, in one place, onto :class:`TransportFailure`,
whose ``maybe_sent`` says whether HubSpot may have acted on the request: that is what decides
whether a create can be resent (see ``_policy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import orjson

from ._auth import TokenLike, TokenSource, TokenUnavailable
from ._config import Secret
from ._http import HttpRequest, HttpResponse, Transport, TransportFailure

if TYPE_CHECKING:
    from ._config import JobConfig

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
    """:class:`~bulkops._http.Transport` over one aiohttp session; an async context manager.

    ``token``: a :class:`Secret`, or a token provider (see ``_auth``): asked before the token
    expires, and once after a 401, when the refused request is sent again with the new token.
    ``headers`` go with every request (they cannot replace Authorization). ``proxy``: send
    through this HTTP proxy; ``trust_env``: use the environment's proxy settings
    (``HTTPS_PROXY``...), which sends the token through that proxy too, so it is opt-in.
    ``session``: use this aiohttp session (its defaults apply, ours win; it is not closed);
    ``connector``: build our session on it (it is not closed either).
    """

    def __init__(
        self,
        base_url: str,
        token: Secret | TokenLike,
        *,
        max_connections: int = 256,
        headers: Mapping[str, str] | None = None,
        proxy: str | None = None,
        trust_env: bool = False,
        session: aiohttp.ClientSession | None = None,
        connector: aiohttp.BaseConnector | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = token if isinstance(token, Secret) else None
        self._tokens = None if isinstance(token, Secret) else TokenSource(token)
        self._max_connections = max_connections
        # Ours last: a caller's headers never replace the token or what the bodies need.
        self._headers = {"User-Agent": _USER_AGENT, "Accept": "application/json", **(headers or {})}
        self._proxy = proxy
        self._trust_env = trust_env
        self._given_session = session
        self._connector = connector
        self._session: aiohttp.ClientSession | None = None
        self.token_refreshes = 0  # 401s answered by sending again with a fresh token

    @classmethod
    def from_config(
        cls,
        config: JobConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        connector: aiohttp.BaseConnector | None = None,
    ) -> AiohttpTransport:
        """The transport a job with ``config`` uses, optionally on your session or connector;
        pass it to ``run_job(..., transport=...)`` inside ``async with``."""
        return cls(
            config.base_url,
            config.token,
            max_connections=max(config.concurrency or 0, 256),
            headers=config.headers,
            proxy=config.proxy,
            trust_env=config.trust_env,
            session=session,
            connector=connector,
        )

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc.rpartition("@")[2]

    def __repr__(self) -> str:
        via = " via proxy" if self._proxy else " via env proxy" if self._trust_env else ""
        return f"<AiohttpTransport {self.host}{via}>"

    async def __aenter__(self) -> AiohttpTransport:
        if self._given_session is not None:
            self._session = self._given_session
            return self
        connector = self._connector or aiohttp.TCPConnector(
            limit=self._max_connections, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            connector_owner=self._connector is None,
            # Off unless asked: never send our token to a proxy the environment names, nor
            # to another host if a server redirects us.
            trust_env=self._trust_env,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None and self._session is not self._given_session:
            await self._session.close()
        self._session = None

    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse:  # noqa: ASYNC109
        token = await self._token()
        response = await self._send(request, token, timeout)
        if response.status == 401 and self._tokens is not None:
            # Revoked or rotated before its expiry: one fresh token, one more try. A second
            # 401 goes to the policy, which stops the job.
            fresh = await self._fresh_token(token)
            if fresh != token:
                self.token_refreshes += 1
                response = await self._send(request, fresh, timeout)
        return response

    async def _token(self) -> str:
        if self._secret is not None:
            return self._secret.reveal()
        assert self._tokens is not None
        try:
            return await self._tokens.current()
        except TokenUnavailable as exc:
            raise TransportFailure("connect", str(exc), maybe_sent=False) from None

    async def _fresh_token(self, sent: str) -> str:
        assert self._tokens is not None
        try:
            return await self._tokens.after_unauthorized(sent)
        except TokenUnavailable:
            return sent  # no new token: the 401 stands

    async def _send(self, request: HttpRequest, token: str, timeout: float) -> HttpResponse:  # noqa: ASYNC109
        assert self._session is not None, "use AiohttpTransport as an async context manager"
        url = self.base_url + request.path
        data = None if request.body is None else orjson.dumps(request.body)
        headers = {**self._headers, "Authorization": f"Bearer {token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(
                request.method,
                url,
                data=data,
                params=list(request.params) or None,
                headers=headers,
                proxy=self._proxy,
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
