"""Safety rails for archives and v1 deletes: nothing is archived without a confirmation
when there are many rows, and an empty input is refused before anything is sent."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from bulkops import ConfigError, JobConfig, Operation, Secret, run_job
from bulkops._cli_rails import check_destructive, count_input_rows
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

from .accounting import assert_accounted
from .test_cli import run_cli


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def ids_csv(path: Path, n: int) -> Path:
    path.write_text("id\n" + "".join(f"{i}\n" for i in range(1, n + 1)))
    return path


def args(src: Path | str, *, yes: bool = False, max_archive: int = 1000) -> argparse.Namespace:
    return argparse.Namespace(
        input=str(src), format=None, delimiter=None, encoding=None, yes=yes, max_archive=max_archive
    )


def archive_config(**kw: object) -> JobConfig:
    return JobConfig(operation=Operation.ARCHIVE, token=Secret("t" * 20), **kw)  # type: ignore[arg-type]


def test_counts_are_exact(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,note\n1,"two\nlines"\n2,x\n')
    assert count_input_rows(str(src), format=None, delimiter=None, encoding=None) == 2
    assert count_input_rows("-", format=None, delimiter=None, encoding=None) is None


def test_an_empty_input_is_refused(tmp_path):
    src = ids_csv(tmp_path / "in.csv", 0)
    with pytest.raises(ConfigError, match="holds no rows"):
        check_destructive(archive_config(), args(src, yes=True), stdin=Pipe(), stderr=io.StringIO())


def test_a_small_archive_goes_ahead_and_a_large_one_needs_yes(tmp_path):
    src = ids_csv(tmp_path / "in.csv", 11)
    check_destructive(
        archive_config(), args(src, max_archive=11), stdin=Pipe(), stderr=io.StringIO()
    )
    with pytest.raises(ConfigError, match="11 rows is more than --max-archive 10: add --yes"):
        check_destructive(
            archive_config(), args(src, max_archive=10), stdin=Pipe(), stderr=io.StringIO()
        )
    check_destructive(
        archive_config(), args(src, max_archive=10, yes=True), stdin=Pipe(), stderr=io.StringIO()
    )
    with pytest.raises(ConfigError, match="add --yes"):
        check_destructive(archive_config(), args("-"), stdin=Pipe(), stderr=io.StringIO())


@pytest.mark.parametrize(("answer", "goes_on"), [("yes\n", True), ("no\n", False), ("", False)])
def test_a_large_archive_asks_on_a_terminal(tmp_path, answer, goes_on):
    src = ids_csv(tmp_path / "in.csv", 5)
    prompt = io.StringIO()

    def check() -> None:
        check_destructive(
            archive_config(), args(src, max_archive=2), stdin=Terminal(answer), stderr=prompt
        )

    if goes_on:
        check()
    else:
        with pytest.raises(ConfigError, match="not confirmed; nothing was archived"):
            check()
    assert "archive will move 5 rows to the recycle bin" in prompt.getvalue()


def test_other_operations_are_not_checked(tmp_path):
    cfg = JobConfig(operation=Operation.UPDATE, token=Secret("t" * 20))
    check_destructive(cfg, args(tmp_path / "missing.csv"), stdin=Pipe(), stderr=io.StringIO())


async def test_the_engine_refuses_an_archive_of_nothing(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        cfg = JobConfig(
            operation=Operation.ARCHIVE,
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=tmp_path,
            rate_limit=0,
        )
        report = await run_job(cfg, [])
        assert report.stop is not None and report.exit_code == 2
        assert "holds no rows" in report.stop.message
        assert all(r.method == "GET" for r in fake.requests)


async def test_the_command_line_refuses_then_archives_with_yes(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        ids = fake.seed_records(
            "tickets", [{"subject": f"T{n}", "hs_pipeline_stage": "1"} for n in range(1, 6)]
        )
        src = tmp_path / "ids.csv"
        src.write_text("id\n" + "".join(f"{i}\n" for i in ids))
        line = ["run", "archive", "--input", src, "--base-url", fake.url, "--max-archive", 3]
        refused = await run_cli(*line, "--out", tmp_path / "a")
        assert refused.returncode == 2
        assert "more than --max-archive 3" in refused.stderr.decode()
        assert fake.stats.requests == 0
        done = await run_cli(*line, "--out", tmp_path / "b", "--yes")
        assert done.returncode == 0, done.stderr.decode()
        assert_accounted(tmp_path / "b", 5)
        assert fake.records("tickets") == []


async def test_ids_that_do_not_exist_stop_an_archive_without_yes(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        seeded = [{"subject": f"T{n}", "hs_pipeline_stage": "1"} for n in range(1, 6)]
        ids = fake.seed_records("tickets", seeded)
        src = tmp_path / "ids.csv"
        src.write_text("id\n" + "".join(f"{i}\n" for i in [*ids, "999999991", "999999992"]))
        line = ["run", "archive", "--input", src, "--base-url", fake.url]
        refused = await run_cli(*line, "--out", tmp_path / "a")
        err = refused.stderr.decode()
        assert refused.returncode == 2, err
        assert "2 of the ids do not exist in HubSpot (rows 6, 7...)" in err
        assert "add --yes" in err.lower()
        assert {r.path.rsplit("/", 1)[-1] for r in fake.requests} == {"tickets", "read"}
        assert len(fake.records("tickets")) == 5

        skipped = await run_cli(*line, "--out", tmp_path / "b", "--no-check-ids")
        assert skipped.returncode == 0, skipped.stderr.decode()
        assert_accounted(tmp_path / "b", 7)
        assert fake.records("tickets") == []


async def test_an_archive_whose_ids_all_exist_goes_ahead_after_the_check(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        seeded = [{"subject": f"T{n}", "hs_pipeline_stage": "1"} for n in range(1, 6)]
        ids = fake.seed_records("tickets", seeded)
        src = tmp_path / "ids.csv"
        src.write_text("id\n" + "".join(f"{i}\n" for i in ids))
        done = await run_cli(
            "run", "archive", "--input", src, "--base-url", fake.url, "--out", tmp_path / "o"
        )
        err = done.stderr.decode()
        assert done.returncode == 0, err
        assert "read the 5 ids back before archiving (1 read request): 0 not found" in err
        assert_accounted(tmp_path / "o", 5)
        assert fake.records("tickets") == []


@pytest.mark.parametrize(("answer", "goes_on"), [("yes\n", True), ("\n", False)])
def test_ids_not_found_ask_on_a_terminal(tmp_path, answer, goes_on):
    from anyio.from_thread import start_blocking_portal

    from bulkops._cli_rails import check_ids_exist

    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(FakeHubSpot(FakeConfig(rate_limit=None))) as fake,
    ):
        ids = fake.seed_records("tickets", [{"subject": "T", "hs_pipeline_stage": "1"}])
        src = tmp_path / "ids.csv"
        src.write_text(f"id\n{ids[0]}\n999999991\n")
        cfg = JobConfig(
            operation=Operation.ARCHIVE,
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=tmp_path / "out",
        )
        ns = args(src)
        ns.no_check_ids = False
        prompt = io.StringIO()
        if goes_on:
            check_ids_exist(cfg, ns, stdin=Terminal(answer), stderr=prompt)
        else:
            with pytest.raises(ConfigError, match="not confirmed; nothing was archived"):
                check_ids_exist(cfg, ns, stdin=Terminal(answer), stderr=prompt)
        assert "1 of the ids do not exist in HubSpot (rows 2...). Archive the others?" in (
            prompt.getvalue()
        )
        assert len(fake.records("tickets")) == 1  # the check archives nothing
    assert not (tmp_path / "out").exists()  # and writes no report
