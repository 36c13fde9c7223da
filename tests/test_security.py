"""Trust boundaries: what bulkops believes from the network, from a journal and from the
command line, and where the token may go.

Sections: rate-limit headers that make no sense; the fake server's exposure warning; v1 ids
that are not numbers; redirects; the journal's base URL on resume/retry; the token never
written anywhere, on every CLI error path."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sqlite3
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bulkops import Api, InputError, Operation, Secret
from bulkops._limiter import RateLimiter
from bulkops._normalize import Normalizer
from bulkops._transport import AiohttpTransport, HttpRequest
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot, add_fake_server_arguments
from bulkops.testing._fake_cli import exposure_warning

from .test_limiter import FakeTime

# -- rate-limit headers --------------------------------------------------------------------------
MAX, REMAINING = "X-HubSpot-RateLimit-Max", "X-HubSpot-RateLimit-Remaining"
INTERVAL = "X-HubSpot-RateLimit-Interval-Milliseconds"
DAILY, DAILY_REMAINING = "X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining"
NONSENSE = ["²²", "٣", "-5", "0", str(10**12), "abc", "", "1e3", "190.5", "0x10", "9" * 40]
GOOD = {MAX: "190", REMAINING: "180", INTERVAL: "10000", DAILY: "500000", DAILY_REMAINING: "400"}


# 0 and small negatives are what Remaining says when the window is full; 0 left today is real.
REAL = {(REMAINING, "0"), (REMAINING, "-5"), (DAILY_REMAINING, "0")}
CASES = [
    (name, value)
    for name in (MAX, REMAINING, INTERVAL, DAILY, DAILY_REMAINING)
    for value in NONSENSE
    if (name, value) not in REAL
]


@pytest.mark.parametrize(("name", "value"), CASES)
async def test_a_nonsense_header_is_ignored_and_pacing_goes_on(name, value, caplog):
    clock = FakeTime()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    limiter.observe(GOOD, await limiter.wait_turn())
    before = limiter.stats()
    with caplog.at_level(logging.WARNING, logger="bulkops.limiter"):
        for _ in range(3):  # the same nonsense on every answer warns once
            limiter.observe({**GOOD, name: value}, await limiter.wait_turn())
    assert limiter.ignored_headers == {name}
    warnings = [r for r in caplog.records if r.name == "bulkops.limiter"]
    assert len(warnings) == 1 and name in warnings[0].getMessage()
    after = limiter.stats()
    # What the other headers said still holds.
    assert after.ceiling == before.ceiling == 190
    assert after.window == before.window == 10.0
    assert after.daily_limit == 500_000
    assert after.daily_remaining == 400
    rate = limiter.rate_per_second
    assert rate is not None and math.isfinite(rate) and 0 < rate <= 190 / 10
    # And the pacer still paces: the next ten requests are spread out, none crashes.
    sent = [await limiter.wait_turn() for _ in range(10)]
    assert sent == sorted(sent) and sent[-1] - sent[0] > 0


async def test_without_a_sane_max_remaining_is_not_used():
    clock = FakeTime()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    limiter.observe({MAX: "²²", REMAINING: "0", INTERVAL: "1"}, await limiter.wait_turn())
    stats = limiter.stats()
    assert stats.ceiling == 100 and stats.others == 0 and stats.window == 10.0
    assert limiter.ignored_headers == {MAX}


async def test_sane_headers_are_still_learned():
    clock = FakeTime()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    limiter.observe(
        {MAX: " 250 ", REMAINING: "-3", INTERVAL: "500", DAILY_REMAINING: "0"},
        await limiter.wait_turn(),
    )
    stats = limiter.stats()
    assert stats.ceiling == 250 and stats.window == 0.5 and stats.daily_remaining == 0
    assert limiter.ignored_headers == set()


# -- the fake server -----------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "fake.example"])
def test_the_fake_warns_when_it_listens_beyond_loopback(host):
    warning = exposure_warning(host, None)
    assert warning is not None and warning.startswith("fake-server: warning:")
    assert "anyone" in warning and DEFAULT_FAKE_TOKEN in warning
    # Tokens given with --token may be real ones: never repeated.
    custom = exposure_warning(host, ["my-own-secret"])
    assert custom is not None and "my-own-secret" not in custom


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_the_fake_does_not_warn_on_loopback(host):
    assert exposure_warning(host, None) is None


def test_the_fake_help_says_it_is_a_test_server():
    parser = argparse.ArgumentParser(prog="fake")
    add_fake_server_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "A TEST SERVER, not HubSpot" in text and DEFAULT_FAKE_TOKEN in text
    assert "any other address warns" in text


# -- v1 ids --------------------------------------------------------------------------------------
@pytest.mark.parametrize("record_id", ["²", "١٢٣", "12a", "-4", "1.5"])
def test_a_v1_id_that_is_not_a_number_is_the_rows_input_error(record_id):
    normalize = Normalizer(Operation.UPDATE, api=Api.V1)
    with pytest.raises(InputError, match="is not a HubSpot id"):
        normalize(1, {"id": record_id, "subject": "x"})
    assert normalize(2, {"id": "512", "subject": "x"}).record_id == "512"


# -- processes against the fake ------------------------------------------------------------------
TOKEN = "pat-test-security-not-a-real-token-7e57"
HEADER = "subject,hs_pipeline,hs_pipeline_stage,hs_ticket_priority,external_id\n"


def write_csv(path: Path, rows: int, *, bad: frozenset[int] = frozenset()) -> Path:
    lines = [f"T{n},0,1,{'WRONG' if n in bad else 'LOW'},sec-{n}\n" for n in range(1, rows + 1)]
    path.write_text(HEADER + "".join(lines))
    return path


async def bulkops(*args: object, token: str = TOKEN, **env: str):
    """``bulkops ARGS`` in a subprocess, with only the HUBSPOT_ variables given here."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    environ["HUBSPOT_ACCESS_TOKEN"] = token
    environ.update(env)
    argv = [sys.executable, "-m", "bulkops", *map(str, args)]
    with anyio.fail_after(60):
        return await anyio.run_process(argv, env=environ, check=False)


