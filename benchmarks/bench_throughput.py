"""Raw throughput and memory of a default ``bulkops run create``, end to end, with no rate
limit: how many records per second one bulkops process pushes from a CSV file through the batch
create API, and whether its peak memory stays flat as the file grows (issue 16: 1M rows within
10% of 100k, 10M within 10% of 1M).

Run from the repository root::

    python benchmarks/bench_throughput.py            # 100k and 1M rows, journal on and off
    python benchmarks/bench_throughput.py --rows 100000,1000000,10000000 --journal on --repeat 1
    python benchmarks/bench_throughput.py --rows 20000 --journal off --repeat 1

For every size a ticket CSV is written once to a temporary folder (not timed; 10M rows are
about 1.2 GB and a minute or two to write) and removed when that size is done; a run's result
folder (results, journal: over 2 GB at 10M) is removed after the run. Every run gets a fresh
fake HubSpot in its own process in its benchmark mode (``python -m bulkops fake-server
--rate-limit 0 --daily-limit 0 --no-store``, no latency): it answers every create exactly as
usual (full records, trace ids echoed, results shuffled) and keeps nothing, so its memory stays
flat and every size meets the same server. Its own peak RSS (VmHWM) is printed too.

The measured child is exactly the command a user types (as in ``bench_cpu.py``)::

    HUBSPOT_ACCESS_TOKEN=... python -m bulkops run create --input FILE --base-url URL \\
        --out DIR --rate-limit 0 [--no-journal] [--id-property P]

tickets, API 2026-09, pre-flight on, concurrency derived (16 without a rate limit), progress as
when stderr is not a terminal; ``--rate-limit 0`` only removes the pacing. It is measured from
outside with ``os.wait4`` (user + system CPU and peak RSS of the whole process, start-up
included) and its resident size is sampled every 0.5 s (``/proc/PID/status``), so the table
shows RSS at a quarter, half and the end of the run beside the peak: growth during the run, not
just the peak, is what says whether memory depends on the input. records/s is rows / the job's
own duration (report.json ``duration_s``); the parent checks every run by counting the lines of
``succeeded.jsonl`` and ``failed.jsonl``.

Each configuration runs ``--repeat`` times (default 3; runs of one configuration vary by 10-25%
on a small VM): the table shows the median seconds and records/s, the slowest and fastest run,
and the median peak RSS with its spread. Runs of one size differ by up to ~10 MiB of peak
RSS (about 57-69 MiB measured on 2026-12-01, flat within each run), so the size comparisons
are of medians: use ``--repeat 3`` for a verdict near the 10% line.

Targets printed beside the figures: 100,000 records/s; peak RSS of each size within 10% of the
next smaller one (memory bounded by ``max_outstanding``, not by the file). There is no rate
limit here, so there is no ceiling to take a share of; 429s must be 0.
"""

from __future__ import annotations

import argparse
import itertools
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
TARGET_RSS_GROWTH = 0.10  # each size vs the next smaller one
# A run is killed after FIXED + rows / FLOOR seconds: 10M rows at the floor are 17 minutes,
# four times what a 40,000 records/s run takes; bounded, and generous on a shared machine.
CHILD_TIMEOUT_FIXED_S = 60.0
CHILD_TIMEOUT_FLOOR_RECORDS_PER_S = 10_000
RSS_EVERY_S = 0.5
# The benchmark mode of the fake: answers as usual, keeps no records (memory flat at 10M rows).
FAKE_CMD = (*c.UNTHROTTLED_FAKE_ARGS, "--no-store")


def child_timeout(rows: int) -> float:
    return CHILD_TIMEOUT_FIXED_S + rows / CHILD_TIMEOUT_FLOOR_RECORDS_PER_S


def bulkops_cmd(
    csv_path: Path,
    url: str,
    out: Path,
    journal: bool,
    id_property: str | None,
    pace: int | None = None,
) -> list[str]:
    cmd = c.python_cmd("-m", "bulkops", *c.default_create_args(csv_path, url, out))
    if not journal:
        cmd.append("--no-journal")
    if id_property:
        cmd += ["--id-property", id_property]
    if pace:
        # The later --rate-limit wins over the default job's "0".
        cmd += pace_args(pace)
    return cmd


def pace_args(pace: int) -> list[str]:
    """bulkops's own pacing at about ``pace`` records/s: full batches of 100 records, per
    10 s window, the headers not followed."""
    return ["--rate-limit", str(max(1, round(pace * 10 / 100))), "--no-adaptive"]


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 20), b""))


def rss_at(samples: tuple[tuple[float, float], ...], share: float) -> float | None:
    """Resident MiB of the last sample at or before ``share`` of the sampled time."""
    if not samples:
        return None
    until = samples[-1][0] * share
    found = samples[0][1]
    for t, rss in samples:
        if t > until:
            break
        found = rss
    return found


