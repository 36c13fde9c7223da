"""examples/04_results_in_code.py, run against the embedded fake: 50,000 rows from SQLite,
outcomes consumed in code, HubSpot ids joined back by a passthrough key; and it passes
``mypy --strict`` as a user's program would."""

from __future__ import annotations

import importlib.util
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from types import ModuleType

import anyio

import bulkops

from .accounting import assert_accounted

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "04_results_in_code.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_04", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def test_the_example_joins_50000_hubspot_ids_back_by_key(tmp_path: Path) -> None:
    example = load_example()
    with anyio.fail_after(300):
        summary = await example.main(50_000, tmp_path)
    out = tmp_path / "job"
    ok, bad = assert_accounted(out, 50_000)
    failing = 50_000 // 7  # every 7th order has a priority that is no option
    assert summary.failed == len(bad) == failing and summary.succeeded == 50_000 - failing
    assert summary.ids_written_back == summary.succeeded
    assert summary.errors_written_back == summary.failed
    with closing(sqlite3.connect(tmp_path / "orders.db")) as conn:
        stored = dict(conn.execute("SELECT order_id, hubspot_id FROM orders"))
        unfinished = conn.execute(
            "SELECT count(*) FROM orders WHERE (hubspot_id IS NULL) = (error IS NULL)"
        ).fetchone()[0]
    assert unfinished == 0  # every order has exactly one of an id and an error
    # The join is by key, not position: each result's passthrough order_id and its key (the
    # external_id sent) name the same order, and the id written back is that result's.
    for outcome in bulkops.read_results(out).succeeded:
        order_id = outcome.passthrough["order_id"]
        assert outcome.key == f"ord-{order_id:06d}"
        assert stored[order_id] == outcome.hubspot_id
    assert len({line["id"] for line in ok.values()}) == summary.succeeded


def test_the_example_passes_mypy_strict() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
