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
from ._config import JobConfig, Secret
from ._engine import Job, JobReport, Progress, run_job
from ._errors import BulkOpsError, ConfigError, InputError
from ._models import Api, Operation
from ._sources import RawRow, from_iterable, open_source, read_csv, read_jsonl
from ._versions import DEFAULT_API_VERSION, ApiVersion

__version__ = "0.1.0"

__all__ = [
    # models and configuration
    "DEFAULT_API_VERSION",
    "Account",
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
