"""The job journal: a SQLite file (WAL mode, standard library) that makes a job resumable.

It records (outcomes group-committed by the engine every 20 ms, sent marks at once):

* ``outcomes``: every finished row, with the exact line written to ``succeeded.jsonl`` or
  ``failed.jsonl``, the row's :func:`row_digest` (so a resume can tell that row N is still the
  same record) and the run (generation) that wrote it. A crash loses at most the batches in
  flight and 20 ms of finished ones.
* ``settled``: how a run writes them. One row per commit (a few hundred outcomes): their row
  numbers as a JSON array, the outcomes themselves as one MessagePack body, and their tally
  (succeeded, failed, created, updated, by category). A row per outcome cost SQLite more
  than everything else the journal does (~2.5 us a record, a sixth of a default job's CPU); a
  row per commit costs ~0.6 us. The counts a report needs are summed from the tallies.
  Reading rows back (a resume, a retry, rebuilding the result files) first *folds* the
  settled outcomes into ``outcomes``, one transaction, oldest first, the later outcome of a
  row replacing the earlier; opening an existing journal folds too, so ``settled`` only ever
  holds the outcomes of the run that has the journal open, each row at most once.
* ``sent``: one mark per create batch, listing its rows and their digests, committed *before*
  the request goes out, and dropped once the batch is settled (kept for rows whose outcome is
  still unknown). A create row that was sent but has no outcome from the mark's run or later
  may exist in HubSpot; on resume it is read back by its unique property instead of being
  created again (or reported AMBIGUOUS when there is none).
* ``meta``: what the job was (operation, object, options, input path and fingerprint; never the
  token), ``schema_version`` and the current ``generation``; ``runs``: each run's report, so the
  final report covers the whole job.

``synchronous=NORMAL`` in WAL mode: a commit survives a killed process (the data is in the OS),
just not a power cut; that is the trade that keeps frequent commits cheap.

A journal that cannot be trusted (not a database, truncated, damaged pages, missing tables or
description, a newer schema) is refused with a :class:`JournalError` when it is opened, before
anything rewrites the result files from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import os
import sqlite3
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import msgspec
import orjson

from ._errors import ConfigError

__all__ = [
    "DIGEST_SIZE",
    "JOURNAL_NAME",
    "SCHEMA_VERSION",
    "Journal",
    "JournalError",
    "count_outcomes",
    "row_digest",
]

JOURNAL_NAME = "journal.sqlite"
# 1: no schema_version key, no digests or generations; 2: no settled table (both upgraded).
SCHEMA_VERSION = 3
DIGEST_SIZE = 8  # bytes; fixed, so a sent mark holds its digests back to back

_TABLES = {
    "meta": ("key", "value"),
    "outcomes": ("row", "ok", "category", "new", "line"),
    "sent": ("id", "rows"),
    "runs": ("n", "report"),
    "settled": ("id", "rows", "body", "tally"),
}
_CREATE_SETTLED = (
    "CREATE TABLE settled (id INTEGER PRIMARY KEY, rows TEXT NOT NULL, body BLOB NOT NULL,"
    " tally BLOB NOT NULL)"
)
# Statements, not a script: executescript() would commit the transaction they run in.
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE outcomes (row INTEGER PRIMARY KEY, ok INTEGER NOT NULL, category TEXT,"
    " new INTEGER, line BLOB NOT NULL, digest BLOB, gen INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE sent (id INTEGER PRIMARY KEY, rows BLOB NOT NULL, digests BLOB,"
    " gen INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE runs (n INTEGER PRIMARY KEY AUTOINCREMENT, report BLOB NOT NULL)",
    _CREATE_SETTLED,
)
# Version 1 journals (bulkops before row digests) gain the new columns in place.
_UPGRADE_FROM_1 = (
    "ALTER TABLE outcomes ADD COLUMN digest BLOB",
    "ALTER TABLE outcomes ADD COLUMN gen INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE sent ADD COLUMN digests BLOB",
    "ALTER TABLE sent ADD COLUMN gen INTEGER NOT NULL DEFAULT 0",
)
# Version 2 journals (bulkops before settled outcomes) gain the table; their outcomes stay.
_UPGRADE_FROM_2 = (_CREATE_SETTLED,)
_SQLITE_MAGIC = b"SQLite format 3\x00"


class JournalError(ConfigError):
    """The job's journal cannot be trusted, so the job cannot be resumed or retried."""

    def __init__(self, path: Path, why: str) -> None:
        folder = path.parent
        super().__init__(
            f"the job in {folder} cannot be resumed or retried: its journal {path.name} {why}. "
            f"succeeded.jsonl and failed.jsonl in {folder} still hold the results written so "
            "far: keep them (move them aside) and start a new job with --out NEWDIR"
        )
        self.path = path
        self.why = why


