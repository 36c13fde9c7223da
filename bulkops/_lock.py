"""One process per job folder: an OS lock on ``OUT/.bulkops.lock``.

Two processes on one folder would write the same result files and journal, and a resumed
create could be sent twice. The lock is ``flock(LOCK_EX | LOCK_NB)``: the kernel drops it when
the holding process dies, however it dies (SIGKILL, OOM, power), so a crash never leaves a
stale lock to clean up by hand. The holder writes its PID into the file *after* taking the
lock, so the loser can name it; the file itself is never deleted (deleting a lock file races
with a process that has just opened it).

POSIX only: ``fcntl`` does not exist on Windows, where ``msvcrt.locking`` would be the
equivalent; bulkops does not run there today. On NFS, Linux emulates ``flock`` with byte-range
locks, which hold across clients.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from ._errors import ConfigError

__all__ = ["LOCK_NAME", "FolderLock", "JobFolderBusy", "lock_holder"]

LOCK_NAME = ".bulkops.lock"


class JobFolderBusy(ConfigError):
    """Another process holds the job folder's lock."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        who = f"PID {pid}" if pid else "PID unknown"
        super().__init__(
            f"{folder} is in use by another bulkops process ({who}); "
            "wait for it to finish or stop it"
        )
        self.folder = folder
        self.pid = pid


class FolderLock:
    """Holds ``folder/.bulkops.lock`` exclusively while acquired; a context manager.

    Raises :class:`JobFolderBusy` (naming the holder's PID) at once if another process, or
    another ``FolderLock`` in this process, holds it: this never waits.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = None  # open and locked exactly while held

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this FolderLock")
        # os.open's descriptors are not inherited by child processes, so a subprocess started
        # by the job cannot keep the lock alive after the job has died.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise JobFolderBusy(self.folder, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no stale PID for a reader of the bare file
        finally:
            os.close(fd)  # closing the last descriptor drops the lock

    def __del__(self) -> None:
        # A holder dropped without release() (a job whose set-up failed after it took the
        # folder) must not keep the folder busy for the rest of a long-lived process.
        if getattr(self, "_fd", None) is not None:  # not if __init__ failed half-way
            self.release()

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<FolderLock {self.folder} {'held' if self.held else 'free'}>"


def lock_holder(folder: Path) -> int | None:
    """The PID of the process holding ``folder``'s lock now, or None when nobody holds it
    (0 in the instant between a holder taking the lock and writing its PID).

    A shared, non-blocking probe: it fails exactly when someone holds the exclusive lock, and
    never blocks a holder, since it is dropped at once.
    """
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        return None
    finally:
        os.close(fd)  # also drops the probe's shared lock


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
