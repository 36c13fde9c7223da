"""The job folder: the lock taken first, which mode may open which folder, result files
rebuilt atomically, and a retry that never loses the user's edits to failed.jsonl, also when it
is killed. The last test runs two real CLI processes on one folder."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import anyio
import orjson
import pytest

from bulkops._errors import AMBIGUOUS, ConfigError
from bulkops._jobdir import RETRY_DIR, JobFolder, check_writable, rebuild_result_files
from bulkops._journal import JOURNAL_NAME, Journal, JournalError
from bulkops._lock import JobFolderBusy, lock_holder
from bulkops.testing import FakeConfig, FakeHubSpot

from .accounting import assert_accounted, read_jsonl
from .journal_view import committed_outcomes
from .test_cli import assert_no_duplicates, cmd, create, env, run_cli, write_csv

META = {"config": {"operation": "create"}, "input": {"path": "/in.csv"}}


def ok_line(row: int) -> bytes:
    return orjson.dumps({"row": row, "id": str(1000 + row)})


def failed_line(row: int, category: str = "VALIDATION_ERROR", **input: object) -> bytes:
    record = {"row": row, "error": {"category": category, "message": "m"}, "attempts": 1}
    record["input"] = input or {"subject": f"s{row}"}
    return orjson.dumps(record)


def finished_job(out: Path, failed: tuple[int, ...] = (2, 4, 5)) -> None:
    """A job of 5 rows or more: 1 and 3 written, 2, 4 and 5 failed; its result files as
    bulkops leaves them."""
    folder = JobFolder(out)
    journal = folder.open("new", meta=META)
    for row in (1, 3):
        journal.record(row, True, ok_line(row), None, True)
    for row in failed:
        journal.record(row, False, failed_line(row), "VALIDATION_ERROR", None)
    folder.rebuild_result_files()
    folder.close()


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


# -- opening -------------------------------------------------------------------------------
def test_new_creates_the_folder_and_holds_it_until_closed(tmp_path):
    out = tmp_path / "a" / "job"
    folder = JobFolder(out)
    journal = folder.open("new", meta=META)
    assert lock_holder(out) == os.getpid()
    assert journal.meta()["config"] == META["config"]
    assert journal.generation == 1
    with pytest.raises(JobFolderBusy, match=f"PID {os.getpid()}"):
        JobFolder(out).open("resume")
    folder.close()
    folder.close()  # idempotent
    assert lock_holder(out) is None
    assert JobFolder(out).meta()["input"] == META["input"]


def test_new_refuses_a_folder_whose_job_made_progress(tmp_path):
    finished_job(tmp_path)
    with pytest.raises(ConfigError, match="already holds a job; continue it with `bulkops resume"):
        JobFolder(tmp_path).open("new", meta=META)
    assert lock_holder(tmp_path) is None  # a refusal releases the folder


def test_new_reuses_a_folder_whose_job_stopped_before_its_first_write(tmp_path):
    """A wrong --object found at the first request must not block the corrected command."""
    folder = JobFolder(tmp_path)
    journal = folder.open("new", meta={"config": {"object": "tikets"}})
    journal.add_run({"stop": {"reason": "config"}})
    folder.close()
    journal = folder.open("new", meta={"config": {"object": "tickets"}})
    assert journal.meta()["config"] == {"object": "tickets"}
    assert journal.runs() == []
    folder.close()


def test_new_reuses_a_journal_killed_before_its_first_byte(tmp_path):
    (tmp_path / JOURNAL_NAME).write_bytes(b"")
    with pytest.raises(JournalError, match="is empty"):
        JobFolder(tmp_path).open("resume")
    folder = JobFolder(tmp_path)
    assert folder.open("new", meta=META).meta()["config"] == META["config"]
    folder.close()


@pytest.mark.parametrize("mode", ["resume", "retry"])
def test_resume_and_retry_need_a_job_and_create_nothing(tmp_path, mode):
    out = tmp_path / "typo"
    with pytest.raises(ConfigError, match=f"{out} holds no bulkops job"):
        JobFolder(out).open(mode)
    assert not out.exists()


def test_a_journal_that_cannot_be_trusted_is_refused_and_the_folder_released(tmp_path):
    finished_job(tmp_path)
    (tmp_path / JOURNAL_NAME).write_bytes(b"not a journal" * 100)
    with pytest.raises(JournalError, match="is not a SQLite database"):
        JobFolder(tmp_path).open("resume")
    assert lock_holder(tmp_path) is None
    assert lines(tmp_path / "failed.jsonl") == [failed_line(r) for r in (2, 4, 5)]


def test_open_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of new, resume, retry"):
        JobFolder(tmp_path).open("create")
    with pytest.raises(ValueError, match="needs its meta"):
        JobFolder(tmp_path).open("new")
    folder = JobFolder(tmp_path)
    folder.open("new", meta=META)
    with pytest.raises(RuntimeError, match="already open"):
        folder.open("resume")
    assert repr(folder) == f"<JobFolder {tmp_path} new>"
    folder.close()


# -- writable folders ----------------------------------------------------------------------
def test_a_file_in_the_way_is_a_config_error(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder; choose another --out"):
        check_writable(tmp_path / "out")
    with pytest.raises(ConfigError, match=r"cannot create the result folder .*/out/job"):
        check_writable(tmp_path / "out" / "job")
    with pytest.raises(ConfigError, match="is a file"):
        JobFolder(tmp_path / "out").open("new", meta=META)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder anyway")
def test_a_read_only_folder_is_a_config_error(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)  # 0o500
    try:
        with pytest.raises(ConfigError, match=r"cannot write in the result folder .*/ro"):
            check_writable(locked)
        with pytest.raises(ConfigError, match=r"cannot create the result folder .*/ro/job"):
            check_writable(locked / "job")
    finally:
        locked.chmod(stat.S_IRWXU)


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs")
def test_a_folder_on_a_filesystem_that_refuses_it_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot create the result folder /sys/bulkops-out"):
        check_writable(Path("/sys/bulkops-out"))


# -- atomic result files -------------------------------------------------------------------
def test_rebuild_replaces_the_files_and_never_truncates_them_in_place(tmp_path):
    finished_job(tmp_path)
    old = (tmp_path / "failed.jsonl").open("rb")  # a reader of the old file
    folder = JobFolder(tmp_path)
    journal = folder.open("resume")
    journal.record(2, True, ok_line(2), None, True)
    folder.rebuild_result_files()
    folder.close()
    assert lines(tmp_path / "succeeded.jsonl") == [ok_line(r) for r in (1, 2, 3)]
    assert lines(tmp_path / "failed.jsonl") == [failed_line(r) for r in (4, 5)]
    assert old.read().splitlines() == [failed_line(r) for r in (2, 4, 5)]  # still whole
    old.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".bulkops.lock"]


class _FailingJournal:
    """A journal whose stream breaks after two lines (a disk error, say)."""

    def lines(self):
        yield True, ok_line(1)
        yield False, failed_line(2)
        raise OSError("disk gone")


def test_a_rebuild_that_fails_leaves_the_old_files_whole(tmp_path):
    finished_job(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("succeeded.jsonl", "failed.jsonl")}
    with pytest.raises(OSError, match="disk gone"):
        rebuild_result_files(_FailingJournal(), tmp_path)  # type: ignore[arg-type]
    after = {name: (tmp_path / name).read_bytes() for name in before}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".rebuilding")]


# -- retry: the user's edits are kept ------------------------------------------------------
def edit_failed_file(out: Path) -> list[bytes]:
    """The user fixes row 2, edits row 4 and marks row 5 AMBIGUOUS (say, after a look)."""
    edited = [
        failed_line(2, subject="fixed 2"),
        failed_line(4, subject="edited 4"),
        failed_line(5, AMBIGUOUS, subject="edited 5"),
    ]
    (out / "failed.jsonl").write_bytes(b"".join(line + b"\n" for line in edited))
    return edited


def test_a_retry_reads_a_copy_and_its_unsettled_rows_keep_their_edits(tmp_path):
    finished_job(tmp_path)
    edited = edit_failed_file(tmp_path)
    folder = JobFolder(tmp_path)
    journal = folder.open("retry")
    assert folder.retry_pending
    assert folder.retry_input_path().read_bytes() == (tmp_path / "failed.jsonl").read_bytes()
    sent = [(r.row, r.data) for r in folder.retry_rows(include_ambiguous=False)]
    assert sent == [(2, {"subject": "fixed 2"}), (4, {"subject": "edited 4"})]
    # The job settles row 2 and is stopped (the daily limit) before row 4.
    journal.record(2, True, ok_line(2), None, True)
    folder.finish()
    folder.close()
    assert lines(tmp_path / "succeeded.jsonl") == [ok_line(r) for r in (1, 2, 3)]
    assert lines(tmp_path / "failed.jsonl") == edited[1:]  # rows 4 and 5 as the user left them
    assert not (tmp_path / RETRY_DIR).exists()
    # The journal holds those lines too: a later resume replays the user's edits.
    journal = Journal.open(tmp_path / JOURNAL_NAME)
    assert [line for ok, line in journal.lines() if not ok] == edited[1:]
    journal.close()


def test_a_killed_retry_keeps_its_copy_and_the_next_retry_continues_from_it(tmp_path):
    finished_job(tmp_path, failed=(2, 4, 5, 6, 7))
    edited = edit_failed_file(tmp_path)  # rows 2, 4, 5: the user took 6 and 7 out
    with (tmp_path / "failed.jsonl").open("ab") as f:
        f.write(failed_line(7, subject="edited 7") + b"\n")  # and put 7 back, edited
    edited.append(failed_line(7, subject="edited 7"))
    folder = JobFolder(tmp_path)
    journal = folder.open("retry")
    journal.record(2, True, ok_line(2), None, True)  # written before the kill
    journal.record(4, False, failed_line(4, "CONFLICT", subject="edited 4"), "CONFLICT", None)
    folder.close()  # killed: no finish(); the lock dies with the process
    assert folder.retry_pending
    assert lines(tmp_path / "failed.jsonl") == edited  # the user's file, untouched
    assert folder.retry_source_path() == folder.retry_input_path()

    journal = folder.open("retry")
    # Rows 2 and 4 were settled by the killed retry and row 6 was taken out by the user:
    # none of them is sent. Rows 5 and 7 are, with the user's edits.
    sent = [(r.row, r.data) for r in folder.retry_rows(include_ambiguous=True)]
    assert sent == [(5, {"subject": "edited 5"}), (7, {"subject": "edited 7"})]
    journal.record(7, True, ok_line(7), None, True)  # this run settles row 7, not row 5
    folder.finish()
    folder.close()
    assert lines(tmp_path / "succeeded.jsonl") == [ok_line(r) for r in (1, 2, 3, 7)]
    assert lines(tmp_path / "failed.jsonl") == [
        failed_line(4, "CONFLICT", subject="edited 4"),  # its outcome from the killed retry
        edited[2],  # row 5, as the user left it
        failed_line(6),  # never retried: still failed, as before
    ]


def test_a_resume_after_a_killed_retry_keeps_the_edits(tmp_path):
    finished_job(tmp_path)
    edited = edit_failed_file(tmp_path)
    folder = JobFolder(tmp_path)
    journal = folder.open("retry")
    journal.record(2, True, ok_line(2), None, True)
    folder.close()  # killed

    journal = folder.open("resume")
    assert not folder.retry_pending
    # What the resume replays into the result files: the user's lines for rows not settled.
    assert list(journal.lines()) == [
        (True, ok_line(1)),
        (True, ok_line(2)),
        (True, ok_line(3)),
        (False, edited[1]),
        (False, edited[2]),
    ]
    folder.close()
    assert lines(tmp_path / "failed.jsonl") == edited[1:]


def test_a_retry_needs_a_failed_file(tmp_path):
    finished_job(tmp_path)
    (tmp_path / "failed.jsonl").unlink()
    with pytest.raises(ConfigError, match=r"failed\.jsonl does not exist"):
        JobFolder(tmp_path).open("retry")
    assert lock_holder(tmp_path) is None
    with pytest.raises(ConfigError, match="was not opened for a retry"):
        next(JobFolder(tmp_path).retry_rows(include_ambiguous=False))


# -- two processes -------------------------------------------------------------------------
async def test_a_second_process_on_a_running_job_fails_fast_naming_it(tmp_path):
    rows = 2000
    src, out = tmp_path / "in.csv", tmp_path / "job"
    write_csv(src, rows)
    async with FakeHubSpot(FakeConfig(rate_limit=None, latency=(0.25, 0.25))) as fake:
        opts = ("--base-url", fake.url, "--progress", "none")
        # 21 requests at 20 per 10 s: the window's budget goes in its first few seconds, the
        # last request waits for the window to free, so the job runs about 10 s.
        first = await anyio.open_process(
            cmd(*create(src, out), "--id-property", "external_id", "--rate-limit", 20, *opts),
            env=env(),
        )
        try:
            with anyio.fail_after(30):  # until the first job is under way
                while len(fake.records("tickets")) < 100:  # noqa: ASYNC110 - another process
                    await anyio.sleep(0.02)
            assert lock_holder(out) == first.pid
            for second in (("resume", out), ("retry", out), create(src, out)):
                done = await run_cli(*second, *opts)
                assert done.returncode == 2, done.stderr.decode()
                assert b"Traceback" not in done.stderr
                assert f"is in use by another bulkops process (PID {first.pid})".encode() in (
                    done.stderr
                )
            assert first.returncode is None, "the first job ended before the others were refused"
            with anyio.fail_after(60):
                code = await first.wait()
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
            await first.aclose()
        assert code == 0
        ok, bad = assert_accounted(out, rows)
        assert not bad and len(ok) == rows
        assert len(fake.records("tickets")) == rows
        assert_no_duplicates(fake)
        assert len(read_jsonl(out / "succeeded.jsonl")) == rows
        assert lock_holder(out) is None


async def test_a_retry_killed_mid_way_is_continued_without_resending_what_it_wrote(tmp_path):
    """Real CLI processes: an update job with 300 rows failed, fixed by the user in
    failed.jsonl; the retry is SIGKILLed after writing some; the next retry sends only the
    rest, and the job ends exact."""
    rows = 400
    async with FakeHubSpot(FakeConfig(rate_limit=None, latency=(0.3, 0.3))) as fake:
        opts = ("--base-url", fake.url, "--progress", "none")
        src = tmp_path / "in.csv"
        write_csv(src, rows)
        made = await run_cli(*create(src, tmp_path / "create"), "--rate-limit", 0, *opts)
        assert made.returncode == 0, made.stderr.decode()
        ids = {r["row"]: r["id"] for r in read_jsonl(tmp_path / "create" / "succeeded.jsonl")}
        updates = tmp_path / "update.csv"
        with updates.open("w") as f:
            f.write("id,hs_ticket_priority\n")
            for row in range(1, rows + 1):
                f.write(f"{ids[row]},{'MEDIUM' if row <= 100 else 'WRONG'}\n")
        out = tmp_path / "job"
        first = await run_cli(
            "run", "update", "--input", updates, "--out", out, "--rate-limit", 0, *opts
        )
        assert first.returncode == 1, first.stderr.decode()
        assert len(assert_accounted(out, rows)[1]) == 300
        fixed = []
        for record in read_jsonl(out / "failed.jsonl"):
            record["input"]["hs_ticket_priority"] = "HIGH"
            fixed.append(orjson.dumps(record) + b"\n")
        (out / "failed.jsonl").write_bytes(b"".join(fixed))

        retry = await anyio.open_process(cmd("retry", out, "--concurrency", 1, *opts), env=env())
        try:
            with anyio.fail_after(30):  # until the retry has journaled a batch of its own
                while succeeded_in_journal(out) < 200:  # noqa: ASYNC110 - another process
                    await anyio.sleep(0.02)
            assert retry.returncode is None, "the retry ended before it could be killed"
        finally:
            retry.kill()
            await retry.wait()
            await retry.aclose()
        assert (out / RETRY_DIR / "input.jsonl").is_file()
        assert (out / "failed.jsonl").read_bytes() == b"".join(fixed)  # the user's file

        done = await run_cli("retry", out, *opts)
        assert done.returncode == 0, done.stderr.decode()
        _, bad = assert_accounted(out, rows)
        assert not bad
        journal = Journal.open(out / JOURNAL_NAME)
        sent_by_continuation = journal.runs()[-1]["rows"]["read"]
        journal.close()
        # Not the rows the killed retry had written (at least one batch of 100).
        assert 100 <= sent_by_continuation <= 200
        priorities = {
            r["id"]: r["properties"]["hs_ticket_priority"] for r in fake.records("tickets")
        }
        assert [priorities[ids[row]] for row in range(1, rows + 1)] == ["MEDIUM"] * 100 + [
            "HIGH"
        ] * 300
        assert not (out / RETRY_DIR).exists()


def succeeded_in_journal(out: Path) -> int:
    try:
        outcomes = committed_outcomes(out / JOURNAL_NAME, read_only=True)
    except sqlite3.OperationalError:  # busy for a moment: ask again
        return 0
    return sum(ok for ok, *_ in outcomes.values())
