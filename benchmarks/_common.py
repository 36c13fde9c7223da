"""Shared helpers of the bulkops benchmarks: the ticket file, fake server processes, child
processes that print one JSON line, peak RSS, and plain-text tables.

Not a benchmark itself; ``bench_throughput.py`` and ``bench_ceiling.py`` import it (Python puts
the script's folder on ``sys.path``, so ``import _common`` works when they are run as files).
"""

from __future__ import annotations

import compileall
import contextlib
import csv
import importlib.util
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAKE_TOKEN = "fake-hubspot-token"  # bulkops.testing.DEFAULT_FAKE_TOKEN
URL_PREFIX = "FAKE_HUBSPOT_URL="
STATS_PREFIX = "FAKE_HUBSPOT_STATS="
RESULT_PREFIX = "BENCH_RESULT="
FAKE_START_TIMEOUT_S = 30.0
FAKE_STOP_TIMEOUT_S = 15.0
TICKET_COLUMNS = (
    "subject",
    "content",
    "hs_pipeline",
    "hs_pipeline_stage",
    "hs_ticket_priority",
    "external_id",
)
PRIORITIES = ("LOW", "MEDIUM", "HIGH", "URGENT")
REPO_ROOT = Path(__file__).resolve().parent.parent
# The embedded fake in its own process with no rate limit, no daily limit and no latency
# (``python -m bulkops fake-server``): what the unthrottled benchmarks run against.
UNTHROTTLED_FAKE_ARGS = (
    "-m",
    "bulkops",
    "fake-server",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--rate-limit",
    "0",
    "--daily-limit",
    "0",
)


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 1024 / 1024


def proc_status_mib(pid: int, field: str) -> float | None:
    """A memory line of ``/proc/PID/status`` in MiB, e.g. ``VmRSS`` (resident now) or
    ``VmHWM`` (its peak so far); None where there is no such file (not Linux, process gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (``/proc/PID/stat``, fields 14 and
    15 in clock ticks); None where there is no such file (not Linux, process gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            # The name (field 2) is in parentheses and may hold spaces: split after it.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_us_per_record(before: float | None, after: float | None, rows: int) -> float | None:
    """µs of CPU a record between two :func:`proc_cpu_s` readings; None if either is missing."""
    if before is None or after is None:
        return None
    return 1e6 * (after - before) / rows


def figure(value: float | None) -> str:
    """A measured figure (MiB, microseconds) to one decimal, or n/a where it could not be read."""
    return "n/a" if value is None else f"{value:.1f}"


def write_tickets_csv(path: Path, rows: int, *, prefix: str = "bench") -> None:
    """``rows`` valid tickets with a unique external_id each (deterministic; not timed)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TICKET_COLUMNS)
        w.writerows(
            (
                f"Ticket {n}: printer {n % 997} jammed",
                f"Reported by customer {n % 10_007} via the benchmark",
                "0",
                str(n % 4 + 1),
                PRIORITIES[n % 4],
                f"{prefix}-{n:09d}",
            )
            for n in range(1, rows + 1)
        )


def read_tickets_csv(path: Path, limit: int) -> list[dict[str, str]]:
    """At most ``limit`` rows of a ticket file as property dicts."""
    with path.open(newline="", encoding="utf-8") as f:
        out: list[dict[str, str]] = []
        for row in csv.DictReader(f):
            if len(out) >= limit:
                break
            out.append(dict(row))
        return out


# -- processes ---------------------------------------------------------------------------------


TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"  # where the bulkops command reads its token


def default_create_args(csv_path: Path, url: str, out: Path) -> list[str]:
    """The default job the benchmarks measure, as a user types it (after ``bulkops``): create
    tickets from a CSV, journal and pre-flight on; ``--rate-limit 0`` only lifts the pacing."""
    return [
        *("run", "create", "--input", str(csv_path)),
        *("--base-url", url, "--out", str(out), "--rate-limit", "0"),
    ]


def bulkops_env() -> dict[str, str]:
    """:func:`child_env` for a ``bulkops`` command against the fake: its token, no base URL
    from the caller's environment."""
    env = child_env()
    env[TOKEN_ENV] = FAKE_TOKEN
    env.pop("HUBSPOT_BASE_URL", None)
    return env


def python_cmd(*args: str) -> list[str]:
    ensure_bytecode()
    return [sys.executable, *args]


_compiled = False


def ensure_bytecode() -> None:
    """Compile the package under test to bytecode once, as ``pip install`` does. An editable
    install is not, and where ``PYTHONDONTWRITEBYTECODE`` is set (this VM sets it) nothing
    caches it either, so every child would compile bulkops from source again: ~150 ms of its
    start-up that an installed bulkops does not pay."""
    global _compiled
    if not _compiled:
        _compiled = True
        compileall.compile_dir(str(REPO_ROOT / "bulkops"), quiet=1)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # No proxy may see the fake's traffic; everything is on 127.0.0.1.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    """One stdout line within ``timeout`` seconds, or None (process died or timed out)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return None
        line = proc.stdout.readline()
        return line or None
    finally:
        sel.close()


