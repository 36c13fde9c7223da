"""bulkops: move millions of CRM records through HubSpot's batch APIs at the rate limit, with
every input row accounted for exactly once.

Example::

    import anyio, bulkops

    config = bulkops.JobConfig(
        operation=bulkops.Operation.UPSERT, object_type="tickets", id_property="external_id",
        token=bulkops.Secret.from_env_or_file(), out_dir=Path("out"),
    )
    report = anyio.run(bulkops.run_job, config, "tickets.csv")
"""

from ._config import JobConfig, Secret
from ._embed import RunningJob, graceful_signals, open_job, run_job_sync
from ._engine import Job, JobReport, Progress, run_job
from ._errors import BulkOpsError, ConfigError, InputError
from ._models import Api, Operation
from ._outcome import Outcome
from ._read_results import JobResults, iter_results, read_results
from ._sources import RawRow, from_iterable, open_source, read_csv, read_jsonl
from ._stats import StopReason
from ._stop_errors import (
    AuthError,
    BadToken,
    DailyLimitReached,
    JobConfigError,
    JobInterrupted,
    JobStopped,
    MissingScopes,
    RateLimited,
    TooManyFailures,
    Unreachable,
)
from ._versions import DEFAULT_API_VERSION, ApiVersion

__version__ = "0.1.0"

__all__ = [
    # models and configuration
    "DEFAULT_API_VERSION",
    "Api",
    "ApiVersion",
    # exceptions
    "AuthError",
    "BadToken",
    "BulkOpsError",
    "ConfigError",
    "DailyLimitReached",
    "InputError",
    # running jobs
    "Job",
    "JobConfig",
    "JobConfigError",
    "JobInterrupted",
    "JobReport",
    "JobResults",
    "JobStopped",
    "MissingScopes",
    "Operation",
    "Outcome",
    "Progress",
    "RateLimited",
    # sources
    "RawRow",
    "RunningJob",
    "Secret",
    "StopReason",
    "TooManyFailures",
    "Unreachable",
    "__version__",
    "from_iterable",
    "graceful_signals",
    "iter_results",
    "open_job",
    "open_source",
    "read_csv",
    "read_jsonl",
    "read_results",
    "run_job",
    "run_job_sync",
]
