"""A real ``redis-server`` for the coordination tests: on 127.0.0.1, a free port, a temp dir,
no persistence; killed at the end. Tests that need it are skipped, saying why, when the binary
is absent (``.ci/run`` installs it)."""

from __future__ import annotations

import selectors
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

READY = b"Ready to accept connections"
START_TIMEOUT_S = 10.0

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="redis-server is not installed (apt-get install redis-server; .ci/run does it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and return once it accepts connections (read from its log, no polling)."""
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.folder),
                "--logfile", "",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,  # unbuffered: what select() says is there is what readline() gets
        )  # fmt: skip
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        seen = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while READY not in seen:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.kill()
                    raise RuntimeError(f"redis-server did not start: {seen[-500:]!r}")
                line = self.proc.stdout.readline()
                if not line:
                    self.kill()
                    raise RuntimeError(f"redis-server exited: {seen[-500:]!r}")
                seen += line
        # Its log goes on into the pipe (a few lines; the pipe is closed when it is killed).

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does it)")
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.kill()
