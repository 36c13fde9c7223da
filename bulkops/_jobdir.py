"""The job folder: what a run may do with ``OUT`` and how it leaves it.

A folder holds ``journal.sqlite`` (the truth), the result files ``succeeded.jsonl`` and
``failed.jsonl`` (derived from the journal, plus the user's edits to ``failed.jsonl``),
``report.json`` and the lock. The rules:

* One process at a time (:class:`~bulkops._lock.FolderLock`, taken before anything else).
* ``new`` refuses a folder whose job has finished or sent a row, but reuses one whose job
  stopped before its first write (a bad option found at the first request), so the corrected
  command just works. ``resume`` and ``retry`` need a journal they can trust.
* Result files are rebuilt atomically (temporary file, fsync, ``os.replace``), never
  truncated in place: a crash leaves the old file or the new one.
* The user's edits to ``failed.jsonl`` are never lost. A retry first copies the file to
  ``.retry/input.jsonl`` and reads from that copy. When the retry ends (done or stopped), the
  rows it did not settle take the user's edited lines into the journal, the result files are
  rebuilt, and only then the copy is dropped. A retry that was killed leaves the copy: the
  next ``retry`` continues from it (the rows the killed one settled taken out of it, so none
  is sent twice), and a ``resume`` ends it the same way a retry ends, so the rows keep their
  edits in ``failed.jsonl``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._failed_input import RowSet, read_failed_file, stored_lines
from ._journal import JOURNAL_NAME, Journal
from ._lock import FolderLock
from ._report import JobReport, whole_job_report
from ._results import FAILED, SUCCEEDED
from ._sources import RawRow, fingerprint

__all__ = [
    "RETRY_DIR",
    "RETRY_INPUT",
    "JobFolder",
    "check_writable",
    "identify_input",
    "rebuild_result_files",
    "start_result_files",
]

RETRY_DIR = ".retry"  # the retry's scratch result files and the copy of its input
RETRY_INPUT = "input.jsonl"
_MODES = ("new", "resume", "retry")


def check_writable(path: Path) -> None:
    """Create the result folder if needed and prove that files can be written in it.

    Raises:
        ConfigError: a file is in the way, or the folder cannot be created or written.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"the result folder {path} is a file, not a folder; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the result folder {path}: {_reason(exc)}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".bulkops-probe-")
    except OSError as exc:
        raise ConfigError(f"cannot write in the result folder {path}: {_reason(exc)}") from None
    os.close(fd)
    os.unlink(probe)