def assert_clean(done, code: int, *fragments: str) -> str:
    """Exit ``code``, no traceback, no token; returns stderr for further checks."""
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == code, output
    assert "Traceback" not in output, output
    assert TOKEN not in output and TOKEN[8:] not in output, output
    for fragment in fragments:
        assert fragment in output, (fragment, output)
    return str(output)


def host_of(server_url: str) -> str:
    return server_url.removeprefix("http://")


def point_journal_at(out: Path, url: str) -> None:
    edit_journal(out, base_url=url)


def edit_journal(out: Path, **settings: object) -> None:
    """Edit the journal's settings as someone with write access to the result folder could."""
    db = sqlite3.connect(out / "journal.sqlite")
    (raw,) = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
    config = {**orjson.loads(raw), **settings}
    db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (orjson.dumps(config),))
    db.commit()
    db.close()


async def test_resume_and_retry_never_send_the_token_where_the_journal_says(tmp_path):
    src = write_csv(tmp_path / "in.csv", 120, bad=frozenset({7}))
    out = tmp_path / "job"
    tokens = frozenset({TOKEN})
    async with (
        FakeHubSpot(FakeConfig(rate_limit=None, tokens=tokens)) as real,
        FakeHubSpot(FakeConfig(rate_limit=None, tokens=tokens)) as other,
    ):
        first = await bulkops("run", "create", "--input", src, "--out", out, "--progress",
                              "none", HUBSPOT_BASE_URL=real.url)  # fmt: skip
        assert_clean(first, 1, f"bulkops: talking to {host_of(real.url)}\n")
        # The same place from the environment: resume goes on as before.
        same = await bulkops("resume", out, "--progress", "none", HUBSPOT_BASE_URL=real.url)
        assert_clean(same, 1, f"talking to {host_of(real.url)}")

        point_journal_at(out, f"http://someone:hunter2@{host_of(other.url)}")
        sent_before = real.stats.requests
        # The environment (resume) or the default (retry) disagrees with the journal: refused,
        # naming both hosts (never the journal's password); nothing is sent anywhere.
        refused = await bulkops("resume", out, HUBSPOT_BASE_URL=real.url)
        text = assert_clean(refused, 2, host_of(other.url), host_of(real.url), "--base-url")
        assert "hunter2" not in text and "talking to" not in text
        refused = await bulkops("retry", out)
        text = assert_clean(refused, 2, host_of(other.url), "api.hubapi.com", "--base-url")
        assert "hunter2" not in text
        assert other.stats.requests == 0 and real.stats.requests == sent_before

        # An explicit --base-url is the user's choice: retry goes there, and only there.
        chosen = await bulkops("retry", out, "--base-url", real.url, "--progress", "none")
        assert_clean(chosen, 1, f"talking to {host_of(real.url)}")
        assert real.stats.requests > sent_before and other.stats.requests == 0
        # What is written now names the host that was used, never the journal's.
        report = (out / "report.json").read_text()
        assert "hunter2" not in report and host_of(other.url) not in report


