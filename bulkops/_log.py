"""The loggers bulkops writes to, and the one rule about what goes in a record.

Silent by default, as a library should be: ``bulkops`` has a :class:`logging.NullHandler`, so
nothing reaches stderr (not even warnings, through ``logging.lastResort``) until the program
configures logging. Loggers, each a child of ``bulkops``:

* ``bulkops.job``: a job starts and ends (INFO), stops (WARNING when resumable, ERROR when
  something must be fixed first);
* ``bulkops.http``: every request and its answer (DEBUG), retries and 429 pauses (INFO),
  outages (WARNING);
* ``bulkops.limiter``: rate-limit headers that were ignored (the limiter's own);
* ``bulkops.intake``: rows that failed before they were sent (DEBUG).

Records carry structured fields in ``extra`` (see :data:`FIELDS`), so a JSON formatter can
index them. No record ever holds the token: messages are built from counts, paths, statuses
and HubSpot's categories, never from request headers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["FIELDS", "http_log", "intake_log", "job_log", "with_fields"]

# The names ``extra`` uses; each is an attribute of the LogRecord.
FIELDS = (
    "job_id",
    "operation",
    "object_type",
    "kind",
    "method",
    "path",
    "status",
    "elapsed_ms",
    "policy",
    "attempt",
    "delay_s",
    "rows",
    "stop_reason",
)

logging.getLogger("bulkops").addHandler(logging.NullHandler())
job_log = logging.getLogger("bulkops.job")
http_log = logging.getLogger("bulkops.http")
intake_log = logging.getLogger("bulkops.intake")


def with_fields(base: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """``extra`` for one record: the job's fields (id, operation) and this record's."""
    return {**base, **fields}
