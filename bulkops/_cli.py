"""The ``bulkops`` command. Parses arguments into a :class:`JobConfig` and runs the job; no
engine logic lives here.

Exit codes: 0 every record written, 1 some records failed (see failed.jsonl), 2 usage or
configuration error (also an unexpected internal error: the documented codes stop at 3),
3 the job stopped before the end (bad token, daily limit, interrupted): ``bulkops resume OUT``
continues it. Nothing here prints a traceback or a secret unless ``--debug`` asks for one.
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import logging
import os
import shlex
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio

from ._checks import (
    check_out_dir,
    cleartext_warning,
    loose_token_file_warning,
    origin,
    same_base_url,
)
from ._cli_guard import internal_error, redact, remember_secret
from ._cli_help import HelpFormatter, Parser, config_default, flag_message
from ._cli_ops import (
    add_ops_arguments,
    add_status_command,
    prepare_outputs,
    print_summary_line,
    progress_hook,
    progress_mode,
)
from ._cli_plan import add_plan_arguments, mapping_from_args, run_dry
from ._cli_rails import add_rail_arguments, check_destructive, check_ids_exist
from ._config import DEFAULT_BASE_URL, JobConfig, Secret, config_from_meta, default_out_dir
from ._console import count_rows, drive
from ._engine import Job, Mode
from ._errors import ConfigError
from ._failed_input import read_failed_file
from ._gc import batch_gc
from ._jobdir import JobFolder
from ._journal import JOURNAL_NAME, Journal
from ._lock import JobFolderBusy, lock_holder
from ._logfmt import cli_logging, say, set_job
from ._loop import add_loop_argument, backend_options, loop_name, running_loop
from ._models import Api, Operation
from ._progress import ProgressDisplay, format_summary
from ._report import JobReport
from ._results import FAILED
from ._shard import parse_shard
from ._sources import RawRow, fingerprint, open_source, parse_delimiter
from ._summary import summary_line
from ._versions import DEFAULT_API_VERSION, ApiVersion

__all__ = ["main"]

EXIT_OK, EXIT_FAILED_RECORDS, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3

_V1_NAMES = {
    "batch-create": Operation.CREATE,
    "batch-update": Operation.UPDATE,
    "batch-delete": Operation.ARCHIVE,
    "batch-read": Operation.READ,
}

_RUN_HELP = f"""\
operations (any object type; --api-version {DEFAULT_API_VERSION} by default, or v3):
  create   new records; associations from JSONL "associations" or CSV columns assoc:<typeId>
  update   by record id (column "id"), or by a unique property with --id-property
  upsert   by a unique property (--id-property, required); results say new or updated
  archive  by record id; moves records to the recycle bin (restorable for 90 days)
  read     by record id or --id-property; --properties a,b chooses what comes back

legacy v1 ticket API (--api-version v1, or --api v1): batch-create, batch-update,
  batch-read and batch-delete (also reachable as create/update/read/archive). HubSpot stops
  supporting v1 in September 2027. batch-delete is PERMANENT: v1 deletes tickets for good,
  there is no recycle bin; it asks for confirmation on a terminal, or needs --yes.

before a big job: --dry-run checks every row and estimates the requests, time and daily
  quota, writing nothing; --limit 100 sends one batch to look at, then `bulkops resume OUT`
  sends the rest. Columns named as HubSpot's UI labels them: --map, --match-labels.

