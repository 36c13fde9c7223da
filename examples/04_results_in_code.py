"""Results in code: stream 50,000 orders from SQLite through an async generator into the
embedded fake HubSpot, consume each row's outcome as it is settled, and write the HubSpot ids
back to the orders table, joined by the order's primary key (a passthrough column, carried
into the results but never sent to HubSpot).

    python examples/04_results_in_code.py
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

import bulkops
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

ROWS = 50_000
FETCH = 2_000  # rows per database round trip
WRITE_BACK = 5_000  # ids written back per transaction


def make_orders(db: Path, rows: int) -> None:
    """A stand-in for your database: an orders table without HubSpot ids yet."""
    with closing(sqlite3.connect(db)) as conn, conn:
        # WAL: the ids are written back while the job's cursor still reads the table.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, title TEXT, ref TEXT UNIQUE,"
            " priority TEXT, hubspot_id TEXT, error TEXT)"
        )
        conn.executemany(
            "INSERT INTO orders (order_id, title, ref, priority) VALUES (?, ?, ?, ?)",
            (
                (n, f"Order {n} arrived damaged", f"ord-{n:06d}", "HIGH" if n % 7 else "OOPS")
                for n in range(1, rows + 1)
            ),
        )


async def orders(db: Path) -> AsyncIterator[dict[str, Any]]:
    """Rows from SQLite; each fetch runs in a thread so the event loop never waits on disk."""
    conn = sqlite3.connect(db, check_same_thread=False)
    try:
        cursor = conn.execute("SELECT order_id, title, ref, priority FROM orders ORDER BY 1")
        while batch := await anyio.to_thread.run_sync(cursor.fetchmany, FETCH):
            for order_id, title, ref, priority in batch:
                yield {
                    "order_id": order_id,  # passthrough: joins the result back to this row
                    "subject": title,
                    "hs_pipeline": "0",
                    "hs_pipeline_stage": "1",
                    "hs_ticket_priority": priority,  # "OOPS" is no option: those rows fail
                    "external_id": ref,
                }
    finally:
        conn.close()


@dataclass
class Summary:
    rows: int
    succeeded: int
    failed: int
    ids_written_back: int
    errors_written_back: int
    out_dir: Path


def write_back(db: Path, ids: list[tuple[str, int]], errors: list[tuple[str, int]]) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany("UPDATE orders SET hubspot_id = ? WHERE order_id = ?", ids)
        conn.executemany("UPDATE orders SET error = ? WHERE order_id = ?", errors)


async def main(rows: int = ROWS, workdir: Path | None = None) -> Summary:
    work = workdir or Path(tempfile.mkdtemp(prefix="bulkops-example-"))
    db = work / "orders.db"
    make_orders(db, rows)
    ids: list[tuple[str, int]] = []
    errors: list[tuple[str, int]] = []
    written = failed_back = 0
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        config = bulkops.JobConfig(
            operation=bulkops.Operation.UPSERT,
            object_type="tickets",
            id_property="external_id",
            passthrough=("order_id",),
            token=bulkops.Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            rate_limit=0,  # the fake has no limit; leave it out against HubSpot
            out_dir=work / "job",
        )
        async with bulkops.open_job(config, orders(db)) as job:
            async for outcome in job.outcomes():
                order_id = int(outcome.passthrough["order_id"])
                if outcome.ok and outcome.hubspot_id is not None:
                    ids.append((outcome.hubspot_id, order_id))
                else:
                    errors.append((f"{outcome.category}: {outcome.message}", order_id))
                if len(ids) + len(errors) >= WRITE_BACK:
                    await anyio.to_thread.run_sync(write_back, db, ids, errors)
                    written, failed_back = written + len(ids), failed_back + len(errors)
                    ids, errors = [], []
        await anyio.to_thread.run_sync(write_back, db, ids, errors)
        written, failed_back = written + len(ids), failed_back + len(errors)
    assert job.report is not None
    report = job.report.raise_for_status()  # a stop (bad token, daily limit...) raises here
    return Summary(rows, report.succeeded, report.failed, written, failed_back, config.out_dir)


if __name__ == "__main__":
    summary = anyio.run(main)
    print(
        f"{summary.rows} orders: {summary.succeeded} in HubSpot (ids written back: "
        f"{summary.ids_written_back}), {summary.failed} failed (reasons written back: "
        f"{summary.errors_written_back}); results in {summary.out_dir}"
    )
