"""Logs for machines: ``--log-format json|text``, ``--quiet``, ``-v``, the progress line as a
log event with a timestamp off a terminal, and the one-line JSON summary that ends stdout."""

from __future__ import annotations

import argparse
import io
import logging
import re

import orjson
import pytest

from bulkops._cli import main
from bulkops._cli_guard import remember_secret
from bulkops._engine import Progress
from bulkops._logfmt import JsonFormatter, TextFormatter, cli_logging, say
from bulkops._progress import ProgressDisplay
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

from .accounting import assert_accounted
from .test_cli import run_cli, write_csv

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def record(name: str, msg: str, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"log_format": "text", "quiet": False, "verbose": 0, "out": None}
    return argparse.Namespace(**{**base, **kw})


def test_json_lines_carry_time_level_job_event_and_fields_and_never_the_token():
    secret = "pat-test-logfmt-" + "9" * 20
    remember_secret(secret)
    fmt = JsonFormatter("out/job")
    rec = record(
        "bulkops.channel",
        "batch of %d sent",
        logging.WARNING,
        event="batch_sent",
        fields={"rows": 100},
        attempt=2,
    )
    rec.args = (100,)
    line = orjson.loads(fmt.format(rec))
    assert STAMP.match(line["time"] + " ")
    assert line | {"time": None} == {
        "time": None,
        "level": "warning",
        "job": "out/job",
        "event": "batch_sent",
        "message": "batch of 100 sent",
        "logger": "bulkops.channel",
        "fields": {"rows": 100, "attempt": 2},
    }
    # Without an event, the message template names it (stable, unlike the message).
    plain = fmt.format(record("bulkops.x", f"token {secret} rejected"))
    assert secret not in plain and orjson.loads(plain)["event"].startswith("token ")
    try:
        raise ValueError(f"boom {secret}")
    except ValueError as exc:
        failing = record("bulkops.x", "failed", logging.ERROR, exc_info=(ValueError, exc, None))
    text = fmt.format(failing)
    assert secret not in text and "Traceback" not in text
    assert orjson.loads(text)["fields"]["error"].startswith("ValueError: boom")


def test_text_lines_keep_the_cli_lines_and_stamp_engine_records_off_a_terminal():
    stamped, bare = TextFormatter(timestamps=True), TextFormatter(timestamps=False)
    cli = record("bulkops.cli", "bulkops: talking to http://127.0.0.1:1", event="start")
    assert stamped.format(cli) == bare.format(cli) == "bulkops: talking to http://127.0.0.1:1"
    engine = record("bulkops.channel", "HubSpot is down", logging.WARNING, fields={"s": 5})
    assert bare.format(engine) == "bulkops: warning: HubSpot is down (s=5)"
    assert STAMP.match(stamped.format(engine))
    progress = record("bulkops.progress", "[bulkops 0:10] 5 rows", event="progress")
    assert STAMP.match(stamped.format(progress)) and bare.format(progress).startswith("[bulkops")


@pytest.mark.parametrize(
    ("kw", "shown"),
    [
        ({}, {"info", "warning"}),
        ({"quiet": True}, {"warning"}),
        ({"verbose": 1}, {"debug", "info", "warning"}),
    ],
)
def test_quiet_and_verbose_choose_the_levels(kw, shown):
    stream = io.StringIO()
    with cli_logging(args(log_format="json", **kw), stream=stream):
        log = logging.getLogger("bulkops.engine")
        log.debug("d")
        log.info("i")
        log.warning("w")
        say("bulkops: a cli line", event="note")
    levels = {orjson.loads(line)["level"] for line in stream.getvalue().splitlines()}
    assert levels == shown
    # The handler is gone afterwards: nothing leaks into the next command.
    assert not any(
        type(h).__name__ == "_StderrHandler" for h in logging.getLogger("bulkops").handlers
    )


def progress() -> Progress:
    return Progress(
        elapsed=12.0, rows_read=500, succeeded=480, failed=20, in_engine=0, requests=6,
        throttled={}, limit=100.0, ceiling=100, others=0.0, daily_remaining=None,
        reading_done=False, stopping=None,
    )  # fmt: skip


