"""Typed errors for jobs that ended before every row was finished.

The model: a job that ran returns its :class:`~bulkops.JobReport`, whatever happened (the CLI
and :func:`~bulkops.run_job` alike); ``report.raise_for_status()`` turns a stop into one of
these exceptions, each carrying the report (``exc.report``), and returns the report when the
job finished. Failed rows never raise: they are results.

::

    BulkOpsError
     +-- JobStopped                      report.stop is set; exc.report, exc.stop
          +-- AuthError                  401/403 (StopReason.AUTH)
          |    +-- BadToken              401: the token is wrong, expired or revoked
          |    +-- MissingScopes         403: the token lacks a scope the job needs
          +-- DailyLimitReached          HubSpot's daily quota, or the job's daily budget
          +-- RateLimited                429s outlasted throttled_timeout
          +-- Unreachable                no answer (UNREACHABLE) or an outage (OUTAGE)
          +-- JobConfigError (ConfigError)  fix first: config, input, not HubSpot
          +-- TooManyFailures            max_failures was reached
          +-- JobInterrupted             job.stop(), job.cancel(), SIGINT/SIGTERM

``exc.exit_code`` is the CLI's exit code for the same stop (2 fix first, 3 resumable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import BulkOpsError, ConfigError
from ._stats import Stop, StopReason

if TYPE_CHECKING:
    from ._report import JobReport

__all__ = [
    "AuthError",
    "BadToken",
    "DailyLimitReached",
    "JobConfigError",
    "JobInterrupted",
    "JobStopped",
    "MissingScopes",
    "RateLimited",
    "TooManyFailures",
    "Unreachable",
    "error_for",
]


class JobStopped(BulkOpsError):
    """The job stopped before every row was finished; ``report`` says how far it got."""

    def __init__(self, report: JobReport) -> None:
        stop = report.stop
        message = stop.message if stop is not None else f"the job ended {report.status}"
        super().__init__(message)
        self.report = report
        self.stop: Stop | None = stop

    @property
    def exit_code(self) -> int:
        return self.report.exit_code

    @property
    def resumable(self) -> bool:
        """Whether ``bulkops resume OUT`` (Mode.RESUME) can go on from here as it is."""
        return self.exit_code == 3


class AuthError(JobStopped):
    """HubSpot refused the token (401) or a permission (403)."""


class BadToken(AuthError):
    """401: the token is wrong, expired or revoked."""


class MissingScopes(AuthError):
    """403: the token works but lacks a scope this job needs."""


class DailyLimitReached(JobStopped):
    """HubSpot's daily request quota (or the job's ``daily_budget``/``daily_share``) is spent."""


class RateLimited(JobStopped):
    """Every answer was a 429 for longer than ``throttled_timeout``."""


class Unreachable(JobStopped):
    """The host never answered, or stopped answering for longer than ``outage_timeout``."""


class JobConfigError(JobStopped, ConfigError):
    """Fix first: every batch would fail the same way (the object type, the id property, the
    input's header, a host that is not HubSpot). Also a :class:`ConfigError`."""


class TooManyFailures(JobStopped):
    """``max_failures`` rows (or that share of the finished rows) failed."""


class JobInterrupted(JobStopped):
    """Stopped from outside: ``job.stop()``, ``job.cancel()``, SIGINT or SIGTERM."""


_BY_REASON: dict[StopReason, type[JobStopped]] = {
    StopReason.DAILY_LIMIT: DailyLimitReached,
    StopReason.DAILY_BUDGET: DailyLimitReached,
    StopReason.RATE_LIMITED: RateLimited,
    StopReason.OUTAGE: Unreachable,
    StopReason.UNREACHABLE: Unreachable,
    StopReason.NOT_HUBSPOT: JobConfigError,
    StopReason.CONFIG: JobConfigError,
    StopReason.INPUT: JobConfigError,
    StopReason.INTERRUPTED: JobInterrupted,
    StopReason.LIMIT: JobInterrupted,  # a trial run (--limit) sent its rows; resume sends the rest
    StopReason.MAX_FAILURES: TooManyFailures,
}


def error_for(report: JobReport) -> JobStopped | None:
    """The exception for a report's stop; None for a job that finished every row."""
    stop = report.stop
    if stop is None:
        if report.status.value == "complete":
            return None
        return JobStopped(report)
    if stop.reason is StopReason.AUTH:
        if stop.status == 401:
            return BadToken(report)
        return MissingScopes(report) if stop.status == 403 else AuthError(report)
    return _BY_REASON.get(stop.reason, JobStopped)(report)
