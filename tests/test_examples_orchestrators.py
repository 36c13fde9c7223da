"""The orchestrator examples run end to end against the embedded fake HubSpot:

* examples/05_airflow_taskflow.py: the DAG's task, with a stand-in for Airflow
  (tests/airflow_standin.py), run as a worker runs a try of it; a try killed mid-way is
  retried with the same run id and resumes the job; a stop a retry cannot fix fails the task
  without a retry, and clearing the task resumes it. Every row is accounted for exactly once,
  nothing is created twice, and the token is in no output, log or file.
* examples/06_dagster_op.py: the asset, with the real Dagster; a try that stopped is retried
  by Dagster's retry policy in the same run and resumes the job; a stop a retry cannot fix is
  not retried, and re-executing the failed run from failure (a new run, with the first as its
  root) resumes the first run's job folder.
* examples/07_notebook.py: its cells, each compiled with top-level await, as Jupyter runs them.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import json
import logging
import signal
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import pytest

import bulkops
from bulkops.testing import FakeConfig, FakeHubSpot, ScriptedAnswer

from . import airflow_standin
from .accounting import assert_accounted

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_EXAMPLE = ROOT / "examples" / "05_airflow_taskflow.py"
DAGSTER_EXAMPLE = ROOT / "examples" / "06_dagster_op.py"
NOTEBOOK_EXAMPLE = ROOT / "examples" / "07_notebook.py"

# A token no one could take for a real one; it must appear in no output, log or file.
TOKEN = "pat-test-orchestrators-0001"
ROWS = 3000
BAD = {n for n in range(1, ROWS + 1) if n % 100 == 0}  # an unknown lifecycle stage: they fail


def write_contacts(path: Path, rows: int = ROWS) -> Path:
    lines = ["email,firstname,lifecyclestage"]
    lines += [
        f"c{n}@example.com,Contact {n},{'nope' if n in BAD else 'lead'}" for n in range(1, rows + 1)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fake_config(**changes: Any) -> FakeConfig:
    # No rate-limit headers: the job paces itself at HubSpot's lowest tier (10 requests/s),
    # slow enough to stop it mid-way, and the whole job still takes about 3 s.
    return FakeConfig(tokens=frozenset({TOKEN}), rate_limit=None, **changes)


def assert_written_once(fake: FakeHubSpot, rows: int = ROWS) -> None:
    """Every good contact created exactly once, none twice, the bad ones not at all."""
    good = rows - len([n for n in BAD if n <= rows])
    assert fake.stats.records_created["contacts"] == good
    assert len(fake.records("contacts")) == good
    by_email = [n for (kind, prop, _), n in fake.stats.creates_by_unique.items() if prop == "email"]
    assert len(by_email) == good and max(by_email) == 1


def assert_no_token(*texts: str, folder: Path | None = None) -> None:
    for text in texts:
        assert TOKEN not in text
    if folder is not None:
        for path in folder.rglob("*"):
            if path.is_file():
                assert TOKEN.encode() not in path.read_bytes(), path


def assert_files(*paths: str) -> None:
    for path in paths:
        assert Path(path).is_file(), path


async def wait_for_creates(fake: FakeHubSpot, n: int, proc: anyio.abc.Process) -> None:
    """Until the fake has created n contacts (the job is well under way), or the process
    ended; bounded."""
    with anyio.fail_after(60):
        while fake.stats.records_created["contacts"] < n and proc.returncode is None:  # noqa: ASYNC110
            await anyio.sleep(0.02)


# -- Airflow --------------------------------------------------------------------------------


def airflow_env(fake: FakeHubSpot, jobs_root: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUBSPOT_", "AIRFLOW_"))}
    # The connection as Airflow takes it from the environment (its JSON form).
    env["AIRFLOW_CONN_HUBSPOT_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": fake.url, "password": TOKEN}
    )
    env["BULKOPS_JOBS_ROOT"] = str(jobs_root)
    return env


async def drain(stream: anyio.abc.ByteReceiveStream, into: list[bytes]) -> None:
    into.extend([chunk async for chunk in stream])


async def airflow_try(
    fake: FakeHubSpot,
    jobs_root: Path,
    run_id: str,
    conf: dict[str, Any],
    kill: signal.Signals | None,
) -> tuple[int | None, str, str]:
    """One try of the task in a worker process of its own; ``kill``: send that signal once
    the try is well under way. Returns (exit code, stdout, stderr)."""
    args = [sys.executable, "-m", "tests.airflow_standin", str(AIRFLOW_EXAMPLE), run_id]
    env = airflow_env(fake, jobs_root)
    async with await anyio.open_process([*args, json.dumps(conf)], env=env, cwd=ROOT) as proc:
        if kill is not None:
            await wait_for_creates(fake, ROWS // 4, proc)
            assert proc.returncode is None, "the try ended before it could be killed"
            proc.send_signal(kill)
        assert proc.stdout is not None and proc.stderr is not None
        out: list[bytes] = []
        err: list[bytes] = []
        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain, proc.stdout, out)
                tg.start_soon(drain, proc.stderr, err)
            await proc.wait()
    return proc.returncode, b"".join(out).decode(), b"".join(err).decode()


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_an_airflow_retry_after_a_kill_resumes_and_writes_nothing_twice(
    tmp_path: Path, kill: signal.Signals
) -> None:
    src = write_contacts(tmp_path / "contacts.csv")
    jobs_root = tmp_path / "jobs"
    run_id = "manual__2026-12-01T09:00:00+00:00"
    conf = {"input_path": str(src)}
    async with FakeHubSpot(fake_config()) as fake:
        code, out1, err1 = await airflow_try(fake, jobs_root, run_id, conf, kill)
        if kill == signal.SIGTERM:
            # Stopped gracefully: the try failed with a stop a retry resumes, so Airflow
            # retries it (exit 1 here; 2 would be AirflowFailException: no retry).
            assert code == 1, err1
            assert "JobInterrupted" in err1
        else:
            assert code == -signal.SIGKILL  # the worker died: Airflow retries the task
        created_before = fake.stats.records_created["contacts"]
        assert 0 < created_before < ROWS - len(BAD)
        # The retry: the same run id, so the same job folder, which it resumes.
        code, out2, err2 = await airflow_try(fake, jobs_root, run_id, conf, None)
        assert code == 0, err2
        assert_written_once(fake)
    summary = json.loads(out2.splitlines()[-1])
    folder = Path(summary["job_folder"])
    assert folder.parent == jobs_root / "hubspot_contacts_upsert"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # one folder per run
    assert summary["status"] == "complete" and summary["mode"] == "resume"
    # A killed try never wrote its report: only tries that ended count as runs.
    assert summary["runs"] == (2 if kill == signal.SIGTERM else 1)
    assert summary["succeeded"] == ROWS - len(BAD) and summary["failed"] == len(BAD)
    assert summary["created"] + summary["updated"] == summary["succeeded"]
    assert summary["rows"] == ROWS
    _, bad = assert_accounted(folder, ROWS)
    assert set(bad) == BAD
    report = json.loads((folder / "report.json").read_text())
    assert report["this_run"]["mode"] == "resume"
    assert report["this_run"]["skipped_finished_rows"] > 0  # the first try's rows not resent
    assert_files(summary["succeeded_file"], summary["failed_file"], summary["report_file"])
    assert_no_token(out1, err1, out2, err2, folder=jobs_root)


def load_airflow_example() -> ModuleType:
    with airflow_standin.installed():
        return airflow_standin.load_dag_file(AIRFLOW_EXAMPLE, "example_05_airflow")


async def test_an_airflow_stop_a_retry_cannot_fix_fails_at_once_and_a_clear_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every record bulkops writes, requests included
    src = write_contacts(tmp_path / "contacts.csv", 1000)
    # Request 6 answers that the account's daily limit is spent (what HubSpot says at 0:00
    # in the account's time zone is that it has reset: request 7 on goes through).
    script = {6: ScriptedAnswer.rate_limited("DAILY")}
    async with FakeHubSpot(fake_config(script=script)) as fake:
        for name, value in airflow_env(fake, tmp_path / "jobs").items():
            monkeypatch.setenv(name, value)
        example = load_airflow_example()
        dag = airflow_standin.the_dag(example)
        assert dag.dag_id == "hubspot_contacts_upsert"
        assert dag.task("upsert_contacts").task.options["retries"] == 3
        run_id = "scheduled__2026-12-01T00:00:00+00:00"
        conf = {"input_path": str(src)}

        def one_try() -> Any:  # on a worker thread: the fake serves on this loop meanwhile
            return dag.run_task("upsert_contacts", run_id, conf)

        with pytest.raises(airflow_standin.AirflowFailException) as failed:
            await anyio.to_thread.run_sync(one_try)
        assert isinstance(failed.value.__cause__, bulkops.DailyLimitReached)
        assert "job folder" in str(failed.value)
        # Cleared the next day: a new try of the same run resumes its folder.
        summary = await anyio.to_thread.run_sync(one_try)
        assert_written_once(fake, 1000)
    assert json.loads(json.dumps(summary)) == summary  # XCom takes JSON
    assert summary["mode"] == "resume" and summary["runs"] == 2
    assert summary["succeeded"] == 990 and summary["failed"] == 10
    assert_accounted(Path(summary["job_folder"]), 1000)
    assert "daily_limit" in caplog.text  # the stop is logged, the token is not
    assert_no_token(caplog.text, json.dumps(summary), folder=tmp_path / "jobs")


def test_the_airflow_job_folder_is_one_per_run_and_safe_as_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULKOPS_JOBS_ROOT", str(tmp_path))
    example = load_airflow_example()
    a = example.job_folder("manual__2026-12-01T09:00:00+00:00")
    assert a == example.job_folder("manual__2026-12-01T09:00:00+00:00")  # every try
    assert a.parent == tmp_path / "hubspot_contacts_upsert"
    assert a.name.startswith("manual__2026-12-01T09_00_00_00_00-")
    assert example.job_folder("manual__2026-12-01T09_00_00_00_00") != a  # kept apart


# -- Dagster --------------------------------------------------------------------------------


def load_dagster_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_06_dagster", DAGSTER_EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic looks the config classes' module up
    spec.loader.exec_module(module)
    return module


def execute(dg: Any, defs: Any, run_config: Any, tmp_path: Path) -> Any:
    """One run of the job "contacts_test" in this thread. The instance keeps its files in
    tmp_path and is closed after the run (left to the garbage collector, its temporary
    directory would warn in whichever test is running then)."""
    with dg.DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        job = defs.resolve_job_def("contacts_test")
        return job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False
        )


async def test_a_dagster_retry_after_a_stop_resumes_and_writes_nothing_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dg = pytest.importorskip("dagster")
    caplog.set_level(logging.DEBUG)
    example = load_dagster_example()
    src = write_contacts(tmp_path / "contacts.csv")

    class ImpatientHubSpot(example.HubSpot):  # type: ignore[name-defined,misc]
        """The example's resource, giving up on an outage after 0.3 s instead of 5 minutes."""

        def job_config(self, out_dir: Path) -> bulkops.JobConfig:
            config: bulkops.JobConfig = super().job_config(out_dir)
            return dataclasses.replace(
                config, outage_timeout=0.3, backoff_base=0.05, backoff_cap=0.1
            )

    # The example's job retries after 1 minute; this one after 1 s, when the outage is over.
    job = dg.define_asset_job(
        "contacts_test",
        selection=[example.hubspot_contacts],
        op_retry_policy=dg.RetryPolicy(max_retries=2, delay=1),
    )
    async with FakeHubSpot(fake_config()) as fake:
        hubspot = ImpatientHubSpot(token=TOKEN, base_url=fake.url, jobs_root=str(tmp_path / "jobs"))
        defs = dg.Definitions(
            assets=[example.hubspot_contacts], jobs=[job], resources={"hubspot": hubspot}
        )
        run_config = dg.RunConfig({"hubspot_contacts": example.ContactsFile(input_path=str(src))})

        def run() -> Any:
            return execute(dg, defs, run_config, tmp_path)

        async with anyio.create_task_group() as tg:

            async def outage_mid_way() -> None:
                with anyio.fail_after(60):
                    while fake.stats.records_created["contacts"] < ROWS // 4:  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                fake.start_outage(duration_s=0.8)

            tg.start_soon(outage_mid_way)
            with anyio.fail_after(120):
                result = await anyio.to_thread.run_sync(run)
        assert result.success
        assert_written_once(fake)
    events = result.all_events
    retried = [e for e in events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retried) == 1  # the first try stopped (the outage); the second resumed
    (materialization,) = result.asset_materializations_for_node("hubspot_contacts")
    meta = {k: v.value for k, v in materialization.metadata.items()}
    folder = Path(str(meta["job_folder"]))
    assert folder == tmp_path / "jobs" / "hubspot_contacts" / result.run_id
    assert meta["status"] == "complete" and meta["mode"] == "resume" and meta["runs"] == 2
    assert meta["rows"] == ROWS
    assert meta["succeeded"] == ROWS - len(BAD) and meta["failed"] == len(BAD)
    assert meta["failed_by_category"] == {"PREFLIGHT_VALIDATION": len(BAD)}
    _, bad = assert_accounted(folder, ROWS)
    assert set(bad) == BAD
    assert repr(hubspot).count("token") == 0  # the resource's repr leaves the token out
    texts = [caplog.text, json.dumps(meta, default=str)]
    texts += [str(e.message) for e in events]
    assert_no_token(*texts, folder=tmp_path / "jobs")


