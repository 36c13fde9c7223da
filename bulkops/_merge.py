"""``bulkops merge OUT... --into DIR``: the result folders of the shards of one input, as one
set of result files and one report, with every input row checked to be there exactly once.

What is checked, each failure one plain message naming the folder (or the row):

* every folder holds a finished bulkops job (its journal and ``report.json``), none running;
* they are the shards of one input (the same file fingerprint or input) and of one ``n``, each
  shard ``0..n-1`` exactly once (one folder without ``--shard`` is the whole input);
* each shard ran to the end of its input (otherwise: resume it first, exit 3);
* each row is in the shard its number belongs to, in no file twice and in no two folders, and
  the rows are ``1..max`` with none missing.

Pure apart from reading the folders and writing ``DIR``; the engine is not involved.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from ._errors import ConfigError
from ._journal import JOURNAL_NAME, Journal
from ._lock import lock_holder
from ._report import JobReport
from ._results import FAILED, SUCCEEDED
from ._shard import shard_of

__all__ = ["MergeReport", "ShardResult", "ShardUnfinished", "merge_folders"]

REPORT = "report.json"


class ShardUnfinished(ConfigError):
    """A shard stopped before the end of its input: resume it, then merge (exit 3)."""


@dataclass(frozen=True, slots=True)
class ShardResult:
    folder: str
    shard: str  # "i/n"
    rows: int
    succeeded: int
    failed: int
    requests: int
    status: str


@dataclass(frozen=True, slots=True)
class MergeReport:
    input: str
    shards: int
    rows: int
    succeeded: int
    failed: int
    requests: int
    throttled: int
    folders: tuple[ShardResult, ...]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = "merge"
        data["folders"] = [asdict(f) for f in self.folders]
        return data


@dataclass(frozen=True, slots=True)
class _Folder:
    path: Path
    shard: tuple[int, int]
    input_id: str
    input_name: str
    report: JobReport
    # A partition of a dataframe (bulkops.dask_jobs) holds a range of rows, not a residue.
    rows_range: tuple[int, int] | None = None

    def holds(self, row: int) -> bool:
        if self.rows_range is not None:
            return self.rows_range[0] <= row < self.rows_range[1]
        return shard_of(row, self.shard[1]) == self.shard[0]


def merge_folders(folders: Sequence[Path], into: Path) -> MergeReport:
    if not folders:
        raise ConfigError("merge needs at least one result folder")
    into_real = os.path.realpath(into)
    if any(os.path.realpath(f) == into_real for f in folders):
        raise ConfigError(f"--into {into} is one of the folders being merged: give a new folder")
    if into.exists() and any(into.iterdir()):
        raise ConfigError(f"--into {into} is not empty: give a new or empty folder")
    jobs = [_read_folder(Path(f)) for f in folders]
    n = _check_shards(jobs)
    lines: dict[int, tuple[bool, bytes]] = {}
    where: dict[int, Path] = {}
    for job in jobs:
        for ok, row, line in _result_lines(job.path):
            if not job.holds(row):
                raise ConfigError(
                    f"row {row} is in {job.path} (shard {job.shard[0]}/{n}) but does not "
                    "belong to it: these folders are not shards of one split"
                )
            if row in lines:
                other = where[row]
                same = "twice in" if other == job.path else f"in both {other} and"
                raise ConfigError(f"row {row} is {same} {job.path}: a row must be there once")
            lines[row] = (ok, line)
            where[row] = job.path
    total = max(lines, default=0)
    missing = [r for r in range(1, total + 1) if r not in lines]
    if missing:
        shown = ", ".join(map(str, missing[:10]))
        raise ConfigError(
            f"{len(missing)} input rows are in no folder (rows {shown}"
            f"{', ...' if len(missing) > 10 else ''}): merge needs every shard's results"
        )
    into.mkdir(parents=True, exist_ok=True)
    _write_sorted(into / SUCCEEDED, lines, ok=True)
    _write_sorted(into / FAILED, lines, ok=False)
    report = MergeReport(
        input=jobs[0].input_name,
        shards=n,
        rows=total,
        succeeded=sum(1 for ok, _ in lines.values() if ok),
        failed=sum(1 for ok, _ in lines.values() if not ok),
        requests=sum(j.report.requests.total for j in jobs),
        throttled=sum(sum(j.report.rate_limit.by_policy_429.values()) for j in jobs),
        folders=tuple(
            ShardResult(
                folder=str(j.path),
                shard=f"{j.shard[0]}/{j.shard[1]}",
                rows=j.report.rows.succeeded + j.report.rows.failed,
                succeeded=j.report.rows.succeeded,
                failed=j.report.rows.failed,
                requests=j.report.requests.total,
                status=j.report.status.value,
            )
            for j in sorted(jobs, key=lambda j: j.shard)
        ),
    )
    (into / REPORT).write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
    return report


def _read_folder(path: Path) -> _Folder:
    if not (path / JOURNAL_NAME).exists() or not (path / REPORT).exists():
        raise ConfigError(f"{path} holds no finished bulkops job (no {JOURNAL_NAME} or {REPORT})")
    if lock_holder(path) is not None:
        raise ConfigError(f"{path} is in use by a running job: merge once it has ended")
    journal = Journal.open(path / JOURNAL_NAME)
    try:
        meta = journal.meta()
    finally:
        journal.close()
    config = meta.get("config") or {}
    inp = meta.get("input") or {}
    shard = tuple(config.get("shard") or inp.get("partition") or (0, 1))
    rows_range = None
    if inp.get("partition") is not None:
        first = int(inp["first_row"])
        rows_range = (first, first + int(inp["rows"]))
    try:
        report = JobReport.from_json(orjson.loads((path / REPORT).read_bytes()))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path / REPORT} cannot be read as a bulkops report: {exc}") from None
    name = str(inp.get("path") or report.job.input)
    return _Folder(
        path=path,
        shard=(int(shard[0]), int(shard[1])),
        input_id=str(inp.get("fingerprint") or name),
        input_name=name,
        report=report,
        rows_range=rows_range,
    )


def _check_shards(jobs: list[_Folder]) -> int:
    first = jobs[0]
    for job in jobs[1:]:
        if job.input_id != first.input_id:
            raise ConfigError(
                f"{job.path} ran on another input than {first.path} ({job.input_name} vs "
                f"{first.input_name}): merge joins the shards of one input"
            )
        if job.shard[1] != first.shard[1]:
            raise ConfigError(
                f"{job.path} is shard {job.shard[0]}/{job.shard[1]} but {first.path} is "
                f"{first.shard[0]}/{first.shard[1]}: one split, one n"
            )
    n = first.shard[1]
    seen: dict[int, Path] = {}
    for job in jobs:
        if job.shard[0] in seen:
            raise ConfigError(
                f"shard {job.shard[0]}/{n} is given twice: {seen[job.shard[0]]} and {job.path}"
            )
        seen[job.shard[0]] = job.path
    absent = [i for i in range(n) if i not in seen]
    if absent:
        raise ConfigError(
            f"shard(s) {', '.join(f'{i}/{n}' for i in absent)} missing: merge needs all {n}"
        )
    for job in jobs:
        rows = job.report.rows
        if rows.unprocessed or not rows.input_exhausted:
            raise ShardUnfinished(
                f"shard {job.shard[0]}/{n} in {job.path} did not finish its input "
                f"({rows.unprocessed} rows unprocessed); run `bulkops resume {job.path}`, "
                "then merge"
            )
    return n


def _result_lines(folder: Path) -> Iterator[tuple[bool, int, bytes]]:
    for name, ok in ((SUCCEEDED, True), (FAILED, False)):
        path = folder / name
        if not path.exists():
            continue
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)["row"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    raise ConfigError(f"{path} line {number} is not a bulkops result") from None
                if not isinstance(row, int) or row < 1:
                    raise ConfigError(f"{path} line {number} has no row number")
                yield ok, row, line if line.endswith(b"\n") else line + b"\n"


def _write_sorted(path: Path, lines: dict[int, tuple[bool, bytes]], *, ok: bool) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for row in sorted(lines):
            good, line = lines[row]
            if good is ok:
                f.write(line)
    tmp.replace(path)
