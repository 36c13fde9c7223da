"""Command-line polish: defaults read from ``JobConfig`` (one default per setting), help that
shows them, "did you mean" for a misspelled command or operation, and errors that name the
flag a user typed rather than the Python field behind it."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
from typing import Any

from ._cli_guard import SafeArgumentParser
from ._config import JobConfig

__all__ = ["HelpFormatter", "Parser", "config_default", "flag_message", "suggestion"]

# Fields whose flag is not ``--`` + the name with dashes.
_FLAGS = {
    "object_type": "--object",
    "api": "--api-version",
    "api_version": "--api-version",
    "operation": "the operation (OP)",
    "daily_share": "--daily-budget",
    "adaptive": "--no-adaptive",
    "preflight": "--no-preflight",
    "journal": "--no-journal",
    "out_dir": "--out",
    "dry_run": "--dry-run",
    "dry_run_reads": "--dry-run=reads",
    "mapping": "--map",
}
_FIELDS = frozenset(f.name for f in dataclasses.fields(JobConfig))
# "batch_size must be ..." or "id_property (--id-property) ...": a field name leads.
_LEADING_FIELD = re.compile(r"^([a-z_]+)(?: \((--[a-z-]+)\))?(?=[ :])")


def config_default(name: str) -> Any:
    """``JobConfig``'s default for ``name``: the CLI has no defaults of its own."""
    for f in dataclasses.fields(JobConfig):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(name)


def flag_for(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def flag_message(message: str) -> str:
    """A config error as the command line says it: ``--batch-size must be ...``."""
    match = _LEADING_FIELD.match(message)
    if match is None or match.group(1) not in _FIELDS:
        return message
    flag = match.group(2) or flag_for(match.group(1))
    return flag + message[match.end() :]


def suggestion(value: str, choices: Any) -> str | None:
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None


class Parser(SafeArgumentParser):
    """The bulkops parser: a misspelled command or operation gets a "did you mean"."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is not None and isinstance(value, str) and value not in choices:
            guess = suggestion(value, choices)
            if guess is not None:
                shown = ", ".join(map(str, choices))
                raise argparse.ArgumentError(
                    action,
                    f"invalid choice: {value!r} (did you mean {guess!r}? choose from {shown})",
                )
        super()._check_value(action, value)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and shows each option's default, unless its help says it
    already or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        nothing = default is None or default is False or default in ((), [], argparse.SUPPRESS)
        if "default" in text or nothing or not action.option_strings:
            return text
        return text + " (default: %(default)s)"
