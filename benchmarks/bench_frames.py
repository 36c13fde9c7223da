"""Throughput and memory of frame and Parquet input: the reader alone, at 1M rows.

Run from the repository root (needs ``bulkops[pandas,parquet]``)::

    python benchmarks/bench_frames.py                # the reader alone, 1,000,000 rows
    python benchmarks/bench_frames.py --rows 100000
    python benchmarks/bench_frames.py --job --rows 200000   # whole jobs against the fake

``--job`` runs whole create jobs instead (``run_job`` with ``rate_limit=0``, journal on)
against ``bulkops fake-server --rate-limit 0 --daily-limit 0`` in its own process, a fresh one
per case; the seconds are the job's, reading, sending, results and journal included.

What is measured is the input side of a job, not a job: each source is read through the
public reader (``bulkops._frames.frame_rows`` for a pandas DataFrame, ``open_source`` for a
Parquet file) and every row is normalised as the intake does (``Normalizer``, create), so the
figure is the most rows per second that input can feed the engine. A whole job at 1M rows
against the fake is bounded by the engine and the fake (``bench_throughput.py`` measures that,
from CSV), not by the reader; at HubSpot's pace the reader is idle almost all the time.

Each case runs in its own child process, so peaks do not mix: it builds its input (a frame in
memory, or a Parquet file on disk, not timed), notes its RSS, then reads all rows and reports
records/s, the RSS before reading, and the peak RSS. "added" is peak minus before: what the
reader itself holds, which should not grow with the row count (one chunk of dicts). The peak
is reset before reading (Linux ``/proc/self/clear_refs``), so it is the reading's own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c
import anyio

CASES = ("pandas", "parquet")
FAKE_CMD = ("-m", "bulkops", "fake-server", "--rate-limit", "0", "--daily-limit", "0")
DEFAULT_ROWS = 1_000_000
CHILD_TIMEOUT_S = 900.0


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mib() -> float:
    """The peak RSS since the last reset_peak() (VmHWM), else since the process started."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    # Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS, so the peak
    # measured afterwards is the reading's own, not the building of the input.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def frame(rows: int) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "subject": [f"Ticket {i}" for i in range(rows)],
            "hs_pipeline": "0",
            "hs_pipeline_stage": "1",
            "customer_score": [i * 0.5 for i in range(rows)],
            "external_id": [f"ext-{i}" for i in range(rows)],
        }
    )


async def read_all(source: Any) -> int:
    from bulkops import Operation
    from bulkops._normalize import Normalizer

    normalize = Normalizer(Operation.CREATE)
    n = 0
    async for raw in source:
        assert raw.data is not None, raw.error
        normalize(raw.row, raw.data)
        n += 1
    return n


async def run_job_on(url: str, source: Any, out: Path) -> int:
    import bulkops

    config = bulkops.JobConfig(
        operation=bulkops.Operation.CREATE,
        token=bulkops.Secret("fake-hubspot-token"),
        base_url=url,
        out_dir=out,
        rate_limit=0,
        id_property="external_id",
    )
    report = await bulkops.run_job(config, source)
    assert report.failed == 0 and report.stop is None, report.to_json()
    return report.succeeded


def child(case: str, rows: int, url: str | None) -> None:
    from bulkops import open_source
    from bulkops._frames import frame_rows

    with tempfile.TemporaryDirectory() as tmp:
        data = frame(rows)
        if case == "parquet":
            path = Path(tmp) / "in.parquet"
            data.to_parquet(path, row_group_size=100_000)
            del data
            data = None
        import gc

        gc.collect()
        before = rss_mib()
        peak_reset = reset_peak()
        started = time.perf_counter()
        if url:
            source: Any = data if case == "pandas" else path
            count = anyio.run(run_job_on, url, source, Path(tmp) / "out")
        else:
            source = frame_rows(data) if case == "pandas" else open_source(str(path))
            count = anyio.run(read_all, source)
        seconds = time.perf_counter() - started
        assert count == rows, (count, rows)
        result = {
            "case": case,
            "rows": rows,
            "seconds": round(seconds, 2),
            "records_per_s": round(rows / seconds),
            "rss_before_mib": round(before, 1),
            "peak_rss_mib": round(max(peak_mib(), before), 1),
            "peak_is_reads_own": peak_reset,
        }
    print("BENCH_RESULT=" + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--child", choices=CASES)
    parser.add_argument("--job", action="store_true", help="whole jobs against the fake")
    parser.add_argument("--url", help=argparse.SUPPRESS)  # the child's fake
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows, args.url)
        return
    print("whole jobs against the fake" if args.job else "the reader alone (read + normalise)")
    print(
        f"{'input':<8} {'rows':>9} {'s':>7} {'records/s':>10} {'RSS before':>11} {'peak':>10} "
        f"{'added':>9}"
    )
    for case in CASES:
        command = [sys.executable, __file__, "--child", case, "--rows", str(args.rows)]
        with contextlib.ExitStack() as stack:
            if args.job:
                _, url = stack.enter_context(c.fake_process(c.python_cmd(*FAKE_CMD)))
                command += ["--url", url]
            out = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT_S,
                check=True,
                env=c.child_env(),
            ).stdout
        line = next(x for x in out.splitlines() if x.startswith("BENCH_RESULT="))
        r = json.loads(line.removeprefix("BENCH_RESULT="))
        print(
            f"{r['case']:<8} {r['rows']:>9,} {r['seconds']:>7.2f} {r['records_per_s']:>10,} "
            f"{r['rss_before_mib']:>7.1f} MiB {r['peak_rss_mib']:>6.1f} MiB "
            f"{r['peak_rss_mib'] - r['rss_before_mib']:>5.1f} MiB"
            + ("" if r["peak_is_reads_own"] else "  (peak includes building the input)")
        )
    what = "the job" if args.job else "the reader"
    print(f"RSS before: once the input is built; peak: while {what} ran; added: what {what} held")


if __name__ == "__main__":
    main()
