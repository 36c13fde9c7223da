"""The fake HubSpot under edge conditions, seen from a real aiohttp client on 127.0.0.1:
outage windows, read-after-write lag, daily-429 variants, wrong-server modes, whole-batch
conflicts, the request log, scripted answers and token changes. Time is a stepped clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from bulkops.testing import (
    DEFAULT_FAKE_TOKEN,
    FakeConfig,
    FakeHubSpot,
    FaultPlan,
    LoggedRequest,
    RequestLog,
    ScriptedAnswer,
)

AUTH = {"Authorization": f"Bearer {DEFAULT_FAKE_TOKEN}"}
DROPPED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)
V3 = "/crm/v3/objects/tickets/batch/"
V1_READ = "/crm-objects/v1/objects/tickets/batch-read"
PROPS = "/crm/v3/properties/tickets"


class SteppedClock:
    """The fake's clock: moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += seconds


def ticket(ext: str, trace: str | None = None) -> dict[str, Any]:
    props = {"subject": "s", "hs_pipeline": "0", "hs_pipeline_stage": "1", "external_id": ext}
    inp: dict[str, Any] = {"properties": props}
    if trace is not None:
        inp["objectWriteTraceId"] = trace
    return inp


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as s:
        yield s


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any, Any]:
    """(status, parsed body or text or None, headers); status 0 for a dropped connection."""
    try:
        async with http.post(url, data=orjson.dumps(body), headers=headers) as r:
            raw = await r.read()
            if not raw:
                return r.status, None, r.headers
            if r.content_type == "application/json":
                return r.status, orjson.loads(raw), r.headers
            return r.status, raw.decode(), r.headers
    except DROPPED:
        return 0, None, {}


async def create(http: aiohttp.ClientSession, fake: FakeHubSpot, *inputs: Any) -> tuple[int, Any]:
    status, body, _ = await post(http, fake.url + V3 + "create", {"inputs": list(inputs)})
    return status, body


# -- outages --------------------------------------------------------------------------------


async def test_planned_503_outage_answers_everything_and_writes_nothing(
    clock: SteppedClock, http: aiohttp.ClientSession
) -> None:
    plan = FaultPlan(outages=[(10.0, 5.0, "503")])
    async with FakeHubSpot(FakeConfig(clock=clock, faults=plan)) as fake:
        assert (await create(http, fake, ticket("a")))[0] == 201
        clock.step(10)
        status, body = await create(http, fake, ticket("b"))
        assert status == 503 and body["status"] == "error"
        # before auth: a load balancer in front of HubSpot answers everyone alike
        status, _, _ = await post(http, fake.url + V3 + "create", {}, {"Authorization": "x"})
        assert status == 503
        clock.step(4.9)
        assert (await create(http, fake, ticket("c")))[0] == 503
        clock.step(0.1)
        assert (await create(http, fake, ticket("d")))[0] == 201
        ext = sorted(r["properties"]["external_id"] for r in fake.records("tickets"))
        assert ext == ["a", "d"]
        assert fake.stats.faults["outage_503"] == 3
        assert fake.stats.by_status[503] == 3
        # outage answers do not use the rate window
        assert len(fake.stats.arrivals[DEFAULT_FAKE_TOKEN]) == 2


async def test_drop_outage_started_by_hand_until_ended(
    clock: SteppedClock, http: aiohttp.ClientSession
) -> None:
    async with FakeHubSpot(FakeConfig(clock=clock)) as fake:
        fake.start_outage(kind="drop")
        clock.step(3600)  # no duration: lasts until end_outage()
        assert (await create(http, fake, ticket("a")))[0] == 0
        assert fake.records("tickets") == []
        assert fake.requests[-1].status == 0
        fake.end_outage()
        assert (await create(http, fake, ticket("b")))[0] == 201


async def test_outage_with_a_duration_ends_on_the_fakes_clock(
    clock: SteppedClock, http: aiohttp.ClientSession
) -> None:
    async with FakeHubSpot(FakeConfig(clock=clock)) as fake:
        fake.start_outage(2.0, "503")
        assert (await create(http, fake, ticket("a")))[0] == 503
        clock.step(2.0)
        assert (await create(http, fake, ticket("a")))[0] == 201


