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

from ._auth import AccessToken, TokenProvider
from ._config import JobConfig, Secret
from ._engine import Job, JobReport, Mode, Progress, Source, run_job
from ._errors import BulkOpsError, ConfigError, InputError
from ._frames import DataFrameLike, read_parquet
from ._http import HttpRequest, HttpResponse, Transport, TransportFailure
from ._models import Api, Operation
from ._report import JobInfo, JobStatus, RateLimitReport, RequestCounts, RowCounts, RunInfo
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
from ._transport import AiohttpTransport
from ._versions import DEFAULT_API_VERSION, ApiVersion

__version__ = "0.1.0"

__all__ = [
    # models and configuration
    "DEFAULT_API_VERSION",
    "Api",
    "ApiVersion",
    # exceptions
    "BulkOpsError",
    "ConfigError",
    "InputError",
    # running jobs
    "Job",
    "JobConfig",
    "JobReport",
    "Operation",
    "Progress",
    # sources
    "RawRow",
    "Secret",
    "__version__",
    "from_iterable",
    "open_source",
    "read_csv",
    "read_jsonl",
    "run_job",
]

# Types for typed callers (issue 13, item 8): the report's parts, enums, the source and
# transport seams, token providers. Kept in a block of their own so lists added elsewhere
# merge cleanly; tests/test_public_api.py checks every name is there, once.
__all__ += [
    "AccessToken",
    "AiohttpTransport",
    "DataFrameLike",
    "HttpRequest",
    "HttpResponse",
    "JobInfo",
    "JobStatus",
    "JsonNumber",
    "Mode",
    "RateLimitReport",
    "RequestCounts",
    "RowCounts",
    "RowStream",
    "RunInfo",
    "Source",
    "SourceError",
    "Stop",
    "StopReason",
    "TokenProvider",
    "Transport",
    "TransportFailure",
    "read_parquet",
]