The token comes from HUBSPOT_ACCESS_TOKEN or --token-file, never from the command line.
exit codes: 0 all written, 1 some records failed, 2 usage/config error (or an internal
error; run with --debug to see its traceback), 3 stopped (resumable)
"""


def _csv_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return n


def _add_outage_argument(p: argparse.ArgumentParser) -> None:
    default = _field_default("outage_timeout")
    p.add_argument(
        "--outage-timeout",
        type=float,
        metavar="SECONDS",
        help="when every request fails, wait this long for HubSpot (probing, spending no "
        f"row's attempts) before stopping, resumable (default {default:g})",
    )


def _field_default(name: str) -> Any:
    """JobConfig's default for a setting: the one default, shared by the CLI and the library."""
    return next(f.default for f in dataclasses.fields(JobConfig) if f.name == name)


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "operation",
        metavar="OP",
        choices=[*(o.value for o in Operation), *_V1_NAMES],
        help="create | update | upsert | archive | read (v1: batch-create, "
        "batch-update, batch-delete, batch-read)",
    )
    p.add_argument(
        "--object",
        dest="object_type",
        default=config_default("object_type"),
        help="object type: tickets, contacts, deals, 0-5, 2-123, ...",
    )
    p.add_argument("--input", "-i", required=True, help="CSV, TSV or JSONL file; '-' reads stdin")
    p.add_argument(
        "--format",
        choices=["csv", "tsv", "jsonl"],
        help="input format when the suffix does not tell (stdin is sniffed)",
    )

    def delimiter(text: str) -> str:
        try:
            return parse_delimiter(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def encoding(text: str) -> str:
        try:
            codecs.lookup(text)
        except LookupError:
            raise argparse.ArgumentTypeError(f"unknown encoding {text!r}") from None
        return text

    p.add_argument(
        "--delimiter",
        type=delimiter,
        help="CSV field separator, one character ('\\t' or tab for a tab; default: comma, "
        "tab for .tsv; stdin's is sniffed from its header)",
    )
    p.add_argument(
        "--encoding",
        type=encoding,
        help="CSV/TSV text encoding, e.g. cp1252 or latin-1 (default: UTF-8, with or without "
        "a BOM; JSON Lines are always UTF-8)",
    )
    p.add_argument(
        "--id-property",
        help="unique property that identifies records "
        "(required for upsert; makes unknown-outcome creates safe to settle)",
    )
    p.add_argument(
        "--properties",
        type=_csv_list,
        default=(),
        help="read: comma-separated properties to return",
    )
    p.add_argument(
        "--properties-with-history",
        type=_csv_list,
        default=(),
        help="read: properties to return with their history (50 per request)",
    )
    p.add_argument("--archived", action="store_true", help="read: read archived records")
    p.add_argument(
        "--empty-clears",
        action="store_true",
        help="an empty CSV cell clears the property (default: leave it unchanged)",
    )
    p.add_argument(
        "--api-version",
        type=_api_version,
        help=f"HubSpot API version: YYYY-03 or YYYY-09 (default {DEFAULT_API_VERSION}), v3, "
        "or v1 (legacy tickets)",
    )
    p.add_argument("--api", choices=["v3", "v1"], help="older spelling of --api-version v3|v1")
    p.add_argument(
        "--yes",
        action="store_true",
        help="confirm a permanent v1 batch-delete, or an archive of more than --max-archive "
        "rows, without being asked",
    )
    add_rail_arguments(p)
    p.add_argument(
        "--base-url",
        default=os.environ.get("HUBSPOT_BASE_URL", DEFAULT_BASE_URL),
        help="API base URL (env HUBSPOT_BASE_URL; default %(default)s)",
    )
    p.add_argument(
        "--token-file", help="file holding the access token (default: HUBSPOT_ACCESS_TOKEN)"
    )
    p.add_argument("--out", type=Path, help="result folder (default: a new one per job)")
    p.add_argument(
        "--rate-limit",
        type=_positive_int,
        default=None,
        help="never more than N requests per window (default: learn the account's limit "
        "from HubSpot's headers, starting at 100 per 10 s; 0 = no limit)",
    )
    p.add_argument(
        "--no-adaptive",
        action="store_true",
        help="ignore X-HubSpot-RateLimit-* headers; pace at --rate-limit exactly",
    )
    p.add_argument(
        "--daily-budget",
        help="at most N requests today, or P%% of what the "
        "account has left today (leave quota to other integrations)",
    )
    p.add_argument(
        "--concurrency", type=int, help="cap on requests in flight (default: derived from latency)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=config_default("batch_size"),
        help="records per request, 1 to 100",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=config_default("max_attempts"),
        help="attempts per record before it fails",
    )
    p.add_argument(
        "--timeout", type=float, default=config_default("timeout"), help="seconds per request"
    )
    _add_outage_argument(p)
    p.add_argument(
        "--redis-url",
        default=os.environ.get("BULKOPS_REDIS_URL"),
        help="share the account's rate window and daily budget with every bulkops process on "
        "the same token through this Redis (env BULKOPS_REDIS_URL; needs bulkops[redis])",
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="run only shard I (0-based) of N of the input, by row number (rows r with "
        "(r-1) %% N == I); join the shards' folders with `bulkops merge`",
    )
    p.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip local validation against the account's property schema",
    )
    p.add_argument(
        "--no-journal", action="store_true", help="keep no journal (the job cannot be resumed)"
    )
    add_plan_arguments(p)
    p.add_argument(
        "--passthrough",
        metavar="COL",
        action="append",
        default=[],
        help="an input column not sent to HubSpot but carried into succeeded.jsonl and "
        "failed.jsonl (e.g. the source's primary key); repeatable",
    )
    p.add_argument(
        "--max-failures",
        metavar="N|P%%",
        help="stop (resumable, exit 3) once N rows failed, or P%% of the rows read "
        "(judged once 100 rows finished)",
    )
    _add_display_arguments(p)


