"""Where a default ``bulkops run create`` spends its CPU: one job, in this process, under
cProfile, against the embedded fake in a process of its own.

Run from the repository root::

    python benchmarks/profile_run.py                       # 100,000 rows
    python benchmarks/profile_run.py --rows 20000 --top 60 --save /tmp/run.prof
    python benchmarks/profile_run.py -- --no-journal       # extra flags go to `bulkops run`

The job is the one ``bench_cpu.py`` measures: ``bulkops run create --input FILE --base-url URL
--out DIR --rate-limit 0`` (tickets, journal and pre-flight on), called as
``bulkops._cli.main([...])`` so the whole CLI path is profiled. The fake is
``python -m bulkops fake-server --rate-limit 0 --daily-limit 0`` (no latency, full records in
its answers); its CPU is not in the profile.

bulkops reads its input and does some file work in worker threads (``anyio.to_thread``); cProfile
sees one thread only, so every thread started during the job gets a profiler of its own and the
profiles are merged. The clock is cProfile's own (wall time; the profiler about doubles the job's
CPU); the only functions that merely wait (``epoll.poll``, a worker thread blocked on its queue's
lock) are taken out of the tables and their time is shown apart. Wall time still counts the
moments the thread is descheduled: on 2 cores shared with the fake, ``socket.send`` (which
wakes the fake) looks far dearer than its CPU. ``--timer cpu`` uses each thread's CPU time
instead: exact per call, but a Python-level timer makes the profiler cost about 4x the job,
which inflates call-heavy code (dict.get, isinstance, len). Read the two side by side.

Printed: the top ``--top`` functions (default 40) by tottime, then bulkops' own functions by
cumtime (cProfile's cumtime of the event loop's frames exceeds the wall time, and for coroutines
it is a guide only), then self time by module (a C function's
time, e.g. orjson or a dict method, counts for the module that called it: the stage view),
the job's wall time, the process's CPU per record with the profiler on (use ``bench_cpu.py``
for the real figure) and the time of each thread. ``--save`` writes the merged profile
(before waits are taken out) for ``snakeviz``/``pstats``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as c

DEFAULT_ROWS = 100_000
DEFAULT_TOP = 40
THREAD_JOIN_TIMEOUT_S = 15.0
# wall: cProfile's default clock (cheap: the profiler about doubles the job's CPU); the waits
# below are taken out. cpu: each thread's own CPU time (time.thread_time), exact, but a
# Python-level timer makes the profiler cost about 4x the job, which inflates call-heavy code.
# With the wall clock these only wait; their time is taken out of the tables and shown apart.
WAITS = frozenset(
    {"<method 'acquire' of '_thread.lock' objects>", "<method 'poll' of 'select.epoll' objects>"}
)
TIMERS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}


class ThreadProfiles:
    """A profiler for every thread started while installed (``Thread._bootstrap_inner`` is
    where every thread, whatever its ``run``, begins)."""

    def __init__(self, new_profile: Callable[[], cProfile.Profile]) -> None:
        self._new_profile = new_profile
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        self.threads: list[threading.Thread] = []
        self._original: Callable[[threading.Thread], None] | None = None

    def install(self) -> None:
        original: Callable[[threading.Thread], None] = vars(threading.Thread)["_bootstrap_inner"]
        self._original = original
        profiles, threads, new_profile = self.profiles, self.threads, self._new_profile

        def bootstrap_inner(thread: threading.Thread) -> None:
            profile = new_profile()
            profiles.append((thread.name, profile))
            threads.append(thread)
            profile.enable()
            try:
                original(thread)
            finally:
                profile.disable()

        setattr(threading.Thread, "_bootstrap_inner", bootstrap_inner)  # noqa: B010

    def uninstall(self) -> None:
        if self._original is not None:
            setattr(threading.Thread, "_bootstrap_inner", self._original)  # noqa: B010
            self._original = None

    def join(self, timeout: float) -> list[str]:
        """Wait for the job's threads to end; returns the names of those still running."""
        deadline = c.now() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - c.now()))
        return [t.name for t in self.threads if t.is_alive()]


