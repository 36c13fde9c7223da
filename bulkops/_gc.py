"""The garbage collector tuned for a bulk job, for the job's duration.

CPython's cyclic collector runs whenever container allocations outnumber frees by 700, and each
run walks the young objects; every tenth run walks the middle generation, and now and then the
whole heap. A job keeps thousands of rows in flight (dicts, items, outcomes), which survive into
the older generations, so at the default the collector walks them again and again: measured on
a 200,000-row create, about 0.8 s of a 12 s run (~4 us a record) and pauses of up to 75 ms in
the host's event loop (the full walks). Yet the engine's objects are freed by reference
counting; the collector only has cycles to find, which a job rarely makes.

:func:`batch_gc` freezes what exists when the job starts (the modules, the host's objects: the
collector stops walking them) and runs the young collection a hundred times less often; on
leaving, the previous thresholds come back and the frozen objects return to the collector
(``gc.unfreeze``), so nothing is left changed. It is process-wide while it lasts, so a library
does not do it uninvited: the ``bulkops`` command runs in it; ``run_job_sync(batch_gc=True)``
and ``with bulkops.batch_gc():`` offer it to a process that is there to run jobs (an Airflow
or Dagster task, a script).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["batch_gc"]

YOUNG_THRESHOLD = 70_000  # CPython's default is 700


@contextlib.contextmanager
def batch_gc() -> Iterator[None]:
    """Tune the garbage collector for a bulk job while the block runs (see the module)."""
    young, middle, old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)
        gc.unfreeze()