def _api_version(value: str) -> ApiVersion:
    try:
        return ApiVersion.parse(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _chosen_version(args: argparse.Namespace) -> ApiVersion:
    """``--api-version``, or its older spelling ``--api``; the default when neither."""
    version: ApiVersion | None = args.api_version
    if args.api is not None:
        alias = ApiVersion.parse(args.api)
        if version is not None and version != alias:
            raise ConfigError(
                f"--api {args.api} and --api-version {version} disagree "
                "(--api is the older spelling of --api-version; give one)"
            )
        version = alias
    return version or DEFAULT_API_VERSION


def _add_display_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        choices=["auto", "bar", "log", "none"],
        default="auto",
        help="live display: bar on a terminal, a log line every 10 s otherwise",
    )
    add_loop_argument(p)
    add_ops_arguments(p)


def _build_config(args: argparse.Namespace, token: Secret) -> JobConfig:
    name = args.operation
    version = _chosen_version(args)
    if name in _V1_NAMES:
        operation = _V1_NAMES[name]
        if not version.is_legacy_v1:
            raise ConfigError(f"{name} is a v1 operation: add --api-version v1")
    else:
        operation = Operation(name)
    budget, share = None, None
    if args.daily_budget:
        text = args.daily_budget.strip()
        try:
            if text.endswith("%"):
                share = float(text[:-1]) / 100
            else:
                budget = int(text)
        except ValueError:
            raise ConfigError(f"--daily-budget {text!r}: give a number or a percentage") from None
    return JobConfig(
        operation=operation,
        token=token,
        object_type=args.object_type,
        api_version=version,
        base_url=args.base_url,
        id_property=args.id_property,
        properties=args.properties,
        properties_with_history=args.properties_with_history,
        archived=args.archived,
        empty_clears=args.empty_clears,
        rate_limit=args.rate_limit,
        adaptive=not args.no_adaptive,
        daily_budget=budget,
        daily_share=share,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        max_attempts=args.max_attempts,
        timeout=args.timeout,
        outage_timeout=(
            _field_default("outage_timeout") if args.outage_timeout is None else args.outage_timeout
        ),
        preflight=not args.no_preflight,
        out_dir=args.out or default_out_dir(operation, args.object_type),
        journal=not args.no_journal,
        mapping=mapping_from_args(args),
        dry_run=args.dry_run is not None,
        dry_run_reads=args.dry_run == "reads",
        limit=args.limit,
        passthrough=tuple(args.passthrough),
        max_failures=parse_max_failures(args.max_failures),
        redis_url=args.redis_url or None,
        shard=parse_shard(args.shard) if args.shard else None,
    )


