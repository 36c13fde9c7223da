"""A Dagster asset that upserts contacts into HubSpot with bulkops: one job folder per run, so
a retry of the step, or a re-execution of the failed run, resumes the job instead of starting
it again; the job's report becomes the materialization's metadata.

In a code location, give the token through the environment (Dagster resolves ``EnvVar`` when
the run starts and shows only the variable's name in the UI)::

    defs = dg.Definitions(
        assets=[hubspot_contacts],
        jobs=[hubspot_contacts_job],
        resources={"hubspot": HubSpot(token=dg.EnvVar("HUBSPOT_ACCESS_TOKEN"))},
    )

and launch ``hubspot_contacts_job`` with the file to upsert as config::

    ops:
      hubspot_contacts:
        config: {input_path: /data/exports/contacts.csv}

Needs Dagster 1.11 or later (``pip install bulkops dagster``).
``python examples/06_dagster_op.py`` materializes the asset once against the embedded fake
HubSpot. bulkops logs through ``logging``: add ``bulkops`` to ``python_logs:
managed_python_loggers`` in dagster.yaml to see its records in the run's log.
"""

# No `from __future__ import annotations`: Dagster reads the asset's annotations at import
# time to find its config and resources, and cannot resolve them from strings.
import tempfile
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import dagster as dg
from pydantic import Field

import bulkops
from bulkops import StopReason

# Stops that a retry minutes later cannot fix, or must not: something must be fixed first (bad
# settings or input, a server that is not HubSpot, no answer at all: exit code 2); the fix is
# a person's (the token was refused; too many rows failed, so each retry would send another
# batch of bad rows; the daily quota is spent until midnight in the account's time zone); or
# someone stopped the run (terminated from the UI, SIGTERM), and a retry would undo that. The
# step fails at once, without using up its retries; re-execute the run from failure once the
# cause is fixed and it resumes the same job folder.
NO_RETRY = frozenset(
    {
        StopReason.AUTH,
        StopReason.MAX_FAILURES,
        StopReason.DAILY_LIMIT,
        StopReason.DAILY_BUDGET,
        StopReason.INTERRUPTED,
    }
)

# A step that stopped for a reason a retry can fix (429s or an outage that lasted too long) is
# run again after 1, 2, then 4 minutes; each try resumes the same job folder.
RETRY = dg.RetryPolicy(max_retries=3, delay=60, backoff=dg.Backoff.EXPONENTIAL)


# The type argument (what the asset is given: the resource itself) is for mypy --strict.
class HubSpot(dg.ConfigurableResource["HubSpot"]):
    """The HubSpot account, and where its job folders are kept."""

    # repr=False: the resource's repr (in a traceback, a log line) leaves the token out.
    token: str = Field(repr=False, description="A private app's access token")
    base_url: str | None = Field(
        default=None, description="The API's base URL, when not https://api.hubapi.com"
    )
    # Must outlive the step's process and be seen by the next try, which may run in another
    # process or pod (a volume, not the container's disk), or a retry starts a new job.
    jobs_root: str = "/data/bulkops-jobs"

    def job_config(self, out_dir: Path) -> bulkops.JobConfig:
        options: dict[str, Any] = {"base_url": self.base_url} if self.base_url else {}
        return bulkops.JobConfig(
            # Upsert by email: writing a row again sets the same values on the same contact,
            # so a retry that sends a batch whose answer the failed try never saw duplicates
            # nothing. A create is only as safe with an id_property (a unique property in
            # every row): a create whose answer was lost is then read back, never sent twice.
            operation=bulkops.Operation.UPSERT,
            object_type="contacts",
            id_property="email",
            # Prints as '***' wherever the config is printed; never in metadata or logs.
            token=bulkops.Secret(self.token),
            out_dir=out_dir,
            # A file that mostly fails (a renamed column, the wrong export) stops after 5% of
            # the rows instead of writing a million lines to failed.jsonl.
            max_failures=0.05,
            **options,
        )


class ContactsFile(dg.Config):
    input_path: str = Field(description="CSV, TSV or JSONL of contacts, with an email column")


def job_folder(context: dg.AssetExecutionContext, jobs_root: str) -> Path:
    """The job folder of this run: the same for every try of the step, and for re-executions
    of the run (a re-execution is a new run whose root_run_id is the original's). Run ids are
    UUIDs, safe as folder names."""
    run = context.run
    return Path(jobs_root) / "hubspot_contacts" / (run.root_run_id or run.run_id)


