"""The journal: per-batch commits, the sent marks that make resumed creates safe, streamed
reads that writes do not disturb, whole-job counts, row digests, and journals that cannot be
trusted refused (real damaged files) before anything rewrites the results from them."""

from __future__ import annotations

import datetime
import decimal
import os
import random
import select
import shutil
import sqlite3
import subprocess
import sys
from array import array
from typing import Any

import pytest

from bulkops._errors import ConfigError
from bulkops._journal import (
    DIGEST_SIZE,
    JOURNAL_NAME,
    SCHEMA_VERSION,
    Journal,
    JournalError,
    row_digest,
)
from bulkops._status import journal_counts

from .journal_view import committed_outcomes


def committed_rows(path) -> list[int]:
    return list(committed_outcomes(path))


def test_outcomes_are_durable_only_after_commit(tmp_path):
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    j.record(1, True, b'{"row":1}', None, True)
    assert committed_rows(path) == []  # another process (a resume) would not see it yet
    j.commit()
    assert committed_rows(path) == [1]
    j.close()


def test_sent_marks_are_committed_before_the_request_and_released_when_settled(tmp_path):
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    first = j.mark_sent([1, 2, 3])
    second = j.mark_sent([4, 5])
    with sqlite3.connect(path) as db:  # durable before the requests leave
        assert db.execute("SELECT COUNT(*) FROM sent").fetchone() == (2,)
    # Batch 1 settled: row 1 written, row 2 refused (429), row 3's outcome unknown (timeout).
    j.record(1, True, b"{}", None, True)
    j.release_mark(first, [3])
    assert list(j.sent_unfinished_rows()) == [3, 4, 5]  # batch 2 is still in flight
    j.release_mark(second)
    j.commit()
    assert list(j.sent_unfinished_rows()) == [3]
    j.record(3, True, b"{}", None, True)  # read back later: it was written
    j.commit()
    assert list(j.sent_unfinished_rows()) == []
    j.close()