def parse_max_failures(text: str | None) -> int | float | None:
    """``--max-failures``: a count ("50") or a percentage ("5%") of the rows read."""
    if text is None:
        return None
    value = text.strip()
    try:
        if value.endswith("%"):
            share = float(value[:-1]) / 100
            if not 0 < share < 1:
                raise ConfigError(f"--max-failures {text}: a percentage must be between 0 and 100")
            return share
        count = int(value)
    except ValueError:
        raise ConfigError(
            f"--max-failures {text!r}: give a count of rows (50) or a percentage (5%)"
        ) from None
    if count < 1:
        raise ConfigError(f"--max-failures {text}: the count must be >= 1")
    return count


def _read_token(token_file: str | None) -> Secret:
    if token_file and (warning := loose_token_file_warning(token_file)):
        say(warning, event="warning", level=logging.WARNING)
    token = Secret.from_env_or_file(token_file)
    remember_secret(token.reveal())  # masked in any error message from here on
    return token


def _cmd_run(args: argparse.Namespace) -> int:
    token = _read_token(args.token_file)
    config = _build_config(args, token)
    check_out_dir(config.out_dir)
    try:
        source = open_source(
            args.input, format=args.format, delimiter=args.delimiter, encoding=args.encoding
        )
        # Journaled so that a resume can read the file the same way (_cmd_resume does not
        # pass them to open_source yet).
        meta = {
            "path": None,
            "format": args.format,
            "fingerprint": None,
            "delimiter": args.delimiter,
            "encoding": args.encoding,
        }
        if args.input != "-":
            meta["path"] = os.path.abspath(args.input)
            meta["fingerprint"] = fingerprint(args.input)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot read --input {args.input}: {exc}") from None
    if config.dry_run:
        print(f"bulkops: talking to {origin(config.base_url)}", file=sys.stderr)
        return run_dry(config, source, input_name=args.input)
    check_destructive(config, args, stdin=sys.stdin, stderr=sys.stderr)
    if config.api is Api.V1 and config.operation is Operation.ARCHIVE and not args.yes:
        confirm_permanent_delete(args.input, stdin=sys.stdin, stderr=sys.stderr)
    check_ids_exist(config, args, stdin=sys.stdin, stderr=sys.stderr)
    job = Job(config, source, input_name=args.input, input_meta=meta)
    return _drive_and_report(job, args, count_from=args.input)


V1_SUNSET_WARNING = (
    "bulkops: warning: this job uses HubSpot's legacy v1 ticket API, which HubSpot stops "
    "supporting in September 2027. The same records can be written with --api-version "
    f"{DEFAULT_API_VERSION} (create, update, read, and archive, which HubSpot can restore "
    "for 90 days, unlike v1's permanent batch-delete)."
)


def confirm_permanent_delete(input_path: str, *, stdin: TextIO, stderr: TextIO) -> None:
    """v1 batch-delete cannot be undone: ask on a terminal, else insist on ``--yes``.

    :raises ConfigError: unless the user typed yes (nothing has been sent then).
    """
    # With the records on stdin there is no terminal left to answer on.
    if input_path == "-" or not stdin.isatty():
        raise ConfigError(
            "v1 batch-delete deletes tickets permanently (no recycle bin); "
            "add --yes to confirm, or use archive with --api-version "
            f"{DEFAULT_API_VERSION}, which HubSpot can restore for 90 days"
        )
    rows = count_rows(input_path)
    what = f"about {rows} tickets" if rows is not None else f"the tickets listed in {input_path}"
    print(
        f"bulkops: batch-delete will PERMANENTLY delete {what} (v1 has no recycle bin). "
        "Type yes to go on: ",
        end="",
        file=stderr,
        flush=True,
    )
    if stdin.readline().strip().lower() not in ("y", "yes"):
        raise ConfigError("batch-delete not confirmed; nothing was deleted")


