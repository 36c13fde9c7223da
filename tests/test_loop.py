"""``--loop``: the command's job on uvloop (the ``fast`` extra) or on asyncio's own loop, each
job accounted for in full; uvloop named but missing is one plain usage error."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from bulkops import _loop
from bulkops._errors import ConfigError
from bulkops.testing import FakeConfig, FakeHubSpot

from .accounting import assert_accounted
from .test_cli import env, run_cli, write_csv

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
)


def test_auto_takes_uvloop_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _loop.loop_name("auto") == "uvloop"
    assert _loop.loop_name("uvloop") == "uvloop"
    assert _loop.loop_name("asyncio") == "asyncio"
    assert _loop.backend_options("auto") == {"use_uvloop": True}
    assert _loop.backend_options("asyncio") == {}
    monkeypatch.setattr(_loop, "_have_uvloop", lambda: False)
    assert _loop.loop_name("auto") == "asyncio"
    assert _loop.backend_options("auto") == {}
    with pytest.raises(ConfigError, match=r"uvloop is not installed.*bulkops\[fast\]"):
        _loop.loop_name("uvloop")
    with pytest.raises(ConfigError, match="choose one of auto, asyncio, uvloop"):
        _loop.loop_name("trio")


@pytest.mark.parametrize(("choice", "expected"), [("auto", "uvloop"), ("asyncio", "asyncio")])
async def test_a_job_runs_on_the_loop_asked_for(tmp_path: Path, choice: str, expected: str) -> None:
    src = tmp_path / "in.csv"
    write_csv(src, 1_250, bad={7})
    out = tmp_path / "out"
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        done = await run_cli(
            *("run", "create", "--input", src, "--base-url", fake.url, "--out", out),
            *("--rate-limit", 0, "--progress", "none", "--loop", choice),
            *("--log-format", "json", "-v"),
        )
    assert done.returncode == 1, done.stderr.decode()  # row 7 fails pre-flight
    events = [orjson.loads(line) for line in done.stderr.splitlines()]
    start = next(e for e in events if e["event"] == "start")
    assert start["fields"]["loop"] == expected
    # What the job really ran on, said from inside the running loop.
    assert any(e["event"] == "loop" and e["message"].endswith(f" {expected}") for e in events)
    assert_accounted(out, 1_250)


async def test_uvloop_asked_for_and_missing_is_a_usage_error(tmp_path: Path) -> None:
    """Where uvloop is not installed, ``--loop uvloop`` stops before anything is done (here
    it is installed, so the check runs in a child that cannot import it)."""
    src = tmp_path / "in.csv"
    write_csv(src, 10)
    child = (
        "import sys, bulkops._loop as l; l._have_uvloop = lambda: False; "
        "from bulkops._cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = ("run", "create", "--input", src, "--out", tmp_path / "out", "--loop", "uvloop")
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-c", child, *map(str, args)], env=env(), check=False
        )
    assert done.returncode == 2
    message = done.stderr.decode()
    assert "--loop" in message and "pip install 'bulkops[fast]'" in message
    assert "Traceback" not in message
    assert not (tmp_path / "out").exists()
