"""The job journal: a SQLite file (WAL mode, standard library) that makes a job resumable.

It records (outcomes group-committed by the engine every 20 ms, sent marks at once):

* ``outcomes``: every finished row, with the exact line written to ``succeeded.jsonl`` or
  ``failed.jsonl``. A crash loses at most the batches in flight and 20 ms of finished ones.
* ``sent``: one mark per create batch, listing its rows, committed *before* the request goes
  out, and dropped once the batch is settled (kept for rows whose outcome is still unknown).
  A create row that was sent but has no outcome may exist in HubSpot; on resume it is read
  back by its unique property instead of being created again (or reported AMBIGUOUS when
  there is none).
* ``meta``: what the job was (operation, object, options, input path and fingerprint; never the
  token) and ``runs``: each run's report, so the final report covers the whole job.

``synchronous=NORMAL`` in WAL mode: a commit survives a killed process (the data is in the OS),
just not a power cut; that is the trade that keeps frequent commits cheap.
"""

from __future__ import annotations

import contextlib
import sqlite3
from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

__all__ = ["JOURNAL_NAME", "Journal"]

JOURNAL_NAME = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outcomes (
    row INTEGER PRIMARY KEY, ok INTEGER NOT NULL, category TEXT, new INTEGER, line BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (id INTEGER PRIMARY KEY, rows BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS runs (n INTEGER PRIMARY KEY AUTOINCREMENT, report BLOB NOT NULL);
"""


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._pending: list[tuple[int, int, str | None, int | None, bytes]] = []
        self._released: list[tuple[int]] = []  # marks to drop at the next commit
        self._kept: list[tuple[bytes, int]] = []  # marks to shrink: (rows still unknown, id)

    # -- job description ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # Explicit: in autocommit mode every INSERT of an executemany would be a transaction
        # of its own, a hundred commits per batch instead of one.
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def set_meta(self, values: Mapping[str, Any]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                [(k, orjson.dumps(v)) for k, v in values.items()],
            )

    def meta(self) -> dict[str, Any]:
        return {k: orjson.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    # -- outcomes ----------------------------------------------------------------------------
    def record(
        self, row: int, ok: bool, line: bytes, category: str | None, new: bool | None
    ) -> None:
        """Buffer one outcome; it is written at the next :meth:`commit`."""
        self._pending.append((row, int(ok), category, None if new is None else int(new), line))

    def mark_sent(self, rows: Iterable[int]) -> int:
        """Commit at once that these create rows are about to be sent; returns the mark's id.
        One row per batch, not per record: this is on the hot path of every create."""
        with self._transaction():
            self._flush()
            cursor = self._db.execute(
                "INSERT INTO sent(rows) VALUES (?)", (array("q", rows).tobytes(),)
            )
        return int(cursor.lastrowid or 0)

    def release_mark(self, mark: int, still_unknown: Iterable[int] = ()) -> None:
        """The batch was settled: drop its mark, or keep only the rows whose outcome is still
        unknown (HubSpot may have written them). Applied at the next :meth:`commit`, together
        with the batch's outcomes."""
        keep = array("q", still_unknown)
        if keep:
            self._kept.append((keep.tobytes(), mark))
        else:
            self._released.append((mark,))

    def commit(self) -> None:
        if self._pending or self._released or self._kept:
            with self._transaction():
                self._flush()

    def _flush(self) -> None:
        if self._released:
            self._db.executemany("DELETE FROM sent WHERE id = ?", self._released)
            self._released.clear()
        if self._kept:
            self._db.executemany("UPDATE sent SET rows = ? WHERE id = ?", self._kept)
            self._kept.clear()
        if self._pending:
            self._db.executemany(
                "INSERT OR REPLACE INTO outcomes(row, ok, category, new, line) VALUES (?,?,?,?,?)",
                self._pending,
            )
            self._pending.clear()

    # -- reading back ------------------------------------------------------------------------
    def finished_rows(self) -> Iterator[int]:
        """Rows with an outcome, ascending (streamed: constant memory for any job size)."""
        for (row,) in self._stream("SELECT row FROM outcomes ORDER BY row"):
            yield row

    def sent_unfinished_rows(self) -> Iterator[int]:
        """Create rows that were sent but never got an outcome, ascending. Settled batches drop
        their marks, so what is left is small: the batches in flight at a crash, and rows whose
        outcome was unknown."""
        self.commit()
        rows: set[int] = set()
        for (blob,) in self._db.execute("SELECT rows FROM sent"):
            rows.update(array("q", blob))
        query = "SELECT 1 FROM outcomes WHERE row = ?"
        unfinished = [r for r in sorted(rows) if self._db.execute(query, (r,)).fetchone() is None]
        yield from unfinished

    def lines(self) -> Iterator[tuple[bool, bytes]]:
        """Every finished row's result line with whether it succeeded, in row order."""
        for ok, line in self._stream("SELECT ok, line FROM outcomes ORDER BY row"):
            yield bool(ok), line

    def _stream(self, query: str) -> Iterator[Any]:
        # A second connection reads from a snapshot (WAL), so rows the job writes while a
        # resumed job streams its finished rows cannot disturb the stream.
        self.commit()
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            yield from reader.execute(query)
        finally:
            reader.close()

    def counts(self) -> dict[str, Any]:
        c = self._db.execute(
            "SELECT COALESCE(SUM(ok), 0), COALESCE(SUM(1 - ok), 0),"
            " COALESCE(SUM(new = 1), 0), COALESCE(SUM(new = 0), 0) FROM outcomes"
        ).fetchone()
        by_category = dict(
            self._db.execute(
                "SELECT category, COUNT(*) FROM outcomes WHERE ok = 0 GROUP BY category"
            ).fetchall()
        )
        return {
            "succeeded": c[0],
            "failed": c[1],
            "created": c[2],
            "updated": c[3],
            "failed_by_category": by_category,
        }

    def add_run(self, report: Mapping[str, Any]) -> None:
        with self._transaction():
            self._db.execute("INSERT INTO runs(report) VALUES (?)", (orjson.dumps(report),))

    def runs(self) -> list[dict[str, Any]]:
        return [orjson.loads(r) for (r,) in self._db.execute("SELECT report FROM runs ORDER BY n")]

    def close(self) -> None:
        self.commit()
        self._db.close()