def _drive_and_report(job: Job, args: argparse.Namespace, *, count_from: str | None) -> int:
    set_job(str(job.config.out_dir))
    say(
        f"bulkops: talking to {origin(job.config.base_url)}",
        event="start",
        loop=loop_name(args.loop),
    )
    if warning := cleartext_warning(job.config.base_url):
        say(warning, event="warning", level=logging.WARNING)
    if job.config.api is Api.V1:
        say(V1_SUNSET_WARNING, event="warning", level=logging.WARNING)
    metrics = prepare_outputs(args, job)
    tick = None if metrics is None else metrics.tick
    with ProgressDisplay(mode=progress_mode(args)) as display:
        display.on_line = progress_hook(display)

        async def drive_on_loop() -> JobReport:
            say(f"bulkops: event loop {running_loop()}", event="loop", level=logging.DEBUG)
            return await drive(job, display, count_from=count_from, on_tick=tick)

        report = anyio.run(drive_on_loop, backend_options=backend_options(args.loop))
    if metrics is not None:
        metrics.finish(report)
    print_summary_line(report, job.config.out_dir, args.summary_file)
    if report.stop is not None and report.exit_code == EXIT_USAGE and not report.rows.read:
        # Fixed before anything was done (a bad header, a wrong host): one plain message.
        say(f"bulkops: {report.stop.message}", event="error", level=logging.ERROR)
        return report.exit_code
    text = format_summary(report)
    if report.stop_reason and report.exit_code == EXIT_STOPPED and job.config.journal:
        text += f"\n  continue with: bulkops resume {shlex.quote(str(job.config.out_dir))}"
    say(text, event="summary", **summary_line(report, job.config.out_dir))
    return report.exit_code


def _cmd_merge(args: argparse.Namespace) -> int:
    from ._merge import ShardUnfinished, merge_folders

    try:
        report = merge_folders(args.folders, args.into)
    except ShardUnfinished as exc:
        print(f"bulkops: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    print(
        f"merged {report.shards} shard(s) of {report.input}: {report.rows:,} rows, "
        f"{report.succeeded:,} succeeded, {report.failed:,} failed, {report.requests:,} "
        f"requests -> {args.into}",
        file=sys.stderr,
    )
    return report.exit_code


def _load_job(out: Path, args: argparse.Namespace) -> tuple[JobConfig, dict[str, Any]]:
    path = out / JOURNAL_NAME
    if not path.exists():
        raise ConfigError(f"{out} holds no bulkops job (no {JOURNAL_NAME})")
    check_out_dir(out)  # before SQLite opens the journal for writing
    holder = lock_holder(out)
    if holder is not None:  # another process runs this job: do not even read its journal
        raise JobFolderBusy(out, holder)
    journal = Journal.open(path)  # a journal that cannot be trusted is a JournalError
    try:
        meta = journal.meta()
    finally:
        journal.close()
    journaled = meta.get("config")
    if not isinstance(journaled, dict):
        raise ConfigError(f"{path} cannot be read as a bulkops journal: it has no job settings")
    token = _read_token(args.token_file)
    base_url = _base_url_for(args, journaled.get("base_url"))
    try:
        config = config_from_meta({**journaled, "base_url": base_url}, token=token, out_dir=out)
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path} holds settings bulkops cannot use: {exc!r}") from None
    overrides: dict[str, Any] = {}
    if args.rate_limit is not None:
        overrides["rate_limit"] = args.rate_limit
    if args.concurrency is not None:
        overrides["concurrency"] = args.concurrency
    if args.outage_timeout is not None:
        overrides["outage_timeout"] = args.outage_timeout
    if args.id_property and args.id_property != config.id_property:
        if config.id_property:
            raise ConfigError(
                f"this job's id property is {config.id_property!r}; --id-property cannot change it"
            )
        # Lets creates left AMBIGUOUS (or in flight) be settled by reading them back.
        overrides["id_property"] = args.id_property
    if args.redis_url:
        overrides["redis_url"] = args.redis_url  # never journaled: it may hold a password
    if overrides:
        config = dataclasses.replace(config, **overrides)
    return config, meta.get("input") or {}


def _base_url_for(args: argparse.Namespace, journaled: str | None) -> str:
    """Where a resumed or retried job sends the token: the command line, the environment or
    the default, never just what the journal says (anyone who can write the result folder
    could point it elsewhere). A journal naming another place stops the job unless
    ``--base-url`` says where to go."""
    if args.base_url:
        return str(args.base_url)
    env = os.environ.get("HUBSPOT_BASE_URL")
    current = env or DEFAULT_BASE_URL
    if journaled and not same_base_url(journaled, current):
        source = "HUBSPOT_BASE_URL" if env else "the default"
        raise ConfigError(
            f"this job was started against {origin(journaled)}, but {source} is "
            f"{origin(current)}; bulkops does not send the token where a journal says. "
            "Pass --base-url to choose the host explicitly."
        )
    return current


