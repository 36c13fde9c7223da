"""A finished (or stopped) job's results read back into Python: :func:`read_results`.

The result files are the truth (the report counts them); this reads them into
:class:`~bulkops.Outcome` values, sorted by row, and on into a pyarrow table or a pandas frame
when those are installed (``pip install 'bulkops[arrow]'`` / ``'bulkops[pandas]'``).
:func:`iter_results` streams them instead, for jobs too large to hold.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ._errors import ConfigError
from ._outcome import Outcome, outcome_from_line
from ._report import JobReport
from ._results import FAILED, SUCCEEDED

__all__ = ["JobResults", "iter_results", "read_results"]

_COLUMNS = ("row", "key", "ok", "hubspot_id", "new", "category", "message", "input")


def iter_results(out_dir: str | Path) -> Iterator[Outcome]:
    """Every outcome in a job folder, succeeded rows first, in file order; constant memory."""
    folder = _job_folder(out_dir)
    for name, ok in ((SUCCEEDED, True), (FAILED, False)):
        path = folder / name
        if not path.exists():
            continue
        with path.open("rb") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield outcome_from_line(orjson.loads(line), ok=ok)
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    raise ConfigError(
                        f"{path} line {lineno} is not a bulkops result line"
                    ) from None


def read_results(out_dir: str | Path) -> JobResults:
    """A job folder's outcomes (sorted by row) and its report."""
    folder = _job_folder(out_dir)
    outcomes = sorted(iter_results(folder), key=lambda o: o.row)
    report = None
    report_path = folder / "report.json"
    if report_path.exists():
        try:
            report = JobReport.from_json(orjson.loads(report_path.read_bytes()))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ConfigError(f"{report_path} is not a bulkops report") from None
    return JobResults(folder, tuple(outcomes), report)


def _job_folder(out_dir: str | Path) -> Path:
    folder = Path(out_dir)
    if not (folder / SUCCEEDED).exists() and not (folder / FAILED).exists():
        raise ConfigError(f"{folder} holds no bulkops results ({SUCCEEDED}, {FAILED})")
    return folder


@dataclass(frozen=True, slots=True)
class JobResults:
    """What :func:`read_results` returns: every outcome by row, and the report (None when
    the job never wrote one: it was killed)."""

    out_dir: Path
    outcomes: Sequence[Outcome]
    report: JobReport | None

    def __iter__(self) -> Iterator[Outcome]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    @property
    def succeeded(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def columns(self) -> dict[str, list[Any]]:
        """Column name -> values, one per row: the fixed columns (``input`` as JSON text),
        then one per passthrough column (``passthrough.NAME`` if NAME is a fixed column)."""
        data: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        extra: dict[str, str] = {}  # passthrough name -> column name
        for outcome in self.outcomes:
            for name in outcome.passthrough:
                if name not in extra:
                    extra[name] = f"passthrough.{name}" if name in _COLUMNS else name
        data.update({column: [] for column in extra.values()})
        for o in self.outcomes:
            data["row"].append(o.row)
            data["key"].append(o.key)
            data["ok"].append(o.ok)
            data["hubspot_id"].append(o.hubspot_id)
            data["new"].append(o.new)
            data["category"].append(o.category)
            data["message"].append(o.message)
            data["input"].append(orjson.dumps(o.input, default=str).decode() if o.input else None)
            for name, column in extra.items():
                data[column].append(o.passthrough.get(name))
        return data

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table`` of :meth:`columns` (needs ``bulkops[arrow]``)."""
        pa = _extra("pyarrow", "to_arrow()", "arrow")
        arrays = {}
        for name, values in self.columns().items():
            try:
                arrays[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # A passthrough column of mixed types: keep its text.
                arrays[name] = pa.array([None if v is None else str(v) for v in values])
        return pa.table(arrays)

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` of :meth:`columns` (needs ``bulkops[pandas]``)."""
        pd = _extra("pandas", "to_pandas()", "pandas")
        return pd.DataFrame(self.columns())


def _extra(module: str, what: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{what} needs {module}, which is not installed: pip install 'bulkops[{extra}]'"
        ) from None
