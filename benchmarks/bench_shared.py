"""Several jobs on one HubSpot account: how much of the account's ceiling they use together,
and whether a job started late gets its fair share at once.

Run from the repository root::

    python benchmarks/bench_shared.py                 # 2 x 20,000 rows per scenario
    python benchmarks/bench_shared.py --rows 8000     # a quicker check

The fake HubSpot (``bench_ceiling.py --fake``, in its own process) allows 190 requests per
rolling 10 s and answers in 150-250 ms: a ceiling of 19 requests/s. Each scenario runs two
``Job`` s in this one process, creating ``--rows`` tickets each in batches of 100 (journal on,
``id_property="external_id"``, no ``rate_limit``: the limit is learned from the headers); the
second job starts ``--stagger`` seconds (5) after the first.

a. ``account``: both jobs share one ``bulkops.Account`` (one limiter, fair turns);
b. ``separate``: each job has its own limiter, as before accounts existed;
c. ``processes``: three processes at once, each a ``Job`` of ``--rows * 2 / 3`` rows with
   ``redis_url`` set, coordinated by a ``redis-server`` this script starts on 127.0.0.1 (a free
   port, a temp dir, no persistence; skipped when the binary is absent);
d. ``processes-alone``: the same three processes without Redis (as before), on request.

Printed per scenario: seconds, the account's requests/s and share of the ceiling (requests of
both jobs / elapsed / 19), 429s, the most requests in any 10 s window (counted by the fake), each
job's share of the requests sent while both ran, the late job's share of the account's requests
in its first 10 s (fair: 50%), and the others-estimate each job ended with (another integration
it believed it saw). Targets: (a) >= 97% of the ceiling, 0 429s, never over 190 per window, the
late job >= 45% in its first window.

Bounded: each scenario is stopped (results kept) after ``--rows / 1900 * 2 + 60`` s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c
import anyio

import bulkops

RATE_LIMIT = 190
INTERVAL_S = 10.0
CEILING_RPS = RATE_LIMIT / INTERVAL_S
BATCH = 100
DEFAULT_ROWS = 20_000
DEFAULT_STAGGER_S = 5.0
SAMPLE_EVERY_S = 0.25
STOP_GRACE_S = 5.0
TARGET_SHARE = 0.97
TARGET_LATE_SHARE = 0.45


def job_config(url: str, out: Path) -> bulkops.JobConfig:
    return bulkops.JobConfig(
        operation=bulkops.Operation.CREATE,
        token=bulkops.Secret(c.FAKE_TOKEN),
        base_url=url,
        id_property="external_id",
        out_dir=out,
    )


class Timeline:
    """Each job's request count, sampled: who sent how much while both ran."""

    def __init__(self, jobs: list[bulkops.Job]) -> None:
        self.jobs = jobs
        self.samples: list[tuple[float, list[int]]] = []

    def sample(self) -> None:
        self.samples.append((time.monotonic(), [j.stats.total_requests for j in self.jobs]))

    def between(self, start: float, end: float) -> list[int]:
        """Requests per job sent in [start, end] (to the nearest sample)."""
        inside = [(t, n) for t, n in self.samples if start <= t <= end]
        if len(inside) < 2:
            return [0 for _ in self.jobs]
        (_, first), (_, last) = inside[0], inside[-1]
        return [b - a for a, b in zip(first, last, strict=True)]