@asynccontextmanager
async def redirect_to_recorder(status: int):
    """A server answering every request with ``status`` and a Location on a second server,
    which records what reaches it. Both on 127.0.0.1."""
    reached: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        reached.append(dict(request.headers))
        return web.json_response({"results": []}, status=201)

    async def redirect(request: web.Request) -> web.Response:
        target = recorder.make_url(request.path_qs)
        return web.Response(status=status, headers={"Location": str(target)})

    recorder_app, redirect_app = web.Application(), web.Application()
    recorder_app.router.add_route("*", "/{tail:.*}", record)
    redirect_app.router.add_route("*", "/{tail:.*}", redirect)
    recorder = TestServer(recorder_app, host="127.0.0.1")
    redirector = TestServer(redirect_app, host="127.0.0.1")
    await recorder.start_server()
    await redirector.start_server()
    try:
        yield str(redirector.make_url("")).rstrip("/"), reached
    finally:
        await redirector.close()
        await recorder.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_never_followed_with_the_token(status):
    async with redirect_to_recorder(status) as (url, reached):
        async with AiohttpTransport(url, Secret(TOKEN)) as transport:
            body = {"inputs": [{"properties": {"subject": "x"}}]}
            response = await transport.send(
                HttpRequest("POST", "/crm/v3/objects/tickets/batch/create", body), timeout=10
            )
            assert response.status == status
    assert reached == []


async def test_a_job_against_a_redirecting_server_stops_and_sends_nothing_there(tmp_path):
    src = write_csv(tmp_path / "in.csv", 5)
    async with redirect_to_recorder(307) as (url, reached):
        done = await bulkops("run", "create", "--input", src, "--out", tmp_path / "job",
                             "--base-url", url, "--max-attempts", 1, "--no-preflight")  # fmt: skip
        assert_clean(done, 2, "307")
    assert reached == []


