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

from ._account import Account
from ._auth import AccessToken, TokenProvider
from ._config import JobConfig, Secret
from ._dry_run import DryRunReport, dry_run
from ._embed import RunningJob, graceful_signals, open_job, run_job_sync
from ._engine import Job, Mode, Progress, Source, run_job
from ._errors import BulkOpsError, Category, ConfigError, InputError
from ._frames import DataFrameLike, read_parquet
from ._gc import batch_gc
from ._http import HttpRequest, HttpResponse, Transport, TransportFailure
from ._mapping import ColumnMapping
from ._models import Api, Operation
from ._outcome import Outcome
from ._read_results import JobResults, iter_results, read_results
from ._report import (
    JobInfo,
    JobReport,
    JobStatus,
    RateLimitReport,
    RequestCounts,
    RowCounts,
    RunInfo,
    Written,
)
from ._sources import (
    JsonNumber,
    RawRow,
    RowStream,
    SourceError,
    from_iterable,
    open_source,
    read_csv,
    read_jsonl,
)
from ._stats import Stop, StopReason
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
from ._transport import AiohttpTransport
from ._versions import DEFAULT_API_VERSION, ApiVersion

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_API_VERSION",
    "AccessToken",
    "Account",
    "AiohttpTransport",
    "Api",
    "ApiVersion",
    "AuthError",
    "BadToken",
    "BulkOpsError",
    "Category",
    "ColumnMapping",
    "ConfigError",
    "DailyLimitReached",
    "DataFrameLike",
    "DryRunReport",
    "HttpRequest",
    "HttpResponse",
    "InputError",
    "Job",
    "JobConfig",
    "JobConfigError",
    "JobInfo",
    "JobInterrupted",
    "JobReport",
    "JobResults",
    "JobStatus",
    "JobStopped",
    "JsonNumber",
    "MissingScopes",
    "Mode",
    "Operation",
    "Outcome",
    "Progress",
    "RateLimitReport",
    "RateLimited",
    "RawRow",
    "RequestCounts",
    "RowCounts",
    "RowStream",
    "RunInfo",
    "RunningJob",
    "Secret",
    "Source",
    "SourceError",
    "Stop",
    "StopReason",
    "TokenProvider",
    "TooManyFailures",
    "Transport",
    "TransportFailure",
    "Unreachable",
    "Written",
    "__version__",
    "batch_gc",
    "dry_run",
    "from_iterable",
    "graceful_signals",
    "iter_results",
    "open_job",
    "open_source",
    "read_csv",
    "read_jsonl",
    "read_parquet",
    "read_results",
    "run_job",
    "run_job_sync",
]
