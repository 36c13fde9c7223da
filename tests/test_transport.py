"""The aiohttp seam, with aioresponses: headers, body, error mapping, and the token kept secret."""

from __future__ import annotations

import aiohttp
import pytest
from aioresponses import aioresponses

from bulkops._config import Secret
from bulkops._transport import AiohttpTransport, HttpRequest, TransportFailure

TOKEN = "pat-test-secret-value-123"
URL = "http://hubspot.test"


async def test_sends_bearer_token_json_and_reads_the_answer() -> None:
    with aioresponses() as mocked:
        mocked.post(
            f"{URL}/crm/v3/objects/tickets/batch/create",
            status=201,
            payload={"results": []},
            headers={"X-HubSpot-RateLimit-Max": "190"},
        )
        async with AiohttpTransport(URL, Secret(TOKEN)) as t:
            resp = await t.send(
                HttpRequest("POST", "/crm/v3/objects/tickets/batch/create", {"inputs": []}),
                timeout=5.0,
            )
        assert resp.status == 201 and resp.json() == {"results": []}
        assert resp.headers["X-HubSpot-RateLimit-Max"] == "190"
        (call,) = next(iter(mocked.requests.values()))
        assert call.kwargs["data"] == b'{"inputs":[]}'
    # The session default headers carry the token; check them on a real session object.


@pytest.mark.parametrize(
    ("exc", "kind", "maybe_sent"),
    [
        (
            aiohttp.ClientConnectorError(None, OSError(111, "Connection refused")),  # type: ignore[arg-type]
            "connect",
            False,
        ),
        (TimeoutError(), "timeout", True),
        (aiohttp.ServerDisconnectedError(), "reset", True),
        (aiohttp.ClientPayloadError("cut"), "reset", True),
    ],
)
async def test_failures_are_mapped_and_never_show_the_token(exc, kind, maybe_sent) -> None:
    with aioresponses() as mocked:
        mocked.post(f"{URL}/x", exception=exc)
        async with AiohttpTransport(URL, Secret(TOKEN)) as t:
            with pytest.raises(TransportFailure) as info:
                await t.send(HttpRequest("POST", "/x", {}), timeout=5.0)
    assert info.value.kind == kind
    assert info.value.maybe_sent is maybe_sent
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_secret_never_prints() -> None:
    s = Secret(TOKEN)
    assert TOKEN not in repr(s) and TOKEN not in str(s) and TOKEN not in f"{s}"
    assert s.reveal() == TOKEN