async def test_every_cli_error_path_exits_as_documented_without_traceback_or_token(tmp_path):
    """Each error path this module guards, as a user meets it: a documented exit code, no
    ``Traceback``, and the token nowhere: not on stdout or stderr, not in any file written."""
    src = write_csv(tmp_path / "in.csv", 30, bad=frozenset({4}))
    v1_ids = tmp_path / "v1.csv"
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    split_token = TOKEN[:8] + "\n" + TOKEN[8:]
    async with (
        FakeHubSpot(FakeConfig(rate_limit=None, tokens=frozenset({TOKEN}))) as fake,
        redirect_to_recorder(302) as (redirector, reached),
    ):
        (existing,) = fake.seed_records(
            "tickets", [{"subject": "old", "hs_pipeline": "0", "hs_pipeline_stage": "1"}]
        )
        v1_ids.write_text(f"id,subject\n²,a\nabc,b\n{existing},c\n")
        url = ["--base-url", fake.url, "--progress", "none"]
        port = fake.url.rsplit(":", 1)[1]

        def out(name: str) -> list[object]:
            return ["--out", tmp_path / name]

        nothing_sent: list[tuple[list[object], dict[str, str], int, str]] = [
            (["run", "create", "--input", src, "--token", TOKEN], {}, 2, "unrecognized"),
            (["run", "create", "--input", src, f"--token={TOKEN}"], {}, 2, "unrecognized"),
            (["run", TOKEN, "--input", src], {}, 2, "invalid choice: '***'"),
            (["run", "create", "--inp", src], {}, 2, "required: --input"),
            (["run", "create", "--input", src, "--base-url",
              f"http://me:{TOKEN}@127.0.0.1:{port}", *out("o1")], {}, 2, "user name or password"),
            (["run", "create", "--input", src, "--base-url",
              f"{fake.url}/?hapikey={TOKEN}", *out("o2")], {}, 2, "query string"),
            (["run", "create", "--input", src, *url, *out("o3"), "--object", "../../x"],
             {}, 2, "--object"),
            (["run", "create", "--input", src, *url, *out("o4"), "--object", "%2e%2e"],
             {}, 2, "--object"),
            (["run", "upsert", "--input", src, *url, *out("o5"), "--id-property", "a?b"],
             {}, 2, "--id-property"),
            (["run", "read", "--input", src, *url, *out("o6"), "--properties", "a,b#c"],
             {}, 2, "--properties"),
            (["run", "create", "--input", src, *url, "--out", a_file], {}, 2, "is a file"),
            (["run", "create", "--input", src, *url, "--out", a_file / "x"], {}, 2, "is a file"),
            (["run", "create", "--input", src, *url, "--out", "/proc/bulkops"], {}, 2,
             "cannot be written"),
            (["--debug", "run", "create", "--input", tmp_path / "missing.csv", *url, *out("o7")],
             {}, 2, "cannot read --input"),
            (["resume", tmp_path / "nojob", *url], {}, 2, "holds no bulkops job"),
            (["retry", tmp_path / "nojob", *url], {}, 2, "holds no bulkops job"),
        ]  # fmt: skip
        two_at_a_time = anyio.CapacityLimiter(2)  # the machine has two cores

        async def check(args: list[object], env: dict[str, str], code: int, fragment: str) -> None:
            async with two_at_a_time:
                assert_clean(await bulkops(*args, **env), code, fragment)

        async with anyio.create_task_group() as tg:
            for case in nothing_sent:
                tg.start_soon(check, *case)
        # The token with a line break pasted into it.
        done = await bulkops("run", "create", "--input", src, *url, *out("o8"), token=split_token)
        text = assert_clean(done, 2, "a line break at character 9")
        assert TOKEN[:8] not in text and TOKEN[9:] not in text
        assert fake.stats.requests == 0

        # Paths that do reach a server.
        done = await bulkops("run", "create", "--input", src, *url, *out("bad-token"),
                             token=TOKEN + "x")  # fmt: skip
        assert_clean(done, 3, "rejected the access token")
        done = await bulkops("run", "create", "--input", src, *url, *out("loose"),
                             "--token-file", token_file, "--id-property", "external_id",
                             token="")  # fmt: skip
        assert_clean(done, 1, f"--token-file {token_file} can be read by other users")
        done = await bulkops("run", "update", "--api", "v1", "--input", v1_ids, *url,
                             *out("v1"), "--no-preflight")  # fmt: skip
        assert_clean(done, 1, "1 succeeded, 2 failed")
        failed = (tmp_path / "v1" / "failed.jsonl").read_text()
        assert failed.count('"INPUT_ERROR"') == 2
        done = await bulkops("run", "create", "--input", src, *out("redirect"), "--base-url",
                             redirector, "--max-attempts", 1, "--no-preflight")  # fmt: skip
        assert_clean(done, 2, "302")
        assert reached == []
        done = await bulkops("resume", tmp_path / "loose", "--progress", "none",
                             HUBSPOT_BASE_URL=redirector)  # fmt: skip
        assert_clean(done, 2, host_of(fake.url), host_of(redirector), "--base-url")
        with (tmp_path / "loose" / "failed.jsonl").open("a") as f:
            f.write('{"row": "four", "input": {}}\n')
        sent = fake.stats.requests
        done = await bulkops("retry", tmp_path / "loose", *url)
        assert_clean(done, 2, 'failed.jsonl line 2: "row" must be the row number')
        assert fake.stats.requests == sent
        # A journal that is not one, or whose settings were damaged.
        (tmp_path / "not-a-journal").mkdir()
        (tmp_path / "not-a-journal" / "journal.sqlite").write_text("garbage")
        done = await bulkops("resume", tmp_path / "not-a-journal", *url)
        assert_clean(done, 2, "cannot be resumed or")
        edit_journal(tmp_path / "loose", operation="explode")
        done = await bulkops("resume", tmp_path / "loose", *url)
        assert_clean(done, 2, "holds settings bulkops cannot use")
        edit_journal(tmp_path / "loose", operation="create", object_type="../../admin")
        done = await bulkops("resume", tmp_path / "loose", *url)
        assert_clean(done, 2, "bulkops: --object '../../admin' is not an object type")
        assert fake.stats.requests == sent
        done = await bulkops("fake-server", "--help")
        assert_clean(done, 0, "A TEST SERVER")
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != token_file:
            assert TOKEN.encode() not in path.read_bytes(), path
