"""``bulkops status OUT``: a job's state read from its folder, from outside the job.

It reads, and never writes or locks: the journal through a read-only SQLite connection (a
WAL reader never blocks the job's writer, and sees its last commit), ``report.json`` (which
the engine refreshes every few seconds while the job runs), the tail of ``failed.jsonl`` and
who holds the folder's lock (:func:`~bulkops._lock.lock_holder`). So it works while the job
runs, after it stopped, and after it was killed (no lock holder, no final report).

States: ``running`` (a process holds the folder), ``finished`` (the last run saw every row
through: some may have failed), ``stopped`` (cut short: a stop, a cancel, or a kill; ``bulkops
resume OUT`` goes on).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from ._errors import ConfigError
from ._journal import JOURNAL_NAME, count_outcomes
from ._lock import lock_holder
from ._report import REPORT_NAME
from ._results import FAILED

__all__ = ["STATUS_VERSION", "JobState", "format_status", "journal_counts", "read_status"]

STATUS_VERSION = 1
_TAIL_BYTES = 64 * 1024  # enough for the last failure line of any sane input


@dataclass(frozen=True, slots=True)
class JobState:
    """What ``bulkops status`` tells (``--json`` prints :meth:`to_json`)."""

    folder: str
    state: str  # running | stopped | finished
    pid: int | None  # the process holding the folder, when running
    killed: bool  # stopped without writing its final report (SIGKILL, OOM, power)
    operation: str | None
    object_type: str | None
    succeeded: int
    failed: int
    total: int | None  # rows in the input; None when not known
    total_estimated: bool  # counted from the file's lines, the input not read to the end yet
    rate_per_s: float | None  # rows finished per second in the current (or last) run
    eta_s: float | None
    last_error: str | None
    stop_reason: str | None
    report_updated_at: str | None

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def left(self) -> int | None:
        return None if self.total is None else max(0, self.total - self.done)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        rows = {
            "succeeded": data.pop("succeeded"),
            "failed": data.pop("failed"),
            "done": self.done,
            "total": data.pop("total"),
            "total_estimated": data.pop("total_estimated"),
            "left": self.left,
        }
        return {"version": STATUS_VERSION, **data, "rows": rows}


def read_status(folder: Path) -> JobState:
    """The state of the job in ``folder``.

    Raises:
        ConfigError: the folder holds no job, or its journal cannot be read.
    """
    journal_path, report_path = folder / JOURNAL_NAME, folder / REPORT_NAME
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; give a job's result folder (OUT)")
    if not journal_path.is_file() and not report_path.is_file():
        raise ConfigError(f"{folder} holds no bulkops job (no {JOURNAL_NAME}, no {REPORT_NAME})")
    pid = lock_holder(folder)
    report = _read_report(report_path)
    meta: dict[str, Any] = {}
    if journal_path.is_file():
        counts, meta = _read_journal(journal_path, held=pid is not None)
        succeeded, failed = counts
    else:  # a job run with --no-journal: its report is all there is
        rows = (report or {}).get("rows") or {}
        succeeded, failed = int(rows.get("succeeded", 0)), int(rows.get("failed", 0))
    job = (report or {}).get("job") or {}
    config = meta.get("config") or {}
    report_status = (report or {}).get("status")
    killed = pid is None and (report is None or report_status == "running")
    if pid is not None:
        state = "running"
    elif report_status == "complete":
        state = "finished"
    else:
        state = "stopped"
    total, estimated = _total(report, meta, succeeded + failed)
    rate = _rate(report) if report is not None and state == report_status == "running" else None
    left = None if total is None else max(0, total - succeeded - failed)
    eta = round(left / rate, 1) if rate and left is not None and state == "running" else None
    stop = (report or {}).get("stop") if state != "running" else None
    return JobState(
        folder=str(folder),
        state=state,
        pid=pid or None,
        killed=killed,
        operation=config.get("operation") or job.get("operation"),
        object_type=config.get("object_type") or job.get("object_type"),
        succeeded=succeeded,
        failed=failed,
        total=total,
        total_estimated=estimated,
        rate_per_s=rate,
        eta_s=eta,
        last_error=(stop or {}).get("message") or _last_failure(folder / FAILED),
        stop_reason=(stop or {}).get("reason"),
        report_updated_at=job.get("finished_at"),
    )


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None  # none yet (the job writes its first after a few seconds), or unreadable
    return data if isinstance(data, dict) else None


def _connect(path: Path, *, held: bool) -> sqlite3.Connection:
    # Read-only. With no write-ahead log beside it (nobody has it open, it was closed
    # cleanly) the file is opened immutable, so not even SQLite's -shm/-wal files appear.
    wal = path.with_name(path.name + "-wal")
    flags = "mode=ro" if held or wal.exists() else "immutable=1"
    try:
        return sqlite3.connect(f"{path.resolve().as_uri()}?{flags}", uri=True)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read the journal {path}: {exc}") from None


def _read_journal(path: Path, *, held: bool) -> tuple[tuple[int, int], dict[str, Any]]:
    db = _connect(path, held=held)
    try:
        counts = count_outcomes(db)
        ok, bad = counts["succeeded"], counts["failed"]
        meta = {k: _loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"cannot read the journal {path}: {exc}") from None
    finally:
        db.close()
    return (int(ok), int(bad)), meta


def journal_counts(path: Path) -> dict[str, Any]:
    """What ``Journal.counts()`` returns, from the last commit, through a read-only connection
    of its own: the engine's report snapshots run it in a thread (a million rows take 0.2 s,
    which the event loop should not wait for)."""
    db = _connect(path, held=True)
    try:
        return count_outcomes(db)
    finally:
        db.close()


def _loads(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _total(
    report: dict[str, Any] | None, meta: dict[str, Any], done: int
) -> tuple[int | None, bool]:
    rows = (report or {}).get("rows") or {}
    if rows.get("input_exhausted"):
        return max(int(rows.get("read", 0)), done), False
    path = (meta.get("input") or {}).get("path")
    if isinstance(path, str) and os.path.isfile(path):
        return max(_count_rows(path), done), True
    return None, False


def _count_rows(path: str) -> int:
    """Rough row count for the ETA, as the live display counts: newlines, less a CSV header."""
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return max(0, n - 1) if path.lower().endswith((".csv", ".tsv")) else n


def _rate(report: dict[str, Any]) -> float | None:
    run = report.get("this_run") or {}
    rate = run.get("records_per_s", report.get("records_per_s"))
    return float(rate) if isinstance(rate, int | float) and rate > 0 else None


def _last_failure(path: Path) -> str | None:
    """The last whole line of ``failed.jsonl`` (the files are written in whole lines, but a
    rebuild or an edit may be under way): ``row N: CATEGORY: message``."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = f.seek(max(0, size - _TAIL_BYTES))
            lines = f.read().split(b"\n")
    except OSError:
        return None
    if start:
        lines = lines[1:]  # begins mid-line
    for line in reversed(lines):
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            error = data["error"]
            return f"row {data.get('row')}: {error.get('category')}: {error.get('message')}"
    return None


