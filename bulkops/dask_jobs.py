"""Write a Dask dataframe with bulkops: one job per partition on the cluster's workers, one
account budget shared through Redis, the results merged into one folder.

::

    from distributed import Client
    from bulkops.dask_jobs import write_dataframe

    with Client("scheduler:8786") as client:
        report = write_dataframe(
            client, df, config,  # config.redis_url set: the partitions share the account
            out_dir=Path("out"),
        )

Each partition ``i`` becomes ``out/part-0000i``, a bulkops job of its own (journal, lock,
result files) whose rows keep their number in the whole dataframe, and ``out/merged`` gets
the merge (``bulkops merge``'s checks: every row exactly once).

Retries. Dask runs a partition again when its worker dies. The task finds the partition's
journal and *resumes*: finished rows are skipped, so a retry writes nothing twice. That is safe
for upserts and updates (writing a record again sets the same values), and for creates only
with an ``id_property``: a create whose answer was lost is then settled by reading it back; a
create without one stays AMBIGUOUS in failed.jsonl instead of being sent again.
(Install with ``pip install 'bulkops[dask]'``.)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio

from ._config import JobConfig
from ._engine import Job, Mode
from ._errors import ConfigError
from ._journal import JOURNAL_NAME
from ._merge import MergeReport, merge_folders
from ._sources import RawRow

__all__ = ["write_dataframe", "write_partition"]


def write_dataframe(
    client: Any, df: Any, config: JobConfig, *, out_dir: Path, name: str = "dataframe"
) -> MergeReport:
    """Write every partition of the Dask dataframe ``df`` as a bulkops job on ``client``'s
    workers, then merge the results into ``out_dir/merged``. ``config.redis_url`` must be set:
    partitions run at once on several processes and must share the account's budget."""
    if config.redis_url is None:
        raise ConfigError(
            "write_dataframe needs config.redis_url: the partitions run in several processes "
            "at once and must share the account's rate budget"
        )
    from dask.delayed import delayed

    lengths = [int(x) for x in df.map_partitions(len).compute()]
    n = len(lengths)
    offsets = [0]
    for length in lengths[:-1]:
        offsets.append(offsets[-1] + length)
    tasks = [
        delayed(write_partition, pure=False)(part, i, n, offsets[i], config, str(out_dir), name)
        for i, part in enumerate(df.to_delayed())
    ]
    # Retries: see the module docstring; each retry resumes the partition's journal.
    futures = client.compute(tasks, retries=2)
    client.gather(futures)
    return merge_folders([out_dir / _part(i) for i in range(n)], out_dir / "merged")


def write_partition(
    frame: Any, index: int, count: int, offset: int, config: JobConfig, out: str, name: str
) -> dict[str, Any]:
    """One partition's job (on a worker): new, or resumed when an earlier try left a journal."""
    folder = Path(out) / _part(index)
    records = [_clean(r) for r in frame.to_dict("records")]
    job_config = dataclasses.replace(config, out_dir=folder, shard=None)
    mode = Mode.RESUME if (folder / JOURNAL_NAME).exists() else Mode.NEW
    meta = {
        "path": f"dask:{name}",
        "partition": [index, count],
        "first_row": offset + 1,
        "rows": len(records),
    }
    job = Job(
        job_config,
        _numbered(records, offset),
        input_name=f"dask:{name}",
        input_meta=meta,
        mode=mode,
    )
    report = anyio.run(job.run)
    return report.to_json()


def _part(index: int) -> str:
    return f"part-{index:05d}"


def _clean(record: Mapping[Any, Any]) -> dict[str, Any]:
    # A missing value in pandas is NaN (or None/NA): leave the property alone, as an empty
    # CSV cell does.
    out = {}
    for key, value in record.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if type(value).__name__ in ("NAType", "NaTType"):
            continue
        out[str(key)] = value if isinstance(value, str | int | float | bool) else str(value)
    return out


async def _numbered(records: list[dict[str, Any]], offset: int) -> AsyncIterator[RawRow]:
    for k, record in enumerate(records, 1):
        yield RawRow(offset + k, offset + k, record)
