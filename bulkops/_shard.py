"""Shards of one input: ``--shard i/n`` runs the rows whose number ``r`` has
``(r - 1) % n == i``, so n shards are disjoint and together complete whatever the input's
length, and a row keeps the number it has in the whole input (results, journal, resume).

Rows are dealt round-robin rather than in n contiguous ranges: a shard needs no row count
up front (stdin, a file still being written), and every shard sees the same mix of the input.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from ._errors import ConfigError
from ._sources import RawRow

__all__ = ["ShardRows", "in_shard", "parse_shard", "shard_of"]


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


class ShardRows:
    """The rows of one shard of ``rows``; like the readers, it has ``header`` and ``aclose``
    (which closes the source at once), so the intake treats it as it treats a file."""

    __slots__ = ("_i", "_n", "_rows")

    def __init__(self, rows: AsyncIterable[RawRow], i: int, n: int) -> None:
        self._rows = rows.__aiter__()
        self._i, self._n = i, n

    def __aiter__(self) -> ShardRows:
        return self

    async def __anext__(self) -> RawRow:
        while True:
            raw = await self._rows.__anext__()
            if shard_of(raw.row, self._n) == self._i:
                return raw

    @property
    def header(self) -> list[str] | None:
        header: list[str] | None = getattr(self._rows, "header", None)
        return header

    @property
    def text_only(self) -> bool:
        return bool(getattr(self._rows, "text_only", False))

    async def aclose(self) -> None:
        aclose = getattr(self._rows, "aclose", None)
        if aclose is not None:
            await aclose()


def in_shard(rows: AsyncIterable[RawRow], i: int, n: int) -> ShardRows:
    return ShardRows(rows, i, n)