def _duration(seconds: float) -> str:
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_status(st: JobState) -> str:
    """For a person: a few lines."""
    what = " ".join(x for x in (st.operation, st.object_type) if x)
    head = f"{st.folder}: {st.state}" + (f" ({what})" if what else "")
    if st.pid:
        head += f", PID {st.pid}"
    if st.killed:
        head += ", killed or crashed (no final report)"
    elif st.stop_reason:
        head += f" ({st.stop_reason})"
    total = "" if st.total is None else f" of {'about ' if st.total_estimated else ''}{st.total:,}"
    lines = [head, f"  rows: {st.done:,}{total} done ({st.succeeded:,} ok, {st.failed:,} failed)"]
    if st.left is not None:
        lines[-1] += f", {st.left:,} left"
    if st.rate_per_s:
        rate = f"  rate: {st.rate_per_s:,.1f} rows/s"
        if st.eta_s is not None:
            rate += f", ETA {_duration(st.eta_s)}"
        lines.append(rate)
    if st.last_error:
        lines.append(f"  last error: {st.last_error}")
    if st.report_updated_at:
        lines.append(f"  report.json updated {st.report_updated_at}")
    if st.state == "stopped":
        lines.append(f"  continue with: bulkops resume {st.folder}")
    return "\n".join(lines)