async def test_a_dagster_stop_a_retry_cannot_fix_is_not_retried(tmp_path: Path) -> None:
    dg = pytest.importorskip("dagster")
    example = load_dagster_example()
    src = write_contacts(tmp_path / "contacts.csv", 500)
    job = dg.define_asset_job(
        "contacts_test",
        selection=[example.hubspot_contacts],
        op_retry_policy=dg.RetryPolicy(max_retries=3),
    )
    async with FakeHubSpot(fake_config()) as fake:
        fake.revoke_token(TOKEN)  # 401: a person must give a new token first
        hubspot = example.HubSpot(token=TOKEN, base_url=fake.url, jobs_root=str(tmp_path))
        defs = dg.Definitions(
            assets=[example.hubspot_contacts], jobs=[job], resources={"hubspot": hubspot}
        )
        run_config = dg.RunConfig({"hubspot_contacts": example.ContactsFile(input_path=str(src))})

        def run() -> Any:
            return execute(dg, defs, run_config, tmp_path)

        with anyio.fail_after(60):
            result = await anyio.to_thread.run_sync(run)
    assert not result.success
    events = result.all_events
    assert not [e for e in events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    (failure,) = [e for e in events if e.event_type_value == "STEP_FAILURE"]
    assert "job folder" in failure.step_failure_data.user_failure_data.description
    assert failure.step_failure_data.user_failure_data.metadata["status"].value == "stopped"


def reexecution_job() -> Any:
    """The example's asset in a job that Dagster can rebuild by name, as ``execute_job`` needs,
    with its resource configured from the environment as a code location configures it."""
    import dagster as dg

    example = load_dagster_example()
    hubspot = example.HubSpot(
        token=dg.EnvVar("TEST_HUBSPOT_TOKEN"),
        base_url=dg.EnvVar("TEST_HUBSPOT_URL"),
        jobs_root=dg.EnvVar("TEST_JOBS_ROOT"),
    )
    job = dg.define_asset_job(
        "contacts_test", selection=[example.hubspot_contacts], executor_def=dg.in_process_executor
    )
    defs = dg.Definitions(
        assets=[example.hubspot_contacts], jobs=[job], resources={"hubspot": hubspot}
    )
    return defs.resolve_job_def("contacts_test")


async def test_a_dagster_reexecution_from_failure_resumes_the_runs_job_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dg = pytest.importorskip("dagster")
    src = write_contacts(tmp_path / "contacts.csv", 1000)
    run_config = {"ops": {"hubspot_contacts": {"config": {"input_path": str(src)}}}}
    # Request 6: the daily limit is spent. The step fails without a retry; the next day
    # someone re-executes the run from failure: a new run, whose root is the first.
    script = {6: ScriptedAnswer.rate_limited("DAILY")}
    async with FakeHubSpot(fake_config(script=script)) as fake:
        monkeypatch.setenv("TEST_HUBSPOT_TOKEN", TOKEN)
        monkeypatch.setenv("TEST_HUBSPOT_URL", fake.url)
        monkeypatch.setenv("TEST_JOBS_ROOT", str(tmp_path / "jobs"))

        (tmp_path / "dagster").mkdir()

        def runs() -> dict[str, Any]:
            with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
                job = dg.reconstructable(reexecution_job)
                first = dg.execute_job(job, instance, run_config=run_config)
                options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
                again = dg.execute_job(job, instance, reexecution_options=options)
                run = instance.get_run_by_id(again.run_id)
                assert run is not None
                (materialization,) = again.asset_materializations_for_node("hubspot_contacts")
                return {
                    "first": (first.success, first.run_id),
                    "again": (again.success, again.run_id, run.root_run_id),
                    "meta": {k: v.value for k, v in materialization.metadata.items()},
                }

        with anyio.fail_after(120):
            got = await anyio.to_thread.run_sync(runs)
        assert_written_once(fake, 1000)
    first_ok, first_id = got["first"]
    again_ok, again_id, root_id = got["again"]
    assert not first_ok and again_ok and again_id != first_id and root_id == first_id
    meta = got["meta"]
    folder = Path(str(meta["job_folder"]))
    assert folder == tmp_path / "jobs" / "hubspot_contacts" / first_id  # the first run's
    assert meta["mode"] == "resume" and meta["runs"] == 2
    assert meta["succeeded"] == 990 and meta["failed"] == 10
    assert_accounted(folder, 1000)
    assert_no_token(json.dumps(meta, default=str), folder=tmp_path / "jobs")


# -- the notebook ---------------------------------------------------------------------------


def notebook_cells() -> list[str]:
    cells: list[list[str]] = [[]]
    for line in NOTEBOOK_EXAMPLE.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("# %%"):
            cells.append([])
        cells[-1].append(line)
    return ["".join(c) for c in cells if "".join(c).strip()]


async def run_notebook() -> dict[str, Any]:
    """Each cell compiled on its own with top-level await and run in one namespace, on this
    event loop, as Jupyter's kernel runs them."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for n, cell in enumerate(notebook_cells(), 1):
        code = compile(cell, f"<cell {n}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if inspect.isawaitable(result):
            await result
    return namespace


async def test_the_notebook_runs_cell_by_cell_with_top_level_await(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pd = pytest.importorskip("pandas")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert len(notebook_cells()) >= 5
    with anyio.fail_after(60):
        ns = await run_notebook()
    out = capsys.readouterr().out
    report = ns["report"]
    assert report.succeeded == 1170 and report.failed == 30
    assert len(ns["hubspot_ids"]) == 1170 and sum(ns["failures"].values()) == 30
    ok, _ = assert_accounted(ns["config"].out_dir, 1200)
    assert {line["key"]: line["id"] for line in ok.values()} == ns["hubspot_ids"]
    frame = ns["frame"]
    assert isinstance(frame, pd.DataFrame) and len(frame) == 1200
    assert int(frame["ok"].sum()) == 1170
    assert "1170 upserted (1170 created), 30 failed" in out
    assert ns["fake"].stats.records_created["contacts"] == 1170


async def test_the_notebook_without_pandas_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas: ImportError
    with anyio.fail_after(60):
        ns = await run_notebook()
    assert ns["frame"] is None
    assert "1200 results (install pandas for a DataFrame)" in capsys.readouterr().out
