"""``bulkops demo``: a real job against the embedded fake HubSpot, nothing leaves the machine.

Writes a sample file of tickets (a few of them deliberately invalid, to show where failures go),
starts the fake with a Professional-tier limit (190 requests per 10 s) and realistic latency,
creates the tickets with a live progress display, then checks the fake's store against the
result files.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import sys
from pathlib import Path

import anyio
import orjson

from ._config import JobConfig, Secret
from ._console import drive
from ._engine import Job
from ._loop import backend_options
from ._models import Operation
from ._progress import ProgressDisplay, format_summary

__all__ = ["run_demo", "write_sample_tickets"]

_PRIORITIES = ["LOW", "MEDIUM", "HIGH", "URGENT"]


def write_sample_tickets(path: Path, rows: int, *, bad_every: int = 500, seed: int = 7) -> int:
    """Write ``rows`` tickets; every ``bad_every``-th is invalid. Returns how many are invalid."""
    rng = random.Random(seed)
    bad = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "subject",
                "content",
                "hs_pipeline",
                "hs_pipeline_stage",
                "hs_ticket_priority",
                "external_id",
            ]
        )
        for n in range(1, rows + 1):
            priority = rng.choice(_PRIORITIES)
            subject = f"Ticket {n}: printer {rng.randint(1, 999)} jammed"
            if bad_every and n % bad_every == 0:
                bad += 1
                if (n // bad_every) % 2:
                    priority = "SUPER_URGENT"  # not an option of hs_ticket_priority
                else:
                    subject = ""  # subject is required on ticket create
            w.writerow(
                [
                    subject,
                    "Reported via the demo",
                    "0",
                    str(rng.randint(1, 4)),
                    priority,
                    f"demo-{n:08d}",
                ]
            )
    return bad


def _latency(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition("-")
    return float(lo) / 1000, float(hi or lo) / 1000


async def _demo(args: argparse.Namespace, out: Path, sample: Path, bad: int) -> int:
    from .testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

    limit = args.rate_limit or None
    fake_config = FakeConfig(rate_limit=limit, latency=_latency(args.latency_ms))
    print(
        f"bulkops demo: {args.rows:,} tickets ({bad} deliberately invalid) -> embedded fake "
        f"HubSpot ({limit or 'no'} requests / 10 s, {args.latency_ms} ms latency)",
        file=sys.stderr,
    )
    async with FakeHubSpot(fake_config) as fake:
        config = JobConfig(
            operation=Operation.CREATE,
            token=Secret(DEFAULT_FAKE_TOKEN),
            object_type="tickets",
            base_url=fake.url,
            id_property="external_id",
            rate_limit=None if args.rate_limit else 0,  # learn the fake's limit from headers
            out_dir=out / "job",
        )
        from ._sources import open_source

        job = Job(config, open_source(str(sample)), input_name=str(sample))

        with ProgressDisplay(mode=args.progress, expected_rows=args.rows) as display:
            report = await drive(job, display)
        print(format_summary(report), file=sys.stderr)

        stored = {r["id"] for r in fake.records("tickets")}
        ids = await anyio.to_thread.run_sync(_succeeded_ids, config.out_dir / "succeeded.jsonl")
        missing = [i for i in ids if i not in stored]
        print(
            f"check: {len(stored):,} tickets in the fake, {len(ids):,} ids in succeeded.jsonl, "
            f"{len(missing)} unknown to the fake, {report.failed} rows in failed.jsonl "
            f"(expected {bad})",
            file=sys.stderr,
        )
        if missing or len(stored) != len(ids):
            print("check FAILED", file=sys.stderr)
            return 1
    return report.exit_code if report.exit_code != 1 else 0


def _succeeded_ids(path: Path) -> list[str]:
    with path.open("rb") as f:
        return [orjson.loads(line)["id"] for line in f]


def run_demo(args: argparse.Namespace) -> int:
    out: Path = args.out or Path("bulkops-demo")
    if (out / "job").exists():
        shutil.rmtree(out / "job")  # the demo starts afresh each time
    out.mkdir(parents=True, exist_ok=True)
    sample = out / "demo-tickets.csv"
    bad = write_sample_tickets(sample, args.rows)
    return anyio.run(_demo, args, out, sample, bad, backend_options=backend_options(args.loop))