async def test_end_outage_cuts_a_planned_window_short(
    clock: SteppedClock, http: aiohttp.ClientSession
) -> None:
    plan = FaultPlan(outages=[(0.0, 60.0, "drop")])
    async with FakeHubSpot(FakeConfig(clock=clock, faults=plan)) as fake:
        assert (await create(http, fake, ticket("a")))[0] == 0
        fake.end_outage()
        assert (await create(http, fake, ticket("a")))[0] == 201


def test_outage_windows_are_checked() -> None:
    with pytest.raises(ValueError, match="outage kind"):
        FaultPlan(outages=[(0.0, 1.0, "502")])
    with pytest.raises(ValueError, match="duration_s > 0"):
        FaultPlan(outages=[(5.0, 0.0, "503")])
    fake = FakeHubSpot()
    with pytest.raises(ValueError, match="outage kind"):
        fake.start_outage(1.0, "slow")


# -- read-after-write lag ---------------------------------------------------------------------


async def test_read_lag_hides_new_records_from_reads_not_from_uniqueness(
    clock: SteppedClock, http: aiohttp.ClientSession
) -> None:
    async with FakeHubSpot(FakeConfig(clock=clock, read_lag_s=2.0, rate_limit=None)) as fake:
        status, body = await create(http, fake, ticket("42"))
        assert status == 201
        rid = body["results"][0]["id"]
        by_id = {"inputs": [{"id": rid}], "properties": ["subject"]}
        by_value = {"inputs": [{"id": "42"}], "idProperty": "external_id", "properties": []}
        for read in (by_id, by_value):
            status, body, _ = await post(http, fake.url + V3 + "read", read)
            assert status == 404 and body["category"] == "OBJECT_NOT_FOUND"
        status, body, _ = await post(http, fake.url + V1_READ, {"ids": [int(rid)]})
        assert status == 200 and body == {}

        # ... yet a second create with the same unique value conflicts, naming the record
        status, body = await create(http, fake, ticket("42"))
        assert status == 409 and body["category"] == "CONFLICT"
        assert body["message"].endswith(f"external_id=42 already exists. Existing ID: {rid}")
        status, body = await create(http, fake, ticket("42", trace="t1"))
        assert status == 207
        [err] = body["errors"]
        assert err["category"] == "CONFLICT" and f"Existing ID: {rid}" in err["message"]
        assert err["context"] == {"objectWriteTraceId": ["t1"]}
        # and an upsert by that value finds it: it updates, it does not create
        upsert = {"inputs": [{"id": "42", "idProperty": "external_id", "properties": {}}]}
        status, body, _ = await post(http, fake.url + V3 + "upsert", upsert)
        assert status == 200 and body["results"][0]["new"] is False
        assert body["results"][0]["id"] == rid
        assert len(fake.records("tickets")) == 1

        clock.step(1.99)
        assert (await post(http, fake.url + V3 + "read", by_id))[0] == 404
        clock.step(0.01)
        for read in (by_id, by_value):
            status, body, _ = await post(http, fake.url + V3 + "read", read)
            assert status == 200 and body["results"][0]["id"] == rid
        status, body, _ = await post(http, fake.url + V1_READ, {"ids": [int(rid)]})
        assert list(body) == [rid]


async def test_read_lag_spares_seeded_records_and_partial_reads_say_207(
    clock: SteppedClock, http: aiohttp.ClientSession
) -> None:
    async with FakeHubSpot(FakeConfig(clock=clock, read_lag_s=5.0)) as fake:
        [old] = fake.seed_records("tickets", [ticket("old")["properties"]])
        _, body = await create(http, fake, ticket("new"))
        new = body["results"][0]["id"]
        read = {"inputs": [{"id": old}, {"id": new}], "properties": []}
        status, body, _ = await post(http, fake.url + V3 + "read", read)
        assert status == 207
        assert [r["id"] for r in body["results"]] == [old]
        assert body["errors"][0]["context"]["ids"] == [new]


async def test_read_lag_is_checked() -> None:
    with pytest.raises(ValueError, match="read_lag_s"):
        FakeConfig(read_lag_s=-1)


# -- daily 429 variants -----------------------------------------------------------------------


