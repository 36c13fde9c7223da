"""The job folder's lock: one holder at a time, the loser told who, and a killed holder never
leaves it stale. Holders run in real subprocesses, since the lock belongs to a process."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkops._errors import ConfigError
from bulkops._lock import LOCK_NAME, FolderLock, JobFolderBusy, lock_holder

# Takes the lock, says so, then holds it until its stdin closes (or it is killed).
_HOLDER = """
import sys
from pathlib import Path
from bulkops._lock import FolderLock
lock = FolderLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "the holder did not take the lock in 20 s"
        assert proc.stdout.readline() == b"locked\n"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=20)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def test_a_second_process_fails_fast_naming_the_holder(tmp_path, holder):
    with pytest.raises(JobFolderBusy) as caught:
        FolderLock(tmp_path).acquire()
    assert caught.value.pid == holder.pid
    assert isinstance(caught.value, ConfigError)  # exit 2 in the CLI
    assert str(caught.value) == (
        f"{tmp_path} is in use by another bulkops process (PID {holder.pid}); "
        "wait for it to finish or stop it"
    )
    assert lock_holder(tmp_path) == holder.pid


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=20)
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(holder.pid)  # its PID is still there
    assert lock_holder(tmp_path) is None  # but the kernel dropped the lock
    with FolderLock(tmp_path) as lock:
        assert lock.held
        assert lock_holder(tmp_path) == os.getpid()


def test_a_holder_that_finishes_releases_it(tmp_path, holder):
    assert holder.stdin is not None
    holder.stdin.close()  # the holder releases and exits
    assert holder.wait(timeout=20) == 0
    assert lock_holder(tmp_path) is None
    FolderLock(tmp_path).acquire()


def test_two_locks_in_one_process_exclude_each_other(tmp_path):
    first = FolderLock(tmp_path)
    first.acquire()
    with pytest.raises(JobFolderBusy, match=f"PID {os.getpid()}"):
        FolderLock(tmp_path).acquire()
    first.release()
    first.release()  # idempotent
    assert not first.held
    assert (tmp_path / LOCK_NAME).read_bytes() == b""  # no stale PID once released
    with FolderLock(tmp_path):
        pass


def test_acquiring_twice_is_a_bug_not_a_busy_folder(tmp_path):
    with FolderLock(tmp_path) as lock, pytest.raises(RuntimeError, match="already held"):
        lock.acquire()


def test_nobody_holds_a_folder_without_a_lock_file(tmp_path):
    assert lock_holder(tmp_path) is None
    assert lock_holder(tmp_path / "missing") is None
    assert repr(FolderLock(tmp_path)) == f"<FolderLock {tmp_path} free>"


def test_a_holder_that_has_not_written_its_pid_yet_is_still_busy(tmp_path):
    (tmp_path / LOCK_NAME).write_bytes(b"")
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, PID not written
        assert lock_holder(tmp_path) == 0
        with pytest.raises(JobFolderBusy, match=r"\(PID unknown\)"):
            FolderLock(tmp_path).acquire()
    finally:
        os.close(fd)


def test_a_lock_dropped_without_release_frees_the_folder(tmp_path):
    lock = FolderLock(tmp_path)
    lock.acquire()
    assert lock_holder(tmp_path) == os.getpid()
    del lock  # the last reference: CPython finalises it at once
    assert lock_holder(tmp_path) is None
