"""CPU per record: a default ``bulkops run create`` against a minimal client doing the same
creates on the same server, in one run.

Run from the repository root::

    python benchmarks/bench_cpu.py                    # 200,000 rows, 3 rounds
    python benchmarks/bench_cpu.py --rows 50000 --rounds 5
    python benchmarks/bench_cpu.py --instructions     # counted by valgrind, 20,000 rows

A ticket CSV of ``--rows`` rows is written once (not timed). Each round runs both clients,
alternating which goes first (ABBA...), each against a fresh fake HubSpot in its own process
(``python -m bulkops fake-server --rate-limit 0 --daily-limit 0``, no latency; it answers a
create with full records: every property sent plus hs_object_id, hs_ticket_id, createdate,
hs_lastmodifieddate and hs_pipeline, createdAt, updatedAt, archived, the trace id echoed, results
shuffled), so no store grows from one run into the next.

- **bulkops**: exactly the command a user types, in a child process::

      HUBSPOT_ACCESS_TOKEN=... python -m bulkops run create --input FILE --base-url URL \\
          --out DIR --rate-limit 0

  i.e. tickets, API 2026-09, journal and pre-flight on, concurrency derived (16 without a rate
  limit), progress as when stderr is not a terminal. ``--rate-limit 0`` is the one flag a
  default job lacks; it removes the pacing, nothing else.
- **minimal**: a child process running :func:`minimal_client` below, as plain as it can be while
  still doing the same job honestly: ``csv.reader``, one ``aiohttp.ClientSession`` with a
  connector limit, the same number of concurrent workers as bulkops (16), batches of 100 with an
  ``objectWriteTraceId`` (the row number) per input, orjson bodies and answers, results matched
  by trace id, errors of a 207 and non-2xx answers written as failures, one orjson line per
  record to ``succeeded.jsonl`` / ``failed.jsonl``. No retries, no journal, no pre-flight, no
  progress display.

Both children are measured from outside with ``os.wait4``: user + system CPU of the whole
process (Python start-up, imports and the schema request included; nothing is subtracted)
divided by the rows, the process's wall time, and its peak RSS. The fake's CPU is not counted.
Start-up alone (a process that only imports what the client imports) is printed beside it, to
show how little of the figure it is at this size. The parent checks each run by counting the
lines of its result files; a run that did not write every row as succeeded stops the benchmark.

``--instructions`` counts instead of timing: each client twice (20,000 and 60,000 rows) under
``valgrind --tool=callgrind``, so the figures are the same run after run however busy the
machine is (CPU time on a shared 2-core VM varies by 10-25% between runs of the same code).
Two figures per client: per record, the 20,000-row job less start-up (the job's own fixed
costs, the schema read and the journal's set-up, spread over its rows), and per extra record,
the difference between the two jobs over the 40,000 rows more: what one more record costs.

Printed: per client the median CPU us/record over the rounds (and its spread), start-up CPU,
median records/s (rows / process wall time), requests, 429s (must be 0) and the highest peak
RSS; then the ratio bulkops / minimal of the medians against the target of 1.5x.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common as c

DEFAULT_ROWS = 200_000
DEFAULT_ROUNDS = 3
TARGET_RATIO = 1.5
BATCH = 100
# bulkops' worker pool without a rate limit (bulkops/_worker.py, WorkerPool.target: cap or 16).
CONCURRENCY = 16
API_VERSION = "2026-09"  # bulkops' default; the minimal client posts to the same path
# A run is killed after FIXED + rows / FLOOR seconds: generous, but bounded.
CHILD_TIMEOUT_FIXED_S = 60.0
CHILD_TIMEOUT_FLOOR_RECORDS_PER_S = 2_000
STARTUP_SAMPLES = 3
CLIENTS = ("bulkops", "minimal")
# What each client's process imports before it does anything: start-up alone.
STARTUP_CODE = {
    "bulkops": "import bulkops._cli",
    "minimal": "import argparse, asyncio, csv, _common, aiohttp, orjson",
}


def child_timeout(rows: int) -> float:
    return CHILD_TIMEOUT_FIXED_S + rows / CHILD_TIMEOUT_FLOOR_RECORDS_PER_S


# -- the minimal client (its own process) ------------------------------------------------------


async def minimal_client(
    csv_path: Path, base_url: str, out_dir: Path, token: str
) -> dict[str, Any]:
    """Create every row of ``csv_path`` as a ticket; one result line per row. Returns counts."""
    import asyncio
    import csv
    from collections import Counter

    import aiohttp
    import orjson

    url = f"{base_url}/crm/objects/{API_VERSION}/tickets/batch/create"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    statuses: Counter[int] = Counter()
    counts = {"rows": 0, "succeeded": 0, "failed": 0}
    with (
        csv_path.open(newline="", encoding="utf-8") as f,
        (out_dir / "succeeded.jsonl").open("wb") as ok_file,
        (out_dir / "failed.jsonl").open("wb") as failed_file,
    ):
        reader = csv.reader(f)
        columns = next(reader)

        async def worker(session: aiohttp.ClientSession) -> None:
            while True:
                # Reading needs no lock: nothing awaits between taking rows and numbering them.
                inputs: list[dict[str, Any]] = []
                rows: dict[str, int] = {}  # trace id -> row number
                for values in reader:
                    counts["rows"] += 1
                    trace = str(counts["rows"])
                    rows[trace] = counts["rows"]
                    props = {k: v for k, v in zip(columns, values, strict=True) if v}
                    inputs.append({"properties": props, "objectWriteTraceId": trace})
                    if len(inputs) == BATCH:
                        break
                if not inputs:
                    return
                ok: list[bytes] = []
                failed: list[bytes] = []
                try:
                    async with session.post(url, data=orjson.dumps({"inputs": inputs})) as resp:
                        status = resp.status
                        body = await resp.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, body = 0, repr(exc).encode()
                statuses[status] += 1
                if 200 <= status < 300:
                    answer = orjson.loads(body)
                    for result in answer.get("results", ()):
                        row = rows.pop(str(result.get("objectWriteTraceId")), None)
                        if row is not None:
                            ok.append(orjson.dumps({"row": row, "id": result["id"], "new": True}))
                    for error in answer.get("errors", ()):
                        for trace in (error.get("context") or {}).get("objectWriteTraceId", ()):
                            row = rows.pop(str(trace), None)
                            if row is not None:
                                failed.append(
                                    orjson.dumps(
                                        {
                                            "row": row,
                                            "category": error.get("category"),
                                            "message": error.get("message"),
                                        }
                                    )
                                )
                    reason = f"no result for the input ({status})"
                else:
                    reason = f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
                # Whatever is left got no answer of its own (or the whole request failed).
                failed.extend(
                    orjson.dumps({"row": row, "message": reason}) for row in rows.values()
                )
                if ok:
                    ok_file.write(b"\n".join(ok) + b"\n")
                if failed:
                    failed_file.write(b"\n".join(failed) + b"\n")
                counts["succeeded"] += len(ok)
                counts["failed"] += len(failed)

        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
            connector=connector, headers=headers, timeout=timeout
        ) as session:
            await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return {
        **counts,
        "requests": sum(statuses.values()),
        "by_status": {str(k): v for k, v in sorted(statuses.items())},
        "status_429": statuses[429],
    }


def run_minimal_child(args: argparse.Namespace) -> int:
    import asyncio
    import os

    started = c.now()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    counts = asyncio.run(
        minimal_client(Path(args.csv), args.url, Path(args.out), os.environ[c.TOKEN_ENV])
    )
    seconds = c.now() - started
    c.emit_result({**counts, "seconds": round(seconds, 3)})
    return 0


# -- the driver --------------------------------------------------------------------------------


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def bulkops_cmd(csv_path: Path, url: str, out: Path) -> list[str]:
    return c.python_cmd("-m", "bulkops", *c.default_create_args(csv_path, url, out))


def minimal_cmd(csv_path: Path, url: str, out: Path) -> list[str]:
    return c.python_cmd(
        str(Path(__file__).resolve()),
        "--child-minimal",
        "--csv",
        str(csv_path),
        "--url",
        url,
        "--out",
        str(out),
    )


def fail(client: str, message: str, m: c.Measured | None = None) -> SystemExit:
    tail = ""
    if m is not None:
        tail = f"\nexit {m.returncode}; stderr (last 2000 chars):\n{m.stderr[-2000:]}"
    return SystemExit(f"FAILED ({client}): {message}{tail}")


def measure(client: str, csv_path: Path, rows: int, work: Path) -> dict[str, Any]:
    out = work / f"out-{client}"
    shutil.rmtree(out, ignore_errors=True)
    make_cmd = bulkops_cmd if client == "bulkops" else minimal_cmd
    with c.fake_process(c.python_cmd(*c.UNTHROTTLED_FAKE_ARGS)) as (_, url):
        m = c.run_measured(
            make_cmd(csv_path, url, out), timeout=child_timeout(rows), env=c.bulkops_env()
        )
    if m.returncode != 0:
        raise fail(client, "non-zero exit", m)
    if client == "bulkops":
        import orjson

        data = orjson.loads((out / "report.json").read_bytes())
        requests = int(data["requests"]["total"])
        status_429 = sum(int(v) for v in data["rate_limit"]["429_by_policy"].values())
        by_status = data["requests"]["by_status"]
        job_seconds = float(data["duration_s"])
    else:
        result = m.result()
        if result is None:
            raise fail(client, "no result line", m)
        requests = int(result["requests"])
        status_429 = int(result["status_429"])
        by_status = result["by_status"]
        job_seconds = float(result["seconds"])
    succeeded = count_lines(out / "succeeded.jsonl")
    failed = count_lines(out / "failed.jsonl")
    shutil.rmtree(out, ignore_errors=True)
    if succeeded != rows or failed:
        raise fail(
            client, f"succeeded {succeeded:,}, failed {failed:,} of {rows:,}; {by_status}", m
        )
    run = {
        "client": client,
        "cpu_us_per_record": 1e6 * m.cpu_s / rows,
        "user_s": m.user_s,
        "sys_s": m.sys_s,
        "wall_s": m.wall_s,
        "records_per_s": rows / m.wall_s,
        "job_records_per_s": rows / job_seconds,
        "requests": requests,
        "status_429": status_429,
        "peak_rss_mib": m.peak_rss_mib,
    }
    print(
        f"  {client:8} {run['cpu_us_per_record']:6.1f} us/record CPU "
        f"(user {m.user_s:.2f} s, sys {m.sys_s:.2f} s), {m.wall_s:.2f} s, "
        f"{run['records_per_s']:,.0f} records/s, peak RSS {m.peak_rss_mib:.1f} MiB",
        file=sys.stderr,
        flush=True,
    )
    return run


def startup_cpu_ms(client: str) -> float:
    """Median CPU of a process that only imports what the client imports."""
    env = c.bulkops_env()
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent)  # for `import _common`
    samples = []
    for _ in range(STARTUP_SAMPLES):
        m = c.run_measured(c.python_cmd("-c", STARTUP_CODE[client]), timeout=60, env=env)
        if m.returncode != 0:
            raise fail(client, "start-up probe failed", m)
        samples.append(1e3 * m.cpu_s)
    return statistics.median(samples)


def summary(runs: list[dict[str, Any]], startup: dict[str, float], rows: int) -> str:
    headers = (
        "client",
        "runs",
        "CPU us/record",
        "min-max",
        "start-up CPU ms",
        "records/s",
        "job records/s",
        "requests",
        "429s",
        "peak RSS MiB",
    )
    med: dict[str, float] = {}
    table_rows = []
    for client in CLIENTS:
        mine = [r for r in runs if r["client"] == client]
        cpu = [r["cpu_us_per_record"] for r in mine]
        med[client] = statistics.median(cpu)
        table_rows.append(
            (
                client,
                len(mine),
                f"{med[client]:.1f}",
                f"{min(cpu):.1f}-{max(cpu):.1f}",
                f"{startup[client]:.0f}",
                f"{statistics.median(r['records_per_s'] for r in mine):,.0f}",
                f"{statistics.median(r['job_records_per_s'] for r in mine):,.0f}",
                f"{max(r['requests'] for r in mine):,}",
                sum(r["status_429"] for r in mine),
                f"{max(r['peak_rss_mib'] for r in mine):.1f}",
            )
        )
    ratio = med["bulkops"] / med["minimal"]
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    total_429 = sum(r["status_429"] for r in runs)
    lines = [c.table(headers, table_rows), ""]
    lines.append(
        f"rows: {rows:,} tickets per run; every run against a fresh fake (no rate limit, no "
        "latency, full records in the answers) in its own process"
    )
    lines.append(
        "CPU us/record: user+system CPU of the whole client process (os.wait4; Python start-up "
        "included, nothing subtracted) / rows, median of the runs; the fake's CPU is not counted"
    )
    lines.append(
        "start-up CPU: a process that only imports what the client imports; at this size it is "
        + ", ".join(f"{1e3 * startup[k] / rows:.2f} us/record of {k}'s figure" for k in CLIENTS)
    )
    lines.append(
        "records/s: rows / the process's wall time (start to exit); job records/s: rows / the "
        "client's own job time (bulkops: report.json duration_s)"
    )
    lines.append("peak RSS: the highest ru_maxrss of the client's runs")
    lines.append(
        f"CPU per record, bulkops / minimal: {med['bulkops']:.1f} / {med['minimal']:.1f} us = "
        f"{ratio:.2f}x (target <= {TARGET_RATIO:.1f}x: {verdict})"
    )
    lines.append(f"429s: {total_429} (target 0)")
    lines.append(c.machine_line())
    return "\n".join(lines)


def run_driver(args: argparse.Namespace) -> int:
    rows = int(str(args.rows).replace("_", ""))
    if rows < 1:
        raise SystemExit("--rows must be >= 1")
    if args.rounds < 1:
        raise SystemExit("--rounds must be >= 1")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bulkops-bench-cpu-") as tmp:
        work = Path(tmp)
        csv_path = work / f"tickets-{rows}.csv"
        print(f"writing {rows:,} tickets to {csv_path}", file=sys.stderr, flush=True)
        c.write_tickets_csv(csv_path, rows)
        startup = {client: startup_cpu_ms(client) for client in CLIENTS}
        for n in range(args.rounds):
            order = CLIENTS if n % 2 == 0 else CLIENTS[::-1]
            print(f"round {n + 1}/{args.rounds}", file=sys.stderr, flush=True)
            runs.extend(measure(client, csv_path, rows, work) for client in order)
    print(summary(runs, startup, rows))
    return 0


# -- instructions: the same comparison, counted by valgrind ----------------------------------
INSTRUCTION_ROWS = 20_000  # valgrind runs Python ~50x slower: a smaller job, same per-record cost
MARGINAL_FACTOR = 3  # the second job, 3x the rows: the difference is the cost of records alone
VALGRIND_TIMEOUT_S = 1800.0


def instructions(cmd: list[str], env: dict[str, str]) -> int:
    """Instructions the process executes (every thread), counted by callgrind: unlike CPU
    time, the same code gives the same count run after run, whatever else the machine does."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
        env=env,
        cwd=c.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=VALGRIND_TIMEOUT_S,
        check=False,
    )
    found = re.search(r"refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"FAILED under valgrind: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def run_instructions(args: argparse.Namespace) -> int:
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    rows = int(args.rows) if args.rows != str(DEFAULT_ROWS) else INSTRUCTION_ROWS
    sizes = (rows, rows * MARGINAL_FACTOR)
    env = c.bulkops_env()
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent)  # for `import _common`
    counts: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="bulkops-bench-cpu-") as tmp:
        work = Path(tmp)
        for size in sizes:
            c.write_tickets_csv(work / f"tickets-{size}.csv", size)
        for client in CLIENTS:
            print(
                f"{client}: start-up, then {' and '.join(f'{n:,}' for n in sizes)} rows "
                "under valgrind",
                file=sys.stderr,
            )
            counts[client] = {"start": instructions(c.python_cmd("-c", STARTUP_CODE[client]), env)}
            for size in sizes:
                with c.fake_process(c.python_cmd(*c.UNTHROTTLED_FAKE_ARGS)) as (_, url):
                    out = work / f"out-{client}-{size}"
                    make = bulkops_cmd if client == "bulkops" else minimal_cmd
                    counts[client][str(size)] = instructions(
                        make(work / f"tickets-{size}.csv", url, out), env
                    )
                if count_lines(out / "succeeded.jsonl") != size:
                    raise SystemExit(f"FAILED ({client}): not every row succeeded")
    small, large = (str(n) for n in sizes)
    per = {k: (v[small] - v["start"]) / rows for k, v in counts.items()}
    extra = {k: (v[large] - v[small]) / (sizes[1] - sizes[0]) for k, v in counts.items()}
    rows_out = [
        (
            client,
            f"{counts[client]['start'] / 1e9:.2f} G",
            f"{counts[client][small] / 1e9:.2f} G",
            f"{counts[client][large] / 1e9:.2f} G",
            f"{per[client] / 1e3:,.1f} k",
            f"{extra[client] / 1e3:,.1f} k",
        )
        for client in CLIENTS
    ]
    headers = (
        "client",
        "start-up",
        f"{sizes[0]:,} rows",
        f"{sizes[1]:,} rows",
        "per record",
        "per extra record",
    )
    print(c.table(headers, rows_out))
    print(
        f"each client under valgrind --tool=callgrind against a fresh fake (its own process, not "
        f"counted). per record: ({sizes[0]:,} rows - start-up) / rows, so the job's fixed costs "
        f"(schema read, journal set-up, lazy imports) count in it; per extra record: the "
        f"difference between the two jobs over the {sizes[1] - sizes[0]:,} rows more, the cost "
        "of one more record alone"
    )
    for name, figures in (("per record", per), ("per extra record", extra)):
        ratio = figures["bulkops"] / figures["minimal"]
        print(f"instructions {name}, bulkops / minimal: {ratio:.2f}x (target <= {TARGET_RATIO}x)")
    print(c.machine_line())
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions with valgrind instead of timing (one run each, "
        f"{INSTRUCTION_ROWS:,} rows unless --rows): the same figure on a busy machine",
    )
    p.add_argument(
        "--rows", default=str(DEFAULT_ROWS), help="tickets per run (default %(default)s)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="runs of each client, alternating, each with a fresh fake (default %(default)s)",
    )
    # Internal: the minimal client's process.
    p.add_argument("--child-minimal", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_minimal:
        return run_minimal_child(args)
    if args.instructions:
        return run_instructions(args)
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
