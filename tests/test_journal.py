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