async def scenario(
    name: str, url: str, csvs: list[Path], work: Path, stagger: float
) -> dict[str, Any]:
    account = bulkops.Account(bulkops.Secret(c.FAKE_TOKEN), url) if name == "account" else None
    jobs = [
        bulkops.Job(
            job_config(url, work / f"{name}-{n}"), str(path), grace=STOP_GRACE_S, account=account
        )
        for n, path in enumerate(csvs)
    ]
    timeline = Timeline(jobs)
    started_at: list[float] = [0.0, 0.0]
    ended_at: list[float] = [0.0, 0.0]
    reports: list[bulkops.JobReport | None] = [None, None]
    rows = sum(1 for _ in csvs[0].open()) - 1
    budget = rows / (CEILING_RPS * BATCH) * 2 + 60

    async def run(n: int, delay: float) -> None:
        await anyio.sleep(delay)
        started_at[n] = time.monotonic()
        reports[n] = await jobs[n].run()
        ended_at[n] = time.monotonic()

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while True:
                timeline.sample()
                if time.monotonic() - t0 > budget:
                    for job in jobs:
                        job.stop(message="benchmark time is up")
                await anyio.sleep(SAMPLE_EVERY_S)

        tg.start_soon(watch)
        async with anyio.create_task_group() as runs:
            runs.start_soon(run, 0, 0.0)
            runs.start_soon(run, 1, stagger)
        timeline.sample()
        tg.cancel_scope.cancel()
    elapsed = max(ended_at) - t0
    both = timeline.between(max(started_at), min(ended_at))
    late_window = timeline.between(started_at[1], started_at[1] + INTERVAL_S)
    out: dict[str, Any] = {
        "name": name,
        "seconds": elapsed,
        "requests": [r.requests.total if r else 0 for r in reports],
        "succeeded": [r.rows.succeeded if r else 0 for r in reports],
        "rows": rows,
        "status_429": [sum(r.rate_limit.by_policy_429.values()) if r else 0 for r in reports],
        "others": [r.rate_limit.others_estimate if r else None for r in reports],
        "stops": [r.stop.message if r and r.stop else None for r in reports],
        "overlap_s": min(ended_at) - max(started_at),
        "both": both,
        "late_window": late_window,
    }
    return out


# -- three processes ------------------------------------------------------------------------------

PROCESSES = 3
REDIS_START_TIMEOUT_S = 10.0


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while True:  # a benchmark, not a test: waiting for the port is fine here
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def child(args: argparse.Namespace) -> int:
    """One of the processes: a Job, then its numbers as one line for the parent."""
    config = job_config(args.url, Path(args.out))
    if args.redis_url:
        import dataclasses

        config = dataclasses.replace(config, redis_url=args.redis_url)
    job = bulkops.Job(config, args.csv, grace=STOP_GRACE_S)
    started = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
    report = anyio.run(job.run)
    c.emit_result(
        {
            "started": started,
            "ended": time.monotonic(),
            "requests": report.requests.total,
            "succeeded": report.rows.succeeded,
            "status_429": sum(report.rate_limit.by_policy_429.values()),
            "others": report.rate_limit.others_estimate,
            "stop": report.stop.message if report.stop else None,
        }
    )
    return 0