@pytest.mark.parametrize("style", ["policy", "message", "header"])
async def test_daily_429_styles_carry_one_sign_each(
    style: str, http: aiohttp.ClientSession
) -> None:
    cfg = FakeConfig(rate_limit=None, daily_limit=5, daily_used=5, daily_429_style=style)
    async with FakeHubSpot(cfg) as fake, http.get(fake.url + PROPS) as r:
        body, h = await r.json(), r.headers
    assert r.status == 429 and body["errorType"] == "RATE_LIMIT" and "category" not in body
    says_daily = "daily" in body["message"]
    has_header = h.get("X-HubSpot-RateLimit-Daily-Remaining") == "0"
    if style == "policy":
        assert body["policyName"] == "DAILY" and says_daily and has_header
    elif style == "message":
        assert "policyName" not in body and "groupName" not in body
        assert body["message"] == "You have reached your daily limit."
        assert not has_header and "X-HubSpot-RateLimit-Daily" not in h
    else:
        assert "policyName" not in body and "groupName" not in body
        assert not says_daily and has_header
    assert fake.stats.rate_limited["DAILY"] == 1


def test_daily_429_style_is_checked() -> None:
    with pytest.raises(ValueError, match="daily_429_style"):
        FakeConfig(daily_429_style="DAILY")


# -- wrong-server modes ------------------------------------------------------------------------


async def test_answer_html_says_200_text_html_to_everything(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeHubSpot(FakeConfig(answer_html=True)) as fake:
        status, body = await create(http, fake, ticket("a"))
        assert status == 200 and "<html>" in body
        for path in (V3 + "create", "/no/such/route", V1_READ):
            status, body, h = await post(http, fake.url + path, {}, {"Authorization": "nope"})
            assert status == 200 and h["Content-Type"].startswith("text/html")
            assert "<form" in body
        async with http.get(fake.url + PROPS) as r:
            assert r.status == 200 and r.content_type == "text/html"
        assert fake.records("tickets") == []
        assert fake.stats.by_status[200] == 5


@pytest.mark.parametrize(
    ("mode", "value"),
    [("garbage", "n/a;q=soon"), ("negative", "-5"), ("zero", "0"), ("huge", str(10**30))],
)
async def test_bad_rate_headers(mode: str, value: str, http: aiohttp.ClientSession) -> None:
    # Even with no limits configured, a wrong server's nonsense headers are there.
    cfg = FakeConfig(rate_limit=None, daily_limit=None, bad_rate_headers=mode)
    async with FakeHubSpot(cfg) as fake, http.get(fake.url + PROPS) as r:
        assert r.status == 200
        rate = {k: v for k, v in r.headers.items() if k.startswith("X-HubSpot-RateLimit-")}
    assert set(rate) == {
        "X-HubSpot-RateLimit-Max",
        "X-HubSpot-RateLimit-Remaining",
        "X-HubSpot-RateLimit-Interval-Milliseconds",
        "X-HubSpot-RateLimit-Daily",
        "X-HubSpot-RateLimit-Daily-Remaining",
    }
    assert set(rate.values()) == {value}


async def test_bad_rate_headers_still_enforce_the_real_limit(http: aiohttp.ClientSession) -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=1, bad_rate_headers="huge")) as fake:
        statuses = []
        for _ in range(2):
            async with http.get(fake.url + PROPS) as r:
                statuses.append(r.status)
                assert r.headers["X-HubSpot-RateLimit-Remaining"] == str(10**30)
    assert statuses == [200, 429]


def test_bad_rate_headers_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="bad_rate_headers"):
        FakeConfig(bad_rate_headers="weird")


# -- whole-batch conflicts on v3 create ------------------------------------------------------


async def test_create_without_trace_ids_conflict_fails_the_batch_naming_value_and_id(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=None, shuffle_results=False)) as fake:
        id42, id43 = fake.seed_records(
            "tickets", [ticket("42")["properties"], ticket("43")["properties"]]
        )
        status, body = await create(http, fake, ticket("new"), ticket("42"), ticket("43"))
        assert status == 409 and body["category"] == "CONFLICT"
        # only the first conflict is reported (docs/hubspot-api.md §4)
        expected = f"A ticket with external_id=42 already exists. Existing ID: {id42}"
        assert body["message"] == expected
        assert id43 not in orjson.dumps(body).decode()
        assert body["correlationId"]
        assert len(fake.records("tickets")) == 2  # nothing written, not even "new"


