"""Fault soak: every record accounted for under injected faults, at a size CI does not run.

Against the embedded fake (in this process, so its store can be checked afterwards) with
5% 5xx, 1% connection resets, 2% write-then-fail, 1% 423, shuffled results and 3% invalid rows,
it runs create (with --id-property), upsert, update and archive jobs and checks, for each:
every input row is in exactly one result file; every id in succeeded.jsonl exists in the fake;
no record was created twice; no valid row failed; every invalid row failed with its reason.

    python benchmarks/bench_soak.py              # 50,000 rows per job
    python benchmarks/bench_soak.py --rows 200000
    python benchmarks/bench_soak.py --no-preflight    # invalid rows found by HubSpot, not locally

Prints rows, duplicates, lost rows, requests (and those spent on read-backs, isolation and
resends), records/s and peak RSS; exits 1 if any check fails. Not part of the test suite.
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
    with path.open("rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


async def soak(op: Operation, rows_n: int, out: Path, preflight: bool) -> dict[str, Any]:
    rows, invalid = make_rows(rows_n, seed=1)
    async with FakeHubSpot(FakeConfig(rate_limit=None, faults=FAULTS)) as fake:
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
            **kw,
        )
        fake.stats.reset()
        started = time.monotonic()
        with anyio.fail_after(TIME_LIMIT_S):
            report = await run_job(config, job_rows)
        seconds = time.monotonic() - started

        ok = {line["row"]: line for line in read_lines(out / "succeeded.jsonl")}
        bad = {line["row"]: line for line in read_lines(out / "failed.jsonl")}
        store = {r["id"]: r for r in fake.records("tickets", include_archived=True)}
        live_keys = Counter(
            r["properties"].get("external_id") for r in store.values() if not r["archived"]
        )
        duplicates = sum(c - 1 for c in live_keys.values() if c > 1)
        duplicates += sum(c - 1 for c in fake.stats.creates_by_unique.values() if c > 1)
        expected = set(range(1, len(job_rows) + 1))
        checks = {
            "every row once": set(ok) | set(bad) == expected and not set(ok) & set(bad),
            "ids exist": all(line["id"] in store for line in ok.values()),
            "no duplicates": duplicates == 0,
            "no valid row failed": set(bad) == invalid,
            "invalid rows say why": all(
                "hs_ticket_priority" in bad[r]["error"]["message"] for r in invalid
            ),
        }
        req = report.to_json()["requests"]
        return {
            "op": op.value,
            "rows": len(job_rows),
            "succeeded": len(ok),
            "failed": len(bad),
            "lost": len(expected - set(ok) - set(bad)),
            "duplicates": duplicates,
            "requests": req["total"],
            "read_backs": req["by_kind"].get("verify", 0),
            "isolation": req["by_kind"].get("isolation", 0),
            "resends": req["resent_batches"],
            "faults": sum(fake.stats.faults.values()),
            "records_s": round(len(job_rows) / seconds),
            "checks": checks,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument(
        "--no-preflight", action="store_true", help="let the fake find the invalid rows (207s)"
    )
    args = parser.parse_args()
    results = []
    for op in (Operation.CREATE, Operation.UPSERT, Operation.UPDATE, Operation.ARCHIVE):
        with tempfile.TemporaryDirectory(prefix="bulkops-soak-") as tmp:
            results.append(anyio.run(soak, op, args.rows, Path(tmp), not args.no_preflight))
    cols = [
        "op",
        "rows",
        "succeeded",
        "failed",
        "lost",
        "duplicates",
        "requests",
        "read_backs",
        "isolation",
        "resends",
        "faults",
        "records_s",
    ]
    print(" | ".join(f"{c:>10}" for c in cols))
    for r in results:
        print(" | ".join(f"{r[c]:>10}" for c in cols))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (whole soak, fake included): {peak:.0f} MiB")
    failed = [(r["op"], name) for r in results for name, ok in r["checks"].items() if not ok]
    for op, name in failed:
        print(f"CHECK FAILED: {op}: {name}")
    print("all checks passed" if not failed else f"{len(failed)} checks failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