def row_digest(data: Mapping[str, Any], id_value: str | None) -> bytes:
    """A short, stable identity of one input row: of its id property's value when it has one
    (edits to other fields keep the row the same record), else of all its data.

    Key order does not matter, and values orjson cannot encode are hashed by their ``str``
    instead of raising: two reads of the same input always give the same digest.
    """
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    if id_value is not None:
        h.update(b"id\0")
        h.update(id_value.encode("utf-8", "surrogatepass"))
        return h.digest()
    h.update(b"data\0")
    h.update(_canonical(data))
    return h.digest()


def _canonical(data: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(
            data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=_as_text
        )
    except TypeError:  # orjson.JSONEncodeError: integers over 64 bits, nesting over 254
        pass
    try:
        return json.dumps(data, sort_keys=True, default=_as_text).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):  # keys of mixed types cannot be sorted
        items = sorted((str(k), repr(v)) for k, v in data.items())
        return repr(items).encode("utf-8", "surrogatepass")


def _as_text(value: Any) -> Any:
    # A set's order depends on the process's hash seed, and a resume is another process.
    if isinstance(value, set | frozenset):
        return sorted(map(str, value))
    return str(value)


_T = TypeVar("_T")
# (row, ok, line, category, new, digest) as the result writer hands them over; the generation
# is the journal's own (begin_generation commits what is buffered before it changes).
_Outcome = tuple[int, bool, bytes, str | None, bool | None, bytes]


@dataclass(frozen=True, slots=True)
class _Writes:
    """What is buffered for the next commit: outcomes, marks to drop, marks to shrink."""

    pending: list[_Outcome]
    generation: int
    released: list[tuple[int]]
    kept: list[tuple[array[int], int]]

    def any(self) -> bool:
        return bool(self.pending or self.released or self.kept)


# One settled row a commit: its row numbers (a JSON array, which SQL can read), the outcomes
# as the writer handed them (MessagePack: lines and digests stay bytes, and no Python code
# runs per outcome to encode them) and their tally, which the counts sum instead of every row.
_Tally = tuple[bool, str | None, bool | None, int]  # (ok, category, new, how many)
_Body = tuple[int, list[_Outcome]]  # (generation, outcomes)
_INSERT_SETTLED = "INSERT INTO settled(rows, body, tally) VALUES (?, ?, ?)"
_INSERT_OUTCOME = (
    "INSERT OR REPLACE INTO outcomes(row, ok, category, new, line, digest, gen)"
    " VALUES (?,?,?,?,?,?,?)"
)
# The counts exclude the rows settled since (needs SQLite's JSON, built in since 3.38; where
# it is older, every outcome goes row by row into outcomes instead).
_CAN_SETTLE = sqlite3.sqlite_version_info >= (3, 38, 0)
_NOT_SETTLED = "row NOT IN (SELECT value FROM settled, json_each(settled.rows))"
_FOLD_CHUNK = 64  # settled rows (a commit's outcomes each) read at a time when folding
_encode = msgspec.json.Encoder().encode
_encode_body = msgspec.msgpack.Encoder().encode
_decode_body = msgspec.msgpack.Decoder(_Body).decode
_decode_tally = msgspec.json.Decoder(list[_Tally]).decode
_row_of = operator.itemgetter(0)
_kind_of = operator.itemgetter(1, 3, 4)  # (ok, category, new)