def busy_time(profile: cProfile.Profile, waits_out: bool) -> float:
    """A thread's profiled time, less its waits when they are taken out."""
    stats = pstats.Stats(profile)
    if waits_out:
        take_waits(stats)
    raw: Any = stats
    return float(raw.total_tt)


def render(stats: pstats.Stats, sort: str, top: int, restrict: str | None = None) -> str:
    buf = io.StringIO()
    stats.stream = buf  # type: ignore[attr-defined]
    if restrict is None:
        stats.sort_stats(sort).print_stats(top)
    else:
        stats.sort_stats(sort).print_stats(restrict, top)
    return buf.getvalue()


def take_waits(stats: pstats.Stats) -> dict[str, float]:
    """Remove the functions that only wait (epoll, a worker thread blocked on its queue) from
    ``stats`` and return their time: with the wall clock that time is not CPU."""
    raw: Any = stats
    taken: dict[str, float] = {}
    for key in list(raw.stats):
        if key[0] == "~" and key[2] in WAITS:
            tt = raw.stats.pop(key)[2]
            taken[key[2]] = taken.get(key[2], 0.0) + tt
            raw.total_tt -= tt
    return taken


def module_of(filename: str) -> str:
    """bulkops/_x.py, a third-party package's name, or a stdlib module or package."""
    parts = Path(filename).parts
    if "bulkops" in parts:
        i = len(parts) - 1 - parts[::-1].index("bulkops")
        return "/".join(parts[i:])
    if "site-packages" in parts[:-1]:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    for i, part in enumerate(parts[:-1]):
        if part.startswith("python3") and parts[i - 1] == "lib":
            return parts[i + 1].removesuffix(".py")
    return filename  # <frozen abc>, <string>, a script


def short_path(filename: str) -> str:
    """bulkops/_x.py, aiohttp/client.py, asyncio/events.py: the path from its package on."""
    parts = Path(filename).parts
    if "bulkops" in parts[:-1]:
        i = len(parts) - 1 - parts[::-1].index("bulkops")
        return "/".join(parts[i:])
    if "site-packages" in parts[:-1]:
        return "/".join(parts[parts.index("site-packages") + 1 :])
    for i, part in enumerate(parts[:-1]):
        if part.startswith("python3") and parts[i - 1] == "lib":
            return "/".join(parts[i + 1 :])
    return filename


def shorten(stats: pstats.Stats) -> None:
    """Like ``strip_dirs``, but keeps the package: ``bulkops/_intake.py``, not ``_intake.py``."""
    raw: Any = stats

    def key(func: tuple[str, int, str]) -> tuple[str, int, str]:
        return (short_path(func[0]), func[1], func[2])

    new: dict[Any, Any] = {}
    for func, (cc, nc, tt, ct, callers) in raw.stats.items():
        entry = (cc, nc, tt, ct, {key(k): v for k, v in callers.items()})
        k = key(func)
        new[k] = pstats.add_func_stats(new[k], entry) if k in new else entry  # type: ignore[attr-defined]
    raw.stats = new
    raw.fcn_list = None
    raw.top_level = {key(f) for f in raw.top_level}
    raw.max_name_len = max((len(f"{f[0]}:{f[1]}({f[2]})") for f in new), default=0)