class JobFolder:
    """One job's folder, held by this process between :meth:`open` and :meth:`close`.

    Example::

        folder = JobFolder(out)
        journal = folder.open("resume")   # lock, then a journal that was checked
        try:
            ...                           # the run
            folder.finish()               # a retry's results rebuilt, its copy dropped
        finally:
            folder.close()                # journal closed, lock released
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal_path = path / JOURNAL_NAME
        self.mode: str | None = None
        self._lock = FolderLock(path)
        self._journal: Journal | None = None

    def __repr__(self) -> str:
        state = self.mode or "closed"
        return f"<JobFolder {self.path} {state}{' retry pending' if self.retry_pending else ''}>"

    # -- opening -----------------------------------------------------------------------------
    def open(self, mode: str, *, meta: Mapping[str, Any] | None = None) -> Journal:
        """Take the folder for one run and return its journal.

        ``mode`` is ``"new"``, ``"resume"`` or ``"retry"``; ``meta`` (the job's description)
        is required for ``new``.

        Raises:
            JobFolderBusy: another process holds the folder.
            JournalError: the journal cannot be trusted.
            ConfigError: ``new`` on a folder holding a job, ``resume``/``retry`` on one
                without, a folder that cannot be written, a retry without ``failed.jsonl``.
        """
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
        if self._journal is not None:
            raise RuntimeError(f"{self.path} is already open ({self.mode})")
        if mode == "new" and meta is None:
            raise ValueError("a new job needs its meta")
        if mode != "new" and not self.journal_path.is_file():
            raise ConfigError(f"{self.path} holds no bulkops job (no {JOURNAL_NAME})")
        check_writable(self.path)
        self._lock.acquire()
        try:
            journal = self._open_journal(mode, meta)
            try:
                continuing = (
                    mode == "retry" and self.retry_pending and self._continue_retry(journal)
                )
                if mode == "resume" and self.retry_pending:  # a killed retry ends here
                    self._settle_retry(journal)
                journal.begin_generation()
                if mode == "retry" and not continuing:
                    self._start_retry(journal)
            except BaseException:
                journal.close()
                raise
        except BaseException:
            self._lock.release()
            raise
        self._journal, self.mode = journal, mode
        return journal

    def _open_journal(self, mode: str, meta: Mapping[str, Any] | None) -> Journal:
        if mode != "new":
            return Journal.open(self.journal_path)
        assert meta is not None
        path = self.journal_path
        if path.is_file() and path.stat().st_size == 0 and not _has_wal(path):
            path.unlink()  # killed as it was created, before SQLite wrote a byte
        if not path.exists():
            return Journal.create(path, meta)
        journal = Journal(path)
        if journal.has_progress():
            journal.close()
            raise ConfigError(
                f"{self.path} already holds a job; continue it with "
                f"`bulkops resume {self.path}` or choose another --out"
            )
        journal.reset(meta)  # it stopped before its first write: nothing to lose
        return journal

    def open_for_run(
        self,
        mode: str,
        *,
        meta: Mapping[str, Any] | None,
        input_meta: Mapping[str, Any],
        input_name: str,
    ) -> Journal:
        """:meth:`open`, then the result files as the run starts them: empty for a new job
        (or one that stopped before its first write), rebuilt from the journal for a resumed
        one (after checking it is given the same input), and a retry's own scratch files."""
        journal = self.open(mode, meta=meta)
        try:
            if mode == "new":
                start_result_files(self.path)
            elif mode == "resume":
                _check_same_input(journal, input_meta, input_name)
                self.rebuild_result_files(journal)
            else:
                start_result_files(self.path / RETRY_DIR)
        except BaseException:
            self.close()
            raise
        return journal

    # -- the retry's input -------------------------------------------------------------------
    @property
    def retry_pending(self) -> bool:
        """Whether a retry's copy of its input is here: a retry is running or was killed."""
        return self.retry_input_path().is_file()

    def retry_input_path(self) -> Path:
        """Where a retry keeps its copy of the user's ``failed.jsonl`` while it runs."""
        return self.path / RETRY_DIR / RETRY_INPUT

    def retry_source_path(self) -> Path:
        """The file the next retry will send: a killed retry's copy if there is one (its rows
        keep their edits), else ``failed.jsonl``. For checking it before the job starts."""
        return self.retry_input_path() if self.retry_pending else self.path / FAILED

    def retry_rows(self, *, include_ambiguous: bool) -> Iterator[RawRow]:
        """The rows a retry sends, read from its copy when first asked for, that is after
        :meth:`open` has made the copy (checked again, streamed)."""
        path = self.retry_input_path()
        if not path.is_file():
            raise ConfigError(f"{path} is missing: the job folder was not opened for a retry")
        yield from read_failed_file(path, include_ambiguous=include_ambiguous).rows()

    def _start_retry(self, journal: Journal) -> None:
        failed = self.path / FAILED
        if not failed.is_file():
            raise ConfigError(f"{failed} does not exist: there is nothing to retry")
        # The generation goes into the meta before the copy exists: a copy is never without it.
        journal.set_meta({"retry": {"generation": journal.generation}})
        copy = self.retry_input_path()
        copy.parent.mkdir(exist_ok=True)
        _atomic_copy(failed, copy)

    def _continue_retry(self, journal: Journal) -> bool:
        """A retry was killed: its copy keeps only the rows it had not settled yet, so the
        next one sends those and no other (not rows it wrote, nor rows the user had taken
        out of the file). False when it cannot tell what was settled: then it is ended."""
        started = (journal.meta().get("retry") or {}).get("generation")
        if not isinstance(started, int):
            self._settle_retry(journal)
            return False
        settled = RowSet()
        for row in journal.rows_settled_since(started):
            settled.add(row)
        copy = self.retry_input_path()
        rest = copy.with_name(f".{copy.name}.continuing")
        with rest.open("wb") as f:
            for row, line in stored_lines(copy):
                if row not in settled:
                    f.write(line + b"\n")
        _atomic_copy(rest, copy)
        rest.unlink()
        return True

    def _settle_retry(self, journal: Journal) -> None:
        """The rows the retry did not settle keep the user's lines from its copy; then the
        result files are rebuilt and the copy dropped, in that order (a crash in between
        leaves the copy, and this runs again)."""
        copy = self.retry_input_path()
        retry = journal.meta().get("retry") or {}
        started = retry.get("generation")
        if isinstance(started, int):
            journal.keep_user_lines(stored_lines(copy), before_generation=started)
        self.rebuild_result_files(journal)
        shutil.rmtree(self.path / RETRY_DIR)
        journal.set_meta({"retry": None})

    # -- leaving -----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """The job's description: the open journal's, or read from the folder."""
        if self._journal is not None:
            return self._journal.meta()
        journal = Journal.open(self.journal_path)
        try:
            return journal.meta()
        finally:
            journal.close()

    def rebuild_result_files(self, journal: Journal | None = None) -> None:
        """Rewrite ``succeeded.jsonl`` and ``failed.jsonl`` from the journal, atomically."""
        journal = journal or self._journal
        if journal is None:
            raise RuntimeError(f"{self.path} is not open")
        rebuild_result_files(journal, self.path)

    def close_run(self, report: JobReport, *, mode: str, skipped: int) -> JobReport:
        """Journal this run's report and return the whole job's (every run summed, the row
        counts after the last commit, so it equals the result files); then :meth:`finish`."""
        journal = self._journal
        if journal is None:
            raise RuntimeError(f"{self.path} is not open")
        journal.commit()
        earlier = [JobReport.from_json(r) for r in journal.runs()]
        journal.add_run(report.to_json())
        whole = whole_job_report(report, earlier, journal.counts(), mode=mode, skipped=skipped)
        self.finish()
        return whole

    def finish(self) -> None:
        """End the run's work on the folder: a retry's rows settle (see the module docstring).
        Call it however the run ended; a run that is killed instead leaves the copy behind."""
        if self._journal is not None and self.mode == "retry":
            self._settle_retry(self._journal)

    def close(self) -> None:
        """Close the journal and release the folder (idempotent)."""
        journal, self._journal = self._journal, None
        try:
            if journal is not None:
                journal.close()
        finally:
            self.mode = None
            self._lock.release()


def start_result_files(folder: Path) -> None:
    """Empty result files for a run that starts with none."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (SUCCEEDED, FAILED):
        (folder / name).write_bytes(b"")


def identify_input(source: object, input_meta: Mapping[str, Any]) -> dict[str, Any]:
    """The input's description for the journal. A file is identified by its fingerprint (as
    the CLI does), so a resume of another file is refused before anything is sent; other
    sources are checked row by row (``_intake``)."""
    meta = dict(input_meta)
    if not isinstance(source, str | os.PathLike) or meta.get("fingerprint"):
        return meta
    path = os.fspath(source)
    if path != "-" and os.path.isfile(path):
        meta.update(path=os.path.abspath(path), fingerprint=fingerprint(path))
    return meta


def _check_same_input(journal: Journal, input_meta: Mapping[str, Any], input_name: str) -> None:
    journaled = (journal.meta().get("input") or {}).get("fingerprint")
    given = input_meta.get("fingerprint")
    if journaled and given and journaled != given:
        raise ConfigError(
            f"the input {input_name} is not the file this job started with (its fingerprint "
            "differs); resume will not mix two inputs: start a new job"
        )


def rebuild_result_files(journal: Journal, out_dir: Path) -> None:
    """Rewrite ``out_dir``'s ``succeeded.jsonl`` and ``failed.jsonl`` from ``journal``.

    Each file is written to a temporary file in the same folder, fsynced, then renamed over
    the old one: readers and crashes see the old file or the new one, never half of either.
    """
    ok_tmp = out_dir / f".{SUCCEEDED}.rebuilding"
    bad_tmp = out_dir / f".{FAILED}.rebuilding"
    try:
        with (
            ok_tmp.open("wb", buffering=1 << 20) as ok,
            bad_tmp.open("wb", buffering=1 << 20) as bad,
        ):
            for succeeded, line in journal.lines():
                (ok if succeeded else bad).write(line + b"\n")
            for f in (ok, bad):
                f.flush()
                os.fsync(f.fileno())
        os.replace(ok_tmp, out_dir / SUCCEEDED)
        os.replace(bad_tmp, out_dir / FAILED)
    finally:
        for tmp in (ok_tmp, bad_tmp):
            tmp.unlink(missing_ok=True)
    _fsync_dir(out_dir)


def _atomic_copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.copying")
    try:
        shutil.copyfile(source, tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)


def _has_wal(journal: Path) -> bool:
    wal = journal.with_name(journal.name + "-wal")
    return wal.is_file() and wal.stat().st_size > 0


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the folder's entry is (POSIX).
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