def start_fake(cmd: Sequence[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a fake HubSpot process and return it with the URL from its first stdout line."""
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=REPO_ROOT,
        start_new_session=True,  # a Ctrl-C at the terminal is ours to pass on, not its
    )
    line = _read_line(proc, FAKE_START_TIMEOUT_S)
    if line is None or not line.startswith(URL_PREFIX):
        stop_process(proc)
        raise RuntimeError(f"fake server did not start ({cmd!r}): first line {line!r}")
    return proc, line.strip().removeprefix(URL_PREFIX)


def stop_process(proc: subprocess.Popen[str]) -> str:
    """SIGINT, then SIGKILL after a grace period. Returns what is left on its stdout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=FAKE_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def stats_from_output(out: str) -> dict[str, Any] | None:
    """The JSON a benchmark's own fake process prints after it stops (``STATS_PREFIX``)."""
    for line in out.splitlines():
        if line.startswith(STATS_PREFIX):
            parsed: dict[str, Any] = json.loads(line.removeprefix(STATS_PREFIX))
            return parsed
    return None


@contextlib.contextmanager
def fake_process(cmd: Sequence[str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc, url = start_fake(cmd)
    try:
        yield proc, url
    finally:
        stop_process(proc)


def run_child(cmd: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run a measuring child; return the JSON of its ``RESULT_PREFIX`` line. Its stderr goes to
    ours. Killed after ``timeout`` seconds."""
    try:
        done = subprocess.run(
            list(cmd),
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=REPO_ROOT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"child ran longer than {timeout:.0f}s and was killed") from None
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            parsed: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
            return parsed
    raise RuntimeError(f"child exited {done.returncode} without a result line: {done.stdout!r}")


@dataclass(frozen=True)
class Measured:
    """A child process measured from outside: its own rusage as ``os.wait4`` reports it."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float  # from just before the fork to its exit being seen (polled every 10 ms)
    user_s: float
    sys_s: float
    peak_rss_mib: float  # the child's ru_maxrss
    # (seconds since the start, resident MiB) every ``rss_every_s``, when asked for
    rss_samples: tuple[tuple[float, float], ...] = ()

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def result(self) -> dict[str, Any] | None:
        """The JSON of its ``RESULT_PREFIX`` line, if it printed one."""
        for line in self.stdout.splitlines():
            if line.startswith(RESULT_PREFIX):
                parsed: dict[str, Any] = json.loads(line.removeprefix(RESULT_PREFIX))
                return parsed
        return None


def run_measured(
    cmd: Sequence[str],
    timeout: float,
    *,
    env: Mapping[str, str] | None = None,
    rss_every_s: float | None = None,
) -> Measured:
    """Run ``cmd`` as a child (in its own session) and measure the whole process: user and
    system CPU and peak RSS from ``os.wait4``, so the figures are that one process's, start-up
    included, whatever it is (a CLI, a script). Its stdout and stderr are captured to files
    (no pipe to fill). Killed, with its process group, after ``timeout`` seconds.
    ``rss_every_s``: also sample its resident size (``/proc/PID/status`` VmRSS) that often."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = now()
        proc = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else child_env(),
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        deadline = started + timeout
        samples: list[tuple[float, float]] = []
        next_sample = started
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if rss_every_s is not None and now() >= next_sample:
                rss = proc_status_mib(proc.pid, "VmRSS")
                if rss is not None:
                    samples.append((now() - started, rss))
                next_sample += rss_every_s
            if now() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                proc.returncode = -signal.SIGKILL  # reaped here: Popen must not wait again
                raise RuntimeError(f"child ran longer than {timeout:.0f}s and was killed: {cmd!r}")
            time.sleep(0.01)
        wall = now() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        kib = usage.ru_maxrss
        return Measured(
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            wall_s=wall,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            peak_rss_mib=kib / 1024 if sys.platform != "darwin" else kib / 1024 / 1024,
            rss_samples=tuple(samples),
        )


def emit_result(result: dict[str, Any]) -> None:
    """The one line a measuring child prints for its parent."""
    print(RESULT_PREFIX + json.dumps(result, sort_keys=True), flush=True)


def now() -> float:
    return time.perf_counter()


# -- output ------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain table: the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def fmt(values: Sequence[str]) -> str:
        parts = [v.ljust(widths[0]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(values)]
        return " | ".join(parts)

    lines = [fmt(headers), "-+-".join("-" * w for w in widths)]
    lines += [fmt(c) for c in cells]
    return "\n".join(lines)


def machine_line() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    py = sys.version.split()[0]
    # The bulkops command's --loop auto takes uvloop when it is installed (the fast extra).
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"machine: {os.cpu_count()} cores, {model}, Python {py}; bulkops's loop: {loop}"
