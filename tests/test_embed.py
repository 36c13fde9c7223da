"""Embedding: run_job_sync, graceful signal handling for library users, sync iterables read
off the event loop, and a folder of its own for every job made in code."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import bulkops
from bulkops import ConfigError, JobConfig, Operation, Secret, graceful_signals, run_job_sync
from bulkops._engine import Job
from bulkops._http import HttpRequest, HttpResponse

from .accounting import assert_accounted, assert_report_matches_files
from .mockhub import MockHub, tickets

TOKEN = "pat-test-embed-test-token"


def config(out: Path | None, **kw: Any) -> JobConfig:
    kw.setdefault("rate_limit", 0)
    if out is not None:
        kw["out_dir"] = out
    return JobConfig(
        operation=Operation.CREATE, token=Secret(TOKEN), base_url="http://hub.test", **kw
    )


def test_run_job_sync_runs_a_job_from_plain_code(tmp_path: Path) -> None:
    seen: list[int] = []
    report = run_job_sync(
        config(tmp_path),
        tickets(120),
        transport=MockHub().transport,
        on_outcome=lambda o: seen.append(o.row),
    )
    assert report.succeeded == 120 and sorted(seen) == list(range(1, 121))
    assert_accounted(tmp_path, 120)


async def test_run_job_sync_refuses_a_running_loop(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"await bulkops\.run_job"):
        run_job_sync(config(tmp_path), tickets(1), transport=MockHub().transport)


class HoldingTransport:
    """Answers the schema read; holds every batch until ``release`` is set."""

    def __init__(self) -> None:
        self.hub = MockHub()
        self.in_flight = anyio.Event()
        self.release = anyio.Event()

    @property
    def host(self) -> str:
        return "hub.test"

    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse:  # noqa: ASYNC109
        if "batch" in request.path:
            self.in_flight.set()
            await self.release.wait()
        return self.hub.handle(request)


async def test_a_first_signal_stops_gracefully_and_handlers_are_restored(tmp_path: Path) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    transport = HoldingTransport()
    job = Job(config(tmp_path, concurrency=1), tickets(500), transport=transport)
    reports: list[bulkops.JobReport] = []
    with anyio.fail_after(20), graceful_signals(job):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                reports.append(await job.run())

            tg.start_soon(run)
            await transport.in_flight.wait()
            os.kill(os.getpid(), signal.SIGTERM)
            await job.latch.wait()
            transport.release.set()  # the request in flight finishes within the grace
    assert {sig: signal.getsignal(sig) for sig in before} == before
    report = reports[0]
    assert report.stop_reason == "interrupted" and report.status == "stopped"
    assert report.succeeded == 100  # the batch in flight was settled, nothing more sent
    assert_report_matches_files(tmp_path)
    with pytest.raises(bulkops.JobInterrupted):
        report.raise_for_status()


async def test_a_second_signal_cancels_at_once(tmp_path: Path) -> None:
    transport = HoldingTransport()
    job = Job(config(tmp_path, concurrency=1), tickets(500), transport=transport)
    reports: list[bulkops.JobReport] = []
    with anyio.fail_after(20), graceful_signals(job):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                with anyio.CancelScope() as scope:
                    reports.append(await job.run())
                assert not scope.cancelled_caught

            tg.start_soon(run)
            await transport.in_flight.wait()
            os.kill(os.getpid(), signal.SIGINT)
            await job.latch.wait()
            os.kill(os.getpid(), signal.SIGINT)  # never released: only a cancel ends it
    assert job.report is not None and job.report.status == "cancelled"
    assert job.report.succeeded == 0
    assert_report_matches_files(tmp_path)


async def test_run_job_can_handle_signals_itself(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    transport = HoldingTransport()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            reports: list[bulkops.JobReport] = []

            async def run() -> None:
                reports.append(
                    await bulkops.run_job(
                        config(tmp_path, concurrency=1),
                        tickets(300),
                        transport=transport,
                        handle_signals=True,
                    )
                )

            tg.start_soon(run)
            await transport.in_flight.wait()
            os.kill(os.getpid(), signal.SIGINT)
            transport.release.set()
    assert reports[0].stop_reason == "interrupted"
    assert signal.getsignal(signal.SIGINT) is before


async def test_a_sync_iterable_is_read_off_the_event_loop(tmp_path: Path) -> None:
    """The iterable blocks until a task on the loop lets it go on: read on the loop, it would
    block that task too and time out."""
    go_on, reached = threading.Event(), threading.Event()
    loop_thread = threading.get_ident()
    readers: set[int] = set()

    def rows() -> Iterator[dict[str, str]]:
        for n, row in enumerate(tickets(50), 1):
            readers.add(threading.get_ident())
            if n == 10:
                reached.set()
                if not go_on.wait(timeout=10):
                    raise TimeoutError("the loop was blocked while the source was read")
            yield row

    async def let_it_go_on() -> None:
        await anyio.to_thread.run_sync(reached.wait, 10)  # then back on the loop
        go_on.set()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(let_it_go_on)
            report = await bulkops.run_job(config(tmp_path), rows(), transport=MockHub().transport)
    assert report.succeeded == 50 and loop_thread not in readers
    assert_accounted(tmp_path, 50)


def test_a_job_made_in_code_gets_a_folder_of_its_own(tmp_path: Path) -> None:
    one, two = config(None), config(None)
    assert one.out_dir != two.out_dir
    assert one.out_dir.parent == Path("bulkops-jobs") and "-create-tickets-" in one.out_dir.name
    # A folder once chosen stays with the config; one given is kept as given.
    assert dataclasses.replace(one, rate_limit=5).out_dir == one.out_dir
    assert config(Path("bulkops-out")).out_dir == Path("bulkops-out")
    assert config(tmp_path).out_dir == tmp_path


async def test_open_job_can_handle_signals(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    transport = HoldingTransport()
    rows = []
    with anyio.fail_after(20):
        async with bulkops.open_job(
            config(tmp_path, concurrency=1), tickets(400), transport=transport,
            handle_signals=True,
        ) as job:  # fmt: skip
            await transport.in_flight.wait()
            os.kill(os.getpid(), signal.SIGTERM)
            await job.job.latch.wait()
            transport.release.set()
            rows = [outcome.row async for outcome in job.outcomes()]
    assert job.report is not None and job.report.stop_reason == "interrupted"
    assert sorted(rows) == list(range(1, 101))  # the batch in flight, nothing after
    assert signal.getsignal(signal.SIGTERM) is before
