"""Fault soak: every record accounted for under injected faults, at a size CI does not run.

Against the embedded fake (in this process, so its store can be checked afterwards) with
5% 5xx, 1% connection resets, 2% write-then-fail, 1% 423, shuffled results and 3% invalid rows,
it runs create (with --id-property), upsert, update and archive jobs and checks, for each:
every input row is in exactly one result file; every id in succeeded.jsonl exists in the fake;
no record was created twice; no valid row failed; every invalid row failed with its reason.

    python benchmarks/bench_soak.py              # 50,000 rows per job
    python benchmarks/bench_soak.py --rows 200000
    python benchmarks/bench_soak.py --no-preflight    # invalid rows found by HubSpot, not locally
    python benchmarks/bench_soak.py --outage 15 --read-lag 2

--outage SECONDS puts an outage window in the middle of each job (once half of its write
batches have reached the fake): every request answers 503 (create, update) or has its
connection dropped (upsert, archive) for that long. --read-lag SECONDS hides each new record
from batch reads for that long (its unique value conflicts at once), as HubSpot's eventually
consistent reads may.

Prints, per job, rows, succeeded/failed, lost rows (in neither result file), duplicated
records, valid rows that failed ("failed_good"), why the job stopped early if it did, requests
(and those spent on read-backs, isolation and resends), injected faults and outage answers,
records/s, seconds and peak RSS; exits 1 if any check fails. Bounded: TIME_LIMIT_S per job and
TOTAL_TIME_LIMIT_S for the whole soak (a job cut off counts its unaccounted rows as lost). Not
part of the test suite.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import orjson

from bulkops import JobConfig, Operation, Secret, run_job
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot, FaultPlan

DEFAULT_ROWS = 50_000
INVALID_SHARE = 0.03
FAULTS = FaultPlan(seed=2026, p_5xx=0.05, p_reset=0.01, p_write_then_fail=0.02, p_423=0.01)
TIME_LIMIT_S = 900  # per job
TOTAL_TIME_LIMIT_S = 2_400  # the whole soak, all four jobs
OUTAGE_POLL_S = 0.05
BATCH = 100  # rows per write request, as the engine sends them
# Outage kind per job, alternating.
OUTAGE_KINDS = {
    Operation.CREATE: "503",
    Operation.UPSERT: "drop",
    Operation.UPDATE: "503",
    Operation.ARCHIVE: "drop",
}


def make_rows(n: int, seed: int) -> tuple[list[dict[str, Any]], set[int]]:
    rng = random.Random(seed)
    rows, invalid = [], set()
    for i in range(1, n + 1):
        row = {
            "subject": f"Soak {i}",
            "hs_pipeline": "0",
            "hs_pipeline_stage": str(1 + i % 4),
            "hs_ticket_priority": "HIGH",
            "external_id": f"soak-{i}",
        }
        if rng.random() < INVALID_SHARE:
            row["hs_ticket_priority"] = "NOT_A_PRIORITY"
            invalid.add(i)
        rows.append(row)
    return rows, invalid


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():  # a job cut off by the time limit may not have written it
        return []
    with path.open("rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


async def outage_midway(
    fake: FakeHubSpot, op: Operation, batches: int, seconds: float, time_limit_s: float
) -> None:
    """Start the outage once half of the job's write batches have reached the fake (polled:
    the fake has no hook for that, and a benchmark may use real time)."""
    endpoint = f"v3 tickets {op.value}"
    for _ in range(int(time_limit_s / OUTAGE_POLL_S)):
        if fake.stats.by_endpoint[endpoint] >= batches / 2:
            fake.start_outage(seconds, OUTAGE_KINDS[op])
            return
        await anyio.sleep(OUTAGE_POLL_S)


async def soak(
    op: Operation,
    rows_n: int,
    out: Path,
    preflight: bool,
    outage_s: float,
    read_lag_s: float,
    time_limit_s: float,
) -> dict[str, Any]:
    rows, invalid = make_rows(rows_n, seed=1)
    fake_config = FakeConfig(rate_limit=None, faults=FAULTS, read_lag_s=read_lag_s)
    async with FakeHubSpot(fake_config) as fake:
        kw: dict[str, Any] = {}
        if op is Operation.CREATE:
            job_rows, kw = rows, {"id_property": "external_id"}
        elif op is Operation.UPSERT:
            half = [{**r, "hs_ticket_priority": "LOW"} for r in rows[: rows_n // 2]]
            fake.seed_records("tickets", [r for i, r in enumerate(half, 1) if i not in invalid])
            job_rows, kw = rows, {"id_property": "external_id"}
        else:
            seeded = fake.seed_records(
                "tickets", [{**r, "hs_ticket_priority": "LOW"} for r in rows]
            )
            if op is Operation.UPDATE:
                job_rows = [
                    {"id": i, "hs_ticket_priority": r["hs_ticket_priority"]}
                    for i, r in zip(seeded, rows, strict=True)
                ]
            else:
                job_rows, invalid = [{"id": i} for i in seeded], set()
        config = JobConfig(
            operation=op,
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=out,
            rate_limit=0,
            backoff_base=0.01,
            backoff_cap=0.2,
            max_attempts=12,
            timeout=10,
            preflight=preflight,
            **kw,
        )
        fake.stats.reset()
        started = time.monotonic()
        reports = []
        with anyio.move_on_after(time_limit_s) as limit:
            async with anyio.create_task_group() as tg:
                if outage_s > 0:
                    batches = -(-len(job_rows) // BATCH)
                    tg.start_soon(outage_midway, fake, op, batches, outage_s, time_limit_s)
                reports.append(await run_job(config, job_rows))
                tg.cancel_scope.cancel()  # the job is done: stop waiting for the midpoint
        seconds = time.monotonic() - started
        report = reports[0] if reports else None

        ok = {line["row"]: line for line in read_lines(out / "succeeded.jsonl")}
        bad = {line["row"]: line for line in read_lines(out / "failed.jsonl")}
        store = {r["id"]: r for r in fake.records("tickets", include_archived=True)}
        live_keys = Counter(
            r["properties"].get("external_id") for r in store.values() if not r["archived"]
        )
        duplicates = sum(c - 1 for c in live_keys.values() if c > 1)
        duplicates += sum(c - 1 for c in fake.stats.creates_by_unique.values() if c > 1)
        expected = set(range(1, len(job_rows) + 1))
        failed_good = len(set(bad) - invalid)
        checks = {
            "finished in time": not limit.cancelled_caught,
            "every row once": set(ok) | set(bad) == expected and not set(ok) & set(bad),
            "ids exist": all(line["id"] in store for line in ok.values()),
            "no duplicates": duplicates == 0,
            "no valid row failed": set(bad) == invalid,
            "invalid rows say why": all(
                r in bad and "hs_ticket_priority" in bad[r]["error"]["message"] for r in invalid
            ),
        }
        req: dict[str, Any] = report.to_json()["requests"] if report is not None else {}
        stopped = "time limit" if report is None else (report.stop_reason or "-")
        return {
            "op": op.value,
            "rows": len(job_rows),
            "succeeded": len(ok),
            "failed": len(bad),
            "lost": len(expected - set(ok) - set(bad)),
            "duplicates": duplicates,
            "failed_good": failed_good,
            "stopped": stopped,
            "requests": req.get("total", "?"),
            "read_backs": req.get("by_kind", {}).get("verify", 0),
            "isolation": req.get("by_kind", {}).get("isolation", 0),
            "resends": req.get("resent_batches", "?"),
            "faults": sum(n for k, n in fake.stats.faults.items() if not k.startswith("outage")),
            "outage_ans": sum(n for k, n in fake.stats.faults.items() if k.startswith("outage")),
            "records_s": round(len(job_rows) / seconds),
            "seconds": round(seconds),
            "checks": checks,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument(
        "--no-preflight", action="store_true", help="let the fake find the invalid rows (207s)"
    )
    parser.add_argument(
        "--outage",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="an outage of SECONDS in the middle of each job (503 and dropped connections)",
    )
    parser.add_argument(
        "--read-lag",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="new records stay invisible to batch reads for SECONDS",
    )
    args = parser.parse_args()
    if args.rows <= 0 or args.outage < 0 or args.read_lag < 0:
        parser.error("--rows must be > 0; --outage and --read-lag must be >= 0")
    results: list[dict[str, Any]] = []
    soak_started = time.monotonic()
    for op in (Operation.CREATE, Operation.UPSERT, Operation.UPDATE, Operation.ARCHIVE):
        left = TOTAL_TIME_LIMIT_S - (time.monotonic() - soak_started)
        if left <= 0:
            print(f"{op.value}: not run, the soak's {TOTAL_TIME_LIMIT_S} s are spent")
            results.append({"op": op.value, "checks": {"run within the total limit": False}})
            continue
        with tempfile.TemporaryDirectory(prefix="bulkops-soak-") as tmp:
            results.append(
                anyio.run(
                    soak,
                    op,
                    args.rows,
                    Path(tmp),
                    not args.no_preflight,
                    args.outage,
                    args.read_lag,
                    min(TIME_LIMIT_S, left),
                )
            )
    print(f"outage: {args.outage:g} s per job, read lag: {args.read_lag:g} s")
    cols = [
        "op",
        "rows",
        "succeeded",
        "failed",
        "lost",
        "duplicates",
        "failed_good",
        "stopped",
        "requests",
        "read_backs",
        "isolation",
        "resends",
        "faults",
        "outage_ans",
        "records_s",
        "seconds",
    ]
    print(" | ".join(f"{c:>11}" for c in cols))
    for r in results:
        print(" | ".join(f"{r.get(c, '-')!s:>11}" for c in cols))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (whole soak, fake included): {peak:.0f} MiB")
    failed = [(r["op"], name) for r in results for name, ok in r["checks"].items() if not ok]
    for op, name in failed:
        print(f"CHECK FAILED: {op}: {name}")
    print("all checks passed" if not failed else f"{len(failed)} checks failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
