"""Which event loop the ``bulkops`` command runs a job on (``--loop``).

uvloop (the ``fast`` extra) runs the same job on less CPU than asyncio's own loop: measured on
the README's 2-core VM, ~9% less CPU a record (``benchmarks/bench_loop.py``: the median of 10
alternating 200,000-row runs), although it executes only ~1% fewer instructions. It makes
fewer Python objects per callback, and this engine's time goes on touching memory more than
on instructions. ``auto`` takes it when it is installed; ``asyncio`` keeps the standard loop
(to rule the loop out when something looks wrong). A library caller's job runs on the
caller's loop, whatever it is: this is only the command's choice.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
from typing import Any

from ._errors import ConfigError

__all__ = [
    "LOOP_CHOICES",
    "add_loop_argument",
    "backend_options",
    "loop_name",
    "running_loop",
]

LOOP_CHOICES = ("auto", "asyncio", "uvloop")
_MISSING = "--loop uvloop: uvloop is not installed here (pip install 'bulkops[fast]')"


def _have_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def loop_name(choice: str) -> str:
    """The loop ``--loop choice`` runs on: "uvloop" or "asyncio".

    :raises ConfigError: uvloop asked for by name and not installed.
    """
    if choice not in LOOP_CHOICES:
        raise ConfigError(f"--loop {choice!r}: choose one of {', '.join(LOOP_CHOICES)}")
    if choice == "asyncio":
        return "asyncio"
    if _have_uvloop():
        return "uvloop"
    if choice == "uvloop":
        raise ConfigError(_MISSING)
    return "asyncio"


def backend_options(choice: str) -> dict[str, Any]:
    """``anyio.run``'s ``backend_options`` for ``--loop choice``."""
    return {"use_uvloop": True} if loop_name(choice) == "uvloop" else {}


def _loop_choice(value: str) -> str:
    try:
        loop_name(value)
    except ConfigError as exc:
        # argparse names the option itself: keep only what follows "--loop VALUE: ".
        raise argparse.ArgumentTypeError(str(exc).partition(": ")[2]) from None
    return value


def add_loop_argument(p: argparse.ArgumentParser, runs: str = "the job runs on") -> None:
    """The ``--loop`` option, checked while parsing (uvloop asked for and not installed is a
    usage error)."""
    p.add_argument(
        "--loop",
        type=_loop_choice,
        default="auto",
        metavar="{auto,asyncio,uvloop}",
        help=f"the event loop {runs}: uvloop when it is installed (the 'fast' extra: "
        "less CPU a record), else asyncio's (default: auto)",
    )


def running_loop() -> str:
    """What the running event loop is, for the log: "uvloop", "asyncio" or another's module."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]
