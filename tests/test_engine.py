"""The engine through ``MockTransport``: every branch of the answer policy end to end, without
sockets, with the accounting invariant on every job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulkops import JobConfig, Operation, Secret, run_job
from bulkops._engine import Job, Mode
from bulkops._http import HttpRequest, HttpResponse, TransportFailure
from bulkops.testing import json_response

from .accounting import assert_accounted, assert_report_matches_files, read_jsonl
from .mockhub import MockHub, tickets

TOKEN = "pat-test-engine-test-token"


def config(out: Path, op: Operation = Operation.CREATE, **kw: Any) -> JobConfig:
    kw.setdefault("rate_limit", 0)
    kw.setdefault("backoff_base", 0.001)
    kw.setdefault("backoff_cap", 0.002)
    return JobConfig(
        operation=op, token=Secret(TOKEN), base_url="http://hub.test", out_dir=out, **kw
    )


def rate_limited(policy: str | None, message: str = "", **headers: str) -> HttpResponse:
    body: dict[str, Any] = {"status": "error", "message": message, "errorType": "RATE_LIMIT"}
    if policy:
        body["policyName"] = policy
    return json_response(429, body, headers)


async def test_a_clean_create_job_settles_every_row(tmp_path: Path) -> None:
    hub = MockHub()
    report = await run_job(config(tmp_path), tickets(250), transport=hub.transport)
    ok, _ = assert_accounted(tmp_path, 250)
    assert report.exit_code == 0 and hub.creates == 250
    assert {line["id"] for line in ok.values()} == set(hub.records)
    assert report.requests.by_kind == {"schema": 1, "write": 3}
    assert report.job.host == "hub.test"


async def test_a_refused_connection_after_a_good_schema_read_is_transient(tmp_path: Path) -> None:
    """Only a job that never had an answer may treat "cannot connect" as fatal."""
    hub = MockHub()
    hub.script[2] = TransportFailure("connect", "cannot connect to hub.test", maybe_sent=False)
    report = await run_job(config(tmp_path), tickets(50), transport=hub.transport)
    assert_accounted(tmp_path, 50)
    assert report.stop is None and report.exit_code == 0 and hub.creates == 50


async def test_cannot_connect_before_any_answer_stops_unreachable(tmp_path: Path) -> None:
    hub = MockHub()
    hub.always = lambda _: (_ for _ in ()).throw(
        TransportFailure("connect", "cannot connect to hub.test: refused", maybe_sent=False)
    )
    report = await run_job(config(tmp_path), tickets(10), transport=hub.transport)
    assert report.stop_reason == "unreachable" and report.exit_code == 2
    assert len(hub.requests) == 1  # the schema read, through the same path, once


async def test_a_schema_read_that_keeps_failing_lets_the_job_run(tmp_path: Path) -> None:
    hub = MockHub()
    for n in range(1, 7):
        hub.script[n] = json_response(502, {"status": "error", "message": "Bad Gateway"})
    report = await run_job(config(tmp_path), tickets(20), transport=hub.transport)
    assert_accounted(tmp_path, 20)
    assert report.requests.by_kind["schema"] == 6 and report.exit_code == 0


async def test_retries_run_out_as_retries_exhausted(tmp_path: Path) -> None:
    hub = MockHub()
    hub.always = lambda r: json_response(423, {"message": "locked"}) if "batch" in r.path else None
    report = await run_job(config(tmp_path, max_attempts=3), tickets(5), transport=hub.transport)
    _, bad = assert_accounted(tmp_path, 5)
    assert {b["error"]["category"] for b in bad.values()} == {"RETRIES_EXHAUSTED"}
    assert {b["attempts"] for b in bad.values()} == {3}
    assert report.exit_code == 1


async def test_a_2xx_that_does_not_mention_a_record_is_unaccounted(tmp_path: Path) -> None:
    hub = MockHub()

    def silent(request: HttpRequest) -> HttpResponse | None:
        if request.path.endswith("/batch/update"):
            return json_response(200, {"status": "COMPLETE", "results": []})
        return None

    hub.always = silent
    rows = [{"id": str(n), "subject": "x"} for n in range(1, 4)]
    report = await run_job(
        config(tmp_path, Operation.UPDATE, max_attempts=2), rows, transport=hub.transport
    )
    _, bad = assert_accounted(tmp_path, 3)
    assert {b["error"]["category"] for b in bad.values()} == {"UNACCOUNTED"}
    assert report.exit_code == 1


async def test_a_401_mid_job_stops_and_the_report_equals_the_files(tmp_path: Path) -> None:
    hub = MockHub()
    hub.script[4] = json_response(
        401, {"status": "error", "message": "expired", "category": "INVALID_AUTHENTICATION"}
    )
    report = await run_job(config(tmp_path, concurrency=1), tickets(500), transport=hub.transport)
    data = assert_report_matches_files(tmp_path)
    assert report.stop_reason == "auth" and report.exit_code == 3
    assert data["status"] == "stopped" and data["rows"]["succeeded"] == 200
    # Never a ratio over nothing: a run shorter than one window claims no share of it.
    assert data["rate_limit"]["share_of_ceiling"] is None
    assert TOKEN not in (tmp_path / "report.json").read_text()


async def test_a_fatal_answer_stops_the_job_as_a_config_error(tmp_path: Path) -> None:
    hub = MockHub()
    hub.always = lambda r: (
        json_response(400, {"status": "error", "message": "Unable to infer object type from: x"})
        if "batch" in r.path
        else None
    )
    report = await run_job(config(tmp_path, preflight=False), tickets(5), transport=hub.transport)
    assert report.stop_reason == "config" and report.exit_code == 2


async def test_an_html_page_on_the_first_answer_is_not_hubspot(tmp_path: Path) -> None:
    hub = MockHub()
    page = HttpResponse(200, {"Content-Type": "text/html"}, b"<html>login</html>")
    hub.always = lambda _: page
    for preflight in (True, False):
        out = tmp_path / str(preflight)
        report = await run_job(
            config(out, preflight=preflight), tickets(30, unique=False), transport=hub.transport
        )
        assert report.stop_reason == "not_hubspot" and report.exit_code == 2
        assert report.stop is not None and "hub.test answered 200 text/html" in report.stop.message
        assert read_jsonl(out / "failed.jsonl") == []  # no row burnt


async def test_a_daily_429_without_policy_name_stops(tmp_path: Path) -> None:
    for answer in (
        rate_limited(None, "You have reached your daily limit."),
        rate_limited(None, "limit", **{"X-HubSpot-RateLimit-Daily-Remaining": "0"}),
    ):
        hub = MockHub()
        hub.script[3] = answer
        out = tmp_path / str(id(answer))
        report = await run_job(config(out, concurrency=1), tickets(300), transport=hub.transport)
        assert report.stop_reason == "daily_limit" and report.exit_code == 3
        assert len(hub.requests) == 3
        assert_report_matches_files(out)


async def test_a_429_that_never_ends_stops_resumable(tmp_path: Path) -> None:
    hub = MockHub()
    hub.always = lambda r: rate_limited("TEN_SECONDLY_ROLLING") if "batch" in r.path else None
    with anyio.fail_after(30):
        report = await run_job(
            config(tmp_path, throttled_timeout=0.2), tickets(10), transport=hub.transport
        )
    assert report.stop_reason == "rate_limited" and report.exit_code == 3
    assert_report_matches_files(tmp_path)


async def test_the_outage_gate_holds_batches_and_probes(tmp_path: Path) -> None:
    """When every request fails, no record spends an attempt: the job waits, probing with a
    read, and goes on when HubSpot is back."""
    hub = MockHub()
    down = {"until": 40}

    def outage(request: HttpRequest) -> HttpResponse | None:
        if hub.n <= down["until"] and hub.n > 1:
            return json_response(503, {"status": "error", "message": "Service Unavailable"})
        return None

    hub.always = outage
    report = await run_job(
        config(tmp_path, id_property="external_id"),
        tickets(300),
        transport=hub.transport,
    )
    _ok, bad = assert_accounted(tmp_path, 300)
    assert not bad and hub.creates == 300
    assert report.requests.by_kind.get("probe", 0) >= 1
    assert report.stop is None


async def test_an_outage_that_lasts_stops_resumable(tmp_path: Path) -> None:
    hub = MockHub()
    hub.always = lambda r: (
        TransportFailure("reset", "connection broke", maybe_sent=True) if hub.n > 1 else None
    )
    report = await run_job(
        config(tmp_path, outage_timeout=0.2, id_property="external_id"),
        tickets(300),
        transport=hub.transport,
    )
    assert report.stop_reason == "outage" and report.exit_code == 3
    data = assert_report_matches_files(tmp_path)
    # Creates in flight when it went down are read back later; nothing burnt as AMBIGUOUS.
    assert data["failed_by_category"] == {}


async def test_a_conflict_after_an_unknown_create_is_settled_as_created(tmp_path: Path) -> None:
    """Reads lag writes: the read-back finds nothing, the re-create says "already exists":
    the record was created by the first attempt."""
    hub = MockHub()
    hub.write_then.add(2)  # the first create batch is written, then answered 500

    def lagging(request: HttpRequest) -> HttpResponse | None:
        if request.path.endswith("/batch/read"):
            hub.hidden.update(hub.records)  # the read-back does not see them yet
        return None

    hub.always = lagging
    report = await run_job(
        config(tmp_path, id_property="external_id"), tickets(100), transport=hub.transport
    )
    ok, bad = assert_accounted(tmp_path, 100)
    assert not bad and hub.creates == 100
    assert {line["id"] for line in ok.values()} == set(hub.records)
    assert report.exit_code == 0


async def test_a_whole_batch_conflict_isolates_by_the_value(tmp_path: Path) -> None:
    hub = MockHub()
    hub.by_unique.update({f"ext-{n}": str(900 + n) for n in (3, 50, 77)})
    for n in (3, 50, 77):
        hub.records[str(900 + n)] = {"external_id": f"ext-{n}"}

    def whole_batch(request: HttpRequest) -> HttpResponse | None:
        if not request.path.endswith("/batch/create"):
            return None
        for entry in request.body["inputs"]:
            ext = entry["properties"].get("external_id")
            if ext in hub.by_unique:
                return json_response(
                    409,
                    {
                        "status": "error",
                        "category": "CONFLICT",
                        "message": f"A ticket with external_id={ext} already exists. "
                        f"Existing ID: {hub.by_unique[ext]}",
                    },
                )
        return None

    hub.always = whole_batch
    report = await run_job(
        config(tmp_path, id_property="external_id"), tickets(100), transport=hub.transport
    )
    _ok, bad = assert_accounted(tmp_path, 100)
    assert sorted(bad) == [3, 50, 77]
    assert {b["error"]["category"] for b in bad.values()} == {"CONFLICT"}
    assert bad[50]["error"]["existing_id"] == "950"
    assert report.requests.by_kind["write"] <= 5


async def test_a_retry_after_is_capped_and_shown(tmp_path: Path) -> None:
    hub = MockHub()
    hub.script[2] = rate_limited("TEN_SECONDLY_ROLLING", **{"Retry-After": "3600"})
    job = Job(
        config(tmp_path, concurrency=1, retry_after_cap=0.3), tickets(10), transport=hub.transport
    )
    seen: list[str | None] = []

    async def watch() -> None:
        while True:
            seen.append(job.progress().waiting)
            await anyio.sleep(0.02)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        with anyio.fail_after(10):
            report = await job.run()
        tg.cancel_scope.cancel()
    assert report.exit_code == 0
    assert any(w and "Retry-After, capped at 0 s" in w for w in seen), seen


async def test_rows_rejected_at_intake_are_counted(tmp_path: Path) -> None:
    hub = MockHub()
    rows = [{"subject": "x", "hs_pipeline_stage": "9"} for _ in range(50)]  # not an option
    report = await run_job(config(tmp_path), rows, transport=hub.transport)
    _, _bad = assert_accounted(tmp_path, 50)
    assert report.failed == 50 and report.exit_code == 1


async def test_a_source_that_raises_reports_an_error(tmp_path: Path) -> None:
    def rows() -> Any:
        yield from tickets(150)
        raise RuntimeError("the database went away")

    hub = MockHub()
    with pytest.raises(RuntimeError):
        await run_job(config(tmp_path), rows(), transport=hub.transport)
    data = orjson.loads((tmp_path / "report.json").read_bytes())
    assert data["status"] == "error" and data["rows"]["input_exhausted"] is False
    assert "the database went away" in data["stop"]["message"]


async def test_a_cancelled_job_says_so(tmp_path: Path) -> None:
    hub = MockHub()
    job = Job(config(tmp_path, concurrency=1), tickets(2000), transport=hub.transport)

    def cancel_after_some(request: HttpRequest) -> HttpResponse | None:
        if hub.n == 5:
            job.cancel()
        return None

    hub.always = cancel_after_some
    report = await job.run()
    assert report.status == "cancelled" and report.exit_code == 3
    assert_report_matches_files(tmp_path)


async def test_resume_of_a_finished_job_keeps_its_history(tmp_path: Path) -> None:
    hub = MockHub()
    hub.script[3] = rate_limited("TEN_SECONDLY_ROLLING")
    first = await run_job(config(tmp_path, concurrency=1), tickets(300), transport=hub.transport)
    assert first.rate_limit.by_policy_429 == {"TEN_SECONDLY_ROLLING": 1}
    second = await Job(
        config(tmp_path), tickets(300), mode=Mode.RESUME, transport=hub.transport
    ).run()
    assert second.runs == 2 and second.succeeded == 300
    assert second.rate_limit.by_policy_429 == {"TEN_SECONDLY_ROLLING": 1}
    assert second.requests.by_status["429"] == 1
    assert second.requests.total == first.requests.total + 1  # the resume's schema read
    assert_accounted(tmp_path, 300)


async def test_result_files_are_current_while_the_job_runs(tmp_path: Path) -> None:
    hub = MockHub()
    seen: list[int] = []

    def slow_once_half_done(request: HttpRequest) -> Any:
        if hub.n == 30:

            async def later() -> HttpResponse:
                # Half the job is settled; its lines must be on disk within a second or two.
                with anyio.fail_after(5):
                    while True:
                        n = len(read_jsonl(tmp_path / "succeeded.jsonl"))
                        if n >= 2000:
                            break
                        await anyio.sleep(0.05)
                seen.append(n)
                return hub._store(request)

            return later()
        return None

    hub.always = slow_once_half_done
    await run_job(config(tmp_path, concurrency=1), tickets(5000), transport=hub.transport)
    assert seen and seen[0] >= 2000
    assert_accounted(tmp_path, 5000)


async def test_resume_of_an_iterable_in_another_order_is_refused(tmp_path: Path) -> None:
    """Resume is by row number; rows given in another order would skip rows never written."""
    hub = MockHub()
    hub.script[3] = json_response(401, {"status": "error", "message": "expired"})
    rows = tickets(1000)
    first = await run_job(config(tmp_path, concurrency=1), rows, transport=hub.transport)
    assert first.stop_reason == "auth" and first.succeeded == 100
    shuffled = list(reversed(rows))
    second = await Job(config(tmp_path), shuffled, mode=Mode.RESUME, transport=hub.transport).run()
    assert second.stop_reason == "input" and second.exit_code == 2
    assert second.stop is not None and "row 1 differs" in second.stop.message
    assert hub.creates == 100  # nothing sent for rows it could not match
    third = await Job(config(tmp_path), rows, mode=Mode.RESUME, transport=hub.transport).run()
    assert third.exit_code == 0 and hub.creates == 1000
    assert_accounted(tmp_path, 1000)


async def test_an_empty_input_completes_with_a_warning(tmp_path: Path) -> None:
    hub = MockHub()
    report = await run_job(config(tmp_path), [], transport=hub.transport)
    assert report.exit_code == 0 and report.rows.read == 0
    assert report.warnings == ("the input <python iterable> has no rows: nothing was sent",)
    assert_accounted(tmp_path, 0)


async def test_nonsense_rate_limit_headers_are_ignored_and_said(tmp_path: Path) -> None:
    hub = MockHub()
    inner = hub.handle

    def with_headers(request: HttpRequest) -> HttpResponse:
        answer = inner(request)
        headers = {**answer.headers, "X-HubSpot-RateLimit-Max": "\u00b2\u00b2"}
        return HttpResponse(answer.status, headers, answer.body)

    hub.transport._handler = with_headers
    report = await run_job(config(tmp_path, rate_limit=None), tickets(150), transport=hub.transport)
    assert_accounted(tmp_path, 150)
    assert any("X-HubSpot-RateLimit-Max" in w for w in report.warnings)
