"""The command line's options for planning a job: ``--dry-run``, ``--limit`` and the column
mapping (``--map``, ``--map-file``, ``--ignore-column``, ``--set``, ``--match-labels``).

Only argument handling lives here; what they do is ``_dry_run``, ``_mapping`` and the intake.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from ._config import JobConfig
from ._dry_run import dry_run
from ._dry_run_report import format_dry_run
from ._errors import ConfigError
from ._journal import JOURNAL_NAME
from ._mapping import ColumnMapping, parse_assignment, read_map_file

__all__ = ["add_plan_arguments", "mapping_from_args", "run_dry"]


def _at_least_one(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run",
        nargs="?",
        const="local",
        choices=["local", "reads"],
        help="check every row and estimate requests, time and daily quota, writing nothing "
        "(only reads are sent; report.json in --out). --dry-run=reads (update, upsert, "
        "archive) also reads the target records to count those that exist, at read cost",
    )
    p.add_argument(
        "--limit",
        type=_at_least_one,
        metavar="N",
        help="a trial run: send only the first N rows; `bulkops resume OUT` sends the rest "
        "(default: every row)",
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="COLUMN=PROPERTY",
        help="send input column COLUMN as property PROPERTY, e.g. --map 'Ticket name=subject' "
        "(repeatable)",
    )
    p.add_argument(
        "--map-file",
        metavar="PATH",
        help='column mapping file: JSON {"column": "property"} or CSV rows column,property',
    )
    p.add_argument(
        "--ignore-column",
        action="append",
        default=[],
        metavar="COLUMN",
        help="never send this input column (repeatable)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="constants",
        metavar="PROPERTY=VALUE",
        help="send this value in every row, e.g. --set hs_pipeline=0 (repeatable)",
    )
    p.add_argument(
        "--match-labels",
        action="store_true",
        help="match columns to properties by their HubSpot labels ('Ticket name' is subject) "
        "and values to options by their labels ('High' is HIGH)",
    )


def mapping_from_args(args: argparse.Namespace) -> ColumnMapping:
    rename = [parse_assignment(text, flag="--map") for text in args.map]
    if args.map_file:
        given = {column for column, _ in rename}
        # A --map on the command line wins over the same column in the file.
        rename += [pair for pair in read_map_file(args.map_file) if pair[0] not in given]
    constants = [parse_assignment(text, flag="--set") for text in args.constants]
    return ColumnMapping(
        rename=tuple(rename),
        ignore=tuple(args.ignore_column),
        constants=tuple(constants),
        match_labels=args.match_labels,
    )


def run_dry(config: JobConfig, source: Any, *, input_name: str) -> int:
    """Run a dry run from the command line; its summary goes to stderr."""
    if (config.out_dir / JOURNAL_NAME).exists():
        raise ConfigError(
            f"--out {config.out_dir} holds a job; a dry run writes its report.json in a "
            "folder of its own"
        )
    report = anyio.run(lambda: dry_run(config, source, input_name=input_name))
    print(format_dry_run(report), file=sys.stderr)
    return report.exit_code