def test_the_progress_line_carries_a_timestamp_when_stderr_is_not_a_terminal():
    stream = io.StringIO()  # not a terminal
    display = ProgressDisplay(mode="auto", stream=stream, log_every=0)
    display(progress())
    line = stream.getvalue().strip()
    assert STAMP.match(line) and "[bulkops 0:12] 500 rows" in line
    # Given a hook (the CLI's), the line goes there instead, as a log event.
    seen: list[str] = []
    hooked = ProgressDisplay(
        mode="log", stream=stream, log_every=0, on_line=lambda p, t: seen.append(t)
    )
    hooked(progress())
    assert seen and seen[0].startswith("[bulkops 0:12] 500 rows")


async def test_a_json_log_job_writes_only_json_on_stderr_and_ends_stdout_with_the_summary(
    tmp_path,
):
    src = tmp_path / "in.csv"
    write_csv(src, 300, bad={5})
    out = tmp_path / "job"
    summary_file = tmp_path / "xcom" / "summary.json"
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        done = await run_cli(
            *("run", "create", "--input", src, "--out", out, "--base-url", fake.url),
            *("--rate-limit", 0, "--log-format", "json", "--progress", "log"),
            *("--summary-file", summary_file),
        )
    assert done.returncode == 1, done.stderr.decode()
    assert_accounted(out, 300)
    lines = [orjson.loads(line) for line in done.stderr.splitlines()]  # every one is JSON
    assert {"start", "summary"} <= {line["event"] for line in lines}
    for line in lines:
        assert set(line) == {"time", "level", "job", "event", "message", "logger", "fields"}
        assert line["job"] == str(out)
    progress = next(line for line in lines if line["event"] == "progress")
    assert {"rows_read", "succeeded", "rate_per_s", "rows_expected"} <= set(progress["fields"])
    assert progress["fields"]["rows_expected"] == 300
    summary = next(line for line in lines if line["event"] == "summary")
    assert "299 succeeded, 1 failed" in summary["message"]
    last = orjson.loads(done.stdout.splitlines()[-1])
    assert last == orjson.loads(summary_file.read_bytes())
    assert last | {"duration_s": 0} == {
        "version": 1,
        "status": "complete",
        "exit_code": 1,
        "operation": "create",
        "object_type": "tickets",
        "rows": {"read": 300, "succeeded": 299, "failed": 1, "unprocessed": 0},
        "stop": None,
        "duration_s": 0,
        "out_dir": str(out.resolve()),
    }
    assert DEFAULT_FAKE_TOKEN.encode() not in done.stderr + done.stdout


async def test_quiet_keeps_stderr_to_warnings_and_a_stopped_job_still_ends_with_its_summary(
    tmp_path,
):
    src = tmp_path / "in.csv"
    write_csv(src, 50)
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        done = await run_cli(
            *("run", "create", "--input", src, "--out", tmp_path / "q", "--base-url", fake.url),
            *("--quiet", "--progress", "log"),
            token="wrong-token",
        )
    assert done.returncode == 3
    assert b"rows:" not in done.stderr and b"[bulkops" not in done.stderr
    last = orjson.loads(done.stdout.splitlines()[-1])
    assert last["status"] == "stopped" and last["exit_code"] == 3
    assert last["stop"]["reason"] == "auth" and "wrong-token" not in done.stdout.decode()


@pytest.mark.parametrize("flag", ["--summary-file", "--metrics-file"])
def test_an_output_file_that_cannot_be_written_stops_before_the_job(
    tmp_path, capsys, monkeypatch, flag
):
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-test-" + "5" * 30)
    src = tmp_path / "in.csv"
    write_csv(src, 5)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main(
        [
            *("run", "create", "--input", str(src), "--out", str(tmp_path / "out")),
            *("--base-url", "http://127.0.0.1:9", flag, str(blocker / "x.out")),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and f"cannot write {flag} {blocker / 'x.out'}" in err, err
    assert "Traceback" not in err and not (tmp_path / "out" / "journal.sqlite").exists()
