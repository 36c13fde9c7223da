"""Exceptions, and the error categories that label failed records.

Exception tree::

    BulkOpsError
     +-- ConfigError (ValueError)    bad arguments, detected before anything is sent
     +-- InputError                  one input record cannot be turned into a request

A failed *record* is data (an :class:`~bulkops._models.Outcome` with a category), not an
exception. Exceptions are for things that stop a record from being built or the job from running.
"""

from __future__ import annotations

import enum

__all__ = [
    "AMBIGUOUS",
    "BATCH_REJECTED",
    "INPUT_ERROR",
    "PREFLIGHT",
    "RETRIES_EXHAUSTED",
    "UNACCOUNTED",
    "BulkOpsError",
    "Category",
    "ConfigError",
    "InputError",
]


class Category(enum.StrEnum):
    """The categories bulkops adds to HubSpot's own (VALIDATION_ERROR, OBJECT_NOT_FOUND,
    CONFLICT, ...) in ``failed.jsonl``'s ``error.category``."""

    INPUT_ERROR = "INPUT_ERROR"  # the row could not be parsed or lacks a field the operation needs
    PREFLIGHT = "PREFLIGHT_VALIDATION"  # rejected locally against the account's property schema
    AMBIGUOUS = "AMBIGUOUS"  # a create may or may not have happened; not resent (no duplicate)
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"  # transient failures (5xx, timeouts...) outlasted us
    BATCH_REJECTED = "BATCH_REJECTED"  # HubSpot refused the whole batch; not isolated
    UNACCOUNTED = "UNACCOUNTED"  # HubSpot answered 2xx but never mentioned the record


# Plain strings inside the engine (a category is a dict key in counts and JSON: orjson takes
# only exact ``str`` keys); equal to the enum's members.
INPUT_ERROR: str = Category.INPUT_ERROR.value
PREFLIGHT: str = Category.PREFLIGHT.value
AMBIGUOUS: str = Category.AMBIGUOUS.value
RETRIES_EXHAUSTED: str = Category.RETRIES_EXHAUSTED.value
BATCH_REJECTED: str = Category.BATCH_REJECTED.value
UNACCOUNTED: str = Category.UNACCOUNTED.value


class BulkOpsError(Exception):
    """Base class of every exception bulkops raises."""


class ConfigError(BulkOpsError, ValueError):
    """The job cannot start: a bad argument, a missing token, an unreadable input."""


class InputError(BulkOpsError):
    """One input record cannot be sent; names the field so the user can fix the row."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
