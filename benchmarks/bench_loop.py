"""The bulkops command on asyncio's event loop and on uvloop (``--loop``), side by side; or,
with ``--side fake``, the fake it runs against on each loop (``fake-server --loop``).

Run from the repository root, with uvloop installed (``pip install -e '.[fast]'``)::

    python benchmarks/bench_loop.py                     # 200,000 rows, 10 rounds
    python benchmarks/bench_loop.py --rows 50000 --rounds 4
    python benchmarks/bench_loop.py --side fake         # the fake's loop; bulkops on auto

A ticket CSV of ``--rows`` rows is written once (not timed). Each round runs the default job
(``bulkops run create --rate-limit 0``: journal and pre-flight on) once with ``--loop asyncio``
and once with ``--loop uvloop``, alternating which goes first, each against a fresh fake in its
own process (``bulkops fake-server --rate-limit 0 --daily-limit 0 --no-store``). The child is
measured from outside (``os.wait4``: user + system CPU and peak RSS of the whole process);
records/s is the job's own duration (report.json). Each run is checked by counting its result
lines. The fake's CPU while it served the job is read from ``/proc/PID/stat``. Printed: each
run, then per loop the median CPU per record of bulkops and of the fake and records/s with their
spread, the peak RSS, 429s, and in how many rounds uvloop used less CPU than asyncio (on the
side whose loop changes).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common as c
import orjson

LOOPS = ("asyncio", "uvloop")
FAKE_CMD = (*c.UNTHROTTLED_FAKE_ARGS, "--no-store")
CHILD_TIMEOUT_S = 300.0


def run_once(csv_path: Path, rows: int, loop: str, out: Path, side: str) -> dict[str, Any]:
    """One job with ``side`` ("bulkops" or "fake") on ``loop``, the other on auto."""
    shutil.rmtree(out, ignore_errors=True)
    choice = ("--loop", loop)
    fake_cmd = c.python_cmd(*FAKE_CMD, *(choice if side == "fake" else ()))
    with c.fake_process(fake_cmd) as (fake, url):
        cmd = c.python_cmd("-m", "bulkops", *c.default_create_args(csv_path, url, out))
        if side == "bulkops":
            cmd = [*cmd, *choice]
        fake_before = c.proc_cpu_s(fake.pid)
        m = c.run_measured(cmd, timeout=CHILD_TIMEOUT_S, env=c.bulkops_env())
        fake_after = c.proc_cpu_s(fake.pid)
    try:
        if m.returncode != 0:
            raise SystemExit(f"FAILED: --loop {loop}: exit {m.returncode}\n{m.stderr[-2000:]}")
        report = orjson.loads((out / "report.json").read_bytes())
        with (out / "succeeded.jsonl").open("rb") as f:
            succeeded = sum(1 for _ in f)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if succeeded != rows:
        raise SystemExit(f"FAILED: --loop {loop}: {succeeded:,} of {rows:,} rows succeeded")
    fake_cpu = c.cpu_us_per_record(fake_before, fake_after, rows)
    result = {
        "loop": loop,
        "records_per_s": rows / float(report["duration_s"]),
        "cpu_us": 1e6 * m.cpu_s / rows,
        # NaN where it could not be read: the medians and comparisons below then say so.
        "fake_cpu_us": math.nan if fake_cpu is None else fake_cpu,
        "peak_rss_mib": m.peak_rss_mib,
        "status_429": sum(int(v) for v in report["rate_limit"]["429_by_policy"].values()),
    }
    print(
        f"  {side} --loop {loop:7}: {result['records_per_s']:,.0f} records/s, "
        f"{result['cpu_us']:.1f} us/record CPU (fake {result['fake_cpu_us']:.1f}), "
        f"peak RSS {m.peak_rss_mib:.1f} MiB, "
        f"429s {result['status_429']}",
        file=sys.stderr,
        flush=True,
    )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument(
        "--side",
        choices=("bulkops", "fake"),
        default="bulkops",
        help="whose loop alternates: the bulkops job's (default) or the fake's; the other "
        "runs on auto (uvloop)",
    )
    args = p.parse_args()
    if importlib.util.find_spec("uvloop") is None:
        raise SystemExit("uvloop is not installed: pip install -e '.[fast]'")
    runs: dict[str, list[dict[str, Any]]] = {loop: [] for loop in LOOPS}
    with tempfile.TemporaryDirectory(prefix="bulkops-bench-") as tmp:
        work = Path(tmp)
        csv_path = work / "tickets.csv"
        c.write_tickets_csv(csv_path, args.rows)
        for n in range(args.rounds):
            print(f"round {n + 1}", file=sys.stderr, flush=True)
            order = LOOPS if n % 2 == 0 else LOOPS[::-1]
            for loop in order:
                runs[loop].append(run_once(csv_path, args.rows, loop, work / "out", args.side))
    rows = []
    for loop in LOOPS:
        rs = runs[loop]
        cpu = [r["cpu_us"] for r in rs]
        fake_cpu = [r["fake_cpu_us"] for r in rs]
        rate = [r["records_per_s"] for r in rs]
        rows.append(
            [
                loop,
                len(rs),
                f"{statistics.median(cpu):.1f}",
                f"{min(cpu):.1f}-{max(cpu):.1f}",
                f"{statistics.median(fake_cpu):.1f}",
                f"{statistics.median(rate):,.0f}",
                f"{min(rate):,.0f}-{max(rate):,.0f}",
                f"{max(r['peak_rss_mib'] for r in rs):.1f}",
                sum(r["status_429"] for r in rs),
            ]
        )
    headers = [f"{args.side}'s loop", "runs", "CPU us/record", "min-max", "fake CPU us/record"]
    print(c.table([*headers, "records/s", "min-max", "peak RSS MiB", "429s"], rows))
    key = "cpu_us" if args.side == "bulkops" else "fake_cpu_us"
    wins = sum(u[key] < a[key] for a, u in zip(runs["asyncio"], runs["uvloop"], strict=True))
    asyncio_cpu = statistics.median(r[key] for r in runs["asyncio"])
    uvloop_cpu = statistics.median(r[key] for r in runs["uvloop"])
    print()
    print(
        f"job: bulkops run create --rate-limit 0 of {args.rows:,} tickets (journal and pre-flight "
        "on), a fresh fake per run (--rate-limit 0 --daily-limit 0 --no-store), rounds alternating"
    )
    print(
        "CPU us/record: user+system CPU of the bulkops process (os.wait4) / rows; fake CPU: "
        "the fake's while it served the job (/proc/PID/stat) / rows; records/s: report.json"
    )
    print(
        f"the {args.side} on uvloop used less CPU than on asyncio in {wins} of {args.rounds} "
        "rounds; median CPU "
        f"{uvloop_cpu:.1f} / {asyncio_cpu:.1f} us = {uvloop_cpu / asyncio_cpu:.2f}x"
    )
    print(c.machine_line())


if __name__ == "__main__":
    main()
