"""The journal: per-batch commits, the sent marks that make resumed creates safe, streamed
reads that writes do not disturb, and whole-job counts."""

from __future__ import annotations

import sqlite3

from bulkops._journal import Journal


def committed_rows(path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [r for (r,) in db.execute("SELECT row FROM outcomes ORDER BY row")]


def test_outcomes_are_durable_only_after_commit(tmp_path):
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    j.record(1, True, b'{"row":1}', None, True)
    assert committed_rows(path) == []  # another process (a resume) would not see it yet
    j.commit()
    assert committed_rows(path) == [1]
    j.close()


def test_sent_marks_are_committed_before_the_request_and_cleared_when_refused(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.mark_sent([1, 2, 3])
    j.record(1, True, b"{}", None, True)
    j.unmark_sent([2])  # HubSpot answered 429 for row 2: it was not written
    j.commit()
    assert list(j.sent_unfinished_rows()) == [3]
    j.close()


def test_streams_finished_rows_while_writing(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    for row in range(1, 2001, 2):
        j.record(row, True, b"{}", None, None)
    j.commit()
    seen = []
    for row in j.finished_rows():
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
