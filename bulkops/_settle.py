"""Settling: the one place a row's outcome becomes final.

Every finished row, from the intake (invalid, unparseable) or from a worker (HubSpot's
answer), goes through :class:`Settler`: the result line (and its journal record), the count in
:class:`~bulkops._stats.JobStats`, the commit timer, the failure threshold, and the caller's
``on_outcome``. In that order: a caller sees an outcome only once it is in the files' buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._config import MIN_ROWS_FOR_SHARE
from ._errors import INPUT_ERROR
from ._models import Item, Outcome
from ._outcome import Outcome as PublicOutcome
from ._outcome import public_outcome
from ._results import Committer, ResultWriter
from ._sources import RawRow
from ._stats import JobStats, Stop, StopReason

__all__ = ["Settler", "failure_stop"]


class Settler:
    def __init__(
        self,
        *,
        writer: ResultWriter,
        stats: JobStats,
        committer: Committer,
        on_outcome: Callable[[PublicOutcome], None] | None,
        id_property: str | None,
        on_failure: Callable[[], None] | None,
    ) -> None:
        self._writer = writer
        self._stats = stats
        self._committer = committer
        self._on_outcome = on_outcome
        self._id_property = id_property
        self._on_failure = on_failure

    def __call__(self, outcome: Outcome, *, source_line: int | None = None) -> None:
        self._writer.record(outcome, source_line=source_line)
        self._stats.outcome(outcome)
        self._committer.dirty()
        if self._on_failure is not None and not outcome.ok:
            self._on_failure()
        if self._on_outcome is not None:
            self._on_outcome(public_outcome(outcome, id_property=self._id_property))

    def many(self, outcomes: Sequence[Outcome]) -> None:
        """A batch's outcomes, in the same order of steps as one: the files' buffer (and the
        journal) for all, then the counts, then the threshold and the caller. One call per
        batch rather than per row, because this runs for every record of every job."""
        self._writer.record_many(outcomes)
        self._stats.outcomes(outcomes)
        self._committer.dirty()
        if self._on_failure is not None:
            for outcome in outcomes:
                if not outcome.ok:
                    self._on_failure()
        if self._on_outcome is not None:
            for outcome in outcomes:
                self._on_outcome(public_outcome(outcome, id_property=self._id_property))

    def unparsed(self, raw: RawRow) -> None:
        """A record the reader could not parse: there is no input, only where it was."""
        message = raw.error or "unreadable record"
        outcome = Outcome(Item(raw.row, {}, {}), False, category=INPUT_ERROR, message=message)
        self(outcome, source_line=raw.line)


def failure_stop(limit: int | float | None, stats: JobStats, taken: int) -> Stop | None:
    """The stop once ``max_failures`` rows failed (this run's), or that share of the ``taken``
    rows (this run took in), judged once at least ``MIN_ROWS_FOR_SHARE`` rows have finished.

    The share is over rows taken in, not rows finished: a row refused at intake fails at once
    while a good one waits for HubSpot, so the finished rows would overstate it."""
    if limit is None:
        return None
    if isinstance(limit, float):
        taken = max(taken, stats.finished)
        if stats.finished < MIN_ROWS_FOR_SHARE or stats.failed < limit * taken:
            return None
        what = f"{stats.failed} of {taken} rows failed (max_failures {limit:.0%})"
    else:
        if stats.failed < limit:
            return None
        what = f"{stats.failed} rows failed (max_failures {limit})"
    return Stop(
        StopReason.MAX_FAILURES,
        f"{what}; see failed.jsonl, fix the cause and continue with `bulkops resume OUT` "
        "(finished rows are kept)",
    )
