"""The one-line JSON summary a job ends with: the last line on stdout (an Airflow
BashOperator pushes it to XCom) and, with ``--summary-file PATH``, a file.

Its shape is ``bulkops/schemas/summary.schema.json`` (``version`` 1): status, exit code, row
counts, the stop (reason and message) and the result folder, as an absolute path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from ._report import JobReport

__all__ = ["SUMMARY_VERSION", "summary_line", "write_summary_file"]

SUMMARY_VERSION = 1


def summary_line(report: JobReport, out_dir: Path) -> dict[str, Any]:
    rows = report.rows
    return {
        "version": SUMMARY_VERSION,
        "status": report.status.value,
        "exit_code": report.exit_code,
        "operation": report.job.operation,
        "object_type": report.job.object_type,
        "rows": {
            "read": rows.read,
            "succeeded": rows.succeeded,
            "failed": rows.failed,
            "unprocessed": rows.unprocessed,
        },
        "stop": None
        if report.stop is None
        else {"reason": report.stop.reason.value, "message": report.stop.message},
        "duration_s": report.duration_s,
        "out_dir": os.path.abspath(out_dir),
    }


def write_summary_file(path: Path, summary: dict[str, Any]) -> None:
    """Atomically (temporary file, then rename): a reader never sees half a summary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.writing")
    try:
        tmp.write_bytes(orjson.dumps(summary) + b"\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