def by_module(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Self time per module, where a C function's time (a builtin, a method, orjson) counts for
    the module that called it (split by the callers' shares)."""
    raw: Any = stats
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, tt, _, callers) in raw.stats.items():
        if filename != "~":
            mod = module_of(filename)
            totals[mod] = totals.get(mod, 0.0) + tt
            continue
        for (caller_file, _, _), caller_share in callers.items():
            mod = module_of(caller_file) if caller_file != "~" else "(C called from C)"
            totals[mod] = totals.get(mod, 0.0) + caller_share[2]
    return sorted(totals.items(), key=lambda kv: -kv[1])


def profile_job(args: argparse.Namespace, extra: list[str]) -> int:
    import bulkops._cli

    with tempfile.TemporaryDirectory(prefix="bulkops-profile-") as tmp:
        work = Path(tmp)
        csv_path = work / f"tickets-{args.rows}.csv"
        print(f"writing {args.rows:,} tickets to {csv_path}", file=sys.stderr, flush=True)
        c.write_tickets_csv(csv_path, args.rows)
        with c.fake_process(c.python_cmd(*c.UNTHROTTLED_FAKE_ARGS)) as (_, url):
            os.environ[c.TOKEN_ENV] = c.FAKE_TOKEN
            os.environ.pop("HUBSPOT_BASE_URL", None)
            argv = [*c.default_create_args(csv_path, url, work / "out"), *extra]
            print(f"bulkops {' '.join(argv)}", file=sys.stderr, flush=True)
            timer = TIMERS[args.timer]
            threads = ThreadProfiles(lambda: cProfile.Profile(timer))
            main_profile = cProfile.Profile(timer)
            threads.install()
            cpu_before, started = c.cpu_seconds(), c.now()
            main_profile.enable()
            try:
                code = bulkops._cli.main(argv)
            finally:
                main_profile.disable()
                seconds, cpu = c.now() - started, c.cpu_seconds() - cpu_before
                threads.uninstall()
            alive = threads.join(THREAD_JOIN_TIMEOUT_S)
    if code != 0:
        print(f"bulkops exited {code}", file=sys.stderr)
    stats = pstats.Stats(main_profile)
    for _, profile in threads.profiles:
        stats.add(profile)
    if args.save:
        stats.dump_stats(args.save)
    waits = take_waits(stats) if args.timer == "wall" else {}
    modules = by_module(stats)
    if not args.full_paths:
        shorten(stats)
    print(f"== top {args.top} by tottime ==")
    print(render(stats, "tottime", args.top))
    # cProfile's cumtime of the event loop's own frames (and of the threads' run loops, which
    # mostly wait) exceeds the job's wall time: only bulkops' functions are listed here.
    print(f"== top {args.top} bulkops functions by cumtime (for coroutines a guide only) ==")
    print(render(stats, "cumtime", args.top, restrict=r"bulkops[/\\]"))
    profiled = sum(t for _, t in modules)
    print(f"== self time by module (C calls count for their caller), of {profiled:.2f} s ==")
    print(
        c.table(
            ("module", "seconds", "share"),
            [(m, f"{t:.3f}", f"{t / profiled:.1%}") for m, t in modules[: args.top]],
        )
    )
    print()
    if waits:
        print(
            "waiting, taken out of the tables above: "
            + ", ".join(f"{name} {t:.2f} s" for name, t in sorted(waits.items()))
        )
    print(
        f"job: {args.rows:,} rows in {seconds:.2f} s wall ({args.rows / seconds:,.0f} records/s "
        f"under the profiler), process CPU {cpu:.2f} s = {1e6 * cpu / args.rows:.1f} us/record "
        "with cProfile on (bench_cpu.py measures it without)"
    )
    waits_out = args.timer == "wall"
    per_thread = [("main", busy_time(main_profile, waits_out))]
    per_thread += [(name, busy_time(p, waits_out)) for name, p in threads.profiles]
    print(
        f"profiled {args.timer} time by thread{' (waits out)' if waits_out else ''}: "
        + ", ".join(f"{name} {t:.2f} s" for name, t in per_thread if t >= 0.005)
        + (f"; still running after the job: {alive}" if alive else "")
    )
    if args.save:
        print(f"profile saved to {args.save}")
    print(c.machine_line())
    return code


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after -- are added to the `bulkops run create` command line.",
    )
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="tickets (default %(default)s)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, help="lines per table (%(default)s)")
    p.add_argument("--save", help="write the merged profile (pstats format) to this file")
    p.add_argument(
        "--timer",
        choices=sorted(TIMERS),
        default="wall",
        help="wall: cProfile's own clock, low overhead, waits taken out (default); cpu: each "
        "thread's CPU time (exact, but the profiler then costs about 4x the job)",
    )
    p.add_argument("--full-paths", action="store_true", help="print whole file paths")
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    args = p.parse_args(argv)
    if args.rows < 1 or args.top < 1:
        raise SystemExit("--rows and --top must be >= 1")
    return profile_job(args, extra)


if __name__ == "__main__":
    sys.exit(main())