def _cmd_resume(args: argparse.Namespace) -> int:
    config, inp = _load_job(args.out_dir, args)
    path = inp.get("path")
    if not path:
        raise ConfigError("this job read stdin or a Python iterable; only file jobs can resume")
    if not os.path.isfile(path):
        raise ConfigError(f"the job's input {path} is gone; resume needs the same file")
    if fingerprint(path) != inp.get("fingerprint"):
        raise ConfigError(
            f"the input {path} changed since the job started (its fingerprint differs). "
            "resume will not mix two inputs; start a new job for the new file."
        )
    source = open_source(
        path,
        format=inp.get("format"),
        delimiter=inp.get("delimiter"),
        encoding=inp.get("encoding"),
    )
    job = Job(config, source, input_name=path, input_meta=inp, mode=Mode.RESUME)
    return _drive_and_report(job, args, count_from=path)


def _cmd_retry(args: argparse.Namespace) -> int:
    config, inp = _load_job(args.out_dir, args)
    if args.no_preflight:
        config = dataclasses.replace(config, preflight=False)
    folder = JobFolder(args.out_dir)
    holder = lock_holder(args.out_dir)
    if holder is not None:  # before reading a failed.jsonl that process may be writing
        raise JobFolderBusy(args.out_dir, holder)
    source = folder.retry_source_path()  # failed.jsonl, or a killed retry's copy of it
    if not source.exists():
        raise ConfigError(f"{source} does not exist")
    # The whole file is checked before the job starts; the job then streams the copy it
    # makes of it when it takes the folder, so the user's edits survive any crash.
    # With an id property, AMBIGUOUS rows are safe to retry: each is read back first.
    include_ambiguous = args.include_ambiguous or bool(config.id_property)
    checked = read_failed_file(source, include_ambiguous=include_ambiguous)
    skipped = checked.skipped_message()
    if skipped:
        say(f"bulkops: {skipped}", event="warning", level=logging.WARNING)
    rows = folder.retry_rows(include_ambiguous=include_ambiguous)
    name = str(args.out_dir / FAILED)
    job = Job(config, from_rows(rows), input_name=name, input_meta=inp, mode=Mode.RETRY)
    return _drive_and_report(job, args, count_from=None)


async def from_rows(rows: Iterable[RawRow]) -> AsyncIterator[RawRow]:
    for row in rows:
        yield row


