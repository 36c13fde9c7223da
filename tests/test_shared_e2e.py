"""Several bulkops PROCESSES on one account through a real redis-server, against one HTTP fake:
never over the account's window (one process's wall clock skewed, as on another host), and
exact when Redis is killed mid-job (each falls back to a share, then the job ends exact)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson

from bulkops.testing import FakeConfig, FakeHubSpot

from .accounting import assert_accounted
from .redisserver import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, used by name

LIMIT, INTERVAL_MS = 40, 1000
ROWS = 600  # 60 write requests per process, batches of 10
REPO = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_S = 60.0


async def start_child(
    url: str, redis_url: str, out: Path, prefix: str, skew: float = 0.0
) -> anyio.abc.Process:
    return await anyio.open_process(
        [sys.executable, "-m", "tests.shared_child", url, redis_url, str(out), prefix, str(ROWS),
         str(skew)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


async def finish(proc: anyio.abc.Process) -> tuple[dict[str, Any], str]:
    """The child's report and its stderr, once it exits (bounded)."""
    assert proc.stdout is not None and proc.stderr is not None
    out, err = b"", b""
    with anyio.fail_after(CHILD_TIMEOUT_S):
        async with anyio.create_task_group() as tg:

            async def read_out() -> None:
                nonlocal out
                async for chunk in proc.stdout:  # type: ignore[union-attr]
                    out += chunk

            async def read_err() -> None:
                nonlocal err
                async for chunk in proc.stderr:  # type: ignore[union-attr]
                    err += chunk

            tg.start_soon(read_out)
            tg.start_soon(read_err)
        code = await proc.wait()
    text = err.decode(errors="replace")
    assert code == 0, text[-3000:]
    return orjson.loads(out.strip().splitlines()[-1]), text


class CountingFake(FakeHubSpot):
    """The fake, telling when it has answered ``at`` requests (the children are other
    processes: this is how the test knows they are well into their jobs, without polling)."""

    def __init__(self, config: FakeConfig, *, at: int) -> None:
        super().__init__(config)
        self.reached = anyio.Event()
        self._at = at

    def _log_request(self, n: int, request: Any, status: int) -> None:
        super()._log_request(n, request, status)
        if n >= self._at:
            self.reached.set()


def fake_config() -> FakeConfig:
    return FakeConfig(rate_limit=LIMIT, interval_ms=INTERVAL_MS, latency=(0.02, 0.06))


async def test_two_processes_one_with_a_skewed_clock_never_exceed_the_window(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with FakeHubSpot(fake_config()) as fake:
        procs = [
            await start_child(fake.url, redis_server.url, tmp_path / "a", "a"),
            # Another "host" whose wall clock is 2.5 s ahead: more than two windows.
            await start_child(fake.url, redis_server.url, tmp_path / "b", "b", skew=2.5),
        ]
        results = [await finish(p) for p in procs]
        for name in ("a", "b"):
            assert_accounted(tmp_path / name, ROWS)
        assert fake.max_requests_in_window() <= LIMIT
        assert fake.stats.by_status.get(429, 0) == 0
        for report, _ in results:
            # Each counted the other's requests as the account's own, not a neighbour's.
            assert report["rate_limit"]["others_estimate"] <= 2, report["rate_limit"]


async def test_redis_killed_mid_job_falls_back_without_exceeding_and_ends_exact(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with CountingFake(fake_config(), at=40) as fake:
        procs = [
            await start_child(fake.url, redis_server.url, tmp_path / "a", "a"),
            await start_child(fake.url, redis_server.url, tmp_path / "b", "b"),
        ]
        # Kill the coordinator once both are well into their jobs.
        with anyio.fail_after(CHILD_TIMEOUT_S):
            await fake.reached.wait()  # type: ignore[attr-defined]
        redis_server.kill()
        results = [await finish(p) for p in procs]
        for name in ("a", "b"):
            assert_accounted(tmp_path / name, ROWS)
        assert fake.max_requests_in_window() <= LIMIT
        assert fake.stats.by_status.get(429, 0) == 0
        for _, stderr in results:
            assert stderr.count("is not answering") == 1, stderr[-2000:]
