"""Logging: silent by default, records under ``bulkops.*`` with structured fields at the
documented levels, and never the token."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bulkops import JobConfig, Operation, Secret, run_job
from bulkops._http import HttpRequest, HttpResponse, TransportFailure
from bulkops.testing import json_response

from .mockhub import MockHub, tickets

TOKEN = "pat-test-logging-test-token-1234"


def config(out: Path, **kw: Any) -> JobConfig:
    kw.setdefault("rate_limit", 0)
    kw.setdefault("backoff_base", 0.001)
    kw.setdefault("backoff_cap", 0.002)
    return JobConfig(
        operation=Operation.CREATE,
        token=Secret(TOKEN),
        base_url="http://hub.test",
        out_dir=out,
        **kw,
    )


def test_bulkops_is_silent_until_the_program_configures_logging(tmp_path: Path) -> None:
    """In a fresh interpreter with no logging set up, a job that stops (a WARNING/ERROR
    record) prints nothing: the NullHandler keeps logging.lastResort away."""
    program = f"""
import anyio
from bulkops import JobConfig, Operation, Secret, run_job
from bulkops.testing import MockTransport, json_response
transport = MockTransport(lambda r: json_response(401, {{"status": "error"}}), host="hub.test")
config = JobConfig(operation=Operation.CREATE, token=Secret("t"), base_url="http://hub.test",
                   out_dir=__import__("pathlib").Path({str(tmp_path)!r}), rate_limit=0)
report = anyio.run(lambda: run_job(config, [{{"subject": "x"}}], transport=transport))
assert report.stop_reason == "auth", report.stop
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


def records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


async def test_requests_are_debug_records_with_fields(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bulkops")
    await run_job(config(tmp_path), tickets(150), transport=MockHub().transport)
    http = records(caplog, "bulkops.http")
    assert [r.levelno for r in http] == [logging.DEBUG] * 3  # the schema read, two batches
    write = http[1]
    assert write.method == "POST" and write.path.endswith("/batch/create")  # type: ignore[attr-defined]
    assert write.status == 201 and write.kind == "write"  # type: ignore[attr-defined]
    assert write.job_id == tmp_path.name and write.operation == "create"  # type: ignore[attr-defined]
    assert write.object_type == "tickets"  # type: ignore[attr-defined]
    job = records(caplog, "bulkops.job")
    assert [r.levelno for r in job] == [logging.INFO, logging.INFO]  # start, end
    assert "150 succeeded" in job[-1].getMessage()


async def test_retries_and_pauses_are_info_and_stops_warnings_or_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bulkops")
    hub = MockHub()
    hub.script[2] = json_response(429, {"status": "error", "policyName": "TEN_SECONDLY_ROLLING"})
    hub.script[3] = TransportFailure("reset", "connection reset", maybe_sent=False)
    hub.script[5] = json_response(401, {"status": "error", "message": "expired"})
    await run_job(
        config(tmp_path / "a", concurrency=1), tickets(500, unique=False), transport=hub.transport
    )
    http = records(caplog, "bulkops.http")
    pause = next(r for r in http if "429" in r.getMessage())
    assert pause.levelno == logging.INFO
    assert pause.policy == "TEN_SECONDLY_ROLLING"  # type: ignore[attr-defined]
    retry = next(r for r in http if r.getMessage().startswith("retrying"))
    assert retry.levelno == logging.INFO
    assert retry.attempt == 2 and retry.rows == 100  # type: ignore[attr-defined]
    stop = next(r for r in records(caplog, "bulkops.job") if "stopping" in r.getMessage())
    assert stop.levelno == logging.WARNING and stop.stop_reason == "auth"  # type: ignore[attr-defined]

    caplog.clear()
    hub = MockHub()
    hub.always = lambda r: (
        json_response(400, {"status": "error", "message": "Unable to infer object type from: x"})
        if "batch" in r.path
        else None
    )
    await run_job(config(tmp_path / "b", preflight=False), tickets(5), transport=hub.transport)
    stop = next(r for r in records(caplog, "bulkops.job") if "stopping" in r.getMessage())
    assert stop.levelno == logging.ERROR and stop.stop_reason == "config"  # type: ignore[attr-defined]


async def test_the_token_is_in_no_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bulkops")

    def echo_headers(request: HttpRequest) -> HttpResponse | TransportFailure | None:
        # A server that echoes what it got (the token too) into an error message.
        if request.path.endswith("/batch/create"):
            return json_response(403, {"status": "error", "message": f"Bearer {TOKEN} is bad"})
        return None

    hub = MockHub()
    hub.script[2] = json_response(429, {"status": "error", "policyName": "TEN_SECONDLY_ROLLING"})
    hub.script[3] = TransportFailure("reset", "connection reset", maybe_sent=False)
    hub.script[4] = echo_headers
    await run_job(config(tmp_path, concurrency=1), tickets(300), transport=hub.transport)
    assert len(caplog.records) >= 6
    # The 403's echo is quoted by the stop, masked there, so in no record, report or error.
    assert "Bearer *** is bad" in (tmp_path / "report.json").read_text()
    for record in caplog.records:
        assert TOKEN not in record.getMessage(), record.getMessage()
        assert TOKEN not in repr(vars(record)), record.getMessage()


async def test_an_outage_is_a_warning_its_probes_debug_and_its_end_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bulkops")
    hub = MockHub()

    def outage(request: HttpRequest) -> HttpResponse | None:
        if 1 < hub.n <= 12:
            return json_response(503, {"status": "error", "message": "Service Unavailable"})
        return None

    hub.always = outage
    report = await run_job(
        config(tmp_path, id_property="external_id"), tickets(300), transport=hub.transport
    )
    assert report.stop is None
    http = records(caplog, "bulkops.http")
    down = [r for r in http if "looks down" in r.getMessage()]
    assert len(down) == 1 and down[0].levelno == logging.WARNING
    probes = [r for r in http if getattr(r, "kind", None) == "probe"]
    assert probes and all(r.levelno == logging.DEBUG for r in probes)
    back = [r for r in http if "answers again" in r.getMessage()]
    assert len(back) == 1 and back[0].levelno == logging.INFO