# -- request log and scripted answers ----------------------------------------------------------


async def test_request_log_records_method_path_size_and_status(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=1)) as fake:
        async with http.get(fake.url + PROPS + "?archived=false") as r:
            await r.read()
        body = orjson.dumps({"inputs": [ticket("a")]})
        async with http.post(fake.url + V3 + "create", data=body) as r:
            await r.read()
        async with http.post(fake.url + "/nowhere", data=b"{}") as r:
            await r.read()
        fake.script(4, 0)
        await post(http, fake.url + V3 + "read", {})
    log = list(fake.requests)
    assert [(e.n, e.method, e.path, e.status) for e in log] == [
        (1, "GET", PROPS, 200),
        (2, "POST", V3 + "create", 429),
        (3, "POST", "/nowhere", 404),
        (4, "POST", V3 + "read", 0),
    ]
    assert [e.body_bytes for e in log] == [0, len(body), 2, 2]
    assert fake.requests.count == 4


def test_request_log_is_a_bounded_ring() -> None:
    assert FakeHubSpot().requests.size == 10_000
    log = RequestLog(size=3)
    for _ in range(5):
        log.add(LoggedRequest(log.arrive(), "POST", "/x", 0, 200))
    assert [e.n for e in log] == [3, 4, 5] and log.count == 5 and len(log) == 3


async def test_scripted_answers_replace_the_request(http: aiohttp.ClientSession) -> None:
    script = {1: ScriptedAnswer.rate_limited("DAILY")}
    async with FakeHubSpot(FakeConfig(rate_limit=1, script=script)) as fake:
        status, body = await create(http, fake, ticket("a"))
        assert status == 429 and body["policyName"] == "DAILY" and body["correlationId"]
        fake.script(3, 500, {"message": "boom"}, {"X-Extra": "1"})
        # the scripted 429 used no window slot: this one still gets through
        assert (await create(http, fake, ticket("b")))[0] == 201
        status, body, h = await post(http, fake.url + V3 + "create", {"inputs": [ticket("c")]})
        assert (status, body, h["X-Extra"]) == (500, {"message": "boom"}, "1")
        assert [r["properties"]["external_id"] for r in fake.records("tickets")] == ["b"]
        with pytest.raises(ValueError, match="request 3 has already arrived"):
            fake.script(3, 200)
        fake.script(4, 204)
        status, body, _ = await post(http, fake.url + "/anything", {})
        assert (status, body) == (204, None)
    assert fake.stats.faults["scripted"] == 3


def test_scripted_answers_are_checked() -> None:
    with pytest.raises(ValueError, match="status"):
        ScriptedAnswer(status=42)
    with pytest.raises(ValueError, match="script: request numbers start at 1"):
        FakeConfig(script={0: ScriptedAnswer(status=500)})


# -- tokens ------------------------------------------------------------------------------------


async def test_revoked_token_gets_401() -> None:
    async with FakeHubSpot() as fake, aiohttp.ClientSession(headers=AUTH) as s:
        async with s.get(fake.url + PROPS) as r:
            assert r.status == 200
        fake.revoke_token(DEFAULT_FAKE_TOKEN)
        async with s.get(fake.url + PROPS) as r:
            body = await r.json()
            assert r.status == 401 and body["category"] == "INVALID_AUTHENTICATION"
        with pytest.raises(KeyError):
            fake.revoke_token(DEFAULT_FAKE_TOKEN)


async def test_rotated_token_keeps_the_budget(http: aiohttp.ClientSession) -> None:
    async with FakeHubSpot(FakeConfig(rate_limit=2)) as fake:
        async with http.get(fake.url + PROPS) as r:
            assert r.status == 200
        fake.rotate_token(DEFAULT_FAKE_TOKEN, "pat-test-new")
        async with http.get(fake.url + PROPS) as r:
            assert r.status == 401
        new = {"Authorization": "Bearer pat-test-new"}
        statuses = []
        for _ in range(2):
            async with http.get(fake.url + PROPS, headers=new) as r:
                statuses.append(r.status)
        assert statuses == [200, 429]  # one of the two slots was spent with the old token
        with pytest.raises(ValueError, match="already valid"):
            fake.rotate_token("pat-test-new", "pat-test-new")
