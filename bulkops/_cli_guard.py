"""What the command line shows when something goes wrong: never a secret, never a traceback.

* :class:`SafeArgumentParser` turns prefix matching off (``--token`` must not quietly mean
  ``--token-file``) and masks secrets in argparse's own errors, which quote the arguments they
  did not understand.
* :func:`redact` masks what looks like a token, the value given after ``--token``, and every
  secret the process has read.
* :func:`internal_error` is the one line an unexpected exception becomes.
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

__all__ = ["SafeArgumentParser", "internal_error", "redact", "remember_secret"]

MASK = "***"
_SECRET_OPTIONS = ("--token",)
# HubSpot private-app tokens are ``pat-<region>-<uuid>`` (docs/hubspot-api.md section 9). OAuth
# access tokens are long mixed-case base64url runs: 40 or more characters holding an upper-case
# letter, a lower-case letter and a digit, which file names and ids seldom are.
_TOKEN_LIKE = re.compile(
    r"\bpat-[A-Za-z0-9-]+"
    r"|(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[0-9])"
    r"[A-Za-z0-9_-]{40,}"
)
_known: set[str] = set()


def remember_secret(value: str) -> None:
    """Mask ``value`` in every message :func:`redact` cleans from now on."""
    if value:
        _known.add(value)


def secrets_in_argv(argv: Sequence[str]) -> list[str]:
    """Values given to a secret option (``--token X`` or ``--token=X``)."""
    found = []
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name in _SECRET_OPTIONS:
            if eq:
                found.append(value)
            elif i + 1 < len(argv):
                found.append(argv[i + 1])
    return [v for v in found if v]


def redact(text: str, extra: Iterable[str] = ()) -> str:
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted({*_known, *extra}, key=len, reverse=True):
        if len(secret) >= 8:
            text = text.replace(secret, MASK)
        else:  # a short one only as a whole word: "--token a" must not mask every "a"
            text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", MASK, text)
    return _TOKEN_LIKE.sub(MASK, text)


class SafeArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser without prefix matching whose errors never show a secret.

    Sub-parsers are built from this class too (``add_subparsers`` uses the parent's class),
    and each one masks the secrets of the arguments it was given.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._argv_secrets: list[str] = []

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._argv_secrets = secrets_in_argv(sys.argv[1:] if args is None else list(args))
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        super().error(redact(message, self._argv_secrets))


def internal_error(exc: BaseException, *, debug: bool) -> str:
    """The text shown for an exception nobody expected: one line, or with ``debug`` the
    traceback. Both are cleaned of secrets."""
    if debug:
        return redact("".join(traceback.format_exception(exc)).rstrip())
    detail = redact(str(exc)).splitlines()
    first = detail[0] if detail else ""
    return f"bulkops: internal error: {type(exc).__name__}: {first} (run with --debug for details)"
