"""The journal written in its own thread while a job runs: in the order asked, never lost to a
cancellation, never beside a direct write; and the result files never ahead of it."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from bulkops._journal import DIGEST_SIZE, Journal, _Writes
from bulkops._results import Committer, ResultWriter

from .journal_view import committed_outcomes


def committed(path: Path) -> dict[int, bytes]:
    return {row: outcome[3] for row, outcome in committed_outcomes(path).items()}


class HeldJournal(Journal):
    """Each write in the thread waits until the test allows one more (``allow.release()``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.allow = threading.Semaphore(0)
        self.writing = threading.Event()

    def _write_writes(self, writes: _Writes) -> None:
        self.writing.set()
        assert self.allow.acquire(timeout=10)
        super()._write_writes(writes)


async def test_writes_in_the_thread_land_in_the_order_asked(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.record(1, False, b"first", "X", None)
    mark = await journal.mark_sent_in_thread([2, 3])
    journal.record(1, True, b"second", None, True)  # row 1 settled again, later
    journal.release_mark(mark)
    await journal.commit_in_thread()
    assert committed(journal.path) == {1: b"second"}
    assert list(journal.sent_unfinished_rows()) == []  # the mark was dropped
    journal.close()


async def test_a_cancelled_commit_still_writes_what_it_took(tmp_path: Path) -> None:
    journal = HeldJournal(tmp_path / "j.sqlite")
    journal.record(1, True, b"one", None, True)
    journal.record(2, True, b"two", None, True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(journal.commit_in_thread)
        await anyio.to_thread.run_sync(journal.writing.wait)
        journal.record(3, True, b"three", None, True)
        tg.start_soon(journal.commit_in_thread)  # queued behind the first
        await anyio.lowlevel.checkpoint()  # the second caller queues for the thread
        tg.cancel_scope.cancel()  # both callers cancelled: neither write may be lost
        journal.allow.release(2)
    assert committed(journal.path) == {1: b"one", 2: b"two", 3: b"three"}
    journal.close()


async def test_a_direct_write_while_the_thread_writes_is_refused(tmp_path: Path) -> None:
    journal = HeldJournal(tmp_path / "j.sqlite")
    journal.record(1, True, b"one", None, True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(journal.commit_in_thread)
        await anyio.to_thread.run_sync(journal.writing.wait)
        with pytest.raises(RuntimeError, match="await that first"):
            journal.commit()
        with pytest.raises(RuntimeError, match="await that first"):
            journal.mark_sent([5])
        journal.allow.release()
    journal.commit()  # once it is done, direct writes are fine again
    journal.close()


async def test_lines_settled_during_a_commit_wait_for_the_next_one(tmp_path: Path) -> None:
    journal = HeldJournal(tmp_path / "j.sqlite")
    writer = ResultWriter(tmp_path / "out", journal=journal)
    committer = Committer(journal, writer)
    succeeded = tmp_path / "out" / "succeeded.jsonl"

    def settle(row: int) -> None:
        line = b'{"row":%d}' % row
        writer._ok_buf += line + b"\n"  # what ResultWriter.record buffers, with its record
        journal.record(row, True, line, None, True)
        committer.dirty()

    async with anyio.create_task_group() as tg:
        tg.start_soon(committer.run)
        settle(1)
        await anyio.to_thread.run_sync(journal.writing.wait)  # row 1's commit is running
        settle(2)  # settled meanwhile: in the buffer, not in this commit
        journal.writing.clear()
        journal.allow.release()
        await anyio.to_thread.run_sync(journal.writing.wait)  # the next commit (row 2)
        # Row 1 is committed and may be in the file by now; row 2 is not committed yet.
        assert committed(journal.path) == {1: b'{"row":1}'}
        assert b'"row":2' not in succeeded.read_bytes()
        tg.cancel_scope.cancel()
        journal.allow.release()
    journal.commit()
    writer.close()
    assert committed(journal.path).keys() == {1, 2}
    assert succeeded.read_bytes().count(b"\n") == 2
    journal.close()


async def test_a_sent_mark_waits_behind_a_commit_in_the_thread(tmp_path: Path) -> None:
    journal = HeldJournal(tmp_path / "j.sqlite")
    journal.record(1, True, b"one", None, True)
    marks: list[int] = []

    async def mark() -> None:
        marks.append(await journal.mark_sent_in_thread([7, 8]))

    async with anyio.create_task_group() as tg:
        tg.start_soon(journal.commit_in_thread)
        await anyio.to_thread.run_sync(journal.writing.wait)
        tg.start_soon(mark)  # the thread is busy: the mark queues behind the commit
        await anyio.lowlevel.checkpoint()
        assert not marks
        journal.allow.release()
    assert marks and list(journal.sent_unfinished_rows()) == [7, 8]
    journal.close()


class CountingJournal(HeldJournal):
    """HeldJournal that counts the thread's mark writes and can be made to fail them."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.mark_writes: list[int] = []
        self.fail: Exception | None = None

    def _insert_marks(self, group: Any) -> list[int]:
        self.mark_writes.append(len(group.marks))
        if self.fail is not None:
            raise self.fail
        return super()._insert_marks(group)


async def _marks_behind_a_commit(
    journal: CountingJournal,
    mark: Callable[[int], Coroutine[Any, Any, None]],
    n: int,
    while_held: Callable[[], None] = lambda: None,
) -> None:
    """``mark(0)`` to ``mark(n - 1)`` started while a commit holds the journal's thread, which
    is let go once they all wait (``while_held`` runs then)."""
    journal.record(1, True, b"one", None, True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(journal.commit_in_thread)
        await anyio.to_thread.run_sync(journal.writing.wait)
        for i in range(n):
            tg.start_soon(mark, i)
        await anyio.wait_all_tasks_blocked()
        while_held()
        journal.allow.release()


async def test_marks_that_find_the_thread_busy_are_written_together(tmp_path: Path) -> None:
    """Sixteen workers' marks while a commit holds the thread: one write for all of them, one
    transaction, each caller with its own mark."""
    journal = CountingJournal(tmp_path / "j.sqlite")
    ids: dict[int, int] = {}

    async def mark(n: int) -> None:
        ids[n] = await journal.mark_sent_in_thread([100 + n])

    def nothing_written_yet() -> None:
        assert not ids  # all waiting behind the commit

    await _marks_behind_a_commit(journal, mark, 16, nothing_written_yet)
    assert journal.mark_writes == [16]
    assert len(set(ids.values())) == 16
    assert list(journal.sent_unfinished_rows()) == [100 + n for n in range(16)]
    for n, mark_id in ids.items():  # each id is the caller's own mark
        journal.release_mark(mark_id, [100 + n] if n % 2 else ())
    journal.allow.release()  # for the commit that applies them
    journal.commit()
    assert list(journal.sent_unfinished_rows()) == [100 + n for n in range(1, 16, 2)]
    journal.close()


async def test_every_mark_of_a_failed_group_write_raises(tmp_path: Path) -> None:
    journal = CountingJournal(tmp_path / "j.sqlite")
    journal.fail = sqlite3.OperationalError("disk I/O error")
    raised: list[BaseException] = []

    async def mark(n: int) -> None:
        try:
            await journal.mark_sent_in_thread([n])
        except sqlite3.OperationalError as exc:
            raised.append(exc)

    await _marks_behind_a_commit(journal, mark, 3)
    assert journal.mark_writes == [3] and len(raised) == 3
    assert list(journal.sent_unfinished_rows()) == []
    journal.close()


def test_settled_outcomes_keep_every_byte_and_null_when_folded(tmp_path: Path) -> None:
    """A commit's outcomes are one settled row (MessagePack); folding them into outcomes, as a
    resume does, gives back the exact bytes, NULLs and digests, the later run's outcome winning."""
    path = tmp_path / "j.sqlite"
    journal = Journal.create(path, {"config": {}})
    lines = {
        1: '{"row":1,"id":"5","key":"zoë \\"quoted\\" \\\\ back","input":{"a":"\\n"}}'.encode(),
        2: '{"row":2,"error":{"category":"VALIDATION_ERROR","message":"日本語 ✓"}}'.encode(),
        3: b'{"row":3}',
    }
    digest = bytes(range(DIGEST_SIZE))
    journal.record(1, True, lines[1], None, True)
    journal.record(2, False, lines[2], "VALIDATION_ERROR", None)
    journal.record(3, True, lines[3], None, False, digest)
    journal.commit()
    assert journal.counts() == {
        "succeeded": 2,
        "failed": 1,
        "created": 1,
        "updated": 1,
        "failed_by_category": {"VALIDATION_ERROR": 1},
    }
    journal.begin_generation()  # a later run: row 2 settled again, succeeding
    journal.record(2, True, b'{"row":2,"again":true}', None, None)
    journal.commit()
    assert journal.counts() == {
        "succeeded": 3,
        "failed": 0,
        "created": 1,
        "updated": 1,
        "failed_by_category": {},
    }
    journal.close()
    Journal.open(path).close()  # opening folds what the last run settled
    with sqlite3.connect(path) as db:
        got = {
            row: (ok, category, new, line, digest, typeof)
            for row, ok, category, new, line, digest, typeof in db.execute(
                "SELECT row, ok, category, new, line, digest, typeof(line) FROM outcomes"
            )
        }
        assert db.execute("SELECT COUNT(*) FROM settled").fetchone() == (0,)
    assert got == {
        1: (1, None, 1, lines[1], None, "blob"),
        2: (1, None, None, b'{"row":2,"again":true}', None, "blob"),
        3: (1, None, 0, lines[3], digest, "blob"),
    }
    reopened = Journal.open(path)
    assert reopened.counts()["succeeded"] == 3
    reopened.close()


class HeldCommits:
    """A committer over a :class:`HeldJournal`, on a clock the test sets (``now``), and rows
    settled as ``ResultWriter.record`` settles them."""

    def __init__(self, tmp_path: Path) -> None:
        self.now = 1000.0
        self.journal = HeldJournal(tmp_path / "j.sqlite")
        self.writer = ResultWriter(tmp_path / "out", journal=self.journal)
        self.committer = Committer(self.journal, self.writer, clock=lambda: self.now)
        self.succeeded = tmp_path / "out" / "succeeded.jsonl"

    def settle(self, row: int, filler: bytes = b"") -> None:
        line = b'{"row":%d,"f":"%s"}' % (row, filler) if filler else b'{"row":%d}' % row
        self.writer._ok_buf += line + b"\n"
        self.journal.record(row, True, line, None, True)
        self.committer.dirty()

    async def commit_running(self) -> None:
        await anyio.to_thread.run_sync(self.journal.writing.wait)

    def let_commit_finish(self) -> None:
        self.journal.writing.clear()
        self.journal.allow.release()

    async def next_commit(self) -> None:
        await self.commit_running()
        self.let_commit_finish()

    def close(self) -> None:
        self.journal.commit()
        self.writer.close()
        self.journal.close()


async def test_committed_lines_reach_the_files_once_they_fill_a_write(tmp_path: Path) -> None:
    # The clock stands still: only the size of what is committed can send lines to the files
    # before a second has passed, so a fast job's memory does not grow with its speed.
    held = HeldCommits(tmp_path)
    async with anyio.create_task_group() as tg:
        tg.start_soon(held.committer.run)
        held.settle(1)
        await held.next_commit()  # the first commit's lines are written at once
        held.settle(2)  # small: held for the second to pass
        await held.next_commit()
        for row in range(3, 3 + 1000):  # 1.2 MB: more than one write's worth
            held.settle(row, b"x" * 1200)
        await held.next_commit()
        held.settle(2000)
        await held.commit_running()
        # The commit before this one held a full write: the files have it, row 2 with it.
        lines = held.succeeded.read_bytes().splitlines()
        assert len(lines) == 1002 and b'"row":1002,' in lines[-1]
        tg.cancel_scope.cancel()
        held.journal.allow.release()
    held.close()
    assert held.succeeded.read_bytes().count(b"\n") == 1003


async def test_small_commits_wait_for_the_second(tmp_path: Path) -> None:
    held = HeldCommits(tmp_path)
    async with anyio.create_task_group() as tg:
        tg.start_soon(held.committer.run)
        held.settle(1)
        await held.next_commit()
        held.settle(2)
        await held.next_commit()
        held.settle(3)
        await held.commit_running()  # row 3's commit is running
        # Row 2 is committed, and was kept back: a second had not passed, nor a megabyte.
        assert held.succeeded.read_bytes() == b'{"row":1}\n'
        held.now += 1.0  # before row 3's commit returns
        held.let_commit_finish()
        held.settle(4)
        await held.commit_running()
        # Row 3's commit came a second after the last write: rows 2 and 3 went with it.
        assert held.succeeded.read_bytes().count(b"\n") == 3
        tg.cancel_scope.cancel()
        held.journal.allow.release()
    held.close()