def processes(
    name: str, url: str, csvs: list[Path], work: Path, redis_url: str | None
) -> dict[str, Any]:
    here = str(Path(__file__).resolve())
    procs = []
    for n, path in enumerate(csvs):
        cmd = c.python_cmd(
            here, "--child", "--url", url, "--csv", str(path), "--out", str(work / f"{name}-{n}")
        )
        if redis_url:
            cmd += ["--redis-url", redis_url]
        procs.append(
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, text=True, env=c.child_env(), cwd=c.REPO_ROOT
            )
        )
    rows = sum(1 for _ in csvs[0].open()) - 1
    budget = rows * len(csvs) / (CEILING_RPS * BATCH) + 90
    results = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=budget)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        line = next((x for x in out.splitlines() if x.startswith(c.RESULT_PREFIX)), None)
        if line is None:
            raise RuntimeError(f"{name}: a process printed no result (exit {proc.returncode})")
        results.append(json.loads(line.removeprefix(c.RESULT_PREFIX)))
    start, end = min(r["started"] for r in results), max(r["ended"] for r in results)
    return {
        "name": name,
        "seconds": end - start,
        "requests": [r["requests"] for r in results],
        "succeeded": [r["succeeded"] for r in results],
        "status_429": [r["status_429"] for r in results],
        "others": [r["others"] for r in results],
        "stops": [r["stop"] for r in results],
        "both": [r["requests"] for r in results],
        "late_window": None,
    }


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def summary(results: list[dict[str, Any]]) -> str:
    headers = (
        "scenario",
        "rows done",
        "seconds",
        "requests/s",
        "share of ceiling",
        "429s",
        "max/10s (fake)",
        "each job's share (while all ran)",
        "late job, first 10 s",
        "others estimate (each job)",
    )
    rows = []
    out: list[str] = []
    for r in results:
        total = sum(r["requests"])
        rps = total / r["seconds"] if r["seconds"] else 0.0
        r["share"] = rps / CEILING_RPS
        late = r["late_window"]
        r["late_share"] = share(late[1], sum(late)) if late else None
        b = r["both"]
        rows.append(
            (
                r["name"],
                f"{sum(r['succeeded']):,}",
                f"{r['seconds']:.1f}",
                f"{rps:.2f}",
                pct(r["share"]),
                sum(r["status_429"]),
                r["fake"].get("max_in_window", "?"),
                " / ".join(pct(share(x, sum(b))) for x in b),
                pct(r["late_share"]),
                ", ".join(str(x) for x in r["others"]),
            )
        )
        out.extend(f"{r['name']}: a job stopped: {stop}" for stop in r["stops"] if stop)
    lines = [c.table(headers, rows), ""]
    lines.append(
        f"ceiling: {RATE_LIMIT} requests / {INTERVAL_S:g} s = {CEILING_RPS:g} requests/s; "
        "latency 150-250 ms; account/separate: 2 jobs in one process, the second started 5 s "
        f"after the first; processes: {PROCESSES} processes at once (shares over whole jobs)"
    )
    for r in results:
        if r["name"] == "processes":
            ok = (
                r["share"] >= TARGET_SHARE
                and sum(r["status_429"]) == 0
                and int(r["fake"].get("max_in_window", RATE_LIMIT + 1)) <= RATE_LIMIT
            )
            lines.append(
                f"target (processes) >= {TARGET_SHARE:.0%} of the ceiling, 0 429s, <= "
                f"{RATE_LIMIT} per window: {'met' if ok else 'MISSED'}"
            )
        if r["name"] != "account":
            continue
        ok = (
            r["share"] >= TARGET_SHARE
            and sum(r["status_429"]) == 0
            and int(r["fake"].get("max_in_window", RATE_LIMIT + 1)) <= RATE_LIMIT
            and (r["late_share"] or 0) >= TARGET_LATE_SHARE
        )
        lines.append(
            f"target (account) >= {TARGET_SHARE:.0%} of the ceiling, 0 429s, <= {RATE_LIMIT} per "
            f"window, late job >= {TARGET_LATE_SHARE:.0%} in its first window: "
            f"{'met' if ok else 'MISSED'}"
        )
    return "\n".join([*lines, *out, c.machine_line()])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows per job (%(default)s)")
    p.add_argument("--stagger", type=float, default=DEFAULT_STAGGER_S, help="(%(default)s s)")
    p.add_argument(
        "--scenarios",
        default="account,separate,processes",
        help="which to run: account, separate, processes, processes-alone (%(default)s)",
    )
    # Internal: one of the processes.
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    fake_cmd = c.python_cmd(str(Path(__file__).resolve().parent / "bench_ceiling.py"), "--fake")
    results = []
    with tempfile.TemporaryDirectory(prefix="bulkops-shared-") as tmp:
        work = Path(tmp)
        csvs = [work / "job1.csv", work / "job2.csv"]
        for n, path in enumerate(csvs):
            c.write_tickets_csv(path, args.rows, prefix=f"job{n + 1}")
        per_process = args.rows * 2 // PROCESSES
        pcsvs = [work / f"proc{n + 1}.csv" for n in range(PROCESSES)]
        for n, path in enumerate(pcsvs):
            c.write_tickets_csv(path, per_process, prefix=f"proc{n + 1}")
        for name in args.scenarios.split(","):
            redis: subprocess.Popen[bytes] | None = None
            redis_url = None
            if name == "processes":
                if shutil.which("redis-server") is None:
                    print("processes: skipped, redis-server is not installed", file=sys.stderr)
                    continue
                (work / "redis").mkdir(exist_ok=True)
                redis, redis_url = start_redis(work / "redis")
            what = (
                f"{PROCESSES} x {per_process:,}"
                if name.startswith("processes")
                else f"2 x {args.rows:,}"
            )
            print(f"scenario {name}: {what} rows", file=sys.stderr)
            proc, url = c.start_fake(fake_cmd)  # a fresh account (window, store) each time
            try:
                if name.startswith("processes"):
                    result = processes(name, url, pcsvs, work, redis_url)
                else:
                    result = anyio.run(scenario, name, url, csvs, work, args.stagger)
            finally:
                result_fake = c.stats_from_output(c.stop_process(proc)) or {}
                if redis is not None:
                    redis.kill()
                    redis.wait()
            result["fake"] = result_fake
            results.append(result)
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
