"""Command-line hooks for running the fake HubSpot as a standalone process
(``bulkops fake-server`` calls them; ``main`` is a stand-alone entry for scripts)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import signal
import sys
from collections.abc import Sequence

import anyio

from bulkops._loop import add_loop_argument, backend_options
from bulkops.testing._fake_config import DEFAULT_API_VERSIONS, DEFAULT_FAKE_TOKEN, FakeConfig
from bulkops.testing._fake_faults import FaultPlan
from bulkops.testing._fake_schema import ValidationRule
from bulkops.testing._fake_server import FakeHubSpot


def _latency_ms(text: str) -> tuple[float, float]:
    """'150-250' or '200' (milliseconds) -> (lo, hi) seconds."""
    try:
        lo_s, sep, hi_s = text.partition("-")
        lo = float(lo_s)
        hi = float(hi_s) if sep else lo
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO-HI or MS, got {text!r}") from None
    if lo < 0 or hi < lo:
        raise argparse.ArgumentTypeError(f"need 0 <= LO <= HI, got {text!r}")
    return lo / 1000, hi / 1000


def _probability(text: str) -> float:
    p = float(text)
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError(f"probability must be in [0, 1], got {text}")
    return p


def _validation_rule(text: str) -> ValidationRule:
    try:
        return ValidationRule.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _versions(text: str) -> frozenset[str]:
    return frozenset(v.strip() for v in text.split(",") if v.strip())


DESCRIPTION = (
    "A TEST SERVER, not HubSpot: an in-memory imitation of HubSpot's CRM batch API for trying "
    "bulkops and for tests. It keeps records in memory only and accepts a documented token "
    f"({DEFAULT_FAKE_TOKEN} unless --token is given), so anyone who can reach it can use it; "
    "it listens on 127.0.0.1 unless --host says otherwise."
)


def exposure_warning(host: str, tokens: Sequence[str] | None) -> str | None:
    """A warning when the fake listens where other machines can reach it, else None."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name (or "" for every interface): it may well be reachable
    # Never repeat tokens given with --token: they may be real secrets.
    which = (
        "the tokens given with --token" if tokens else f"the documented token {DEFAULT_FAKE_TOKEN}"
    )
    return (
        f"fake-server: warning: listening on {host or 'every interface'}, not loopback: anyone "
        f"who can reach this machine can use this test server with {which}"
    )


