"""Raw throughput of bulkops, end to end, with no rate limit: how many records per second one
bulkops process pushes from a CSV file through the batch create API, and how much memory it
needs as the file grows.

Run from the repository root::

    python benchmarks/bench_throughput.py            # 100k and 1M rows, journal on and off
    python benchmarks/bench_throughput.py --rows 20000 --journal off --repeat 1

For every size a ticket CSV is written once to a temporary folder (not timed). Every run gets a
fresh fake HubSpot in its own process (``python -m bulkops fake-server --rate-limit 0
--daily-limit 0``, no latency), so its store never carries records from one run into the next,
and a fresh child process that calls ``bulkops.run_job`` (create tickets, ``rate_limit=0``,
``id_property="external_id"``, journal on or off) on the file and reports rows, seconds (wall
time of ``run_job``: reading, pre-flight schema load, sending, result files, journal), records/s,
requests, 429s, succeeded, failed and its own peak RSS (``ru_maxrss``). One child per run keeps
the peaks of different configurations apart. The fake and the bulkops child share the machine's
cores; on 2 cores each gets about one.

Each configuration runs ``--repeat`` times (default 3; runs of one configuration vary by 10-25%
on a small VM): the table shows the median seconds and records/s, the slowest and fastest run,
and the highest peak RSS of the runs.

Targets printed beside the figures: 100,000 records/s; peak RSS at the largest size within 10%
of the smallest (memory bounded by ``max_outstanding``, not by the file). There is no rate limit
here, so there is no ceiling to take a share of; 429s must be 0.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common as c
import orjson

DEFAULT_ROWS = (100_000, 1_000_000)
JOURNAL_MODES = {"both": (True, False), "on": (True,), "off": (False,)}
DEFAULT_REPEAT = 3
TARGET_RECORDS_PER_S = 100_000
TARGET_RSS_GROWTH = 0.10  # largest vs smallest size
# A run is killed after FIXED + rows / FLOOR seconds: generous, but bounded.
CHILD_TIMEOUT_FIXED_S = 60.0
CHILD_TIMEOUT_FLOOR_RECORDS_PER_S = 2_000
FAKE_CMD = c.UNTHROTTLED_FAKE_ARGS


def child_timeout(rows: int) -> float:
    return CHILD_TIMEOUT_FIXED_S + rows / CHILD_TIMEOUT_FLOOR_RECORDS_PER_S


# -- the measuring child -----------------------------------------------------------------------


def run_child(args: argparse.Namespace) -> int:
    """Runs in its own process: one bulkops job, one JSON line out."""
    import anyio

    import bulkops

    config = bulkops.JobConfig(
        operation=bulkops.Operation.CREATE,
        rate_limit=0,
        base_url=args.url,
        token=bulkops.Secret(c.FAKE_TOKEN),
        out_dir=Path(args.out),
        journal=args.journal == "on",
        id_property="external_id",
        concurrency=None,
    )

    async def job() -> bulkops.JobReport:
        with anyio.fail_after(child_timeout(args.rows)):
            return await bulkops.run_job(config, args.csv)

    started, cpu_before = c.now(), c.cpu_seconds()
    report = anyio.run(job)
    seconds, cpu = c.now() - started, c.cpu_seconds() - cpu_before
    # Read back from report.json (the documented output), not the report object, so this
    # child measures older versions of bulkops too.
    data = orjson.loads((Path(args.out) / "report.json").read_bytes())
    throttled = data["rate_limit"]["429_by_policy"]
    c.emit_result(
        {
            "rows": data["rows"]["read"],
            "journal": args.journal,
            "seconds": round(seconds, 3),
            "records_per_s": round(report.succeeded / seconds, 1),
            "cpu_us_per_record": round(1e6 * cpu / max(1, data["rows"]["read"]), 2),
            "requests": data["requests"]["total"],
            "status_429": sum(int(v) for v in throttled.values()),
            "peak_rss_mib": round(c.peak_rss_mib(), 1),
            "succeeded": report.succeeded,
            "failed": report.failed,
            "engine_records_per_s": data["records_per_s"],
            "by_status": data["requests"]["by_status"],
            "stop": data["stop"],
        }
    )
    return 0


# -- the driver --------------------------------------------------------------------------------


def measure(csv_path: Path, rows: int, journal: bool, work: Path) -> dict[str, Any]:
    mode = "on" if journal else "off"
    out = work / f"out-{rows}-{mode}"
    with c.fake_process(c.python_cmd(*FAKE_CMD)) as (_, url):
        print(f"  {rows:,} rows, journal {mode} -> {url}", file=sys.stderr, flush=True)
        result = c.run_child(
            c.python_cmd(
                str(Path(__file__).resolve()),
                "--child",
                "--csv",
                str(csv_path),
                "--url",
                url,
                "--journal",
                mode,
                "--out",
                str(out),
                "--rows",
                str(rows),
            ),
            timeout=child_timeout(rows) + 30,
        )
    shutil.rmtree(out, ignore_errors=True)  # a 1M journal is hundreds of MB
    if result["succeeded"] != rows or result["failed"] or result["stop"]:
        raise SystemExit(
            f"FAILED: {rows:,} rows, journal {mode}: succeeded {result['succeeded']:,}, "
            f"failed {result['failed']:,}, stop {result['stop']}, "
            f"statuses {result['by_status']}"
        )
    print(
        f"    {result['seconds']:.2f} s, {result['records_per_s']:,.0f} records/s, "
        f"peak RSS {result['peak_rss_mib']:.1f} MiB",
        file=sys.stderr,
        flush=True,
    )
    return result


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's runs: medians of time and rate, the highest peak RSS."""
    rates = [r["records_per_s"] for r in runs]
    return {
        "rows": runs[0]["rows"],
        "journal": runs[0]["journal"],
        "runs": len(runs),
        "seconds": statistics.median(r["seconds"] for r in runs),
        "records_per_s": statistics.median(rates),
        "min_records_per_s": min(rates),
        "max_records_per_s": max(rates),
        "requests": max(r["requests"] for r in runs),
        "status_429": sum(r["status_429"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "cpu_us_per_record": statistics.median(r["cpu_us_per_record"] for r in runs),
    }


def summary(results: list[dict[str, Any]], sizes: list[int], modes: tuple[bool, ...]) -> str:
    headers = (
        "rows",
        "journal",
        "runs",
        "seconds",
        "records/s",
        "records/s min-max",
        "requests",
        "429s",
        "CPU us/record",
        "peak RSS MiB",
    )
    rows = [
        (
            f"{r['rows']:,}",
            r["journal"],
            r["runs"],
            f"{r['seconds']:.2f}",
            f"{r['records_per_s']:,.0f}",
            f"{r['min_records_per_s']:,.0f}-{r['max_records_per_s']:,.0f}",
            f"{r['requests']:,}",
            r["status_429"],
            f"{r['cpu_us_per_record']:.1f}",
            f"{r['peak_rss_mib']:.1f}",
        )
        for r in results
    ]
    lines = [c.table(headers, rows), ""]
    lines.append(
        "seconds, records/s, CPU: median of the runs; peak RSS: the highest of the runs; "
        "CPU us/record: the bulkops process's user+system CPU over the job / rows (the fake's "
        "CPU is not counted)"
    )
    lines.append("rate limit: none (fake --rate-limit 0, bulkops rate_limit=0): no ceiling share")
    by = {(r["rows"], r["journal"]): r for r in results}
    best = max(r["records_per_s"] for r in results)
    lines.append(
        f"throughput: best median {best:,.0f} records/s = {best / TARGET_RECORDS_PER_S:.1%} of "
        f"the {TARGET_RECORDS_PER_S:,} records/s target"
    )
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        for journal in modes:
            mode = "on" if journal else "off"
            a, b = by[(large, mode)]["peak_rss_mib"], by[(small, mode)]["peak_rss_mib"]
            ok = "met" if a <= b * (1 + TARGET_RSS_GROWTH) else "MISSED"
            lines.append(
                f"peak RSS {large:,} vs {small:,} rows, journal {mode}: {a:.1f} / {b:.1f} MiB "
                f"= {ratio(a, b)} (target <= {1 + TARGET_RSS_GROWTH:.2f}: {ok})"
            )
    if len(modes) == 2:
        for size in sizes:
            on, off = by[(size, "on")]["records_per_s"], by[(size, "off")]["records_per_s"]
            lines.append(
                f"journal on / off throughput, {size:,} rows: {on:,.0f} / {off:,.0f} records/s "
                f"= {ratio(on, off)}"
            )
    total_429 = sum(r["status_429"] for r in results)
    lines.append(f"429s: {total_429} (target 0)")
    lines.append(c.machine_line())
    return "\n".join(lines)


def run_driver(args: argparse.Namespace) -> int:
    sizes = [int(s.replace("_", "")) for s in args.rows.split(",") if s.strip()]
    if not sizes or any(n < 1 for n in sizes):
        raise SystemExit("--rows: give positive row counts, e.g. 100000,1000000")
    modes = JOURNAL_MODES[args.journal]
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bulkops-bench-") as tmp:
        work = Path(tmp)
        for rows in sizes:
            csv_path = work / f"tickets-{rows}.csv"
            print(f"writing {rows:,} tickets to {csv_path}", file=sys.stderr, flush=True)
            c.write_tickets_csv(csv_path, rows)
            for journal in modes:
                runs = [measure(csv_path, rows, journal, work) for _ in range(args.repeat)]
                results.append(aggregate(runs))
            csv_path.unlink()
    print(summary(results, sizes, modes))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--rows",
        default=",".join(str(n) for n in DEFAULT_ROWS),
        help="comma-separated sizes (default %(default)s)",
    )
    p.add_argument("--journal", choices=sorted(JOURNAL_MODES), default="both")
    p.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        help="runs per configuration, each with a fresh fake and child (default %(default)s)",
    )
    # Internal: the measuring child.
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.rows = int(args.rows)
        return run_child(args)
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
