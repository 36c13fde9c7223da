"""Event-loop lag of a host program while a bulkops job runs beside it: does an embedded job
keep its host's other tasks (a web server, a heartbeat) responsive?

Run from the repository root::

    python benchmarks/bench_loop_lag.py                  # 50,000 rows, every source kind
    python benchmarks/bench_loop_lag.py --rows 20000 --sources list,async

A ticker task asks to wake every 10 ms; its lag is how late each wake-up comes. It runs on the
job's loop, first alone (the baseline), then beside one job per source kind: a list of dicts,
a sync generator, an async generator, and a CSV file (create tickets with ``id_property``,
journal on; unthrottled by default, the worst case, or ``--rate-limit N`` requests per 10 s
for HubSpot's pace). The fake HubSpot (``bulkops fake-server``, no latency, no limits) runs
in its own process, so the lag measured is bulkops' own, not the fake's. Every job is bounded
(``--rows``) and time-limited. Printed: rows/s and the ticker's p50, p99 and max lag per
source; the target is a max under 20 ms.

Each source runs twice by default (``--gc both``): with CPython's garbage collector as it is,
and inside ``bulkops.batch_gc()``. Figures measured on the 2-core development VM are in the
README's performance section.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import _common as c
import anyio

import bulkops

DEFAULT_ROWS = 50_000
SOURCES = ("list", "generator", "async", "csv")
TICK_S = 0.010
TARGET_MAX_LAG_MS = 20.0
BASELINE_S = 2.0
JOB_TIMEOUT_S = 600.0
JOURNAL = True  # as a job runs by default
FAKE_CMD = (
    "-m", "bulkops", "fake-server", "--host", "127.0.0.1", "--port", "0",
    "--rate-limit", "0", "--daily-limit", "0",
)  # fmt: skip


def ticket(n: int) -> dict[str, str]:
    return {
        "subject": f"Lag ticket {n}",
        "hs_pipeline": "0",
        "hs_pipeline_stage": "1",
        "hs_ticket_priority": c.PRIORITIES[n % len(c.PRIORITIES)],
        "external_id": f"lag-{n}",
    }


def sync_rows(rows: int) -> Iterator[dict[str, str]]:
    for n in range(1, rows + 1):
        yield ticket(n)


async def async_rows(rows: int) -> AsyncIterator[dict[str, str]]:
    for n in range(1, rows + 1):
        yield ticket(n)


class Ticker:
    """Wakes every ``TICK_S`` and records how late each wake-up was (ms)."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []

    async def run(self) -> None:
        while True:
            due = time.perf_counter() + TICK_S
            await anyio.sleep(TICK_S)
            self.lags_ms.append(max(0.0, (time.perf_counter() - due) * 1000))


def summary(lags: list[float]) -> tuple[float, float, float]:
    if not lags:
        return (0.0, 0.0, 0.0)
    ordered = sorted(lags)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (statistics.median(ordered), p99, ordered[-1])


def source_of(kind: str, rows: int, csv_path: Path) -> Any:
    if kind == "list":
        return [ticket(n) for n in range(1, rows + 1)]
    if kind == "generator":
        return sync_rows(rows)
    if kind == "async":
        return async_rows(rows)
    return csv_path


async def measure(
    kind: str, rows: int, url: str, work: Path, csv_path: Path, rate_limit: int = 0, tag: str = ""
) -> dict[str, Any]:
    config = bulkops.JobConfig(
        operation=bulkops.Operation.CREATE,
        token=bulkops.Secret(c.FAKE_TOKEN),
        base_url=url,
        rate_limit=rate_limit,
        id_property="external_id",
        out_dir=work / f"out-{kind}{tag}",
        journal=JOURNAL,
    )
    source = source_of(kind, rows, csv_path)
    ticker = Ticker()
    started = time.perf_counter()
    with anyio.fail_after(JOB_TIMEOUT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker.run)
            report = await bulkops.run_job(config, source)
            tg.cancel_scope.cancel()
    seconds = time.perf_counter() - started
    p50, p99, worst = summary(ticker.lags_ms)
    return {
        "source": kind,
        "rows": report.rows.read,
        "succeeded": report.succeeded,
        "records_per_s": round(report.succeeded / seconds),
        "ticks": len(ticker.lags_ms),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(worst, 2),
    }


async def baseline() -> dict[str, Any]:
    ticker = Ticker()
    with anyio.move_on_after(BASELINE_S):
        await ticker.run()
    p50, p99, worst = summary(ticker.lags_ms)
    return {
        "source": "(no job)",
        "rows": 0,
        "succeeded": 0,
        "records_per_s": 0,
        "ticks": len(ticker.lags_ms),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(worst, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=0,
        help="the job's requests per 10 s (default 0: unthrottled, the worst case; 190 is "
        "a HubSpot Professional account's pace)",
    )
    parser.add_argument(
        "--gc",
        choices=("default", "batch", "both"),
        default="both",
        help="the garbage collector as CPython sets it, tuned by bulkops.batch_gc() around "
        "the job, or each (default)",
    )
    args = parser.parse_args(argv)
    gc_modes = ("default", "batch") if args.gc == "both" else (args.gc,)
    kinds = [k.strip() for k in args.sources.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(SOURCES))
    if unknown or args.rows < 1:
        parser.error(f"--sources from {', '.join(SOURCES)}; --rows >= 1")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bulkops-lag-") as tmp:
        work = Path(tmp)
        csv_path = work / "in.csv"
        c.write_tickets_csv(csv_path, args.rows, prefix="lag")
        results.append(anyio.run(baseline))
        for kind in kinds:
            for gc_mode in gc_modes:
                # A fresh fake per run: its store never carries records into the next one.
                with c.fake_process(c.python_cmd(*FAKE_CMD)) as (_, url):
                    print(
                        f"  {kind}, {gc_mode} gc: {args.rows:,} rows -> {url}",
                        file=sys.stderr,
                        flush=True,
                    )
                    tuned = bulkops.batch_gc() if gc_mode == "batch" else contextlib.nullcontext()
                    with tuned:
                        result = anyio.run(
                            measure, kind, args.rows, url, work, csv_path, args.rate_limit, gc_mode
                        )
                    result["source"] += f", {gc_mode} gc"
                    results.append(result)
    headers = ["source", "rows", "records/s", "ticks", "p50 ms", "p99 ms", "max ms"]
    table = [
        [r["source"], r["rows"], r["records_per_s"], r["ticks"], r["p50_ms"], r["p99_ms"],
         r["max_ms"]]
        for r in results
    ]  # fmt: skip
    print(c.machine_line())
    pace = f"at {args.rate_limit} requests/10 s" if args.rate_limit else "unthrottled"
    print(f"loop lag of a {TICK_S * 1000:.0f} ms ticker beside a job, {pace} "
          f"(target: max < {TARGET_MAX_LAG_MS:.0f} ms)")  # fmt: skip
    print(c.table(headers, table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