def peak_share(samples: tuple[tuple[float, float], ...]) -> float | None:
    """When the highest sample was taken, as a share of the sampled time (the first one)."""
    if not samples:
        return None
    top = max(rss for _, rss in samples)
    return next(t for t, rss in samples if rss == top) / max(samples[-1][0], 1e-9)


# -- one run -----------------------------------------------------------------------------------


def measure(
    csv_path: Path,
    rows: int,
    journal: bool,
    work: Path,
    id_property: str | None,
    pace: int | None = None,
) -> dict[str, Any]:
    mode = "on" if journal else "off"
    out = work / f"out-{rows}-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    with c.fake_process(c.python_cmd(*FAKE_CMD)) as (fake, url):
        print(f"  {rows:,} rows, journal {mode} -> {url}", file=sys.stderr, flush=True)
        fake_cpu_before = c.proc_cpu_s(fake.pid)
        m = c.run_measured(
            bulkops_cmd(csv_path, url, out, journal, id_property, pace),
            timeout=child_timeout(rows),
            env=c.bulkops_env(),
            rss_every_s=RSS_EVERY_S,
        )
        fake_peak = c.proc_status_mib(fake.pid, "VmHWM")
        fake_cpu_after = c.proc_cpu_s(fake.pid)
    try:
        if m.returncode != 0:
            raise fail(rows, mode, f"exit {m.returncode}", m)
        data = orjson.loads((out / "report.json").read_bytes())
        succeeded = count_lines(out / "succeeded.jsonl")
        failed = count_lines(out / "failed.jsonl")
    finally:
        shutil.rmtree(out, ignore_errors=True)  # a 10M journal is gigabytes
    if succeeded != rows or failed or data["stop"]:
        raise fail(
            rows,
            mode,
            f"succeeded {succeeded:,}, failed {failed:,}, stop {data['stop']}, "
            f"statuses {data['requests']['by_status']}",
            m,
        )
    seconds = float(data["duration_s"])
    samples = m.rss_samples
    result: dict[str, Any] = {
        "rows": rows,
        "journal": mode,
        "seconds": seconds,
        "wall_s": m.wall_s,
        "records_per_s": rows / seconds,
        "cpu_us_per_record": 1e6 * m.cpu_s / rows,
        "requests": int(data["requests"]["total"]),
        "status_429": sum(int(v) for v in data["rate_limit"]["429_by_policy"].values()),
        "peak_rss_mib": m.peak_rss_mib,
        "rss_quarter_mib": rss_at(samples, 0.25),
        "rss_half_mib": rss_at(samples, 0.5),
        "rss_end_mib": rss_at(samples, 1.0),
        "peak_at": peak_share(samples),
        "fake_peak_rss_mib": fake_peak,
        # The fake shares the 2 cores: its CPU (answering this job, start-up not included)
        # shows how much of the machine is left for bulkops.
        "fake_cpu_us_per_record": c.cpu_us_per_record(fake_cpu_before, fake_cpu_after, rows),
    }
    print(
        f"    {seconds:.2f} s, {result['records_per_s']:,.0f} records/s, "
        f"{result['cpu_us_per_record']:.1f} us/record CPU (fake "
        f"{c.figure(result['fake_cpu_us_per_record'])}), peak RSS {m.peak_rss_mib:.1f} MiB "
        f"(at 1/4 {c.figure(result['rss_quarter_mib'])}, "
        f"1/2 {c.figure(result['rss_half_mib'])}, end {c.figure(result['rss_end_mib'])}; "
        f"highest sample at {share(result['peak_at'])} of the run), "
        f"fake peak {c.figure(fake_peak)} MiB",
        file=sys.stderr,
        flush=True,
    )
    return result


def fail(rows: int, mode: str, message: str, m: c.Measured) -> SystemExit:
    return SystemExit(
        f"FAILED: {rows:,} rows, journal {mode}: {message}\n"
        f"stderr (last 2000 chars):\n{m.stderr[-2000:]}"
    )


def share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else None


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's runs: medians of everything, the spread of rate and peak RSS."""
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
        "cpu_us_per_record": statistics.median(r["cpu_us_per_record"] for r in runs),
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs),
        "min_peak_rss_mib": min(r["peak_rss_mib"] for r in runs),
        "max_peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "rss_quarter_mib": _median(runs, "rss_quarter_mib"),
        "rss_half_mib": _median(runs, "rss_half_mib"),
        "rss_end_mib": _median(runs, "rss_end_mib"),
        "peak_at": _median(runs, "peak_at"),
        "fake_peak_rss_mib": _median(runs, "fake_peak_rss_mib"),
        "fake_cpu_us_per_record": _median(runs, "fake_cpu_us_per_record"),
    }


