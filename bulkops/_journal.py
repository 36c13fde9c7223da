"""The job journal: a SQLite file (WAL mode, standard library) that makes a job resumable.

It records (outcomes group-committed by the engine every 20 ms, sent marks at once):

* ``outcomes``: every finished row, with the exact line written to ``succeeded.jsonl`` or
  ``failed.jsonl``. A crash loses at most the batches in flight and 20 ms of finished ones.
* ``sent``: create rows handed to HubSpot, committed *before* the request goes out. A create row
  that was sent but has no outcome may exist in HubSpot; on resume it is read back by its unique
  property instead of being created again (or reported AMBIGUOUS when there is none).
* ``meta``: what the job was (operation, object, options, input path and fingerprint; never the
  token) and ``runs``: each run's report, so the final report covers the whole job.

``synchronous=NORMAL`` in WAL mode: a commit survives a killed process (the data is in the OS),
just not a power cut; that is the trade that keeps frequent commits cheap.
"""

from __future__ import annotations

import contextlib
import sqlite3
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
CREATE TABLE IF NOT EXISTS sent (row INTEGER PRIMARY KEY);
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
        self._unsent: list[tuple[int]] = []

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

    def mark_sent(self, rows: Iterable[int]) -> None:
        """Commit at once that these create rows are about to be sent."""
        with self._transaction():
            self._flush()
            self._db.executemany("INSERT OR IGNORE INTO sent(row) VALUES (?)", ((r,) for r in rows))

    def unmark_sent(self, rows: Iterable[int]) -> None:
        """HubSpot answered that it did not act on these rows (429, 423, ...): not in flight.
        Applied at the next :meth:`commit`."""
        self._unsent.extend((r,) for r in rows)

    def commit(self) -> None:
        if self._pending or self._unsent:
            with self._transaction():
                self._flush()

    def _flush(self) -> None:
        if self._unsent:
            self._db.executemany("DELETE FROM sent WHERE row = ?", self._unsent)
            self._unsent.clear()
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
        """Create rows that were sent but never got an outcome, ascending."""
        query = "SELECT row FROM sent WHERE row NOT IN (SELECT row FROM outcomes) ORDER BY row"
        for (row,) in self._stream(query):
            yield row

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