async def run_or_resume(config: bulkops.JobConfig, input_path: str) -> bulkops.JobReport:
    """Start the job, or resume it when an earlier try left its journal: resuming skips every
    row that try finished, and the report then covers the whole job, every row exactly once.
    (``run_job_sync`` starts new jobs only, hence ``Job`` here.) A resume checks that it is
    given the same input file and refuses another one."""
    resume = (config.out_dir / "journal.sqlite").exists()
    job = bulkops.Job(config, input_path, mode=bulkops.Mode.RESUME if resume else bulkops.Mode.NEW)
    # The first SIGINT/SIGTERM (the run terminated, the pod stopped) stops the job
    # gracefully: requests in flight finish and their results are written, so a re-execution
    # has the least to redo. Dagster's handlers are put back afterwards. Off the main thread
    # (an executor that runs steps in threads) this installs nothing.
    with bulkops.graceful_signals(job):
        return await job.run()


def report_metadata(report: bulkops.JobReport, out_dir: Path) -> dict[str, dg.MetadataValue]:
    return {
        "job_folder": dg.MetadataValue.path(str(out_dir)),
        "status": dg.MetadataValue.text(report.status.value),
        # "resume": this try resumed the job an earlier one started (one that was killed
        # never wrote its report, so "runs" counts the tries that ended, this one included).
        "mode": dg.MetadataValue.text(report.this_run.mode if report.this_run else "new"),
        "runs": dg.MetadataValue.int(report.runs),
        "rows": dg.MetadataValue.int(report.rows.read),
        "succeeded": dg.MetadataValue.int(report.succeeded),
        "failed": dg.MetadataValue.int(report.failed),
        "created": dg.MetadataValue.int(report.written.created),
        "updated": dg.MetadataValue.int(report.written.updated),
        "failed_by_category": dg.MetadataValue.json(dict(report.failed_by_category)),
        "requests": dg.MetadataValue.int(report.requests.total),
        "records_per_s": dg.MetadataValue.float(report.records_per_s),
        "failed_file": dg.MetadataValue.path(str(out_dir / "failed.jsonl")),
        "succeeded_file": dg.MetadataValue.path(str(out_dir / "succeeded.jsonl")),
    }


@dg.asset(kinds={"hubspot"}, group_name="crm")
def hubspot_contacts(
    context: dg.AssetExecutionContext, config: ContactsFile, hubspot: HubSpot
) -> dg.MaterializeResult[None]:
    """Contacts in HubSpot, upserted by email from a file."""
    out_dir = job_folder(context, hubspot.jobs_root)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    context.log.info(f"job folder {out_dir} (try {context.retry_number + 1})")
    # Errors before the job starts raise as themselves (bulkops.ConfigError), and the retry
    # policy applies: the folder held by an earlier try that is still running (a retry later
    # is what that needs), or a resume given another file than the job's.
    report = anyio.run(run_or_resume, hubspot.job_config(out_dir), config.input_path)
    metadata = report_metadata(report, out_dir)
    try:
        report.raise_for_status()
    except bulkops.JobStopped as exc:
        retry = exc.resumable and not (exc.stop is not None and exc.stop.reason in NO_RETRY)
        raise dg.Failure(
            description=f"{exc} (job folder {out_dir})", metadata=metadata, allow_retries=retry
        ) from exc
    # Rows HubSpot refused are results, not a failed step: a retry would send them again
    # unchanged. They are in failed.jsonl with the reason (the "failed" metadata counts them);
    # correct them there and run `bulkops retry <job folder>`.
    return dg.MaterializeResult[None](metadata=metadata)


hubspot_contacts_job = dg.define_asset_job(
    "hubspot_contacts_job", selection=[hubspot_contacts], op_retry_policy=RETRY
)


def demo() -> None:
    """One materialization against the embedded fake HubSpot, which serves from a thread of
    its own while Dagster runs the step here."""
    from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

    work = Path(tempfile.mkdtemp(prefix="bulkops-example-"))
    contacts = work / "contacts.csv"
    lines = ["email,firstname,lifecyclestage"]
    lines += [
        f"c{n}@example.com,Contact {n},{'lead' if n % 50 else 'nope'}" for n in range(1, 2001)
    ]
    contacts.write_text("\n".join(lines) + "\n")
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(FakeHubSpot(FakeConfig(rate_limit=None))) as fake,
    ):
        hubspot = HubSpot(token=DEFAULT_FAKE_TOKEN, base_url=fake.url, jobs_root=str(work))
        result = dg.materialize(
            [hubspot_contacts],
            resources={"hubspot": hubspot},
            run_config=dg.RunConfig({"hubspot_contacts": ContactsFile(input_path=str(contacts))}),
        )
    events = result.asset_materializations_for_node("hubspot_contacts")
    for name, value in events[0].metadata.items():
        print(f"{name}: {value.value}")


if __name__ == "__main__":
    demo()
