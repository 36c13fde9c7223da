"""bulkops.batch_gc: the collector tuned while a job runs, and left as it was after."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import bulkops
from bulkops import run_job_sync
from bulkops._gc import YOUNG_THRESHOLD

from .accounting import assert_accounted
from .mockhub import MockHub, tickets
from .test_embed import config


def test_batch_gc_tunes_while_inside_and_restores_everything() -> None:
    before = gc.get_threshold()
    with bulkops.batch_gc():
        assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
        assert gc.get_threshold()[1:] == before[1:]
        assert gc.get_freeze_count() > 0  # what existed is out of the collector's walks
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_batch_gc_restores_when_the_block_raises() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), bulkops.batch_gc():
        raise RuntimeError("the job failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_run_job_sync_with_batch_gc_runs_the_job_and_restores(tmp_path: Path) -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, ...]] = []
    report = run_job_sync(
        config(tmp_path),
        tickets(250),
        transport=MockHub().transport,
        on_outcome=lambda o: seen.append(gc.get_threshold()),
        batch_gc=True,
    )
    assert report.succeeded == 250
    assert_accounted(tmp_path, 250)
    assert seen and all(t[0] == max(before[0], YOUNG_THRESHOLD) for t in seen)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
