# The OpenTelemetry SDK types its data points as unions; the tests read them as recorded.
# mypy: disable-error-code="attr-defined,union-attr,index,operator"
"""Metrics: the Prometheus textfile (``--metrics-file``), parsed with prometheus_client's own
parser, during and after a job; and the OpenTelemetry instruments (``bulkops.otel``) read with
the SDK's InMemoryMetricReader. Every number must equal the job's report (one owner)."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from bulkops._engine import Job
from bulkops._errors import ConfigError
from bulkops._http import TransportFailure
from bulkops._metrics import MetricsFile
from bulkops.otel import instrument
from bulkops.testing import FakeConfig, FakeHubSpot

from .accounting import assert_accounted, assert_report_matches_files
from .mockhub import MockHub, tickets
from .test_cli import cmd, env, write_csv
from .test_engine import config, rate_limited


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text-format exposition, by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: dict[Any, Any], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


async def test_the_metrics_file_holds_what_the_report_says(tmp_path):
    hub = MockHub()
    hub.script[3] = rate_limited("TEN_SECONDLY_ROLLING", "slow down")
    hub.script[5] = TransportFailure("timeout", "read timed out", maybe_sent=False)
    rows = tickets(400)
    rows[9]["hs_pipeline_stage"] = "9"  # row 10 fails pre-flight
    path = tmp_path / "metrics" / "job.prom"
    path.parent.mkdir()
    job = Job(config(tmp_path / "out", concurrency=1), rows, transport=hub.transport)
    metrics = MetricsFile(path, job)
    metrics.start()
    first = samples(path.read_text())
    assert value(first, "bulkops_job_running") == 1.0
    assert value(first, "bulkops_rows_total", outcome="succeeded") == 0.0
    report = await job.run()
    metrics.finish(report)
    assert_accounted(tmp_path / "out", 400)
    found = samples(path.read_text())
    assert value(found, "bulkops_job_running") == 0.0
    assert value(found, "bulkops_job_exit_code") == report.exit_code == 1
    assert value(found, "bulkops_rows_total", outcome="succeeded") == report.succeeded == 399
    assert value(found, "bulkops_rows_total", outcome="failed") == report.failed == 1
    assert value(found, "bulkops_rows_failed_total", category="PREFLIGHT_VALIDATION") == 1
    for status, n in report.requests.by_status.items():
        assert value(found, "bulkops_requests_total", status=status) == n
    for kind, n in report.requests.by_kind.items():
        assert value(found, "bulkops_requests_sent_total", kind=kind) == n
    assert value(found, "bulkops_transport_failures_total", kind="timeout") == 1
    assert value(found, "bulkops_rate_limited_total", policy="TEN_SECONDLY_ROLLING") == 1
    assert value(found, "bulkops_requests_in_flight") == 0
    assert value(found, "bulkops_rate_limit_current") == report.rate_limit.current_limit
    assert value(found, "bulkops_rate_limit_learned") == report.rate_limit.learned_ceiling
    assert value(found, "bulkops_last_success_timestamp_seconds") is not None
    assert not [p for p in path.parent.iterdir() if p != path]  # written atomically: no leftovers


def test_the_metrics_file_is_rewritten_at_most_every_interval(tmp_path):
    now = [100.0]
    path = tmp_path / "job.prom"
    job = Job(config(tmp_path / "out"), tickets(1), transport=MockHub().transport)
    metrics = MetricsFile(path, job, every=2.0, clock=lambda: now[0])
    metrics.tick()
    assert path.exists()
    path.unlink()
    now[0] += 1.9
    metrics.tick()
    assert not path.exists()  # too soon
    now[0] += 0.2
    metrics.tick()
    assert path.exists()


def test_a_metrics_file_that_cannot_be_written_is_a_usage_error_naming_the_flag(tmp_path):
    path = tmp_path / "no-such-folder" / "job.prom"
    job = Job(config(tmp_path / "out"), tickets(1), transport=MockHub().transport)
    with pytest.raises(ConfigError, match=r"--metrics-file .*no-such-folder"):
        MetricsFile(path, job).start()


async def test_a_json_log_job_with_a_metrics_file_parses_while_it_runs(tmp_path):
    """The issue's check: every stderr line is JSON, and the metrics file parses with
    prometheus_client's parser while the job runs and after it."""
    src = tmp_path / "in.csv"
    write_csv(src, 1500, bad={7})
    out, prom = tmp_path / "job", tmp_path / "job.prom"
    during: list[dict[Any, Any]] = []
    async with FakeHubSpot(FakeConfig(rate_limit=None, latency=(0.25, 0.25))) as fake:
        async with await anyio.open_process(
            cmd(
                *("run", "create", "--input", src, "--out", out, "--base-url", fake.url),
                *("--rate-limit", 0, "--concurrency", 1, "--log-format", "json"),
                *("--progress", "log", "--metrics-file", prom),
            ),
            env=env(),
        ) as proc:
            stderr, stdout = bytearray(), bytearray()

            async def drain(stream: Any, into: bytearray) -> None:
                async for chunk in stream:
                    into.extend(chunk)

            async with anyio.create_task_group() as tg:
                tg.start_soon(drain, proc.stderr, stderr)
                tg.start_soon(drain, proc.stdout, stdout)
                with anyio.fail_after(60):
                    while proc.returncode is None:
                        if prom.exists():
                            found = samples(prom.read_text())
                            running = value(found, "bulkops_job_running") == 1.0
                            rows = value(found, "bulkops_rows_total", outcome="succeeded")
                            if running and rows:
                                during.append(found)
                        await anyio.sleep(0.1)
                await proc.wait()
    assert proc.returncode == 1, stderr.decode()
    assert during, "no metrics file was seen while the job ran"
    assert 0 < value(during[0], "bulkops_rows_total", outcome="succeeded") < 1499
    lines = [orjson.loads(line) for line in bytes(stderr).splitlines()]
    assert {"start", "progress", "summary"} <= {line["event"] for line in lines}
    assert_accounted(out, 1500)
    report = assert_report_matches_files(out)
    final = samples(prom.read_text())
    assert value(final, "bulkops_job_running") == 0.0
    assert value(final, "bulkops_job_exit_code") == 1.0
    assert value(final, "bulkops_rows_total", outcome="succeeded") == report["rows"]["succeeded"]
    assert orjson.loads(bytes(stdout).splitlines()[-1])["exit_code"] == 1


