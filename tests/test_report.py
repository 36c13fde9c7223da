"""The typed report: what to_json writes reads back the same, the exit code follows the stop,
and the whole job's report sums every run."""

from __future__ import annotations

from collections import Counter

from bulkops import JobStatus, Stop, StopReason
from bulkops._limiter import LimiterStats
from bulkops._report import JobInfo, JobReport, run_report, whole_job_report
from bulkops._stats import JobStats

INFO = JobInfo(
    operation="create",
    object_type="tickets",
    api="v3",
    api_version="2026-09",
    host="api.hubapi.com",
    id_property=None,
    input="in.csv",
    out_dir="out",
    started_at="2026-12-01T10:00:00Z",
    finished_at="2026-12-01T10:01:00Z",
)
LIMITER = LimiterStats(
    limit=190.0, ceiling=190, window=10.0, others=0.0, daily_remaining=999, daily_limit=1000
)


def a_run(*, ok: int, failed: int, requests: int, throttled: int, seconds: float, stop=None):
    stats = JobStats()
    stats.succeeded, stats.failed = ok, failed
    stats.failed_by_category = Counter({"VALIDATION_ERROR": failed})
    stats.requests["write"] = requests
    stats.by_status = Counter({201: requests - throttled, 429: throttled})
    stats.throttled = Counter({"TEN_SECONDLY_ROLLING": throttled})
    status = JobStatus.STOPPED if stop else JobStatus.COMPLETE
    return run_report(
        job=INFO,
        configured_limit=None,
        status=status,
        stop=stop,
        elapsed=seconds,
        rows_read=ok + failed,
        reading_done=True,
        stats=stats,
        limiter=LIMITER,
    )


def test_a_report_round_trips_through_json() -> None:
    report = a_run(ok=90, failed=10, requests=2, throttled=0, seconds=3.0)
    assert JobReport.from_json(report.to_json()) == report
    assert report.to_json()["rate_limit"]["429_by_policy"] == {"TEN_SECONDLY_ROLLING": 0}


def test_the_exit_code_follows_the_stop() -> None:
    assert a_run(ok=1, failed=0, requests=1, throttled=0, seconds=1).exit_code == 0
    assert a_run(ok=1, failed=1, requests=1, throttled=0, seconds=1).exit_code == 1
    auth = Stop(StopReason.AUTH, "bad token")
    assert a_run(ok=1, failed=0, requests=1, throttled=0, seconds=1, stop=auth).exit_code == 3
    config = Stop(StopReason.CONFIG, "no such object")
    assert a_run(ok=0, failed=0, requests=1, throttled=0, seconds=1, stop=config).exit_code == 2


def test_a_share_of_the_ceiling_only_over_at_least_one_window() -> None:
    short = a_run(ok=100, failed=0, requests=1, throttled=0, seconds=0.01)
    assert short.rate_limit.share_of_ceiling is None  # never 1,000% over a blink
    long = a_run(ok=19000, failed=0, requests=190, throttled=0, seconds=10.0)
    assert long.rate_limit.share_of_ceiling == 1.0


def test_the_whole_job_sums_every_run() -> None:
    first = a_run(ok=50, failed=0, requests=3, throttled=2, seconds=20.0)
    second = a_run(ok=50, failed=10, requests=2, throttled=1, seconds=20.0)
    totals = {"succeeded": 100, "failed": 10, "created": 100, "updated": 0,
              "failed_by_category": {"VALIDATION_ERROR": 10}}  # fmt: skip
    whole = whole_job_report(second, [first], totals, mode="resume", skipped=50)
    assert whole.runs == 2 and whole.succeeded == 100 and whole.failed == 10
    assert whole.requests.total == 5 and whole.requests.by_status["429"] == 3
    assert whole.rate_limit.by_policy_429 == {"TEN_SECONDLY_ROLLING": 3}
    assert whole.duration_s == 40.0
    assert whole.this_run is not None and whole.this_run.skipped_finished_rows == 50