def add_fake_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the fake's options to ``parser`` and, unless it has one, its description."""
    if not parser.description:
        parser.description = DESCRIPTION
    a = parser.add_argument
    a(
        "--host",
        default="127.0.0.1",
        help="listen address (default 127.0.0.1); any other address warns: the fake has no "
        "real authentication",
    )
    a("--port", type=int, default=0, help="listen port; 0 picks a free one (default)")
    a(
        "--rate-limit",
        type=int,
        default=190,
        metavar="N",
        help="requests per rolling window per token; 0 = unlimited (default 190)",
    )
    a("--interval-ms", type=int, default=10_000, help="rolling window length (default 10000)")
    a(
        "--secondly-limit",
        type=int,
        default=0,
        metavar="N",
        help="per-second limit (429 SECONDLY); 0 = none (default)",
    )
    a(
        "--daily-limit",
        type=int,
        default=1_000_000,
        metavar="N",
        help="requests per token per process lifetime; 0 = unlimited (default 1000000)",
    )
    a("--daily-used", type=int, default=0, metavar="N", help="start the day with N used")
    a(
        "--latency-ms",
        type=_latency_ms,
        default=(0.0, 0.0),
        metavar="LO-HI",
        help="uniform answer delay, e.g. 150-250 or 200 (default 0)",
    )
    a(
        "--token",
        action="append",
        default=None,
        metavar="T",
        help=f"accepted Bearer token, repeatable (default {DEFAULT_FAKE_TOKEN})",
    )
    a("--p-5xx", type=_probability, default=0.0, help="probability of a 500/502/503/504")
    a("--p-423", type=_probability, default=0.0, help="probability of a 423 Locked")
    a(
        "--p-reset",
        type=_probability,
        default=0.0,
        help="probability of dropping the connection before processing",
    )
    a(
        "--p-write-then-fail",
        type=_probability,
        default=0.0,
        help="probability of writing, then answering 500 or dropping the connection",
    )
    a(
        "--p-hang",
        type=_probability,
        default=0.0,
        help="probability of processing, then waiting --hang-seconds before answering",
    )
    a("--hang-seconds", type=float, default=30.0)
    a("--seed", type=int, default=0, help="seed for faults, shuffling and latency")
    a("--no-shuffle", action="store_true", help="keep results in input order")
    a(
        "--no-echo-trace-ids",
        action="store_true",
        help="do not put objectWriteTraceId on result objects",
    )
    a("--retry-after", action="store_true", help="send Retry-After on rolling/secondly 429s")
    a(
        "--validation-rule",
        type=_validation_rule,
        action="append",
        default=[],
        metavar="RULE",
        help="a portal validation rule checked on writes on 2026-09 and later, e.g. "
        "'hs_ticket_priority=HIGH requires content' (repeatable)",
    )
    a(
        "--no-store",
        action="store_true",
        help="BENCHMARK MODE: answer creates exactly as usual, then forget the records, so the "
        "fake's memory stays flat however many rows a job sends. Reads, updates and upserts "
        "of created records (not found), uniqueness across requests and the duplicate-create "
        "count (null in /__fake__/stats) are not available",
    )
    a(
        "--api-versions",
        type=_versions,
        default=DEFAULT_API_VERSIONS,
        metavar="V,...",
        help="versions the paths may name, others answer 404 "
        f"(default {','.join(sorted(DEFAULT_API_VERSIONS))})",
    )
    # The fake shares the machine with the client it serves: on uvloop it answers on less CPU,
    # which leaves more for the job under test.
    add_loop_argument(parser, runs="the fake serves on")


def config_from_args(args: argparse.Namespace) -> FakeConfig:
    return FakeConfig(
        tokens=frozenset(args.token or [DEFAULT_FAKE_TOKEN]),
        rate_limit=args.rate_limit or None,
        interval_ms=args.interval_ms,
        secondly_limit=args.secondly_limit or None,
        daily_limit=args.daily_limit or None,
        daily_used=args.daily_used,
        latency=args.latency_ms,
        shuffle_results=not args.no_shuffle,
        echo_trace_ids=not args.no_echo_trace_ids,
        retry_after_on_429=args.retry_after,
        validation_rules=tuple(args.validation_rule),
        api_versions=args.api_versions,
        seed=args.seed,
        store_records=not args.no_store,
        faults=FaultPlan(
            seed=args.seed,
            p_5xx=args.p_5xx,
            p_423=args.p_423,
            p_reset=args.p_reset,
            p_write_then_fail=args.p_write_then_fail,
            p_hang=args.p_hang,
            hang_seconds=args.hang_seconds,
        ),
    )


async def _serve(config: FakeConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fake = FakeHubSpot(config)
    url = await fake.start(host, port)
    # A dedicated process: stored records are GC-untracked dicts of strings, so the collector
    # only ever finds request temporaries; collecting young objects less often is pure gain.
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        # Benchmarks read this exact line to find the server.
        print(f"FAKE_HUBSPOT_URL={url}", flush=True)
        await stop.wait()
    finally:
        await fake.stop()
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_fake_server_from_args(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM, then return 0. Synchronous: owns its own event loop."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"fake-server: {exc}", file=sys.stderr)
        return 2
    warning = exposure_warning(args.host, args.token)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    anyio.run(_serve, config, args.host, args.port, backend_options=backend_options(args.loop))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fake-hubspot", allow_abbrev=False)
    add_fake_server_arguments(parser)
    return run_fake_server_from_args(parser.parse_args(argv))
