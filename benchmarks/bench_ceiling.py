"""How close to HubSpot's rate-limit ceiling bulkops runs, beside HubSpot's official Python
client, and how it shares the window with another integration.

Run from the repository root::

    python benchmarks/bench_ceiling.py               # 60 s per scenario
    python benchmarks/bench_ceiling.py --seconds 20  # a quick check
    python benchmarks/bench_ceiling.py --cli         # `bulkops run` end to end, 3 runs

``--cli`` measures what a user waits for: ``bulkops run create`` of ``--cli-rows`` (40,000)
tickets as a process (``python -m bulkops``, journal on, ``--id-property external_id``, the
limit learned), timed from before the process is started to its exit, ``--repeat`` times, each
against a fresh fake. It prints the share of the ceiling (rows / seconds / 1,900) and where the
time went, from the fake's own arrival times (one monotonic clock for the machine): when the
first request arrived (Python start-up, imports, the job folder), the gaps to the next four
(the schema read's latency before the first batch), when the window first held 189 of ours,
the last arrival and how long the command took after it (the last answer, the report, the
interpreter's exit); ``--dump FILE`` appends every arrival time. The "ideal" is the sending
time of a pacer that spends each window's budget at once: ``(requests - 1) // 190 x 10 s``.

The fake HubSpot allows 190 requests per rolling 10 s (Professional tier) and answers in 150-250
ms. The ceiling is therefore 19 requests/s = 1,900 records/s with batches of 100. Three
scenarios run one after the other, each with a fresh fake in its own process (so rolling windows
and stores never mix) and a fresh measuring child process (so peak RSS figures do not mix):

a. bulkops: a ``Job`` creating ``seconds x 1,900`` tickets (about ``seconds`` long at the
   ceiling) with its defaults: no ``rate_limit``, so it starts at HubSpot's lowest tier (100 per
   10 s) and must learn 190 from the ``X-HubSpot-RateLimit-*`` headers (adaptive on); journal
   on; ``id_property="external_id"``.
b. hubspot-api-client (``from hubspot import HubSpot``) configured as its README recommends for
   retries, widened to POST: ``Retry(total=5, backoff_factor=0.3, status_forcelist=(429, 500,
   502, 503, 504), allowed_methods=GET/POST/PATCH/PUT/DELETE)``, driven as its docs show: one
   thread, a loop of ``batch_api.create`` with 100 inputs each, for ``seconds`` (or until the
   same rows are done).
c. bulkops again, while another integration on the same token takes 57 of the 190 requests per
   window (30%); ``seconds x 1,330`` tickets, about ``seconds`` long at what is left.

The fake runs in this file's own ``--fake`` mode rather than ``bulkops fake-server``: the same
``FakeHubSpot``/``FakeConfig``, but it can add the other integration's load
(``FakeHubSpot.add_external_load``; the CLI has no flag for it) and it prints its statistics when
stopped, so the 429s of every scenario (the official client's included, which it cannot count
itself) and the most requests of ours in any 10 s window are counted by the server.

Printed per scenario: records/s, requests/s, share of the ceiling (records/s / 1,900), for (c)
the share of what is left (requests/s / 13.3), 429s and their share of requests, and the peak
RSS of the process running the client. Targets: (a) >= 98% of the ceiling with zero 429s; (c)
<= 2% of requests 429'd and >= 95% of what is left used.

Every scenario is bounded: its child is killed ``seconds + 30`` s after it starts; bulkops is
asked to stop (keeping its results) at ``seconds + 20`` s.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import _common as c

DEFAULT_SECONDS = 60
RATE_LIMIT = 190  # requests per window, the fake's limit
INTERVAL_S = 10.0
LATENCY_MS = (150, 250)
BATCH = 100
CEILING_RPS = RATE_LIMIT / INTERVAL_S
CEILING_RECORDS_PER_S = CEILING_RPS * BATCH  # 1,900
EXTERNAL_LOAD = 57  # requests per window taken by another integration in (c): 30%
LEFT_RPS = (RATE_LIMIT - EXTERNAL_LOAD) / INTERVAL_S  # 13.3
HARD_LIMIT_EXTRA_S = 30.0  # a child is killed this long after --seconds
SOFT_STOP_EXTRA_S = 20.0  # bulkops is asked to stop this long after --seconds
STOP_GRACE_S = 5.0  # requests in flight after a stop get this long
OFFICIAL_REQUEST_TIMEOUT_S = 10.0
TARGET_SHARE_ALONE = 0.98
TARGET_429_SHARE_SHARED = 0.02
TARGET_SHARE_OF_LEFT = 0.95


# -- the fake (own process) --------------------------------------------------------------------


def run_fake(external_load: int) -> int:
    """Serve the fake until SIGINT/SIGTERM, then print its statistics as one JSON line."""
    import asyncio
    import json
    import signal

    from bulkops.testing import FakeConfig, FakeHubSpot

    async def serve() -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        lo, hi = LATENCY_MS
        fake = FakeHubSpot(
            FakeConfig(
                rate_limit=RATE_LIMIT,
                interval_ms=int(INTERVAL_S * 1000),
                latency=(lo / 1000, hi / 1000),
            )
        )
        if external_load:
            fake.add_external_load(external_load)
        url = await fake.start("127.0.0.1", 0)
        print(c.URL_PREFIX + url, flush=True)
        await stop.wait()
        await fake.stop()
        s = fake.stats
        return {
            "requests": s.requests,
            "by_status": {str(k): v for k, v in sorted(s.by_status.items())},
            "rate_limited": dict(s.rate_limited),
            "records_created": sum(s.records_created.values()),
            "max_in_window": fake.max_requests_in_window(),
            # Our token's counted arrivals (time.monotonic: one clock for the machine).
            "arrivals": s.arrivals.get(c.FAKE_TOKEN, []),
        }

    stats = asyncio.run(serve())
    print(c.STATS_PREFIX + json.dumps(stats), flush=True)
    return 0


# -- measuring children ------------------------------------------------------------------------


def child_bulkops(args: argparse.Namespace) -> int:
    import anyio

    import bulkops

    config = bulkops.JobConfig(
        operation=bulkops.Operation.CREATE,
        token=bulkops.Secret(c.FAKE_TOKEN),
        base_url=args.url,
        id_property="external_id",
        out_dir=Path(args.out),
        # rate_limit, adaptive, journal, concurrency: the defaults (learned from the headers
        # starting at 100 per 10 s, on, on, derived from latency)
    )
    job = bulkops.Job(config, args.csv, grace=STOP_GRACE_S)
    reports: list[bulkops.JobReport] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def watchdog() -> None:
                await anyio.sleep(args.seconds + SOFT_STOP_EXTRA_S)
                job.stop(message="benchmark time is up")

            tg.start_soon(watchdog)
            reports.append(await job.run())
            tg.cancel_scope.cancel()

    anyio.run(main)
    data = reports[0].to_json()
    rl = data["rate_limit"]
    throttled = sum(int(v) for v in rl["429_by_policy"].values())
    seconds = float(data["duration_s"])
    requests = int(data["requests"]["total"])
    c.emit_result(
        {
            "rows": data["rows"]["read"],
            "succeeded": data["rows"]["succeeded"],
            "failed": data["rows"]["failed"],
            "seconds": seconds,
            "requests": requests,
            "status_429": throttled,
            "peak_rss_mib": round(c.peak_rss_mib(), 1),
            "learned_ceiling": rl["learned_ceiling"],
            "final_limit": rl["current_limit"],
            "others_estimate": rl["others_estimate"],
            "stop": data["stop"],
        }
    )
    return 0


def child_official(args: argparse.Namespace) -> int:
    import csv

    # Optional: only this child needs them (pip install hubspot-api-client); no stubs.
    from hubspot import HubSpot  # type: ignore[import-not-found, unused-ignore]
    from hubspot.crm.tickets import (  # type: ignore[import-not-found, unused-ignore]
        BatchInputSimplePublicObjectBatchInputForCreate,
        SimplePublicObjectBatchInputForCreate,
    )
    from urllib3.util.retry import Retry  # type: ignore[import-not-found, unused-ignore]

    retry = Retry(
        total=5,
        backoff_factor=0.3,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"}),
    )
    client = HubSpot(access_token=c.FAKE_TOKEN, retry=retry)
    # Each access to .batch_api builds a new ApiClient: take it once, point it at the fake.
    batch_api = client.crm.tickets.batch_api
    batch_api.api_client.configuration.host = args.url
    succeeded = failed = calls = 0
    errors: Counter[str] = Counter()
    with Path(args.csv).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        started = c.now()
        deadline = started + args.seconds
        done = False
        while not done and c.now() < deadline and calls < args.rows // BATCH + 1:
            chunk: list[dict[str, str]] = []
            for row in reader:
                chunk.append(row)
                if len(chunk) == BATCH:
                    break
            else:
                done = True
            if not chunk:
                break
            body = BatchInputSimplePublicObjectBatchInputForCreate(
                inputs=[SimplePublicObjectBatchInputForCreate(properties=r) for r in chunk]
            )
            calls += 1
            try:
                response = batch_api.create(body, _request_timeout=OFFICIAL_REQUEST_TIMEOUT_S)
            except Exception as exc:  # the client raises ApiException or urllib3's errors
                failed += len(chunk)
                errors[type(exc).__name__] += 1
                continue
            succeeded += len(response.results)
            failed += len(chunk) - len(response.results)
        seconds = c.now() - started
    c.emit_result(
        {
            "rows": succeeded + failed,
            "succeeded": succeeded,
            "failed": failed,
            "seconds": round(seconds, 3),
            "calls": calls,
            "errors": dict(errors),
            "peak_rss_mib": round(c.peak_rss_mib(), 1),
        }
    )
    return 0


# -- the command end to end ------------------------------------------------------------------


def cli_run(csv_path: Path, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    """``bulkops run create`` as a process, timed from before it is started to its exit."""
    import os
    import time

    here = str(Path(__file__).resolve())
    proc, url = c.start_fake(c.python_cmd(here, "--fake"))
    out = csv_path.parent / f"out-cli-{time.monotonic_ns()}"
    env = c.child_env()
    env["HUBSPOT_ACCESS_TOKEN"] = c.FAKE_TOKEN
    cmd = [
        *c.python_cmd("-m", "bulkops", "run", "create"),
        *("--input", str(csv_path), "--id-property", "external_id", "--base-url", url),
        *("--out", str(out), "--progress", "none", "--quiet"),
    ]
    try:
        fake_before = c.proc_cpu_s(proc.pid)
        # The fake's arrival times are on this machine's monotonic clock, as ``started``.
        started = time.monotonic()
        done = c.run_measured(
            cmd, timeout=rows / CEILING_RECORDS_PER_S + HARD_LIMIT_EXTRA_S, env=env
        )
        fake_after = c.proc_cpu_s(proc.pid)
    finally:
        stats = c.stats_from_output(c.stop_process(proc)) or {}
    succeeded = 0
    with contextlib.suppress(OSError):
        with (out / "succeeded.jsonl").open("rb") as f:
            succeeded = sum(1 for _ in f)
    arrivals = [t - started for t in stats.get("arrivals", [])]
    seconds = done.wall_s
    if args.dump:
        import json

        with Path(args.dump).open("a", encoding="utf-8") as f:
            f.write(json.dumps({"seconds": seconds, "arrivals": arrivals}) + "\n")
    return {
        "exit": done.returncode,
        "stderr": done.stderr[-2000:] if done.returncode else "",
        "seconds": seconds,
        "succeeded": succeeded,
        "share": succeeded / seconds / CEILING_RECORDS_PER_S,
        "requests": stats.get("requests", 0),
        "status_429": int(stats.get("by_status", {}).get("429", 0)),
        "max_in_window": stats.get("max_in_window"),
        # What a paced job costs a host that runs many: the whole process, start-up included.
        "cpu_us_per_record": 1e6 * done.cpu_s / rows,
        "fake_cpu_us_per_record": c.cpu_us_per_record(fake_before, fake_after, rows),
        "timeline": timeline(arrivals, seconds),
        "env": os.environ.get("BULKOPS_BENCH_NOTE", ""),
    }


def timeline(arrivals: list[float], seconds: float) -> dict[str, Any]:
    """Where the time went, from the command's start (seconds): the first request's arrival,
    the 2nd..5th, when the window first held ``RATE_LIMIT - 1`` of ours, the last arrival and
    the exit after it."""
    if not arrivals:
        return {}
    full = None
    lo = 0
    for hi, t in enumerate(arrivals):
        while arrivals[lo] <= t - INTERVAL_S:
            lo += 1
        if hi - lo + 1 >= RATE_LIMIT - 1:
            full = t
            break
    # What the ideal pacer needs for this many requests: the window's budget at once, again
    # each window (no latency, no start-up): the rest is the start-up, the ramp and the tail.
    n = len(arrivals)
    ideal = (n - 1) // RATE_LIMIT * INTERVAL_S
    return {
        "first": round(arrivals[0], 3),
        "next": [round(t - arrivals[0], 3) for t in arrivals[1:5]],
        "window_full_at": None if full is None else round(full, 3),
        "last": round(arrivals[-1], 3),
        "after_last": round(seconds - arrivals[-1], 3),
        "sending": round(arrivals[-1] - arrivals[0], 3),
        "ideal_sending": ideal,
        "requests": n,
    }


def run_cli(args: argparse.Namespace) -> int:
    rows = args.cli_rows
    results = []
    with tempfile.TemporaryDirectory(prefix="bulkops-ceiling-cli-") as tmp:
        path = Path(tmp) / "tickets.csv"
        c.write_tickets_csv(path, rows)
        for n in range(args.repeat):
            r = cli_run(path, rows, args)
            results.append(r)
            tl = r["timeline"]
            print(
                f"run {n + 1}: {r['seconds']:.2f} s, {r['succeeded']:,} rows, share "
                f"{r['share']:.1%}, {r['status_429']} 429s, max/10s {r['max_in_window']}, "
                f"exit {r['exit']}; first request at {tl.get('first')} s, next "
                f"{tl.get('next')}, window full at {tl.get('window_full_at')} s, last at "
                f"{tl.get('last')} s, exit {tl.get('after_last')} s after it; sending "
                f"{tl.get('sending')} s for {tl.get('requests')} requests "
                f"(ideal {tl.get('ideal_sending')}); CPU {r['cpu_us_per_record']:.1f} us a "
                f"record (fake {c.figure(r['fake_cpu_us_per_record'])})",
                flush=True,
            )
            if r["stderr"]:
                print(r["stderr"], file=sys.stderr)
    shares = sorted(r["share"] for r in results)
    ok = all(r["status_429"] == 0 and (r["max_in_window"] or 0) <= RATE_LIMIT for r in results)
    print(
        f"`bulkops run create` of {rows:,} rows, from the command's start to its exit, "
        f"{len(results)} runs: share of the ceiling min {shares[0]:.1%}, median "
        f"{shares[len(shares) // 2]:.1%}, max {shares[-1]:.1%}; target >= "
        f"{TARGET_SHARE_ALONE:.0%}, 0 429s, <= {RATE_LIMIT} per window: "
        f"{'met' if ok and shares[0] >= TARGET_SHARE_ALONE else 'MISSED'}"
    )
    print(c.machine_line())
    return 0


# -- the driver --------------------------------------------------------------------------------


def scenario(
    name: str, kind: str, csv_path: Path, rows: int, external: int, args: argparse.Namespace
) -> dict[str, Any]:
    here = str(Path(__file__).resolve())
    fake_cmd = c.python_cmd(here, "--fake", "--external-load", str(external))
    print(f"scenario {name}: {kind}, {rows:,} rows, other load {external}", file=sys.stderr)
    result: dict[str, Any] = {}
    error = None
    proc, url = c.start_fake(fake_cmd)
    try:
        cmd = c.python_cmd(
            here,
            "--child",
            kind,
            "--url",
            url,
            "--csv",
            str(csv_path),
            "--rows",
            str(rows),
            "--seconds",
            str(args.seconds),
            "--out",
            str(csv_path.parent / f"out-{name}"),
        )
        try:
            result = c.run_child(cmd, timeout=args.seconds + HARD_LIMIT_EXTRA_S)
        except RuntimeError as exc:
            error = str(exc)
    finally:
        stats = c.stats_from_output(c.stop_process(proc)) or {}
    result.update(name=name, kind=kind, external=external, fake=stats, error=error)
    if "requests" not in result:  # the official client cannot count its retries: the fake did
        result["requests"] = stats.get("requests", 0)
    result["fake_429"] = int(stats.get("by_status", {}).get("429", 0))
    if "status_429" not in result:
        result["status_429"] = result["fake_429"]
    return result


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def summary(results: list[dict[str, Any]]) -> str:
    headers = (
        "scenario",
        "rows done",
        "seconds",
        "records/s",
        "requests/s",
        "share of ceiling",
        "share of what is left",
        "429s",
        "429 share",
        "max/10s (fake)",
        "peak RSS MiB",
    )
    rows = []
    lines = []
    for r in results:
        if r["error"] or "seconds" not in r:
            rows.append((r["name"], "ERROR", *[""] * (len(headers) - 2)))
            lines.append(f"{r['name']}: {r['error']}")
            continue
        seconds = float(r["seconds"]) or 1e-9
        rps = r["requests"] / seconds
        rec_s = r["succeeded"] / seconds
        r.update(rps=rps, records_per_s=rec_s, share=rec_s / CEILING_RECORDS_PER_S)
        r["share_left"] = rps / LEFT_RPS if r["external"] else None
        r["share_429"] = r["status_429"] / r["requests"] if r["requests"] else 0.0
        rows.append(
            (
                r["name"],
                f"{r['succeeded']:,}",
                f"{seconds:.1f}",
                f"{rec_s:,.0f}",
                f"{rps:.2f}",
                pct(r["share"]),
                pct(r["share_left"]),
                r["status_429"],
                pct(r["share_429"]),
                r["fake"].get("max_in_window", "?"),
                f"{r['peak_rss_mib']:.1f}",
            )
        )
    out = [c.table(headers, rows), ""]
    out.append(
        f"ceiling: {RATE_LIMIT} requests / {INTERVAL_S:g} s x {BATCH} records = "
        f"{CEILING_RECORDS_PER_S:,.0f} records/s; what is left beside {EXTERNAL_LOAD} requests "
        f"of another integration: {LEFT_RPS:.1f} requests/s; latency {LATENCY_MS[0]}-"
        f"{LATENCY_MS[1]} ms"
    )
    by = {r["name"]: r for r in results if "share" in r}
    if "a" in by:
        a = by["a"]
        ok = a["share"] >= TARGET_SHARE_ALONE and a["status_429"] == 0
        out.append(
            f"target (a) bulkops >= {TARGET_SHARE_ALONE:.0%} of the ceiling with zero 429s: "
            f"{pct(a['share'])}, {a['status_429']} 429s -> {'met' if ok else 'MISSED'} "
            f"(learned ceiling {a.get('learned_ceiling')}, final limit {a.get('final_limit')})"
        )
    if "c" in by:
        r = by["c"]
        ok = r["share_429"] <= TARGET_429_SHARE_SHARED and r["share_left"] >= TARGET_SHARE_OF_LEFT
        out.append(
            f"target (c) <= {TARGET_429_SHARE_SHARED:.0%} of requests 429'd and >= "
            f"{TARGET_SHARE_OF_LEFT:.0%} of what is left: {pct(r['share_429'])} 429'd, "
            f"{pct(r['share_left'])} of what is left -> {'met' if ok else 'MISSED'} "
            f"(others estimated {r.get('others_estimate')} per window, final limit "
            f"{r.get('final_limit')})"
        )
    if "a" in by and "b" in by and by["b"]["records_per_s"]:
        out.append(
            f"bulkops / official client: {by['a']['records_per_s'] / by['b']['records_per_s']:.2f}x"
            " records/s"
        )
    for r in results:
        if r.get("errors"):
            out.append(f"{r['name']}: client errors {r['errors']}")
        if r.get("stop"):
            out.append(f"{r['name']}: bulkops stopped: {r['stop']}")
        if r.get("failed"):
            out.append(f"{r['name']}: {r['failed']:,} records failed")
        if r["kind"] == "bulkops" and r.get("fake") and r["fake_429"] != r["status_429"]:
            out.append(f"{r['name']}: 429s counted by the fake: {r['fake_429']}")
    out += [*lines, c.machine_line()]
    return "\n".join(out)


def run_driver(args: argparse.Namespace) -> int:
    if args.seconds < 5:
        raise SystemExit("--seconds must be >= 5")
    rows_alone = int(args.seconds * CEILING_RECORDS_PER_S)
    rows_shared = int(args.seconds * LEFT_RPS * BATCH)
    results = []
    with tempfile.TemporaryDirectory(prefix="bulkops-ceiling-") as tmp:
        work = Path(tmp)
        alone, shared = work / "alone" / "tickets.csv", work / "shared" / "tickets.csv"
        for path, rows in ((alone, rows_alone), (shared, rows_shared)):
            path.parent.mkdir()
            c.write_tickets_csv(path, rows)
        wanted = set(args.scenarios.split(","))
        if "a" in wanted:
            results.append(scenario("a", "bulkops", alone, rows_alone, 0, args))
        if "b" in wanted:
            results.append(scenario("b", "official", alone, rows_alone, 0, args))
        if "c" in wanted:
            results.append(scenario("c", "bulkops", shared, rows_shared, EXTERNAL_LOAD, args))
    print(
        "a = bulkops alone; b = hubspot-api-client alone (1 thread, urllib3 Retry); "
        "c = bulkops beside another integration using 30% of the window"
    )
    print(summary(results))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help="length of each scenario (default %(default)s)",
    )
    p.add_argument(
        "--cli",
        action="store_true",
        help="instead: time `bulkops run create` of --cli-rows rows as a process, from its "
        "start to its exit, --repeat times",
    )
    p.add_argument("--cli-rows", type=int, default=40_000, help="(default %(default)s)")
    p.add_argument("--repeat", type=int, default=3, help="(default %(default)s)")
    p.add_argument("--dump", help="append each run's arrival times (JSON lines) to this file")
    p.add_argument(
        "--scenarios",
        default="a,b,c",
        help="which scenarios to run, e.g. a,c (default %(default)s)",
    )
    # Internal: the fake server process and the measuring children.
    p.add_argument("--fake", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--external-load", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--child", choices=["bulkops", "official"], help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.fake:
        return run_fake(args.external_load)
    if args.child == "bulkops":
        return child_bulkops(args)
    if args.child == "official":
        return child_official(args)
    if args.cli:
        return run_cli(args)
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