def test_streams_finished_rows_while_writing(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    for row in range(1, 2001, 2):
        j.record(row, True, b"{}", None, None)
    j.commit()
    seen = []
    for row, digest in j.finished_rows():
        assert digest == b""  # journaled without one
        seen.append(row)
        j.record(row + 1, False, b"{}", "X", None)  # a resumed job finishing rows meanwhile
        j.commit()
    assert seen == list(range(1, 2001, 2))
    counts = j.counts()
    assert counts["succeeded"] == 1000 and counts["failed"] == 1000
    assert counts["failed_by_category"] == {"X": 1000}
    j.close()


def test_meta_and_runs_round_trip(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.set_meta({"config": {"operation": "create"}, "input": {"path": "/x.csv"}})
    j.add_run({"rows": {"read": 5}})
    j.close()
    again = Journal(tmp_path / "j.sqlite")
    assert again.meta()["config"] == {"operation": "create"}
    assert again.runs() == [{"rows": {"read": 5}}]
    again.close()


async def test_a_create_cancelled_in_flight_is_read_back_on_resume(tmp_path):
    """Ctrl-C twice abandons requests in flight; HubSpot may still write them. Resume must read
    those rows back instead of creating them again."""
    import anyio

    from bulkops import Job, JobConfig, Operation, Secret
    from bulkops._engine import Mode
    from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

    rows = [
        {"subject": f"s{n}", "hs_pipeline": "0", "hs_pipeline_stage": "1", "external_id": f"c{n}"}
        for n in range(1, 501)
    ]
    async with FakeHubSpot(FakeConfig(rate_limit=None, latency=(0.4, 0.4))) as fake:
        cfg = JobConfig(
            operation=Operation.CREATE,
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=tmp_path,
            rate_limit=0,
            id_property="external_id",
        )
        job = Job(cfg, rows)
        async with anyio.create_task_group() as tg:

            async def cancel_soon() -> None:
                await anyio.sleep(0.6)  # schema answered, first writes in flight
                job.cancel()

            tg.start_soon(cancel_soon)
            first = await job.run()
        assert first.succeeded < 500
        await anyio.sleep(0.5)  # the fake finishes the abandoned requests: they were written
        written_before = len(fake.records("tickets"))
        assert written_before > first.succeeded

        second = await Job(cfg, rows, mode=Mode.RESUME).run()
        assert second.succeeded == 500
        assert second.requests.by_kind.get("verify", 0) > 0
        assert len(fake.records("tickets")) == 500
        assert max(fake.stats.creates_by_unique.values()) == 1


# -- a journal that cannot be trusted is refused ---------------------------------------------
def make_job_journal(path, rows: int = 0) -> None:
    j = Journal(path)
    j.set_meta({"config": {"operation": "create"}, "input": {"path": "/x.csv"}})
    for row in range(1, rows + 1):
        j.record(row, True, b'{"row":%d,"id":"1000000001"}' % row, None, True, digest=b"d" * 8)
    j.close()  # the last connection checkpoints and removes the -wal


def refused(path) -> str:
    with pytest.raises(JournalError) as caught:
        Journal(path)
    message = str(caught.value)
    assert isinstance(caught.value, ConfigError)  # exit 2 in the CLI, never a traceback
    assert "cannot be resumed" in message and "--out NEWDIR" in message
    assert "succeeded.jsonl and failed.jsonl" in message
    return message


def test_refuses_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / JOURNAL_NAME
    path.write_bytes(b"row,subject\n1,hello\n" * 20)
    assert "is not a SQLite database" in refused(path)
    path.write_bytes(b"")
    assert "is empty" in refused(path)
    path.write_bytes(b"SQLite format 3\x00")  # the magic alone: a 16-byte stub
    assert "is not a SQLite database" in refused(path)


def test_refuses_a_truncated_journal(tmp_path):
    path = tmp_path / JOURNAL_NAME
    make_job_journal(path, rows=3000)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    assert f"is truncated ({size // 2} bytes where its header counts {size})" in refused(path)


def test_refuses_a_journal_with_damaged_pages(tmp_path):
    path = tmp_path / JOURNAL_NAME
    make_job_journal(path, rows=5000)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = random.Random(1).randbytes(4096)  # one page of garbage
    path.write_bytes(bytes(data))
    message = refused(path)
    assert "is damaged (" in message and "\n" not in message


def test_refuses_a_database_without_the_journal_tables(tmp_path):
    path = tmp_path / JOURNAL_NAME
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        db.execute("CREATE TABLE runs (n INTEGER PRIMARY KEY, report BLOB)")
    db.close()
    assert "lacks the table(s) outcomes, sent" in refused(path)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE outcomes (row INTEGER PRIMARY KEY, line BLOB)")
        db.execute("CREATE TABLE sent (id INTEGER PRIMARY KEY, rows BLOB)")
    db.close()
    assert "lacks the column(s) ok, category, new of outcomes" in refused(path)


def test_refuses_a_journal_without_a_job_description(tmp_path):
    path = tmp_path / JOURNAL_NAME
    make_job_journal(path, rows=3)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM meta")
    db.close()
    assert "holds no job description" in refused(path)


def test_open_needs_an_existing_journal_that_describes_a_job(tmp_path):
    with pytest.raises(JournalError, match="does not exist"):
        Journal.open(tmp_path / JOURNAL_NAME)
    Journal(tmp_path / JOURNAL_NAME).close()  # created, but never described
    with pytest.raises(JournalError, match="does not describe a job"):
        Journal.open(tmp_path / JOURNAL_NAME)
    make_job_journal(tmp_path / "other.sqlite")
    Journal.open(tmp_path / "other.sqlite").close()


def test_refuses_a_journal_from_a_newer_bulkops(tmp_path):
    path = tmp_path / JOURNAL_NAME
    make_job_journal(path)
    j = Journal(path)
    assert j.meta()["schema_version"] == SCHEMA_VERSION
    j.set_meta({"schema_version": SCHEMA_VERSION + 1})
    j.close()
    message = refused(path)
    assert f"journal schema {SCHEMA_VERSION + 1}; this version reads up to {SCHEMA_VERSION}" in (
        message
    )
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (b'"two"',))
    db.commit()
    db.close()
    assert "unreadable schema_version ('two')" in refused(path)


def test_reads_and_upgrades_a_journal_written_before_schema_versions(tmp_path):
    path = tmp_path / JOURNAL_NAME
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(_VERSION_1_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('config', ?)", (b'{"operation":"create"}',))
    db.execute("INSERT INTO outcomes VALUES (1, 1, NULL, 1, ?)", (b'{"row":1}',))
    db.execute("INSERT INTO sent(rows) VALUES (?)", (array("q", [2, 3]).tobytes(),))
    db.close()
    j = Journal.open(path)
    assert j.meta()["schema_version"] == SCHEMA_VERSION
    assert list(j.finished_rows()) == [(1, b"")]
    assert list(j.sent_unfinished()) == [(2, b""), (3, b"")]
    j.record(2, True, b'{"row":2}', None, True, digest=b"2" * 8)
    j.close()
    again = Journal.open(path)
    assert list(again.finished_rows()) == [(1, b""), (2, b"2" * 8)]
    again.close()


# Takes a journal, checkpoints its description into the main file, commits more rows (which
# stay in the -wal), then waits to be SIGKILLed.
_KILLED_WRITER = """
import sys
from pathlib import Path
from bulkops._journal import Journal
j = Journal(Path(sys.argv[1]))
j.set_meta({"config": {"operation": "create"}})
for row in range(1, 101):
    j.record(row, True, b"{}", None, True)
j.commit()
j._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
for row in range(101, 201):
    j.record(row, True, b"{}", None, True)
j.commit()
print("committed", flush=True)
sys.stdin.read()
"""


def test_a_journal_killed_mid_job_opens_with_or_without_its_wal(tmp_path):
    path = tmp_path / "killed" / JOURNAL_NAME
    path.parent.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready and proc.stdout.readline() == b"committed\n"
    finally:
        proc.kill()
        proc.wait(timeout=20)
        proc.stdin.close()  # type: ignore[union-attr]
        proc.stdout.close()  # type: ignore[union-attr]
    wal = path.with_name(JOURNAL_NAME + "-wal")
    assert wal.stat().st_size > 0  # the kill left committed rows in the log
    without_wal = tmp_path / "copy" / JOURNAL_NAME
    without_wal.parent.mkdir()
    shutil.copyfile(path, without_wal)  # the main file alone, as if the -wal was lost

    j = Journal.open(path)  # SQLite replays the log: every committed row is there
    assert [r for r, _ in j.finished_rows()] == list(range(1, 201))
    j.close()
    j = Journal.open(without_wal)  # the state of the last checkpoint: consistent, just older
    assert [r for r, _ in j.finished_rows()] == list(range(1, 101))
    j.close()


def test_resume_of_a_damaged_journal_exits_2_and_keeps_the_result_files(tmp_path):
    out = tmp_path / "job"
    out.mkdir()
    (out / JOURNAL_NAME).write_bytes(b"\x00" * 8192)
    (out / "succeeded.jsonl").write_bytes(b'{"row":1,"id":"1"}\n')
    (out / "failed.jsonl").write_bytes(b'{"row":2,"error":{},"input":{}}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    for command in ("resume", "retry"):
        done = subprocess.run(
            [sys.executable, "-m", "bulkops", command, str(out)],
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert b"Traceback" not in done.stderr
        assert b"is not a SQLite database" in done.stderr and b"--out NEWDIR" in done.stderr
    assert (out / "succeeded.jsonl").read_bytes() == b'{"row":1,"id":"1"}\n'
    assert (out / "failed.jsonl").read_bytes() == b'{"row":2,"error":{},"input":{}}\n'


_VERSION_1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE outcomes (
    row INTEGER PRIMARY KEY, ok INTEGER NOT NULL, category TEXT, new INTEGER, line BLOB NOT NULL
);
CREATE TABLE sent (id INTEGER PRIMARY KEY, rows BLOB NOT NULL);
CREATE TABLE runs (n INTEGER PRIMARY KEY AUTOINCREMENT, report BLOB NOT NULL);
"""

_VERSION_2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE outcomes (row INTEGER PRIMARY KEY, ok INTEGER NOT NULL, category TEXT,
    new INTEGER, line BLOB NOT NULL, digest BLOB, gen INTEGER NOT NULL DEFAULT 0);
CREATE TABLE sent (id INTEGER PRIMARY KEY, rows BLOB NOT NULL, digests BLOB,
    gen INTEGER NOT NULL DEFAULT 0);
CREATE TABLE runs (n INTEGER PRIMARY KEY AUTOINCREMENT, report BLOB NOT NULL);
"""


def test_reads_and_upgrades_a_version_2_journal_whose_outcomes_are_rows(tmp_path):
    """Before settled outcomes every outcome was a row of its own: such a journal is counted
    as it is (read-only, as `bulkops status` does), then upgraded in place, and a later run's
    outcomes replace its rows in every count and read."""
    path = tmp_path / JOURNAL_NAME
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(_VERSION_2_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '2'), ('generation', '1')")
    db.execute("INSERT INTO meta VALUES ('config', ?)", (b'{"operation":"create"}',))
    db.execute("INSERT INTO outcomes VALUES (1, 1, NULL, 1, ?, ?, 1)", (b'{"row":1}', b"d" * 8))
    db.execute("INSERT INTO outcomes VALUES (2, 0, 'RATE_LIMIT', NULL, ?, NULL, 1)", (b"{}",))
    db.close()
    before = {
        "succeeded": 1,
        "failed": 1,
        "created": 1,
        "updated": 0,
        "failed_by_category": {"RATE_LIMIT": 1},
    }
    assert journal_counts(path) == before
    j = Journal.open(path)
    assert j.meta()["schema_version"] == SCHEMA_VERSION
    assert j.counts() == before
    j.begin_generation()  # a retry: row 2 succeeds now, and row 3 is new
    j.record(2, True, b'{"row":2}', None, True)
    j.record(3, False, b'{"row":3}', "VALIDATION_ERROR", None)
    j.commit()
    after = {
        "succeeded": 2,
        "failed": 1,
        "created": 2,
        "updated": 0,
        "failed_by_category": {"VALIDATION_ERROR": 1},
    }
    assert j.counts() == after
    assert journal_counts(path) == after  # what another process sees meanwhile
    assert list(j.rows_settled_since(2)) == [2, 3]
    assert list(j.finished_rows()) == [(1, b"d" * 8), (2, b""), (3, b"")]
    assert list(j.lines()) == [(True, b'{"row":1}'), (True, b'{"row":2}'), (False, b'{"row":3}')]
    assert j.counts() == after  # folded now: the same counts from outcomes alone
    j.close()


def test_refuses_a_journal_whose_settled_outcomes_are_damaged(tmp_path):
    path = tmp_path / JOURNAL_NAME
    make_job_journal(path, rows=3)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE settled SET body = ?", (b"[[1, 1, not json",))
    db.close()
    assert "is damaged (settled outcomes are damaged" in refused(path)


# -- row identity ----------------------------------------------------------------------------
def test_row_digest_ignores_key_order_and_never_crashes():
    a = {"subject": "s", "nested": {"b": 1, "a": [1, 2]}, "x": None}
    b = {"x": None, "nested": {"a": [1, 2], "b": 1}, "subject": "s"}
    assert row_digest(a, None) == row_digest(b, None)
    assert len(row_digest(a, None)) == DIGEST_SIZE
    assert row_digest(a, None) != row_digest({**a, "subject": "t"}, None)
    odd: dict[Any, Any] = {
        "when": datetime.date(2026, 12, 1),
        "amount": decimal.Decimal("1.50"),
        1: "int key",
    }
    assert row_digest(odd, None) == row_digest(dict(reversed(odd.items())), None)
    big = {"n": 2**70, "s": "text"}
    assert row_digest(big, None) == row_digest(dict(big), None) != row_digest({"n": 2**71}, None)
    mixed_keys: dict[Any, Any] = {
        1: object.__name__,
        "a": 2**80,
    }  # not even the stdlib can sort these keys
    assert row_digest(mixed_keys, None) == row_digest(dict(mixed_keys), None)


def test_row_digest_is_the_same_in_another_process():
    """A resume runs in a new process, with another hash seed: a set must not change the
    digest by iterating in another order."""
    script = (
        "from bulkops._journal import row_digest; "
        "print(row_digest({'tags': {'a', 'b', 'c', 'd', 'e', 'f'}, 'n': 1}, None).hex())"
    )
    seen = set()
    for seed in ("1", "2", "3"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=60,
            check=True,
        )
        seen.add(done.stdout.strip())
    assert len(seen) == 1


def test_row_digest_by_id_value_ignores_the_other_fields():
    assert row_digest({"external_id": "c1", "subject": "old"}, "c1") == row_digest(
        {"subject": "fixed", "external_id": "c1"}, "c1"
    )
    assert row_digest({}, "c1") != row_digest({}, "c2")
    assert row_digest({"id": "c1"}, None) != row_digest({"id": "c1"}, "c1")


def test_digests_are_journaled_with_outcomes_and_sent_marks(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    d = {row: row_digest({"n": row}, None) for row in range(1, 6)}
    mark = j.mark_sent([1, 2, 3], [d[1], d[2], d[3]])
    j.mark_sent([4, 5])  # a caller without digests
    assert list(j.sent_unfinished()) == [(1, d[1]), (2, d[2]), (3, d[3]), (4, b""), (5, b"")]
    j.record(1, True, b"{}", None, True, digest=d[1])
    j.record(2, False, b"{}", "X", None, digest=d[2])
    j.release_mark(mark, [3])  # row 3's outcome is unknown: its mark keeps it, with its digest
    j.commit()
    assert list(j.sent_unfinished()) == [(3, d[3]), (4, b""), (5, b"")]
    assert list(j.sent_unfinished_rows()) == [3, 4, 5]
    assert list(j.finished_rows()) == [(1, d[1]), (2, d[2])]
    assert list(j.finished_row_numbers()) == [1, 2]
    with pytest.raises(ValueError, match="one 8-byte digest per row"):
        j.mark_sent([6, 7], [d[1]])
    j.close()


def test_a_row_resent_by_a_later_run_is_unfinished_until_that_run_settles_it(tmp_path):
    """A retry resends rows that already have an (old, failed) outcome. If it is killed with
    a create in flight, the old outcome must not hide the sent mark."""
    j = Journal(tmp_path / "j.sqlite")
    j.set_meta({"config": {}})
    assert j.begin_generation() == 1
    j.record(1, False, b"{}", "VALIDATION_ERROR", None)
    j.record(2, False, b"{}", "VALIDATION_ERROR", None)
    j.record(3, True, b"{}", None, True)
    j.commit()
    assert j.begin_generation() == 2  # the retry
    j.mark_sent([1, 2])
    j.record(1, True, b"{}", None, True)  # settled by the retry; row 2 still in flight
    j.commit()
    assert list(j.sent_unfinished_rows()) == [2]
    assert list(j.rows_settled_since(2)) == [1]
    j.close()
    again = Journal.open(tmp_path / "j.sqlite")
    assert again.generation == 2
    assert list(again.rows_settled_since(1)) == [1, 2, 3]
    again.close()


def test_a_journal_without_progress_can_be_reset(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.set_meta({"config": {"operation": "create"}, "input": {"path": "/old.csv"}})
    j.add_run({"stop": {"reason": "config"}})
    assert not j.has_progress()
    j.reset({"config": {"operation": "update"}})
    assert j.meta() == {"schema_version": SCHEMA_VERSION, "config": {"operation": "update"}}
    assert j.runs() == []
    j.mark_sent([1])
    assert j.has_progress()
    with pytest.raises(RuntimeError, match="cannot be reset"):
        j.reset({})
    j.close()


def test_user_lines_replace_only_rows_still_failed_from_before_a_run(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.set_meta({"config": {}})
    j.begin_generation()
    for row in (1, 2, 3):
        j.record(row, False, b'{"row":%d,"old":1}' % row, "X", None)
    j.record(4, True, b'{"row":4}', None, True)
    j.commit()
    retry = j.begin_generation()
    j.record(2, False, b'{"row":2,"again":1}', "X", None)  # settled (failed again) by the retry
    user = [(row, b'{"row":%d,"edited":1}' % row) for row in (1, 2, 4, 9)]
    assert j.keep_user_lines(iter(user), before_generation=retry) == 1
    assert list(j.lines()) == [
        (False, b'{"row":1,"edited":1}'),  # not settled: the user's line
        (False, b'{"row":2,"again":1}'),  # settled by the retry: its outcome
        (False, b'{"row":3,"old":1}'),  # not in the user's file: unchanged
        (True, b'{"row":4}'),  # succeeded: never replaced
    ]
    j.close()


def test_a_new_journal_is_never_without_its_description(tmp_path):
    """The schema and the job's description are one transaction: a crash cannot leave a
    journal that resume would find empty."""
    path = tmp_path / JOURNAL_NAME
    j = Journal.create(path, {"config": {"operation": "create"}})
    with sqlite3.connect(path) as db:  # what another process sees at once
        keys = {k for (k,) in db.execute("SELECT key FROM meta")}
    db.close()
    assert keys == {"schema_version", "config"}
    j.close()
    with pytest.raises(FileExistsError):
        Journal.create(path, {"config": {}})
    other = tmp_path / "other.sqlite"
    with pytest.raises(TypeError):
        Journal.create(other, {"config": {"token": object()}})  # cannot be stored
    assert list(tmp_path.glob("other.sqlite*")) == []  # no half-made journal left behind