def _cmd_fake_server(args: argparse.Namespace) -> int:
    from .testing import run_fake_server_from_args

    return run_fake_server_from_args(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(args)


def build_parser(*, fake_server: bool = True) -> argparse.ArgumentParser:
    """The command line. ``fake_server=False`` leaves out the ``fake-server`` command's own
    options: they come with the embedded fake (aiohttp's server), whose import is ~40 ms of
    every other command's start."""
    from . import __version__

    parser = Parser(
        prog="bulkops",
        description="Move millions of CRM records through HubSpot's batch APIs at the rate "
        "limit, with every row accounted for.",
        epilog="exit codes: 0 all written, 1 some records failed, 2 usage/config error or an "
        "internal error, 3 stopped (resumable)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an unexpected error (secrets masked)",
    )
    parser.add_argument("--version", action="version", version=f"bulkops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run a batch job",
        description=_RUN_HELP,
        formatter_class=HelpFormatter,
    )
    _add_run_arguments(run)
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser(
        "demo",
        help="run a sample job against the embedded fake HubSpot",
        formatter_class=HelpFormatter,
    )
    demo.add_argument("--rows", type=int, default=100_000, help="rows the sample job writes")
    demo.add_argument(
        "--rate-limit",
        type=_positive_int,
        default=190,
        help="the fake's limit per 10 s (0 = unlimited)",
    )
    demo.add_argument("--latency-ms", default="150-250", help="the fake's latency, LO-HI ms")
    demo.add_argument("--out", type=Path, help="result folder (default: a new one per job)")
    demo.add_argument(
        "--progress",
        choices=["auto", "bar", "log", "none"],
        default="auto",
        help="live display: bar on a terminal, a log line every 10 s otherwise",
    )
    add_loop_argument(demo)
    demo.set_defaults(func=_cmd_demo)

    for name, func, text in (
        ("resume", _cmd_resume, "continue a stopped or killed job where it left off"),
        ("retry", _cmd_retry, "re-run the records in a job's failed.jsonl and update its results"),
    ):
        cmd = sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)
        cmd.add_argument("out_dir", metavar="OUT", type=Path, help="the job's result folder")
        cmd.add_argument(
            "--token-file", help="file holding the access token (default: HUBSPOT_ACCESS_TOKEN)"
        )
        cmd.add_argument(
            "--base-url",
            help=f"API base URL (default: HUBSPOT_BASE_URL, else {DEFAULT_BASE_URL}; a job "
            "started against another host is refused unless this is given)",
        )
        cmd.add_argument(
            "--rate-limit", type=_positive_int, help="override the job's limit (default: its own)"
        )
        cmd.add_argument(
            "--concurrency",
            type=int,
            help="override the job's cap on requests in flight (default: its own)",
        )
        cmd.add_argument(
            "--id-property",
            help="a unique property to read creates back by, for a job that ran without one: "
            "rows left AMBIGUOUS or in flight are then settled by reading them back",
        )
        _add_outage_argument(cmd)
        cmd.add_argument(
            "--redis-url",
            default=os.environ.get("BULKOPS_REDIS_URL"),
            help="share the account's budget through this Redis (env BULKOPS_REDIS_URL)",
        )
        if name == "retry":
            cmd.add_argument(
                "--no-preflight",
                action="store_true",
                help="skip local validation against the account's property schema",
            )
            cmd.add_argument(
                "--include-ambiguous",
                action="store_true",
                help="also resend creates that failed AMBIGUOUS (may duplicate "
                "records HubSpot did create)",
            )
        _add_display_arguments(cmd)
        cmd.set_defaults(func=func)

    add_status_command(sub)
    merge = sub.add_parser(
        "merge",
        help="join the result folders of an input's shards into one set of files and report",
        description="Join the result folders of the shards of one input (bulkops run --shard "
        "I/N) into one succeeded.jsonl, failed.jsonl and report.json, checking that every "
        "input row is there exactly once. Exit 0: all succeeded, 1: some failed, 2: the "
        "folders do not add up, 3: a shard is unfinished (resume it first).",
    )
    merge.add_argument("folders", metavar="OUT", type=Path, nargs="+", help="a shard's folder")
    merge.add_argument("--into", type=Path, required=True, help="a new folder for the result")
    merge.set_defaults(func=_cmd_merge)

    fake = sub.add_parser(
        "fake-server", help="serve the embedded fake HubSpot on a port (a test server)"
    )
    if fake_server:
        from .testing import add_fake_server_arguments

        add_fake_server_arguments(fake)
    fake.set_defaults(func=_cmd_fake_server)
    return parser


def entry() -> int:
    """The ``bulkops`` command (and ``python -m bulkops``): :func:`main` in a process of its
    own, with the garbage collector tuned for bulk work (bulkops._gc)."""
    with batch_gc():
        return main()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(fake_server="fake-server" in argv)
    args = parser.parse_args(argv)
    with cli_logging(args):  # --log-format, --quiet, -v: how stderr reads (bulkops._logfmt)
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    try:
        code: Any = args.func(args)
    except ConfigError as exc:
        say(f"bulkops: {redact(flag_message(str(exc)))}", event="error", level=logging.ERROR)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_STOPPED
    except Exception as exc:
        # A bug or an environment problem nobody foresaw: one plain line, exit 2 (the
        # documented codes end at 3, so not the conventional 70).
        say(internal_error(exc, debug=args.debug), event="internal_error", level=logging.ERROR)
        return EXIT_USAGE
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
