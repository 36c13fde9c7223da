"""The fake HubSpot as a process of its own, for tests of the server command."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
URL_PREFIX = "FAKE_HUBSPOT_URL="
FAKE_SERVER = ("-m", "bulkops", "fake-server")


@asynccontextmanager
async def fake_server_process(
    *args: str, command: tuple[str, ...] = FAKE_SERVER
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Start ``python COMMAND ARGS``; yields the process and the URL from its first line.
    It is killed on the way out unless the test stopped it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *command, *args, stdout=asyncio.subprocess.PIPE, env=env, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith(URL_PREFIX + "http://127.0.0.1:"), line
        yield proc, line.strip().removeprefix(URL_PREFIX)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def stop_with_sigterm(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then the process must exit 0 within 10 s."""
    proc.terminate()
    assert await asyncio.wait_for(proc.wait(), 10) == 0
