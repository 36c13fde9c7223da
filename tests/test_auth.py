"""Token providers (refresh before expiry and after a 401), custom headers, proxies, sessions."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aioresponses import aioresponses

from bulkops import ConfigError, JobConfig, Operation, Secret, run_job
from bulkops._auth import AccessToken, TokenSource, TokenUnavailable
from bulkops._config import config_to_meta
from bulkops._stats import StopReason
from bulkops._transport import AiohttpTransport, HttpRequest, TransportFailure
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

from .accounting import assert_accounted, assert_report_matches_files

URL = "http://hubspot.test"
NEW_TOKEN = "pat-test-rotated-token-0002"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tokens:
    """A provider handing out the given tokens in turn (the last one again when they run out)."""

    def __init__(self, *values: str | AccessToken) -> None:
        self.values = list(values)
        self.calls = 0

    async def token(self) -> str | AccessToken:
        self.calls += 1
        return self.values[min(self.calls, len(self.values)) - 1]


# -- the token source -------------------------------------------------------------------------


async def test_a_token_is_cached_and_fetched_again_a_margin_before_it_expires() -> None:
    clock = Clock()
    provider = Tokens(AccessToken("tok-1", expires_at=2800.0), AccessToken("tok-2", 4600.0))
    source = TokenSource(provider, refresh_margin=60, clock=clock)
    assert await source.current() == "tok-1"
    clock.now = 2739.0
    assert await source.current() == "tok-1" and provider.calls == 1
    clock.now = 2740.0  # 60 s before the expiry
    assert await source.current() == "tok-2" and provider.calls == 2


async def test_many_waiting_requests_cause_one_fetch() -> None:
    provider = Tokens("tok-1", "tok-2")
    source = TokenSource(provider)
    got: list[str] = []

    async def one() -> None:
        got.append(await source.current())

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
    assert got == ["tok-1"] * 20 and provider.calls == 1
    # Twenty requests refused together with tok-1: one new token for all of them.
    fresh = [await source.after_unauthorized("tok-1") for _ in range(20)]
    assert fresh == ["tok-2"] * 20 and provider.calls == 2


async def test_a_plain_async_function_is_a_provider() -> None:
    async def get() -> str:
        return "  tok-fn \n"

    assert await TokenSource(get).current() == "tok-fn"


async def test_a_failing_provider_is_named_by_type_and_never_shows_a_secret() -> None:
    async def broken() -> str:
        raise RuntimeError("refresh_token=rt-very-secret rejected")

    with pytest.raises(TokenUnavailable) as caught:
        await TokenSource(broken).current()
    assert str(caught.value) == "the token provider failed (RuntimeError); no request was sent"
    for bad in (None, "", "tok en"):
        with pytest.raises(TokenUnavailable, match="token"):
            await TokenSource(Tokens(bad)).current()  # type: ignore[arg-type]


def test_an_access_token_never_prints_its_value() -> None:
    token = AccessToken("tok-secret-1", expires_at=5.0)
    assert "tok-secret-1" not in repr(token) and "tok-secret-1" not in str(token)


# -- the transport ----------------------------------------------------------------------------


async def test_a_401_is_answered_by_one_fresh_token_and_one_more_try() -> None:
    provider = Tokens("tok-old", "tok-new")
    with aioresponses() as mocked:
        mocked.get(f"{URL}/x", status=401, payload={"status": "error"})
        mocked.get(f"{URL}/x", status=200, payload={"ok": True})
        async with AiohttpTransport(URL, provider) as t:
            response = await t.send(HttpRequest("GET", "/x"), timeout=5)
            assert t.token_refreshes == 1
            assert "tok" not in repr(t)
        calls = next(iter(mocked.requests.values()))
    assert response.status == 200
    sent = [call.kwargs["headers"]["Authorization"] for call in calls]
    assert sent == ["Bearer tok-old", "Bearer tok-new"]


async def test_a_static_secret_is_not_resent_after_a_401() -> None:
    with aioresponses() as mocked:
        mocked.get(f"{URL}/x", status=401, payload={})
        async with AiohttpTransport(URL, Secret("pat-static")) as t:
            assert (await t.send(HttpRequest("GET", "/x"), timeout=5)).status == 401
        assert len(next(iter(mocked.requests.values()))) == 1


async def test_a_provider_that_cannot_give_a_token_is_a_failure_before_sending() -> None:
    async def broken() -> str:
        raise OSError("token service down")

    with aioresponses() as mocked:
        async with AiohttpTransport(URL, broken) as t:
            with pytest.raises(TransportFailure) as caught:
                await t.send(HttpRequest("GET", "/x"), timeout=5)
        assert not mocked.requests
    assert caught.value.kind == "connect" and not caught.value.maybe_sent


async def test_custom_headers_go_with_every_request_and_proxy_is_used() -> None:
    with aioresponses() as mocked:
        mocked.post(f"{URL}/x", status=200, payload={})
        transport = AiohttpTransport(
            URL,
            Secret("pat-static"),
            headers={"X-Gateway-Key": "k1", "User-Agent": "etl/2"},
            proxy="http://proxy.internal:3128",
        )
        async with transport as t:
            await t.send(HttpRequest("POST", "/x", {}), timeout=5)
        (call,) = next(iter(mocked.requests.values()))
    headers = call.kwargs["headers"]
    assert headers["X-Gateway-Key"] == "k1" and headers["User-Agent"] == "etl/2"
    assert headers["Authorization"] == "Bearer pat-static"
    assert call.kwargs["proxy"] == "http://proxy.internal:3128"


async def test_a_supplied_session_is_used_and_left_open(tmp_path: Path) -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake, aiohttp.ClientSession() as session:
        config = job_config(fake, tmp_path)
        async with AiohttpTransport.from_config(config, session=session) as t:
            report = await run_job(config, tickets(30), transport=t)
        assert not session.closed
    assert report.succeeded == 30
    assert_accounted(tmp_path, 30)


# -- jobs -------------------------------------------------------------------------------------


def tickets(n: int) -> list[dict[str, str]]:
    return [{"subject": f"t{i}", "hs_pipeline": "0", "hs_pipeline_stage": "1"} for i in range(n)]


def job_config(fake: FakeHubSpot, out: Path, **kw: Any) -> JobConfig:
    kw.setdefault("token", Secret(DEFAULT_FAKE_TOKEN))
    return JobConfig(
        operation=Operation.CREATE,
        base_url=fake.url,
        out_dir=out,
        rate_limit=0,
        batch_size=10,
        **kw,
    )


async def test_a_long_job_survives_a_token_rotated_while_it_runs(tmp_path: Path) -> None:
    provider = Tokens(DEFAULT_FAKE_TOKEN, NEW_TOKEN)
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:

        async def rotate_after_five_requests() -> None:
            for _ in range(100_000):  # bounded: the job sends 21 requests
                if fake.requests.count >= 5:
                    fake.rotate_token(DEFAULT_FAKE_TOKEN, NEW_TOKEN)
                    return
                await anyio.lowlevel.checkpoint()

        report = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(rotate_after_five_requests)
            report = await run_job(job_config(fake, tmp_path, token=provider), tickets(200))
        statuses = [r.status for r in fake.requests]
    assert report is not None and report.stop is None
    assert report.succeeded == 200 and provider.calls == 2
    assert 401 in statuses  # the rotation was felt, and answered by the new token
    assert_accounted(tmp_path, 200)
    assert_report_matches_files(tmp_path)


@pytest.mark.parametrize("second", [DEFAULT_FAKE_TOKEN, "pat-test-also-revoked"])
async def test_a_second_401_stops_the_job_for_auth(tmp_path: Path, second: str) -> None:
    provider = Tokens(DEFAULT_FAKE_TOKEN, second)
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        fake.revoke_token(DEFAULT_FAKE_TOKEN)
        report = await run_job(job_config(fake, tmp_path, token=provider), tickets(20))
        sent = fake.requests.count
    assert report.stop is not None and report.stop.reason is StopReason.AUTH
    # The schema read: once, and once more only when the provider had another token.
    assert sent == (1 if second == DEFAULT_FAKE_TOKEN else 2)
    assert assert_report_matches_files(tmp_path)["status"] == "stopped"
    assert DEFAULT_FAKE_TOKEN not in (tmp_path / "report.json").read_text()


async def test_a_proxy_carries_the_requests(tmp_path: Path) -> None:
    # The fake answers absolute-form requests, so it stands in for an HTTP proxy: the base
    # URL's host does not exist, and the job only works through the proxy.
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        config = JobConfig(
            operation=Operation.CREATE,
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url="http://hubspot.invalid",
            proxy=fake.url,
            out_dir=tmp_path,
            rate_limit=0,
        )
        report = await run_job(config, tickets(15))
    assert report.succeeded == 15
    assert_accounted(tmp_path, 15)


async def test_the_environments_proxy_is_used_only_with_trust_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        monkeypatch.setenv("HTTP_PROXY", fake.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        def config(out: Path, trust_env: bool) -> JobConfig:
            return JobConfig(
                operation=Operation.CREATE,
                token=Secret(DEFAULT_FAKE_TOKEN),
                base_url="http://hubspot.invalid",
                out_dir=out,
                rate_limit=0,
                max_attempts=1,
                trust_env=trust_env,
            )

        ignored = await run_job(config(tmp_path / "off", False), tickets(5))
        trusted = await run_job(config(tmp_path / "on", True), tickets(5))
    assert ignored.stop is not None and ignored.stop.reason is StopReason.UNREACHABLE
    assert trusted.succeeded == 5
    assert_accounted(tmp_path / "on", 5)


# -- configuration ----------------------------------------------------------------------------

BASE: dict[str, Any] = {"operation": Operation.CREATE, "token": Secret("pat-test-x")}


def test_plain_strings_for_operation_and_token_are_converted_or_refused_at_once() -> None:
    config = JobConfig(operation="Create", token=" pat-test-plain ")  # type: ignore[arg-type]
    assert config.operation is Operation.CREATE
    assert config.token == Secret("pat-test-plain")
    with pytest.raises(ConfigError, match="operation 'creat' is not one of: create, "):
        JobConfig(operation="creat", token="pat-test-x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="token must be a Secret, a str or an async token"):
        JobConfig(operation=Operation.CREATE, token=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="token contains a line break") as caught:
        JobConfig(operation=Operation.CREATE, token="pat-na1\nx")  # type: ignore[arg-type]
    assert "pat-na1" not in str(caught.value)


def test_headers_are_copied_so_a_later_change_cannot_bypass_the_check() -> None:
    given = {"X-Team": "data"}
    config = JobConfig(**BASE, headers=given)
    given["Authorization"] = "Bearer other"
    assert config.headers == {"X-Team": "data"}
    assert pickle.loads(pickle.dumps(config)) == config  # still a plain, picklable value


def test_headers_cannot_carry_the_token_or_break_a_line() -> None:
    with pytest.raises(ConfigError, match="headers may not set authorization"):
        JobConfig(**BASE, headers={"authorization": "Bearer other"})
    with pytest.raises(ConfigError, match="line break"):
        JobConfig(**BASE, headers={"X-A": "1\r\nX-B: 2"})
    with pytest.raises(ConfigError, match="not a valid header name"):
        JobConfig(**BASE, headers={"X A": "1"})


def test_a_bad_proxy_is_refused_without_echoing_it_and_secrets_are_not_journaled() -> None:
    with pytest.raises(ConfigError, match="proxy must be an http") as caught:
        JobConfig(**BASE, proxy="socks5://user:hunter2@proxy:1080")
    assert "hunter2" not in str(caught.value)
    config = JobConfig(
        **BASE, proxy="http://user:hunter2@proxy:3128", headers={"X-Key": "k"}, trust_env=True
    )
    meta = config_to_meta(config)
    assert "proxy" not in meta and "headers" not in meta and meta["trust_env"] is True
    assert "hunter2" not in repr(config) and "X-Key" not in repr(config)