def _settled_row(pending: list[_Outcome], generation: int) -> tuple[bytes, bytes, bytes] | None:
    """``pending`` as one ``settled`` row (rows, body, tally), or None on an old SQLite, where
    outcomes are written row by row. map and itemgetter: no Python code runs per outcome."""
    if not _CAN_SETTLE:
        return None
    tally = Counter(map(_kind_of, pending))
    return (
        _encode(list(map(_row_of, pending))),
        _encode_body((generation, pending)),
        _encode([(*kind, n) for kind, n in tally.items()]),
    )


def _outcome_rows(pending: list[_Outcome], generation: int) -> Iterator[tuple[Any, ...]]:
    """``pending`` as rows of ``outcomes``."""
    for row, ok, line, category, new, digest in pending:
        yield (
            row,
            int(ok),
            category,
            None if new is None else int(new),
            line,
            digest or None,
            generation,
        )


def count_outcomes(db: sqlite3.Connection) -> dict[str, Any]:
    """The counts of every row's latest outcome (``succeeded``, ``failed``, ``created``,
    ``updated``, ``failed_by_category``), from the tallies of the settled outcomes and the rows
    of ``outcomes`` not settled again since. For any schema version, on any connection (a
    read-only one of another process too): one read transaction, so a fold meanwhile cannot
    make a row count twice or not at all."""
    begun = not db.in_transaction
    if begun:
        db.execute("BEGIN")
    try:
        return _count_outcomes(db)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise sqlite3.DatabaseError(f"a tally of settled outcomes is damaged ({exc})") from None
    finally:
        if begun:
            db.execute("COMMIT")


def _count_outcomes(db: sqlite3.Connection) -> dict[str, Any]:
    by_category: dict[str | None, int] = {}
    totals = [0, 0, 0, 0]  # succeeded, failed, created, updated
    where = ""
    has_settled = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'settled'"
    ).fetchone()
    if has_settled:
        for (tally,) in db.execute("SELECT tally FROM settled"):
            where = f" AND {_NOT_SETTLED}"  # rows settled since: counted from their tally
            for ok, category, new, n in _decode_tally(tally):
                totals[0 if ok else 1] += n
                if new is not None:
                    totals[2 if new else 3] += n
                if not ok:
                    by_category[category] = by_category.get(category, 0) + n
    sums = db.execute(
        "SELECT COALESCE(SUM(ok), 0), COALESCE(SUM(1 - ok), 0),"
        " COALESCE(SUM(new = 1), 0), COALESCE(SUM(new = 0), 0)"
        f" FROM outcomes WHERE 1{where}"
    ).fetchone()
    for category, n in db.execute(
        f"SELECT category, COUNT(*) FROM outcomes WHERE ok = 0{where} GROUP BY category"
    ):
        by_category[category] = by_category.get(category, 0) + n
    succeeded, failed, created, updated = (t + int(s) for t, s in zip(totals, sums, strict=True))
    return {
        "succeeded": succeeded,
        "failed": failed,
        "created": created,
        "updated": updated,
        "failed_by_category": by_category,
    }


_Mark = tuple[bytes, bytes | None, int]  # a sent mark's (rows, digests, generation)


class _MarkGroup:
    """Sent marks waiting for the journal's busy thread: written together when their turn
    comes; each caller gets its own mark's id (or the error)."""

    __slots__ = ("done", "error", "ids", "marks")

    def __init__(self, first: _Mark) -> None:
        self.marks = [first]
        self.ids: list[int] = []
        self.error: BaseException | None = None
        self.done = anyio.Event()


