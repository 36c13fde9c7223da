"""An Airflow TaskFlow DAG that upserts contacts into HubSpot with bulkops: one job folder per
DAG run, so a retry of the task (or clearing it) resumes the job instead of starting it again.

Install bulkops where the tasks run (``pip install bulkops``), put this file in the dags
folder, and give the token as a connection (Airflow masks a connection's password in logs):

    airflow connections add hubspot_default --conn-type http \\
        --conn-password "$HUBSPOT_ACCESS_TOKEN"
    airflow dags trigger hubspot_contacts_upsert \\
        --conf '{"input_path": "/data/exports/contacts.csv"}'

The connection's host, when set, is the API's base URL (a proxy, or a fake HubSpot in
tests). ``BULKOPS_JOBS_ROOT`` (default /data/bulkops-jobs) is where job folders go.

Written for Airflow 2.4+; on Airflow 3 the same names are in ``airflow.sdk`` (``dag``,
``task``, ``BaseHook``). tests/test_examples_orchestrators.py runs this DAG's task against the
embedded fake HubSpot, with a stand-in for Airflow, and retries it after a kill.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from airflow.decorators import dag, task
from airflow.exceptions import AirflowFailException
from airflow.hooks.base import BaseHook

import bulkops
from bulkops import StopReason

log = logging.getLogger(__name__)

DAG_ID = "hubspot_contacts_upsert"
CONN_ID = "hubspot_default"

# Stops that a retry a few minutes later cannot fix. Either something must be fixed first
# (bad settings or input, a server that is not HubSpot, no answer from it at all: exit code 2),
# or the fix is a person's: the token was refused, too many rows failed (each retry would
# send another batch of bad rows), or the daily quota is spent (it resets at midnight in the
# account's time zone, long after the last retry). The task fails at once, without using up
# its retries; clear it once the cause is fixed and it resumes the same job folder.
NO_RETRY = frozenset(
    {StopReason.AUTH, StopReason.MAX_FAILURES, StopReason.DAILY_LIMIT, StopReason.DAILY_BUDGET}
)


def jobs_root() -> Path:
    # Read when the task runs, on the worker, not when the scheduler parses the file. A retry
    # may run on another worker: the folder must be on storage that every worker running this
    # task sees, and that outlives them (a volume, not the container's disk), or the retry
    # starts a new job. One process at a time holds a job folder (a lock in it), so a zombie
    # attempt still running makes the next one fail instead of writing beside it.
    return Path(os.environ.get("BULKOPS_JOBS_ROOT", "/data/bulkops-jobs"))


def job_folder(run_id: str) -> Path:
    """The job folder of one DAG run: the same for every try of the task in that run.

    Run ids hold characters some file systems refuse (``manual__2026-12-01T09:00:00+00:00``);
    the short hash keeps two run ids that clean up to the same text apart."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._")
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return jobs_root() / DAG_ID / f"{clean}-{digest}"


def hubspot_config(out_dir: Path) -> bulkops.JobConfig:
    conn = BaseHook.get_connection(CONN_ID)
    if not conn.password:
        raise AirflowFailException(f"connection {CONN_ID!r} has no password (the HubSpot token)")
    # bulkops.Secret prints as '***' (repr, str, the config's repr): the token cannot reach a
    # log line by accident. It is never passed on the command line or into XCom.
    options: dict[str, Any] = {"base_url": conn.host.rstrip("/")} if conn.host else {}
    return bulkops.JobConfig(
        # Upsert by email: writing a row again sets the same values on the same contact, so a
        # retry that sends a batch whose answer the killed try never saw duplicates nothing.
        # A create is only as safe with an id_property (a unique property in every row): a
        # create whose answer was lost is then settled by reading it back, never sent twice.
        operation=bulkops.Operation.UPSERT,
        object_type="contacts",
        id_property="email",
        token=bulkops.Secret(conn.password),
        out_dir=out_dir,
        # A file that mostly fails (a renamed column, the wrong export) stops after 5% of
        # the rows instead of writing a million lines to failed.jsonl.
        max_failures=0.05,
        **options,
    )


