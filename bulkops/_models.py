"""Value types that flow through the pipeline.

An input record becomes an :class:`Item` once it is normalised for its operation. Items are
grouped into a :class:`Batch`; every item ends in exactly one :class:`Outcome`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = [
    "Api",
    "Batch",
    "Item",
    "Operation",
    "Outcome",
    "Phase",
]


class Operation(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UPSERT = "upsert"
    ARCHIVE = "archive"
    READ = "read"

    @property
    def idempotent(self) -> bool:
        """Whether resending a request whose outcome is unknown is safe.

        Everything but create is: an update, upsert, archive or read sent twice leaves HubSpot
        as sending it once would. A create sent twice makes two records.
        """
        return self is not Operation.CREATE


class Api(enum.StrEnum):
    V3 = "v3"
    V1 = "v1"


class Phase(enum.Enum):
    """What a batch does: the job's own operation, or a read-back that settles a create whose
    outcome was unknown (timeout, reset, 5xx, a resumed job's creates in flight)."""

    WRITE = "write"
    VERIFY = "verify"


# Item and Outcome are msgspec Structs, not dataclasses: made once per record each, and a
# Struct is built in C (no Python __init__ frame), about 200 ns less per object. gc=False: the
# collector need not track them, as no reference cycle can pass through one (an item holds
# only the row's own dicts and lists, an outcome its item and dicts; nothing refers back).
class Item(msgspec.Struct, eq=False, gc=False):
    """One input record, normalised for the job's operation.

    ``row`` is the 1-based input record number and the only identity an item has: the trace id
    sent to HubSpot is derived from it, and results are matched back through it, never through
    the position in a batch.

    Two fields change while the item is in the engine, both only where a verdict is applied
    (``_worker``): ``attempts`` counts attempts that were the record's own (a 429 or an
    isolation split is not), and ``maybe_written`` becomes true once a write of it may have
    reached HubSpot without an answer saying so (it never becomes false again).
    """

    row: int
    raw: dict[str, Any]
    properties: dict[str, str]
    record_id: str | None = None
    associations: list[dict[str, Any]] | None = None
    # Batch-hygiene key: two items with the same key never share a batch, and the later one waits
    # until the earlier one has finished, so writes to one record keep their input order.
    key: str | None = None
    attempts: int = 0
    maybe_written: bool = False
    # The input row's identity in the journal (``_journal.row_digest``), or b"" when the job
    # does not journal one: a resume checks the row it is given is the row that finished.
    digest: bytes = b""
    # The job's passthrough columns (``JobConfig.passthrough``) as the row gave them: never
    # sent, carried into the result lines and the public Outcome. None when there are none.
    passthrough: dict[str, Any] | None = None

    @property
    def trace_id(self) -> str:
        return str(self.row)


@dataclass(slots=True, eq=False)
class Batch:
    items: list[Item]
    phase: Phase = Phase.WRITE
    # How many times this group has been split to isolate a rejected record (0 = normal batch).
    # Split halves are sent as formed; they are never merged with other records again.
    split_depth: int = 0

    def __len__(self) -> int:
        return len(self.items)


class Outcome(msgspec.Struct, gc=False):
    """The final word on one item: written/read (``ok``) or failed with a reason."""

    item: Item
    ok: bool
    hubspot_id: str | None = None
    new: bool | None = None
    properties: dict[str, Any] | None = None
    category: str | None = None
    message: str | None = None
    # More fields for the result line (a failure's codes, an existing record's id). None, not
    # an empty dict, when there are none: a dict made per record written costs every job.
    extra: dict[str, Any] | None = None
