"""Safety rails for destructive work on the command line: an archive (or a v1 batch-delete)
of nothing is refused, and one of more than ``--max-archive`` rows asks first on a terminal
and needs ``--yes`` otherwise. Nothing has been sent when any of these refuses."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TextIO

import anyio

from ._checks import origin
from ._config import JobConfig
from ._errors import ConfigError
from ._models import Api, Operation
from ._sources import open_source

__all__ = ["DEFAULT_MAX_ARCHIVE", "check_destructive", "check_ids_exist", "count_input_rows"]

DEFAULT_MAX_ARCHIVE = 1000


def add_rail_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-archive",
        type=int,
        default=DEFAULT_MAX_ARCHIVE,
        metavar="N",
        help="an archive of more rows asks first on a terminal, or needs --yes "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--no-check-ids",
        action="store_true",
        help="archive without first reading the ids to find those that do not exist (the "
        "check costs one read request per 100 rows; --yes skips it too)",
    )


def count_input_rows(
    path: str, *, format: str | None, delimiter: str | None, encoding: str | None
) -> int | None:
    """The exact number of records in a file (read once more); None for stdin."""
    if path == "-":
        return None

    async def count() -> int:
        n = 0
        rows = open_source(path, format=format, delimiter=delimiter, encoding=encoding)
        try:
            async for _ in rows:
                n += 1
        finally:
            aclose = getattr(rows, "aclose", None)
            if aclose is not None:
                await aclose()
        return n

    return anyio.run(count)


def check_destructive(
    config: JobConfig, args: argparse.Namespace, *, stdin: TextIO, stderr: TextIO
) -> None:
    """:raises ConfigError: a zero-row archive, or a large one not confirmed."""
    if config.operation is not Operation.ARCHIVE:
        return
    rows = count_input_rows(
        args.input, format=args.format, delimiter=args.delimiter, encoding=args.encoding
    )
    what = "delete" if config.api is Api.V1 else "archive"
    if rows == 0:
        raise ConfigError(
            f"--input {args.input} holds no rows: a {what} of nothing is refused "
            "(is it the right file?)"
        )
    if config.api is Api.V1 or args.yes:
        return  # a v1 batch-delete asks whatever its size (confirm_permanent_delete)
    if rows is not None and rows <= args.max_archive:
        return
    counted = f"{rows:,} rows" if rows is not None else "rows from stdin (not counted)"
    if args.input == "-" or not stdin.isatty():
        raise ConfigError(
            f"archive of {counted} is more than --max-archive {args.max_archive}: add --yes "
            "to confirm, or raise --max-archive; nothing was archived"
        )
    print(
        f"bulkops: archive will move {counted} to the recycle bin (more than --max-archive "
        f"{args.max_archive}). Type yes to go on: ",
        end="",
        file=stderr,
        flush=True,
    )
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise ConfigError("archive not confirmed; nothing was archived")


def check_ids_exist(
    config: JobConfig, args: argparse.Namespace, *, stdin: TextIO, stderr: TextIO
) -> None:
    """Before an archive: read the ids back (the dry run's reads) and ask, or refuse without
    ``--yes``, when some do not exist (a file of another portal, or of ids archived before).

    :raises ConfigError: ids not found and not confirmed, or the check itself could not run.
    """
    if config.operation is not Operation.ARCHIVE or args.yes or args.no_check_ids:
        return
    if args.input == "-":
        return  # stdin cannot be read twice; an archive from stdin needs --yes anyway
    from ._dry_run import dry_run  # the engine, only when an archive is checked

    source = open_source(
        args.input, format=args.format, delimiter=args.delimiter, encoding=args.encoding
    )
    check = dataclasses.replace(config, dry_run=True, dry_run_reads=True)
    print(f"bulkops: talking to {origin(config.base_url)}", file=stderr)
    report = anyio.run(lambda: dry_run(check, source, input_name=args.input, write_report=False))
    if report.stop is not None:
        raise ConfigError(f"checking the ids before the archive: {report.stop.message}")
    reads = report.reads
    if reads is None:  # pragma: no cover - dry_run_reads always reads
        return
    print(
        f"bulkops: read the {reads.exist + reads.missing:,} ids back before archiving "
        f"({reads.read_requests:,} read request{'' if reads.read_requests == 1 else 's'}): "
        f"{reads.missing:,} not found",
        file=stderr,
    )
    if not reads.missing:
        return
    rows = ", ".join(map(str, reads.first_missing[:10]))
    what = f"{reads.missing:,} of the ids do not exist in HubSpot (rows {rows}...)"
    if not stdin.isatty():
        raise ConfigError(
            f"{what}: is this the right portal and file? Add --yes to archive the others; "
            "nothing was archived"
        )
    print(
        f"bulkops: {what}. Archive the others? Type yes to go on: ", end="", file=stderr, flush=True
    )
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise ConfigError("archive not confirmed; nothing was archived")