async def run_or_resume(config: bulkops.JobConfig, input_path: str) -> bulkops.JobReport:
    """Start the job, or resume it when an earlier try of this task left its journal.

    Resuming skips every row that try finished and sends the rest; the report and the result
    files then cover the whole job, every row exactly once. (``run_job_sync`` starts new jobs
    only, hence ``Job`` here.) The input file must be the same file: a resume checks it and
    refuses another one."""
    journal = config.out_dir / "journal.sqlite"
    mode = bulkops.Mode.RESUME if journal.exists() else bulkops.Mode.NEW
    log.info("%s job %s from %s", mode.value, config.out_dir, input_path)
    job = bulkops.Job(config, input_path, mode=mode)

    async def log_progress() -> None:
        while True:
            await anyio.sleep(60)
            p = job.progress()
            log.info("%d rows read, %d succeeded, %d failed", p.rows_read, p.succeeded, p.failed)

    # SIGTERM (Airflow stopping the task: marked failed or cleared while it runs, a worker or
    # pod shutting down) stops the job gracefully: requests in flight finish and their results
    # are written, well within the 60 s Airflow waits before SIGKILL, so the retry has the
    # least to redo. A second signal cancels at once. Airflow's own handlers are put back
    # afterwards. (An execution_timeout is an exception raised in the loop: it cancels the job
    # at once, and the retry resumes it all the same.) Off the main thread this installs
    # nothing.
    with bulkops.graceful_signals(job):
        async with anyio.create_task_group() as tg:
            tg.start_soon(log_progress)
            report = await job.run()
            tg.cancel_scope.cancel()
    return report


@task(retries=3, retry_delay=timedelta(minutes=2), retry_exponential_backoff=True)
def upsert_contacts(input_path: str, run_id: str | None = None) -> dict[str, Any]:
    """Upsert the contacts of ``input_path`` (CSV, TSV or JSONL); returns the XCom summary.

    ``run_id`` is filled in by Airflow from the task's context."""
    if run_id is None:
        raise AirflowFailException("no run_id: this runs as an Airflow task")
    out_dir = job_folder(run_id)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Errors before the job starts raise as themselves (bulkops.ConfigError): the folder held
    # by an earlier try that is still running (a retry later is what that needs), or a resume
    # given another file than the job's.
    report = anyio.run(run_or_resume, hubspot_config(out_dir), input_path)
    try:
        # A stop (interrupted, 429s or an outage that lasted too long, ...) raises, so Airflow
        # marks the try failed and retries it; the retry resumes the job folder.
        report.raise_for_status()
    except bulkops.JobStopped as exc:
        if not exc.resumable or (exc.stop is not None and exc.stop.reason in NO_RETRY):
            raise AirflowFailException(f"{exc} (job folder {out_dir})") from exc
        raise
    # Rows HubSpot refused are results, not a failed task: a retry would send them again
    # unchanged. They are in failed.jsonl with the reason; correct them there and run
    # `bulkops retry <job folder>`, or alert on "failed" downstream.
    return {
        "job_folder": str(out_dir),
        "status": report.status.value,
        # "resume": this try resumed the job an earlier one started (one that was killed
        # never wrote its report, so "runs" counts the tries that ended, this one included).
        "mode": report.this_run.mode if report.this_run else "new",
        "runs": report.runs,
        "rows": report.rows.read,
        "succeeded": report.succeeded,
        "failed": report.failed,
        "created": report.written.created,
        "updated": report.written.updated,
        "succeeded_file": str(out_dir / "succeeded.jsonl"),
        "failed_file": str(out_dir / "failed.jsonl"),
        "report_file": str(out_dir / "report.json"),
    }


@dag(
    dag_id=DAG_ID,
    schedule=None,  # triggered with the file to upsert; or "@daily" with a templated path
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    # One run at a time: runs write the same contacts, and share the account's rate limit.
    max_active_runs=1,
    params={"input_path": "/data/exports/contacts.csv"},
)
def hubspot_contacts_upsert() -> None:
    # From the run's params (the trigger's --conf overrides them). To take the path from an
    # upstream task's XCom instead: upsert_contacts(export_contacts()).
    upsert_contacts(input_path="{{ params.input_path }}")


dag_object = hubspot_contacts_upsert()

if __name__ == "__main__":
    # One run in this process, without a scheduler (Airflow 2.5+), for debugging the DAG
    # against the connection's account: python examples/05_airflow_taskflow.py
    dag_object.test()
