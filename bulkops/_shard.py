"""Shards of one input: ``--shard i/n`` runs the rows whose number ``r`` has
``(r - 1) % n == i``, so n shards are disjoint and together complete whatever the input's
length, and a row keeps the number it has in the whole input (results, journal, resume).

Rows are dealt round-robin rather than in n contiguous ranges: a shard needs no row count
up front (stdin, a file still being written), and every shard sees the same mix of the input.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from ._errors import ConfigError
from ._sources import RawRow

__all__ = ["in_shard", "parse_shard", "shard_of"]


def shard_of(row: int, n: int) -> int:
    return (row - 1) % n


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` as typed after ``--shard`` (0 <= i < n; Kubernetes' JOB_COMPLETION_INDEX)."""
    left, sep, right = text.strip().partition("/")
    try:
        i, n = int(left), int(right)
    except ValueError:
        i = n = -1
    if not sep or n < 1 or not 0 <= i < n:
        raise ConfigError(
            f"--shard {text!r}: give i/n with 0 <= i < n, e.g. --shard 0/4 ... --shard 3/4"
        )
    return i, n


async def in_shard(rows: AsyncIterable[RawRow], i: int, n: int) -> AsyncIterator[RawRow]:
    async for raw in rows:
        if shard_of(raw.row, n) == i:
            yield raw