def summary(
    results: list[dict[str, Any]],
    sizes: list[int],
    modes: tuple[bool, ...],
    id_property: str | None,
    pace: int | None = None,
) -> str:
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
        "fake CPU us/record",
        "peak RSS MiB",
        "peak min-max",
        "RSS 1/4, 1/2, end",
        "highest at",
        "fake peak MiB",
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
            c.figure(r["fake_cpu_us_per_record"]),
            f"{r['peak_rss_mib']:.1f}",
            f"{r['min_peak_rss_mib']:.1f}-{r['max_peak_rss_mib']:.1f}",
            " / ".join(c.figure(r[k]) for k in ("rss_quarter_mib", "rss_half_mib", "rss_end_mib")),
            share(r["peak_at"]),
            c.figure(r["fake_peak_rss_mib"]),
        )
        for r in results
    ]
    lines = [c.table(headers, rows), ""]
    limit = " ".join(pace_args(pace)) if pace else "--rate-limit 0"
    job = f"bulkops run create {limit}" + (f" --id-property {id_property}" if id_property else "")
    lines.append(
        f"job: {job} (tickets, API 2026-09, pre-flight on), one process per run, against a "
        "fresh fake in its own process (--rate-limit 0 --daily-limit 0 --no-store: full "
        "answers, nothing kept)"
    )
    lines.append(
        "seconds, records/s: the job's own duration (report.json), median of the runs; CPU "
        "us/record: user+system CPU of the whole bulkops process (os.wait4, start-up included) "
        "/ rows, median; fake CPU us/record: the fake process's user+system CPU while it "
        "served the job (/proc/PID/stat) / rows, median: the two share the 2 cores"
    )
    lines.append(
        "peak RSS: the bulkops process's ru_maxrss, median of the runs (min-max beside it); "
        f"RSS 1/4, 1/2, end: its resident size sampled every {RSS_EVERY_S} s, at a quarter, "
        "half and the end of the run; highest at: when the highest sample was taken, as a share "
        "of the run; fake peak: the fake process's VmHWM; all medians of the runs"
    )
    if pace:
        lines.append(f"rate limit: bulkops's own, about {pace:,} records/s; the fake has none")
    else:
        lines.append(
            "rate limit: none (fake --rate-limit 0, bulkops --rate-limit 0): no ceiling share"
        )
    by = {(r["rows"], r["journal"]): r for r in results}
    best = max(r["records_per_s"] for r in results)
    if pace:
        lines.append(f"throughput: best median {best:,.0f} records/s, held to about {pace:,}")
    else:
        lines.append(
            f"throughput: best median {best:,.0f} records/s = "
            f"{best / TARGET_RECORDS_PER_S:.1%} of the {TARGET_RECORDS_PER_S:,} records/s target"
        )
    ordered = sorted(set(sizes))
    for journal in modes:
        mode = "on" if journal else "off"
        for small, large in itertools.pairwise(ordered):
            a, b = by[(large, mode)]["peak_rss_mib"], by[(small, mode)]["peak_rss_mib"]
            ok = "met" if a <= b * (1 + TARGET_RSS_GROWTH) else "MISSED"
            lines.append(
                f"peak RSS {large:,} vs {small:,} rows, journal {mode}: {a:.1f} / {b:.1f} MiB "
                f"= {ratio(a, b)} (target <= {1 + TARGET_RSS_GROWTH:.2f}: {ok})"
            )
    if len(modes) == 2:
        for size in ordered:
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
    with tempfile.TemporaryDirectory(prefix="bulkops-bench-", dir=args.tmp) as tmp:
        work = Path(tmp)
        for rows in sizes:
            csv_path = work / f"tickets-{rows}.csv"
            print(f"writing {rows:,} tickets to {csv_path}", file=sys.stderr, flush=True)
            started = c.now()
            c.write_tickets_csv(csv_path, rows)
            print(
                f"  {csv_path.stat().st_size / 2**20:,.0f} MiB in {c.now() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            try:
                for journal in modes:
                    runs = [
                        measure(csv_path, rows, journal, work, args.id_property, args.pace)
                        for _ in range(args.repeat)
                    ]
                    results.append(aggregate(runs))
            finally:
                csv_path.unlink()
    print(summary(results, sizes, modes, args.id_property, args.pace))
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
    p.add_argument(
        "--id-property",
        default=None,
        metavar="P",
        help="pass --id-property P to the job, e.g. external_id (default: none, a default job)",
    )
    p.add_argument(
        "--pace",
        type=int,
        default=None,
        metavar="R",
        help="hold the job to about R records/s (bulkops --rate-limit R/10 per 10 s window, "
        "--no-adaptive): peak RSS at a set speed, to tell memory that follows the speed from "
        "memory that follows the input (default: unthrottled)",
    )
    p.add_argument(
        "--tmp",
        default=None,
        metavar="DIR",
        help="where the CSV and the result folders go (default: the system's temp dir; 10M "
        "rows need about 4 GB there)",
    )
    return run_driver(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
