"""How bulkops's stderr reads: ``--log-format text|json``, ``--quiet`` and ``-v``.

Everything the command says on stderr is a stdlib :mod:`logging` record of the ``bulkops``
logger tree: the engine's own records (``bulkops.*``), the CLI's lines (``bulkops.cli``:
"talking to", warnings, the summary, errors) and the progress line (``bulkops.progress``,
event ``progress``). One handler on ``bulkops`` renders them:

* ``text`` (the default): the CLI's lines exactly as people have always read them; engine
  records as ``bulkops: LEVEL: message (key=value ...)``. When stderr is not a terminal
  (cron, Airflow, a pod's log) the progress line and engine records start with a UTC
  timestamp.
* ``json``: one JSON object per line, ``{"time", "level", "job", "event", "message",
  "logger", "fields"}``, for log shippers. ``event`` is the record's ``extra={"event": ...}``
  or, failing that, its message template (stable, unlike the message); ``fields`` is
  ``extra={"fields": {...}}`` plus any other extra attributes.

``--quiet`` shows warnings and errors only (no progress, no summary on stderr); ``-v`` adds
debug records. Every rendered line is cleaned of the secrets the CLI has seen (the token).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

import orjson

from ._cli_guard import redact

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "cli_logging",
    "say",
    "set_job",
    "utc_stamp",
]

ROOT = "bulkops"
CLI = "bulkops.cli"
PROGRESS = "bulkops.progress"
_PLAIN = (CLI, PROGRESS)  # already written for people: shown as they are in text format
# What every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "event",
    "fields",
    "taskName",
}

_state: dict[str, Any] = {"handler": None, "job": None}


def utc_stamp(t: float | None = None) -> str:
    """``2026-12-01T09:04:30.123Z``: UTC, milliseconds, sortable."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    given = getattr(record, "fields", None)
    fields: dict[str, Any] = dict(given) if isinstance(given, Mapping) else {}
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields.setdefault(key, value)
    return fields


def _error_of(record: logging.LogRecord) -> str | None:
    # The exception's type and text, never its traceback (the CLI's --debug prints that).
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        return f"{type(exc).__name__}: {exc}"
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``job`` names the job (its result folder)."""

    def __init__(self, job: str | None = None) -> None:
        super().__init__()
        self.job = job

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        event = getattr(record, "event", None)
        fields = _fields(record)
        error = _error_of(record)
        if error:
            fields["error"] = error
        line = {
            "time": utc_stamp(record.created),
            "level": record.levelname.lower(),
            "job": self.job,
            "event": event if isinstance(event, str) else str(record.msg),
            "message": message,
            "logger": record.name,
            "fields": fields,
        }
        text = orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        return redact(text)


class TextFormatter(logging.Formatter):
    """Lines for people; ``timestamps`` (stderr is not a terminal) prefixes the UTC time."""

    def __init__(self, *, timestamps: bool) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name in _PLAIN:
            text = message
            # The CLI's lines read as they always have; the progress line says when.
            stamped = self.timestamps and record.name == PROGRESS
        else:
            fields = _fields(record)
            error = _error_of(record)
            if error:
                fields["error"] = error
            extra = " ".join(f"{k}={v}" for k, v in fields.items())
            text = f"bulkops: {record.levelname.lower()}: {message}" + (
                f" ({extra})" if extra else ""
            )
            stamped = self.timestamps
        if stamped:
            text = f"{utc_stamp(record.created)} {text}"
        return redact(text)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the ``sys.stderr`` of the moment (tests swap it) and never raises."""

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream)
        self._fixed = stream is not None

    def emit(self, record: logging.LogRecord) -> None:
        if not self._fixed:
            self.stream = sys.stderr
        super().emit(record)


def _level(args: Any) -> int:
    if getattr(args, "quiet", False):
        return logging.WARNING
    if getattr(args, "verbose", 0):
        return logging.DEBUG
    return logging.INFO


def _command_lines_and_warnings(record: logging.LogRecord) -> bool:
    # A stop is the summary's last word; the engine's record of it would say it twice.
    if hasattr(record, "stop_reason"):
        return False
    return record.name in _PLAIN or record.levelno >= logging.WARNING


@contextlib.contextmanager
def cli_logging(args: Any, *, stream: TextIO | None = None) -> Iterator[logging.Handler]:
    """Route the ``bulkops`` logger tree to stderr as ``args`` asks, for one command."""
    logger = logging.getLogger(ROOT)
    out = stream or sys.stderr
    handler = _StderrHandler(stream)
    if getattr(args, "log_format", "text") == "json":
        job = getattr(args, "out", None) or getattr(args, "out_dir", None)
        handler.setFormatter(JsonFormatter(None if job is None else str(job)))
    else:
        handler.setFormatter(TextFormatter(timestamps=not _isatty(out)))
    if not getattr(args, "verbose", 0):
        # The command's own lines (start, progress, summary) at INFO; the engine's records
        # (bulkops.job, .http, ...) only from WARNING up, unless -v asks for them: the summary
        # already says what the job's INFO records would.
        handler.addFilter(_command_lines_and_warnings)
    saved = (logger.level, _state["handler"])
    logger.addHandler(handler)
    logger.setLevel(_level(args))
    # Records still propagate: the command's process has no root handlers (so no line is
    # written twice), and a test's log capture on the root logger still sees them.
    _state["handler"] = handler
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        _state["handler"] = saved[1]


def set_job(job: str) -> None:
    """Name the job in JSON lines from now on (once its result folder is known)."""
    handler = _state["handler"]
    if handler is not None and isinstance(handler.formatter, JsonFormatter):
        handler.formatter.job = job


def say(
    message: str,
    *,
    event: str,
    level: int = logging.INFO,
    logger: str = CLI,
    **fields: Any,
) -> None:
    """One line of the CLI's on stderr, as a log record (``print`` when no command set up
    logging, so a library caller of the CLI's helpers still sees it)."""
    if _state["handler"] is None:
        print(redact(message), file=sys.stderr)
        return
    logging.getLogger(logger).log(level, message, extra={"event": event, "fields": fields})


def json_mode() -> bool:
    handler = _state["handler"]
    return handler is not None and isinstance(handler.formatter, JsonFormatter)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