def _mark(rows: Iterable[int], digests: Iterable[bytes], generation: int) -> _Mark:
    numbers = array("q", rows)
    packed = b"".join(digests)
    if packed and len(packed) != DIGEST_SIZE * len(numbers):
        raise ValueError(f"mark_sent: give one {DIGEST_SIZE}-byte digest per row, or none")
    return numbers.tobytes(), packed or None, generation


class Journal:
    """One job's journal. ``Journal(path)`` creates a new one when ``path`` does not exist, and
    otherwise checks it (raising :class:`JournalError`) and upgrades an older schema.

    Raises:
        JournalError: the file is not a journal bulkops can trust (see the module docstring).
    """

    def __init__(self, path: Path, *, meta: Mapping[str, Any] | None = None) -> None:
        """``meta``: the job's description, written with the schema (one transaction) when
        the journal is created, so no journal ever exists without it."""
        self.path = path
        existed = path.exists()
        if existed:
            _check_file(path)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise JournalError(path, f"cannot be opened ({exc})") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if existed:
                self._check_contents()
            else:
                with self._transaction():
                    for statement in _SCHEMA:
                        self._db.execute(statement)
                    self._set_meta_now({"schema_version": SCHEMA_VERSION, **(meta or {})})
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise JournalError(path, f"is damaged ({exc})") from None
        except BaseException:
            self._db.close()
            raise
        self.generation = int(self._meta_value("generation") or 0)
        self._closed = False
        self._pending: list[_Outcome] = []
        self._released: list[tuple[int]] = []  # marks to drop at the next commit
        self._kept: list[tuple[array[int], int]] = []  # marks to shrink: (rows still unknown, id)
        self._thread_limiter: anyio.CapacityLimiter | None = None
        self._writes_in_thread = 0
        self._queued_marks: _MarkGroup | None = None  # marks waiting for the busy thread
        if existed:
            # What an earlier run settled joins outcomes now: settled is this run's alone.
            try:
                self._fold()
            except sqlite3.DatabaseError as exc:
                self._db.close()
                raise JournalError(path, f"is damaged ({exc})") from None

    @classmethod
    def create(cls, path: Path, meta: Mapping[str, Any]) -> Journal:
        """A new journal holding ``meta``; refuses a path that exists."""
        if path.exists():
            raise FileExistsError(path)
        try:
            return cls(path, meta=meta)
        except BaseException:
            # Nothing was committed; leave no file that would block the corrected command.
            for leftover in (path, *(path.with_name(path.name + x) for x in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)
            raise

    @classmethod
    def open(cls, path: Path) -> Journal:
        """An existing job's journal, checked: it must describe a job (``config`` in meta)."""
        if not path.exists():
            raise JournalError(path, "does not exist")
        journal = cls(path)
        if "config" not in journal.meta():
            journal.close()
            raise JournalError(path, "does not describe a job (no config in its meta table)")
        return journal

    def _check_contents(self) -> None:
        """Tables, columns, a description and a schema we can read; then upgrade version 1."""
        db, path = self._db, self.path
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        # settled is new in version 3; an older journal gains it below.
        missing = sorted(set(_TABLES) - tables - {"settled"})
        if missing:
            raise JournalError(path, f"lacks the table(s) {', '.join(missing)}")
        for table, wanted in _TABLES.items():
            if table not in tables:
                continue
            columns = {c[1] for c in db.execute(f"PRAGMA table_info({table})")}
            lacking = [c for c in wanted if c not in columns]
            if lacking:
                raise JournalError(path, f"lacks the column(s) {', '.join(lacking)} of {table}")
        # Cheap next to a resume's replay (0.1 s for a million rows); a damaged page found now
        # stops the job before it rewrites the result files from this journal.
        problems = [" ".join(str(p).split()) for (p,) in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise JournalError(path, f"is damaged ({'; '.join(problems)})")
        if db.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0:
            raise JournalError(path, "holds no job description (its meta table is empty)")
        version = self._meta_value("schema_version")
        if version is None:  # written by bulkops before schema versions: version 1
            self._upgrade(_UPGRADE_FROM_1 + _UPGRADE_FROM_2)
        elif not isinstance(version, int) or version < 1:
            raise JournalError(path, f"has an unreadable schema_version ({version!r})")
        elif version > SCHEMA_VERSION:
            raise JournalError(
                path,
                f"was written by a newer bulkops (journal schema {version}; this version "
                f"reads up to {SCHEMA_VERSION}): upgrade bulkops to continue it",
            )
        elif "settled" not in tables:
            if version >= 3:
                raise JournalError(path, "lacks the table(s) settled")
            self._upgrade(_UPGRADE_FROM_2)

    def _upgrade(self, statements: tuple[str, ...]) -> None:
        with self._transaction():
            for statement in statements:
                self._db.execute(statement)
            self._set_meta_now({"schema_version": SCHEMA_VERSION})

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
            self._set_meta_now(values)

    def _set_meta_now(self, values: Mapping[str, Any]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            [(k, orjson.dumps(v)) for k, v in values.items()],
        )

    def meta(self) -> dict[str, Any]:
        return {k: orjson.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def _meta_value(self, key: str) -> Any:
        found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if found is None else orjson.loads(found[0])

    def begin_generation(self) -> int:
        """Start a new run: outcomes and sent marks from now on carry the returned number, so
        a later run can tell what this one settled (see :meth:`rows_settled_since`)."""
        self._read_rows()  # a run starts from outcomes alone: settled then holds its own
        with self._transaction():
            self.generation = int(self._meta_value("generation") or 0) + 1
            self._set_meta_now({"generation": self.generation})
        return self.generation

    # -- outcomes ----------------------------------------------------------------------------
    def record(
        self,
        row: int,
        ok: bool,
        line: bytes,
        category: str | None,
        new: bool | None,
        digest: bytes = b"",
    ) -> None:
        """Buffer one outcome; it is written at the next :meth:`commit`. ``digest``: the row's
        :func:`row_digest` (empty when the caller has none). A run records a row at most once
        (the engine settles each row once); a later run's outcome replaces it."""
        self._pending.append((row, ok, line, category, new, digest))

    def record_many(self, outcomes: Iterable[_Outcome]) -> None:
        """:meth:`record` for each ``(row, ok, line, category, new, digest)``."""
        self._pending.extend(outcomes)

    def mark_sent(self, rows: Iterable[int], digests: Iterable[bytes] = ()) -> int:
        """Commit at once that these create rows are about to be sent; returns the mark's id.
        One row per batch, not per record: this is on the hot path of every create.
        ``digests``: one :func:`row_digest` per row, in the same order (or none at all)."""
        self._no_write_in_thread()
        return self._write_mark(self._take(), _mark(rows, digests, self.generation))

    async def mark_sent_in_thread(self, rows: Iterable[int], digests: Iterable[bytes] = ()) -> int:
        """:meth:`mark_sent` while the job's tasks run; returns once the mark is committed.

        The mark alone (the outcomes stay buffered for the next commit): one small statement,
        done at once on the loop's thread when the journal's thread is idle, else queued
        there. Either way the request waits as little as it can after its limiter turn, so
        HubSpot sees it when the limiter counted it."""
        mark = _mark(rows, digests, self.generation)
        if not self._writes_in_thread:
            return self._insert_mark(mark)
        # The thread is busy: join the marks waiting for it, written together when their turn
        # comes (one transaction, one hand-over). With many workers nearly every mark found the
        # thread busy, and a hand-over each cost more CPU than the rest of the journal.
        group = self._queued_marks
        if group is not None:
            index = len(group.marks)
            group.marks.append(mark)
            await group.done.wait()
            if group.error is not None:
                raise group.error
            return group.ids[index]
        group = self._queued_marks = _MarkGroup(mark)
        try:
            group.ids = await self._in_thread(
                self._insert_marks, group, before=self._stop_queueing_marks
            )
        except BaseException as exc:
            group.error = exc
            raise
        finally:
            group.done.set()
        return group.ids[0]

    def _stop_queueing_marks(self) -> None:
        # On the loop's thread, as the thread takes the waiting marks: later ones wait anew.
        self._queued_marks = None

    def _insert_marks(self, group: _MarkGroup) -> list[int]:
        if len(group.marks) == 1:
            return [self._insert_mark(group.marks[0])]
        with self._transaction():
            return [self._insert_mark(mark) for mark in group.marks]

    async def commit_in_thread(self) -> None:
        """:meth:`commit` in the journal's writing thread. What was buffered when it was
        called is committed when it returns; writes run one at a time, in the order asked."""
        writes = self._take()
        if writes.any():
            await self._in_thread(self._write_writes, writes)

    async def _in_thread(
        self, work: Callable[..., _T], *args: Any, before: Callable[[], None] | None = None
    ) -> _T:
        # One thread, one write at a time, in order (anyio's limiter is first come, first
        # served): SQLite does the work with the GIL released, beside the event loop.
        # Shielded: what was taken from the buffers must be written even if the caller is
        # cancelled meanwhile (while queued behind another write too), and no write may be
        # left running once the job's tasks are done and the journal is used directly again.
        # ``before``: run on the loop's thread once it is this write's turn.
        if self._thread_limiter is None:
            self._thread_limiter = anyio.CapacityLimiter(1)
        self._writes_in_thread += 1
        try:
            with anyio.CancelScope(shield=True):
                async with self._thread_limiter:
                    if before is not None:
                        before()
                    done = await anyio.to_thread.run_sync(work, *args)
        finally:
            self._writes_in_thread -= 1
        return done

    def _no_write_in_thread(self) -> None:
        if self._writes_in_thread:
            raise RuntimeError("the journal is being written in its thread: await that first")

    def _write_mark(self, writes: _Writes, mark: tuple[bytes, bytes | None, int]) -> int:
        with self._transaction():
            self._write(writes)
            return self._insert_mark(mark)

    def _insert_mark(self, mark: tuple[bytes, bytes | None, int]) -> int:
        # Outside a transaction the statement is one of its own (autocommit).
        cursor = self._db.execute("INSERT INTO sent(rows, digests, gen) VALUES (?, ?, ?)", mark)
        return int(cursor.lastrowid or 0)

    def _write_writes(self, writes: _Writes) -> None:
        with self._transaction():
            self._write(writes)

    def release_mark(self, mark: int, still_unknown: Iterable[int] = ()) -> None:
        """The batch was settled: drop its mark, or keep only the rows whose outcome is still
        unknown (HubSpot may have written them). Applied at the next :meth:`commit`, together
        with the batch's outcomes."""
        keep = array("q", still_unknown)
        if keep:
            self._kept.append((keep, mark))
        else:
            self._released.append((mark,))

    def commit(self) -> None:
        """Commit what is buffered, on the calling thread (none may be writing meanwhile: the
        engine commits in the journal's thread while its tasks run, and directly after)."""
        self._no_write_in_thread()
        writes = self._take()
        if writes.any():
            self._write_writes(writes)

    def _take(self) -> _Writes:
        """What is buffered, handed over (on the event loop's thread) to be written."""
        writes = _Writes(self._pending, self.generation, self._released, self._kept)
        self._pending, self._released, self._kept = [], [], []
        return writes

    def _write(self, writes: _Writes) -> None:
        if writes.released:
            self._db.executemany("DELETE FROM sent WHERE id = ?", writes.released)
        # Rare (rows whose outcome is unknown), so reading the mark back costs nothing.
        for keep, mark in writes.kept:
            self._shrink_mark(mark, keep)
        if writes.pending:
            settled = _settled_row(writes.pending, writes.generation)
            if settled is not None:
                self._db.execute(_INSERT_SETTLED, settled)
            else:
                self._db.executemany(
                    _INSERT_OUTCOME, _outcome_rows(writes.pending, writes.generation)
                )

    def _fold(self) -> None:
        """Move the settled outcomes into ``outcomes``, oldest first, in one transaction (see
        the module docstring); the callers read rows back, or start a run."""
        if self._db.execute("SELECT 1 FROM settled LIMIT 1").fetchone() is None:
            return
        with self._transaction():
            try:
                self._fold_chunks()
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise sqlite3.DatabaseError(f"settled outcomes are damaged ({exc})") from None
            self._db.execute("DELETE FROM settled")

    def _fold_chunks(self) -> None:
        last = 0
        while chunk := self._db.execute(
            "SELECT id, body FROM settled WHERE id > ? ORDER BY id LIMIT ?", (last, _FOLD_CHUNK)
        ).fetchall():
            last = chunk[-1][0]
            for _, body in chunk:
                generation, outcomes = _decode_body(body)
                self._db.executemany(_INSERT_OUTCOME, _outcome_rows(outcomes, generation))

    def _read_rows(self) -> None:
        """Before reading outcomes row by row: commit what is buffered, then fold."""
        self.commit()
        try:
            self._fold()
        except sqlite3.DatabaseError as exc:
            raise JournalError(self.path, f"is damaged ({exc})") from None

    def _shrink_mark(self, mark: int, keep: array[int]) -> None:
        found = self._db.execute("SELECT rows, digests FROM sent WHERE id = ?", (mark,)).fetchone()
        if found is None:
            return
        rows, digests = array("q", found[0]), found[1]
        wanted = set(keep)
        kept = [i for i, row in enumerate(rows) if row in wanted]
        new_digests = None
        if digests:
            new_digests = b"".join(digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE] for i in kept)
        self._db.execute(
            "UPDATE sent SET rows = ?, digests = ? WHERE id = ?",
            (array("q", (rows[i] for i in kept)).tobytes(), new_digests, mark),
        )

    # -- reading back ------------------------------------------------------------------------
    def finished_rows(self) -> Iterator[tuple[int, bytes]]:
        """``(row, digest)`` of every row with an outcome, ascending by row (streamed: constant
        memory for any job size). The digest is empty for rows journaled without one."""
        for row, digest in self._stream("SELECT row, digest FROM outcomes ORDER BY row"):
            yield row, digest or b""

    def finished_row_numbers(self) -> Iterator[int]:
        """Rows with an outcome, ascending (streamed)."""
        for (row,) in self._stream("SELECT row FROM outcomes ORDER BY row"):
            yield row

    def rows_settled_since(self, generation: int) -> Iterator[int]:
        """Rows whose latest outcome was written by run ``generation`` or a later one,
        ascending (streamed): what an interrupted retry already settled."""
        query = "SELECT row FROM outcomes WHERE gen >= ? ORDER BY row"
        for (row,) in self._stream(query, (generation,)):
            yield row

    def sent_unfinished(self) -> Iterator[tuple[int, bytes]]:
        """``(row, digest)`` of create rows that were sent but never got an outcome from the
        run that sent them or a later one, ascending. Settled batches drop their marks, so what
        is left is small: the batches in flight at a crash, and rows whose outcome was unknown.
        An outcome older than the mark does not count: a retry resent that row."""
        self._read_rows()
        marked: dict[int, tuple[bytes, int]] = {}
        for blob, digests, gen in self._db.execute("SELECT rows, digests, gen FROM sent"):
            for i, row in enumerate(array("q", blob)):
                digest = digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE] if digests else b""
                if row not in marked or marked[row][1] < gen:
                    marked[row] = (digest, gen)
        query = "SELECT gen FROM outcomes WHERE row = ?"
        unfinished = []
        for row in sorted(marked):
            digest, gen = marked[row]
            outcome = self._db.execute(query, (row,)).fetchone()
            if outcome is None or outcome[0] < gen:
                unfinished.append((row, digest))
        yield from unfinished

    def sent_unfinished_rows(self) -> Iterator[int]:
        """The rows of :meth:`sent_unfinished`, ascending."""
        for row, _ in self.sent_unfinished():
            yield row

    def lines(self) -> Iterator[tuple[bool, bytes]]:
        """Every finished row's result line with whether it succeeded, in row order."""
        for ok, line in self._stream("SELECT ok, line FROM outcomes ORDER BY row"):
            yield bool(ok), line

    def _stream(self, query: str, params: tuple[Any, ...] = ()) -> Iterator[Any]:
        # A second connection reads from a snapshot (WAL), so rows the job writes while a
        # resumed job streams its finished rows cannot disturb the stream.
        self._read_rows()
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            yield from reader.execute(query, params)
        except sqlite3.DatabaseError as exc:  # a page damaged since the job opened
            raise JournalError(self.path, f"is damaged ({exc})") from None
        finally:
            reader.close()

    def counts(self) -> dict[str, Any]:
        """The counts of every row's latest outcome, as committed (see :func:`count_outcomes`)."""
        return count_outcomes(self._db)

    def keep_user_lines(self, lines: Iterable[tuple[int, bytes]], *, before_generation: int) -> int:
        """Take the user's edited ``failed.jsonl`` lines (``(row, line)``, streamed) for rows
        that are still failed with an outcome older than ``before_generation``: rows a retry
        did not settle keep their edits in every file rebuilt from now on. Returns how many."""
        self._read_rows()
        with self._transaction():
            cursor = self._db.executemany(
                "UPDATE outcomes SET line = ? WHERE row = ? AND ok = 0 AND gen < ?",
                ((line, row, before_generation) for row, line in lines),
            )
        return max(cursor.rowcount, 0)

    def has_progress(self) -> bool:
        """Whether any row has an outcome or was sent: a journal without either can be
        started over (a job refused before its first write)."""
        self.commit()
        for table in ("outcomes", "settled", "sent"):
            if self._db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                return True
        return False

    def reset(self, meta: Mapping[str, Any]) -> None:
        """Start over: forget the job's description and runs and describe a new one. Only for
        a journal without progress (:meth:`has_progress`), so no result is lost."""
        if self.has_progress():
            raise RuntimeError(f"{self.path} holds finished or sent rows; it cannot be reset")
        with self._transaction():
            self._db.execute("DELETE FROM meta")
            self._db.execute("DELETE FROM runs")
            self._set_meta_now({"schema_version": SCHEMA_VERSION, **meta})
        self.generation = 0

    def add_run(self, report: Mapping[str, Any]) -> None:
        with self._transaction():
            self._db.execute("INSERT INTO runs(report) VALUES (?)", (orjson.dumps(report),))

    def runs(self) -> list[dict[str, Any]]:
        return [orjson.loads(r) for (r,) in self._db.execute("SELECT report FROM runs ORDER BY n")]

    def close(self) -> None:
        """Commit what is buffered and close (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.commit()
        self._db.close()


def _check_file(path: Path) -> None:
    """What can be told from the file itself, before SQLite reads it."""
    try:
        with path.open("rb") as f:
            header = f.read(100)
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise JournalError(path, f"cannot be read ({exc.strerror or exc})") from None
    if not header:
        raise JournalError(path, "is empty (0 bytes)")
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        raise JournalError(path, "is not a SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    wal = path.with_name(path.name + "-wal")
    wal_pending = wal.exists() and wal.stat().st_size > 0
    # With a write-ahead log pending, a checkpoint cut short may have written the header
    # before the last pages; SQLite finishes it from the log. Without one the file must hold
    # every page its header counts.
    if not wal_pending and size < pages * page_size:
        raise JournalError(
            path, f"is truncated ({size} bytes where its header counts {pages * page_size})"
        )