async def test_opentelemetry_http_client_metrics_follow_the_semantic_conventions(tmp_path):
    hub = MockHub()
    hub.script[3] = rate_limited("TEN_SECONDLY_ROLLING", "slow down")
    hub.script[4] = TransportFailure("reset", "connection reset", maybe_sent=False)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    job = Job(config(tmp_path, concurrency=1), tickets(300), transport=hub.transport)
    instrument(job, provider)
    report = await job.run()
    assert_accounted(tmp_path, 300)
    data = reader.get_metrics_data()
    assert data is not None
    metrics = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    duration = metrics["http.client.request.duration"]
    assert duration.unit == "s"
    points = list(duration.data.data_points)
    assert sum(p.count for p in points) == report.requests.total  # each request, once
    by_status = {p.attributes.get("http.response.status_code"): p for p in points}
    assert by_status[429].attributes["error.type"] == "429"
    assert by_status[None].attributes["error.type"] == "reset"
    assert by_status[201].attributes == {
        "http.request.method": "POST",
        "server.address": "hub.test",
        "http.response.status_code": 201,
    }
    assert by_status[200].attributes["http.request.method"] == "GET"  # the schema read
    assert tuple(points[0].explicit_bounds)[:3] == (0.005, 0.01, 0.025)
    rows = {
        p.attributes["bulkops.outcome"]: p.value for p in metrics["bulkops.rows"].data.data_points
    }
    assert rows == {"succeeded": report.succeeded, "failed": report.failed}
    throttled = metrics["bulkops.rate_limited"].data.data_points
    assert [(p.attributes["bulkops.policy"], p.value) for p in throttled] == [
        ("TEN_SECONDLY_ROLLING", 1)
    ]
    assert "bulkops.requests.in_flight" in metrics and "bulkops.rate_limit.current" in metrics
