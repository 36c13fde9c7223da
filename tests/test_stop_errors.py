"""Typed errors: ``report.raise_for_status()`` raises one exception per kind of stop, each
carrying the report; failed rows never raise; ``max_failures`` stops a job whose rows mostly
fail (resumable, exit 3); no ExceptionGroup of one escapes a public call."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import bulkops
from bulkops import ConfigError, JobConfig, Operation, Secret, StopReason, run_job
from bulkops._cli import parse_max_failures
from bulkops._report import JobStatus
from bulkops._stats import Stop
from bulkops._stop_errors import error_for
from bulkops.testing import FakeConfig, FakeHubSpot, json_response

from .accounting import assert_accounted, assert_report_matches_files, read_jsonl
from .mockhub import MockHub, tickets
from .test_cli import run_cli

TOKEN = "pat-test-stop-errors-token"


def config(out: Path, op: Operation = Operation.CREATE, **kw: Any) -> JobConfig:
    kw.setdefault("rate_limit", 0)
    kw.setdefault("backoff_base", 0.001)
    kw.setdefault("backoff_cap", 0.002)
    return JobConfig(
        operation=op, token=Secret(TOKEN), base_url="http://hub.test", out_dir=out, **kw
    )


def failing(n: int, *, bad_every: int) -> list[dict[str, str]]:
    """Tickets of which every ``bad_every``-th fails pre-flight (an unknown stage)."""
    rows = tickets(n)
    for i, row in enumerate(rows, 1):
        if i % bad_every == 0:
            row["hs_pipeline_stage"] = "9"
    return rows


async def test_a_finished_job_with_failed_rows_does_not_raise(tmp_path: Path) -> None:
    report = await run_job(
        config(tmp_path), failing(40, bad_every=4), transport=MockHub().transport
    )
    assert report.failed == 10 and report.exit_code == 1
    assert report.raise_for_status() is report


@pytest.mark.parametrize(
    ("status", "kind"), [(401, bulkops.BadToken), (403, bulkops.MissingScopes)]
)
async def test_auth_stops_raise_their_kind_with_the_report(
    tmp_path: Path, status: int, kind: type[bulkops.AuthError]
) -> None:
    hub = MockHub()
    hub.script[3] = json_response(status, {"status": "error", "message": "no", "category": "X"})
    report = await run_job(config(tmp_path, concurrency=1), tickets(300), transport=hub.transport)
    with pytest.raises(kind) as caught:
        report.raise_for_status()
    error = caught.value
    assert isinstance(error, bulkops.AuthError) and isinstance(error, bulkops.JobStopped)
    assert error.report is report and error.exit_code == 3 and error.resumable
    assert error.stop is not None and error.stop.status == status
    assert TOKEN not in str(error)
    # The status survives report.json, so a report read back raises the same kind.
    back = bulkops.read_results(tmp_path).report
    assert back is not None and type(error_for(back)) is kind


async def test_the_daily_limit_raises_daily_limit_reached(tmp_path: Path) -> None:
    hub = MockHub()
    hub.script[3] = json_response(
        429, {"status": "error", "message": "You have reached your daily limit."}
    )
    report = await run_job(config(tmp_path, concurrency=1), tickets(300), transport=hub.transport)
    with pytest.raises(bulkops.DailyLimitReached):
        report.raise_for_status()


def test_every_stop_reason_has_its_exception(tmp_path: Path) -> None:
    """A new StopReason must get a kind of its own (or JobStopped) here: none maps to None."""
    base = _a_report(tmp_path)
    expected = {
        StopReason.AUTH: bulkops.AuthError,
        StopReason.DAILY_LIMIT: bulkops.DailyLimitReached,
        StopReason.DAILY_BUDGET: bulkops.DailyLimitReached,
        StopReason.RATE_LIMITED: bulkops.RateLimited,
        StopReason.OUTAGE: bulkops.Unreachable,
        StopReason.UNREACHABLE: bulkops.Unreachable,
        StopReason.NOT_HUBSPOT: bulkops.JobConfigError,
        StopReason.CONFIG: bulkops.JobConfigError,
        StopReason.INPUT: bulkops.JobConfigError,
        StopReason.INTERRUPTED: bulkops.JobInterrupted,
        StopReason.MAX_FAILURES: bulkops.TooManyFailures,
        StopReason.LIMIT: bulkops.JobInterrupted,
    }
    assert set(expected) == set(StopReason)
    for reason, kind in expected.items():
        report = dataclasses.replace(base, stop=Stop(reason, "why"), status=JobStatus.STOPPED)
        error = error_for(report)
        assert type(error) is kind, reason
        assert error.exit_code == reason.exit_code
    config_error = error_for(dataclasses.replace(base, stop=Stop(StopReason.CONFIG, "x")))
    assert isinstance(config_error, ConfigError)  # caught by `except ConfigError` too


def _a_report(tmp_path: Path) -> bulkops.JobReport:
    import anyio

    return anyio.run(
        lambda: run_job(config(tmp_path / "r"), tickets(1), transport=MockHub().transport)
    )


async def test_max_failures_as_a_count_stops_resumable(tmp_path: Path) -> None:
    cfg = config(tmp_path, max_failures=10, concurrency=1, batch_size=10, max_outstanding=10)
    report = await run_job(cfg, failing(2000, bad_every=2), transport=MockHub().transport)
    data = assert_report_matches_files(tmp_path)
    assert report.stop_reason == "max_failures" and report.exit_code == 3
    assert 10 <= report.failed < 100 and data["rows"]["unprocessed"] > 0
    assert "max_failures 10" in report.stop.message  # type: ignore[union-attr]
    with pytest.raises(bulkops.TooManyFailures):
        report.raise_for_status()


async def test_max_failures_as_a_share_waits_for_enough_rows(tmp_path: Path) -> None:
    # Every other row fails: 50% over a share of 40% stops, but only after 100 finished rows.
    cfg = config(tmp_path / "a", max_failures=0.4, batch_size=10, max_outstanding=10)
    report = await run_job(cfg, failing(3000, bad_every=2), transport=MockHub().transport)
    assert report.stop_reason == "max_failures"
    assert report.succeeded + report.failed >= 100 and report.rows.unprocessed > 0
    # One row in four (25%) stays under a 40% share: the job finishes, though the rows refused
    # at intake finish long before the good rows come back from HubSpot.
    cfg = config(tmp_path / "b", max_failures=0.4)
    report = await run_job(cfg, failing(400, bad_every=4), transport=MockHub().transport)
    assert report.stop is None and report.failed == 100
    assert_accounted(tmp_path / "b", 400)
    # 99 rows that all fail are too few to judge a share.
    cfg = config(tmp_path / "c", max_failures=0.4)
    report = await run_job(cfg, failing(99, bad_every=1), transport=MockHub().transport)
    assert report.stop is None and report.failed == 99


@pytest.mark.parametrize("bad", [0, -3, 1.5, 0.0, 1.0, True, "5%"])
def test_max_failures_is_checked_when_the_config_is_built(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ConfigError, match="max_failures"):
        config(tmp_path, max_failures=bad)


def test_the_cli_spelling_of_max_failures() -> None:
    assert parse_max_failures("50") == 50
    assert parse_max_failures(" 5% ") == pytest.approx(0.05)
    assert parse_max_failures(None) is None
    for bad in ("0", "many", "100%", "0%"):
        with pytest.raises(ConfigError, match="--max-failures"):
            parse_max_failures(bad)


async def test_the_cli_stops_at_max_failures_and_carries_passthrough(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject", "hs_pipeline", "hs_pipeline_stage", "external_id", "src_id"])
        for n in range(1, 3001):
            w.writerow([f"T{n}", "0", "1" if n % 2 else "WRONG", f"cli-{n}", f"S{n}"])
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        done = await run_cli(
            "run", "create", "--input", src, "--base-url", fake.url, "--out", tmp_path / "o",
            "--rate-limit", 0, "--progress", "none", "--id-property", "external_id",
            "--passthrough", "src_id", "--max-failures", "20", "--concurrency", 1,
        )  # fmt: skip
    assert done.returncode == 3, done.stderr.decode()
    assert b"max_failures 20" in done.stderr and b"Traceback" not in done.stderr
    assert_report_matches_files(tmp_path / "o")
    # Refused rows finish before HubSpot answers the good ones: the failed lines carry both.
    lines = read_jsonl(tmp_path / "o" / "failed.jsonl")
    assert lines[0]["passthrough"] == {"src_id": f"S{lines[0]['row']}"}
    assert lines[0]["key"] == f"cli-{lines[0]['row']}"


async def test_no_exception_group_of_one_escapes_run_job(tmp_path: Path) -> None:
    async def rows() -> AsyncIterator[dict[str, str]]:
        yield tickets(1)[0]
        raise KeyError("column gone")

    for on_progress in (None, lambda _: None):
        with pytest.raises(KeyError, match="column gone"):
            await run_job(
                config(tmp_path / str(on_progress is None)),
                rows(),
                transport=MockHub().transport,
                on_progress=on_progress,
                progress_interval=0.01,
            )
