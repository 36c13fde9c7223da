"""The CLI's options for jobs nobody watches, and ``bulkops status``: ``--log-format``,
``--quiet``, ``-v``, ``--metrics-file`` and ``--summary-file`` on run/resume/retry, the
progress line as a log event, and the summary line that ends stdout. ``_cli`` wires them in;
how stderr is rendered is ``_logfmt``'s, the metrics ``_metrics``', the state ``_status``'.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ._engine import Job, JobReport, Progress
from ._errors import ConfigError
from ._logfmt import PROGRESS, json_mode, say
from ._progress import ProgressDisplay
from ._summary import summary_line, write_summary_file

__all__ = [
    "add_ops_arguments",
    "add_status_command",
    "metrics_file",
    "prepare_outputs",
    "print_summary_line",
    "progress_hook",
    "progress_mode",
]


def add_ops_arguments(p: argparse.ArgumentParser) -> None:
    """For jobs nobody watches: machine-readable stderr, a summary file (bulkops._logfmt)."""
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="stderr as lines for people (default; UTC timestamps when stderr is not a "
        "terminal) or as JSON lines: time, level, job, event, message, fields",
    )
    loud = p.add_mutually_exclusive_group()
    loud.add_argument(
        "--quiet", "-q", action="store_true", help="only warnings and errors on stderr"
    )
    loud.add_argument(
        "--verbose", "-v", action="count", default=0, help="also debug records on stderr"
    )
    p.add_argument(
        "--metrics-file",
        type=Path,
        help="keep a Prometheus text-format file current while the job runs (for the node "
        "exporter's textfile collector: name it *.prom), rewritten atomically every 2 s",
    )
    p.add_argument(
        "--summary-file",
        type=Path,
        help="also write the one-line JSON summary (the last line on stdout) to this file",
    )


def prepare_outputs(args: argparse.Namespace, job: Job) -> Any:
    """Before the job starts: a ``--summary-file`` or ``--metrics-file`` that cannot be
    written is a usage error (exit 2) now, not a surprise an hour later. Returns the
    metrics file to tick, or None.

    :raises ConfigError: naming the flag.
    """
    summary: Path | None = args.summary_file
    if summary is not None:
        try:
            summary.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot write --summary-file {summary}: {exc.strerror or exc}"
            ) from None
        if summary.is_dir() or not os.access(summary.parent, os.W_OK):
            raise ConfigError(
                f"cannot write --summary-file {summary}: "
                + ("it is a folder" if summary.is_dir() else "its folder is not writable")
            )
    return metrics_file(args.metrics_file, job)


def metrics_file(path: Path | None, job: Job) -> Any:
    if path is None:
        return None
    from ._metrics import MetricsFile  # prometheus_client only for jobs that ask for it

    def warn(text: str) -> None:
        say(text, event="warning", level=logging.WARNING)

    metrics = MetricsFile(path, job, warn=warn)
    metrics.start()
    return metrics


def progress_mode(args: argparse.Namespace) -> str:
    if args.quiet:
        return "none"
    if json_mode() and args.progress != "none":
        return "log"  # a redrawn bar would break the JSON lines
    return str(args.progress)


def progress_hook(display: ProgressDisplay) -> Callable[[Progress, str], None]:
    """The display's log-mode line as a ``bulkops.progress`` log event with its numbers."""
    return functools.partial(_progress_line, display)


def _progress_line(display: ProgressDisplay, p: Progress, line: str) -> None:
    say(
        line,
        event="progress",
        logger=PROGRESS,
        elapsed_s=round(p.elapsed, 1),
        rows_expected=display.expected_rows,
        rate_per_s=round(display.rate, 1),
        rows_read=p.rows_read,
        succeeded=p.succeeded,
        failed=p.failed,
        in_engine=p.in_engine,
        requests=p.requests,
        throttled=dict(p.throttled),
        limit=p.limit,
        ceiling=p.ceiling,
        daily_remaining=p.daily_remaining,
        waiting=p.waiting,
        stopping=p.stopping,
    )


def print_summary_line(report: JobReport, out_dir: Path, summary_file: Path | None) -> None:
    """The last line on stdout: one JSON object (an Airflow BashOperator's XCom value)."""
    summary = summary_line(report, out_dir)
    if summary_file is not None:
        try:
            write_summary_file(summary_file, summary)
        except OSError as exc:
            say(
                f"bulkops: cannot write --summary-file {summary_file}: {exc.strerror or exc}",
                event="warning",
                level=logging.WARNING,
            )
    print(orjson.dumps(summary).decode(), flush=True)


def add_status_command(sub: Any) -> None:
    status = sub.add_parser(
        "status",
        help="show a job's state from its folder, while it runs or after it stopped",
        description="Show a job's state from its folder (running, stopped or finished; rows "
        "done, failed and left; rate, ETA, last error; the PID holding it). Reads only: "
        "never locks or writes the folder. Exit code 0, or 2 when OUT holds no job.",
    )
    status.add_argument("out_dir", metavar="OUT", type=Path, help="the job's result folder")
    status.add_argument("--json", action="store_true", help="one JSON object, for machines")
    status.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    from ._status import format_status, read_status

    state = read_status(args.out_dir)
    if args.json:
        print(orjson.dumps(state.to_json()).decode())
    else:
        print(format_status(state))
    return 0
