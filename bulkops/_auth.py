"""Where the access token comes from: a static :class:`Secret`, or a provider asked again
before the token expires and once after a 401.

HubSpot's OAuth access tokens last 30 minutes, so a long job outlives the token it started
with. A provider is any of

* an async function returning the token (``async def get() -> str``), or an
  :class:`AccessToken` that also says when it expires;
* an object with ``async def token(self) -> str | AccessToken`` (:class:`TokenProvider`).

:class:`TokenSource` caches the token, asks the provider again ``refresh_margin`` seconds
before the expiry it was told, and after a 401 (the token was revoked or rotated early); one
provider call at a time, however many requests wait. It lives in the transport, so the policy
stays pure: a request refused with 401 is sent once more with the fresh token, and a second
401 reaches the policy, which stops the job (AUTH). Token values never appear in reprs or
messages.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import anyio

from ._checks import check_token_text
from ._errors import ConfigError

__all__ = [
    "AccessToken",
    "TokenFunction",
    "TokenLike",
    "TokenProvider",
    "TokenSource",
    "TokenUnavailable",
]

DEFAULT_REFRESH_MARGIN_S = 60.0


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A token and, when known, when it expires (``time.time()`` seconds)."""

    value: str = field(repr=False)
    expires_at: float | None = None

    def __repr__(self) -> str:
        return f"AccessToken('***', expires_at={self.expires_at!r})"


@runtime_checkable
class TokenProvider(Protocol):
    """An object that fetches access tokens, e.g. by an OAuth refresh-token grant."""

    async def token(self) -> str | AccessToken: ...


TokenFunction = Callable[[], Awaitable["str | AccessToken"]]
TokenLike = TokenProvider | TokenFunction


class TokenUnavailable(Exception):
    """The provider raised or gave something that is not a token; the message says which,
    never what it returned."""


class TokenSource:
    """The current token of a job: cached, refreshed before expiry and after a 401."""

    def __init__(
        self,
        provider: TokenLike,
        *,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch: TokenFunction = (
            provider.token if isinstance(provider, TokenProvider) else provider
        )
        self._margin = refresh_margin
        self._clock = clock
        self._value: str | None = None
        self._expires_at: float | None = None
        self._lock = anyio.Lock()
        self.fetches = 0  # provider calls so far (for tests and the report)

    async def current(self) -> str:
        """The token to send now: the cached one, unless it expires within the margin."""
        value = self._value
        if value is not None and not self._expiring():
            return value
        async with self._lock:
            if self._value is None or self._expiring():
                await self._fetch_new()
            assert self._value is not None
            return self._value

    async def after_unauthorized(self, sent: str) -> str:
        """A fresh token after ``sent`` was refused with 401; the same one when the provider
        has no other (then the 401 stands). Requests refused together fetch only once."""
        async with self._lock:
            if self._value == sent:
                await self._fetch_new()
            assert self._value is not None
            return self._value

    def _expiring(self) -> bool:
        expires_at = self._expires_at
        return expires_at is not None and self._clock() >= expires_at - self._margin

    async def _fetch_new(self) -> None:
        self.fetches += 1
        try:
            got = await self._fetch()
        except Exception as exc:  # the provider's own failure, named by its type only
            raise TokenUnavailable(
                f"the token provider failed ({type(exc).__name__}); no request was sent"
            ) from None
        if isinstance(got, AccessToken):
            value, expires_at = got.value, got.expires_at
        else:
            value, expires_at = got, None
        if not isinstance(value, str) or not value.strip():
            raise TokenUnavailable(
                f"the token provider returned {type(value).__name__}, not a token string"
            )
        value = value.strip()
        try:
            check_token_text(value, source="the token provider's token")
        except ConfigError as exc:
            raise TokenUnavailable(str(exc)) from None
        self._value, self._expires_at = value, expires_at

    def __repr__(self) -> str:
        state = "empty" if self._value is None else f"expires_at={self._expires_at!r}"
        return f"<TokenSource {state}, {self.fetches} fetches>"


def is_token_provider(value: object) -> bool:
    """Whether ``value`` can be a provider (an object with ``token()``, or a callable)."""
    return isinstance(value, TokenProvider) or callable(value)
