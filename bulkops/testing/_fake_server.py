"""The fake HubSpot HTTP server: aiohttp app, request pipeline, public FakeHubSpot class.

Per request: scripted answer / outage / wrong-server page (``_edges``, any of them answers
alone) -> auth -> rate limit (429s are not counted) -> count arrival -> fault decision
(reset / 5xx / 423 before processing) -> parse + validate + apply -> write-then-fail ->
hang / latency -> answer. Runs on the caller's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from bulkops._loop import running_loop
from bulkops.testing import _fake_bodies as B
from bulkops.testing import _fake_faults as F
from bulkops.testing._fake_config import DEFAULT_FAKE_TOKEN, FakeConfig, FakeStats, is_dated
from bulkops.testing._fake_limits import (
    DAILY,
    TokenLimiter,
    Verdict,
    external_load,
    max_in_window,
    nonsense_rate_headers,
    reshape_daily_429,
)
from bulkops.testing._fake_log import DROP, LoggedRequest, RequestLog, Script, ScriptedAnswer
from bulkops.testing._fake_schema import MalformedBody, ObjectType, validate_props
from bulkops.testing._fake_stats import STATS_PATH, stats_json
from bulkops.testing._fake_store import Store, now_stamp
from bulkops.testing._fake_types import build_types, property_json
from bulkops.testing._fake_v1 import OPS as V1_OPS
from bulkops.testing._fake_v1 import V1
from bulkops.testing._fake_v3 import OPS as V3_OPS
from bulkops.testing._fake_v3 import V3

JSON_CT = "application/json;charset=utf-8"
# A 100-record batch is ~100 KB; leave ample room for fat property values.
CLIENT_MAX_SIZE = 64 * 1024**2

Reply = tuple[int, Any]
Work = Callable[[bytes], Reply]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What a misdirected base URL tends to reach: a login page or a catch-all that says 200.
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Sign in</title></head>"
    "<body><form method='post' action='/login'><input name='user'></form></body></html>"
)


class FakeHubSpot:
    """In-process fake of HubSpot's CRM batch APIs (see docs/hubspot-api.md §12)."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.config = cfg = config or FakeConfig()
        self.stats = FakeStats()
        self.types: dict[str, ObjectType] = build_types(cfg.schemas)
        self._clock = cfg.clock
        self._started_at = cfg.clock()
        self._store = Store(cfg.clock, cfg.read_lag_s, keep=cfg.store_records)
        self._outages = F.Outages(cfg.faults.outages)
        self._log = RequestLog()
        self._script = Script(cfg.script)
        self._rng = random.Random(cfg.seed)
        self._faults = F.FaultInjector(cfg.faults)
        self._v3 = V3(self._store, cfg, self._rng, self.stats)
        self._v1 = V1(self._store, cfg, self.stats)
        self._limiters = {
            t: TokenLimiter(
                cfg.rate_limit,
                cfg.interval_ms / 1000,
                cfg.secondly_limit,
                cfg.daily_limit,
                cfg.daily_used,
            )
            for t in cfg.tokens
        }
        self._auth_values = {f"Bearer {t}": t for t in cfg.tokens}
        # A uuid-looking correlation id without calling uuid4() per request.
        self._cid_prefix = str(uuid.uuid4())[:24]
        self._cid_n = 0
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._closing = asyncio.Event()
        self._external: list[tuple[str, int]] = []
        self._external_tasks: list[asyncio.Task[None]] = []
        self._cancelled_tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("FakeHubSpot is not started")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("FakeHubSpot is already started")
        app = web.Application(client_max_size=CLIENT_MAX_SIZE, middlewares=[self._edges])
        r = app.router
        # One store, one router: the dated paths (/crm/objects/2026-09/...) and the v3 ones
        # reach the same handlers, which are told the version the path names.
        r.add_post("/crm/v3/objects/{object_type}/batch/{op}", self._h_v3)
        r.add_post("/crm/objects/{version}/{object_type}/batch/{op}", self._h_v3)
        r.add_post("/crm-objects/v1/objects/tickets/{op}", self._h_v1)
        r.add_get("/crm/v3/properties/{object_type}", self._h_properties)
        r.add_get("/crm/properties/{version}/{object_type}", self._h_properties)
        r.add_get(STATS_PATH, self._h_stats)
        r.add_route("*", "/{tail:.*}", self._h_unknown)
        # No access log: per-request logging costs more than the handler at 1000+ req/s.
        # A short shutdown timeout: hanging handlers are released by _closing anyway.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self._closing.clear()
        self._started_at = self._clock()  # outage windows are measured from here
        bound = runner.addresses[0]
        self._url = f"http://{host}:{bound[1]}"
        for token, per_interval in self._external:
            self._spawn_external(token, per_interval)
        return self._url

    async def stop(self) -> None:
        self._closing.set()
        self.stop_external_load()
        cancelled, self._cancelled_tasks = self._cancelled_tasks, []
        await asyncio.gather(*cancelled, return_exceptions=True)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeHubSpot:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- test helpers ----------------------------------------------------------------------

    def _type(self, object_type: str) -> ObjectType:
        ot = self.types.get(object_type)
        if ot is None:
            raise KeyError(f"unknown object type {object_type!r}")
        return ot

    def records(self, object_type: str, *, include_archived: bool = False) -> list[dict[str, Any]]:
        """Stored records as {"id", "properties", "createdAt", "updatedAt", "archived",
        ["archivedAt"], ["associations"]} (copies; properties include system values)."""
        table = self._store.table(self._type(object_type))
        return [
            table.to_dict(rid)
            for rid in table.by_id
            if include_archived or rid not in table.archived
        ]

    def record(self, object_type: str, record_id: str) -> dict[str, Any] | None:
        table = self._store.table(self._type(object_type))
        return table.to_dict(record_id) if record_id in table.by_id else None

    def stored(self, object_type: str, record_id: str) -> dict[str, Any]:
        """The record with this id; raises ``KeyError`` when there is none."""
        found = self.record(object_type, record_id)
        if found is None:
            raise KeyError(f"no {object_type} record {record_id}")
        return found

    def seed_records(self, object_type: str, records: Iterable[Mapping[str, str]]) -> list[str]:
        """Pre-populate (validated like a create, uniqueness enforced; not counted in stats)."""
        if not self.config.store_records:
            raise ValueError("seed_records needs the store: this fake has store_records=False")
        ot = self._type(object_type)
        table = self._store.table(ot)
        iso = now_stamp()[0]
        ids = []
        for values in records:
            clean, problems = validate_props(ot, dict(values), creating=True)
            if problems:
                raise ValueError(f"invalid seed record {dict(values)!r}: {problems}")
            for p in ot.unique_props:
                v = clean.get(p)
                if v and v in table.unique[p]:
                    raise ValueError(f"seed record clashes on unique {p}={v}")
            rid = self._store.new_id()
            table.create(rid, clean, iso, lagged=False)  # old data: no read lag
            ids.append(rid)
        return ids

    def add_external_load(self, per_interval: int, token: str = DEFAULT_FAKE_TOKEN) -> None:
        """Simulate another integration on the same token: ``per_interval`` evenly spaced
        requests per interval, counted in the window (and daily) but not sent over HTTP."""
        if per_interval <= 0:
            raise ValueError("per_interval must be > 0")
        if token not in self._limiters:
            raise KeyError(f"unknown token {token!r}")
        self._external.append((token, per_interval))
        if self._runner is not None:
            self._spawn_external(token, per_interval)

    def _spawn_external(self, token: str, per_interval: int) -> None:
        task = asyncio.get_running_loop().create_task(
            external_load(self._limiters[token], per_interval, self._clock)
        )
        self._external_tasks.append(task)

    def stop_external_load(self) -> None:
        self._external.clear()
        for t in self._external_tasks:
            t.cancel()
        # stop() awaits them, so no task is left pending when the loop closes
        self._cancelled_tasks.extend(self._external_tasks)
        self._external_tasks.clear()

    def new_day(self, token: str = DEFAULT_FAKE_TOKEN) -> None:
        """Midnight in the account's time zone: the daily quota starts over."""
        self._limiters[token].daily_used = 0

    def max_requests_in_window(
        self, window_s: float | None = None, token: str = DEFAULT_FAKE_TOKEN
    ) -> int:
        """Most of our counted HTTP requests (external load excluded) in any rolling window."""
        window = self.config.interval_ms / 1000 if window_s is None else window_s
        return max_in_window(self.stats.arrivals.get(token, []), window)

    # -- edge conditions (tests and benchmarks drive these) ---------------------------------

    @property
    def requests(self) -> RequestLog:
        """The last 10,000 requests: (n, method, path, body_bytes, status), oldest first;
        ``.count`` is the number of requests so far."""
        return self._log

    def script(
        self,
        n: int,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Request number ``n`` (from 1; see ``requests.count``) gets this answer instead of
        being handled: not rate-counted, nothing written. ``status=0`` drops the connection."""
        answer = ScriptedAnswer(status=status, body=body, headers=dict(headers or {}))
        self._script.add(n, answer, seen=self._log.count)

    def start_outage(self, duration_s: float | None = None, kind: str = F.OUTAGE_503) -> None:
        """From now on every request answers 503 (``kind="503"``) or has its connection
        dropped (``"drop"``), nothing written, for ``duration_s`` seconds of the fake's clock
        or until ``end_outage()``."""
        self._outages.begin(self._elapsed(), duration_s, kind)

    def end_outage(self) -> None:
        """End every outage in progress, planned (FaultPlan.outages) or started by hand."""
        self._outages.end_now(self._elapsed())

    def revoke_token(self, token: str) -> None:
        """From now on ``token`` gets 401 INVALID_AUTHENTICATION."""
        if self._auth_values.pop(f"Bearer {token}", None) is None:
            raise KeyError("that token is not valid here")  # never echo a token

    def rotate_token(self, old: str, new: str) -> None:
        """Revoke ``old`` and accept ``new`` in its place, with the same rate-limit budget
        (the same private app, a new secret)."""
        if f"Bearer {new}" in self._auth_values:
            raise ValueError("the new token is already valid here")
        self.revoke_token(old)
        self._limiters[new] = self._limiters[old]
        self._auth_values[f"Bearer {new}"] = new

    def _elapsed(self) -> float:
        return self._clock() - self._started_at

    # -- response helpers ------------------------------------------------------------------

    def _cid(self) -> str:
        self._cid_n += 1
        return f"{self._cid_prefix}{self._cid_n:012x}"

    def _respond(
        self, status: int, data: bytes | None, cid: str, extra: dict[str, str] | None = None
    ) -> web.Response:
        headers = {"X-HubSpot-Correlation-Id": cid}
        if extra:
            headers.update(extra)
        self.stats.by_status[status] += 1
        if data is None:
            return web.Response(status=status, headers=headers)
        headers["Content-Type"] = JSON_CT
        return web.Response(status=status, body=data, headers=headers)

    def _rate_headers(self, v: Verdict) -> dict[str, str]:
        cfg = self.config
        h: dict[str, str] = {}
        if v.window_remaining is not None:
            h["X-HubSpot-RateLimit-Max"] = str(cfg.rate_limit)
            h["X-HubSpot-RateLimit-Remaining"] = str(v.window_remaining)
            h["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(cfg.interval_ms)
        if v.secondly_remaining is not None:
            h["X-HubSpot-RateLimit-Secondly"] = str(cfg.secondly_limit)
            h["X-HubSpot-RateLimit-Secondly-Remaining"] = str(v.secondly_remaining)
        if v.daily_remaining is not None:
            h["X-HubSpot-RateLimit-Daily"] = str(cfg.daily_limit)
            h["X-HubSpot-RateLimit-Daily-Remaining"] = str(v.daily_remaining)
        if cfg.bad_rate_headers is not None:
            nonsense_rate_headers(cfg.bad_rate_headers, h)
        return h

    @staticmethod
    def _dump(body: Any, cid: str) -> bytes | None:
        if body is None:
            return None
        if type(body) is dict and "correlationId" in body:
            body["correlationId"] = cid
        return orjson.dumps(body)

    async def _pause(self, seconds: float) -> None:
        # Ends early when the server stops, so a hang never outlives the fake.
        if seconds > 0 and not self._closing.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)

    async def _latency(self) -> None:
        lo, hi = self.config.latency
        if hi > 0:
            await self._pause(self._rng.uniform(lo, hi))

    def _drop(self, request: web.Request) -> web.Response:
        # Abort the socket; aiohttp's attempt to write the returned response then fails
        # quietly (ConnectionError) and the client sees the connection die with no answer.
        self.stats.by_status[0] += 1
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500)

    # -- the pipeline ----------------------------------------------------------------------

    @web.middleware
    async def _edges(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every request, any route: number it, answer it from the script, the outage or the
        wrong-server page if one applies (before auth: those stand in front of HubSpot), else
        hand it on; then log it. The stats route is the test's, not HubSpot's: none of that."""
        if request.path == STATS_PATH:
            return await handler(request)
        n = self._log.arrive()
        answer = self._script.take(n)
        outage = None if answer is not None else self._outages.kind_at(self._elapsed())
        response: web.StreamResponse
        try:
            if answer is not None:
                response = self._scripted(request, answer)
            elif outage is not None:
                response = self._outage(request, outage)
            elif self.config.answer_html:
                self.stats.requests += 1
                self.stats.by_status[200] += 1
                response = web.Response(text=HTML_PAGE, content_type="text/html")
            else:
                response = await handler(request)
        except web.HTTPException as exc:
            self._log_request(n, request, exc.status)
            raise
        transport = request.transport
        dropped = transport is None or transport.is_closing()
        self._log_request(n, request, DROP if dropped else response.status)
        return response

    def _log_request(self, n: int, request: web.Request, status: int) -> None:
        size = request.content_length or 0
        self._log.add(LoggedRequest(n, request.method, request.path, size, status))

    def _scripted(self, request: web.Request, answer: ScriptedAnswer) -> web.Response:
        self.stats.requests += 1
        self.stats.faults["scripted"] += 1
        if answer.status == DROP:
            return self._drop(request)
        cid = self._cid()
        return self._respond(answer.status, self._dump(answer.body, cid), cid, dict(answer.headers))

    def _outage(self, request: web.Request, kind: str) -> web.Response:
        self.stats.requests += 1
        self.stats.faults[f"outage_{kind}"] += 1
        if kind == F.OUTAGE_DROP:
            return self._drop(request)
        cid = self._cid()
        return self._respond(503, self._dump(B.error(B.SERVER_ERROR_MESSAGES[503]), cid), cid)

    async def _pipeline(self, request: web.Request, endpoint: str, work: Work) -> web.Response:
        stats = self.stats
        stats.requests += 1
        stats.by_endpoint[endpoint] += 1
        stats.paths[request.path] += 1
        cid = self._cid()
        token = self._auth_values.get(request.headers.get("Authorization", ""))
        if token is None:
            body = B.error(B.AUTH_MESSAGE, "INVALID_AUTHENTICATION")
            extra = {"X-HubSpot-Auth-Failure": "401 Unauthorized"}
            return self._respond(401, self._dump(body, cid), cid, extra)

        now = self._clock()
        verdict = self._limiters[token].arrive(now)
        headers = self._rate_headers(verdict)
        if verdict.policy is not None:
            stats.rate_limited[verdict.policy] += 1
            body = B.rate_limited(
                verdict.policy, self.config.portal_id, self.config.app_id, str(uuid.uuid4())
            )
            if self.config.retry_after_on_429 and verdict.retry_after_s is not None:
                headers["Retry-After"] = str(verdict.retry_after_s)
            if verdict.policy == DAILY:
                reshape_daily_429(self.config.daily_429_style, body, headers)
            await self._latency()
            return self._respond(429, self._dump(body, cid), cid, headers)
        arrivals = stats.arrivals.get(token)
        if arrivals is None:
            arrivals = stats.arrivals[token] = []
        arrivals.append(now)

        fault = self._faults.decide()
        if fault is not None:
            stats.faults[fault.kind] += 1
            if fault.kind == F.RESET:
                return self._drop(request)
            if fault.kind in (F.SERVER_ERROR, F.LOCKED):
                await self._latency()
                body = B.error(B.SERVER_ERROR_MESSAGES[fault.status])
                return self._respond(fault.status, self._dump(body, cid), cid, headers)

        raw = await request.read()
        # From here to the answer there is no await until the body is serialized, so a
        # batch is applied atomically and result dicts may reference stored values.
        try:
            status, body = work(raw)
        except MalformedBody as exc:
            status, body = 400, B.malformed(str(exc))
        data = self._dump(body, cid)

        if fault is not None:
            if fault.kind == F.WRITE_THEN_RESET:
                return self._drop(request)
            if fault.kind == F.WRITE_THEN_500:
                await self._latency()
                err = self._dump(B.error(B.SERVER_ERROR_MESSAGES[500]), cid)
                return self._respond(500, err, cid, headers)
            if fault.kind == F.HANG:
                await self._pause(self.config.faults.hang_seconds)
        await self._latency()
        return self._respond(status, data, cid, headers)

    def _parse(self, raw: bytes) -> Any:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedBody(f"Unexpected character ({exc.msg})") from None

    # -- handlers --------------------------------------------------------------------------

    def _version(self, request: web.Request) -> str | None:
        """The version the path names, if this fake serves it."""
        version = request.match_info.get("version")
        if version is None:
            version = "v3"
        elif not is_dated(version):
            return None  # /crm/objects/v3/... is no path of HubSpot's
        return version if version in self.config.api_versions else None

    async def _h_v3(self, request: web.Request) -> web.Response:
        raw_type = request.match_info["object_type"]
        op = request.match_info["op"]
        version = self._version(request)
        if op not in V3_OPS or version is None:
            return await self._h_unknown(request)
        ot = self.types.get(raw_type)
        archived = request.query.get("archived", "false").lower() == "true"

        def work(raw: bytes) -> Reply:
            if ot is None:
                return 400, B.unknown_object_type(raw_type)
            return self._v3.handle(ot, op, self._parse(raw), archived, version)

        name = ot.name if ot is not None else raw_type
        return await self._pipeline(request, f"v3 {name} {op}", work)

    async def _h_v1(self, request: web.Request) -> web.Response:
        op = request.match_info["op"]
        if op not in V1_OPS or "v1" not in self.config.api_versions:
            return await self._h_unknown(request)
        ot = self.types["tickets"]
        query_props = request.query.getall("properties", [])

        def work(raw: bytes) -> Reply:
            return self._v1.handle(ot, op, self._parse(raw), query_props)

        return await self._pipeline(request, f"v1 tickets {op}", work)

    async def _h_properties(self, request: web.Request) -> web.Response:
        raw_type = request.match_info["object_type"]
        if self._version(request) is None:
            return await self._h_unknown(request)
        ot = self.types.get(raw_type)

        def work(raw: bytes) -> Reply:
            # The dated properties API answers in the v3 shape (§14: same bodies).
            if ot is None:
                return 400, B.unknown_object_type(raw_type)
            return 200, {"results": [property_json(ot, p) for p in ot.properties]}

        name = ot.name if ot is not None else raw_type
        return await self._pipeline(request, f"v3 {name} properties", work)

    async def _h_stats(self, request: web.Request) -> web.Response:
        body = stats_json(
            self.stats,
            requests_seen=self._log.count,
            counts_duplicates=self.config.store_records,
        )
        # Which event loop serves (fake-server --loop): "uvloop", "asyncio" or another's.
        body["loop"] = running_loop()
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _h_unknown(self, request: web.Request) -> web.Response:
        # Unknown routes are answered before auth and not counted against any limit.
        self.stats.requests += 1
        self.stats.by_endpoint["unknown"] += 1
        self.stats.paths[request.path] += 1
        cid = self._cid()
        body = B.error(f"No route found for {request.method} {request.path}")
        return self._respond(404, self._dump(body, cid), cid)
