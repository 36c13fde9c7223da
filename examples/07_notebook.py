# mypy: disable-error-code="top-level-await"
# ruff: noqa: F704
# %% [markdown]
# # bulkops in a notebook
#
# A notebook (Jupyter, IPython, VS Code and PyCharm cells) already runs an event loop, so
# `bulkops.run_job_sync` refuses to run there: **await** `bulkops.run_job`, or iterate
# `bulkops.open_job`, right in a cell. This file is a notebook in the percent format (each
# `# %%` starts a cell): open it with jupytext (`jupytext --to notebook 07_notebook.py`), or
# run its cells in VS Code or PyCharm. It is not a script: `python` refuses top-level `await`.
#
# It upserts contacts into the embedded fake HubSpot, reads each row's outcome in code, and
# shows the results as a DataFrame when pandas is installed.

# %%
import tempfile
from collections import Counter
from pathlib import Path

import bulkops
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

# The fake serves from the notebook's own event loop, between cells too. Against HubSpot,
# skip it: leave base_url and rate_limit out below and give the token with
# bulkops.Secret.from_env_or_file() (HUBSPOT_ACCESS_TOKEN), never typed into a cell, where the
# notebook file would keep it.
fake = FakeHubSpot(FakeConfig(rate_limit=None))
await fake.start()

# %%
# Rows can be any iterable of dicts, an async generator, a pandas or polars DataFrame, or a
# file path. Every 40th contact has a lifecycle stage HubSpot does not know: it fails.
rows = [
    {
        "email": f"contact{n}@example.com",
        "firstname": f"Contact {n}",
        "lifecyclestage": "lead" if n % 40 else "prospect",
    }
    for n in range(1, 1201)
]
config = bulkops.JobConfig(
    operation=bulkops.Operation.UPSERT,
    object_type="contacts",
    id_property="email",
    token=bulkops.Secret(DEFAULT_FAKE_TOKEN),
    base_url=fake.url,
    rate_limit=0,  # the fake has no limit; leave it out against HubSpot
    out_dir=Path(tempfile.mkdtemp(prefix="bulkops-notebook-")) / "contacts",
)

# %%
# Each row's outcome as it is settled, while the job runs: the callback runs on the event
# loop, so keep it quick (for slow work per outcome, a database write, iterate
# `bulkops.open_job(config, rows)` inside an `async def` instead: see
# examples/04_results_in_code.py).
hubspot_ids: dict[str, str] = {}
failures: Counter[str] = Counter()


def on_outcome(outcome: bulkops.Outcome) -> None:
    if outcome.ok and outcome.key is not None and outcome.hubspot_id is not None:
        hubspot_ids[outcome.key] = outcome.hubspot_id
    else:
        failures[f"{outcome.category}: {outcome.message}"] += 1


job_report = await bulkops.run_job(config, rows, on_outcome=on_outcome)
# A stop (a bad token, the daily limit, ...) raises here; failed rows are results, not errors.
report = job_report.raise_for_status()
print(f"{report.succeeded} upserted ({report.written.created} created), {report.failed} failed")
for reason, count in failures.most_common(3):
    print(f"{count:5} {reason}")

# %%
# The whole job read back from its folder (results of earlier runs of it included), one row
# per input row: as a DataFrame with pandas (pip install 'bulkops[pandas]').
results = bulkops.read_results(config.out_dir)
try:
    frame = results.to_pandas()
except ImportError:
    frame = None
    print(f"{len(results.outcomes)} results (install pandas for a DataFrame)")
else:
    print(frame[["row", "key", "ok", "hubspot_id", "category"]].head(10))
frame  # noqa: B018 - the cell's value: Jupyter shows the DataFrame as a table

# %%
await fake.stop()
