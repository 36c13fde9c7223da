"""What another process sees of a journal: every row's latest committed outcome, read with
plain SQL (the journal's own ``settled`` rows included, as a resume would fold them)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import msgspec

# (ok, category, new, line, digest, gen)
Committed = tuple[int, str | None, int | None, bytes, bytes | None, int]


def committed_outcomes(path: Path, *, read_only: bool = False) -> dict[int, Committed]:
    """Row -> its latest committed outcome: ``outcomes``, then ``settled`` oldest first."""
    target = f"file:{path}?mode=ro" if read_only else str(path)
    with closing(sqlite3.connect(target, uri=read_only)) as db:
        found: dict[int, Committed] = {
            row: (ok, category, new, line, digest, gen)
            for row, ok, category, new, line, digest, gen in db.execute(
                "SELECT row, ok, category, new, line, digest, gen FROM outcomes"
            )
        }
        for (body,) in db.execute("SELECT body FROM settled ORDER BY id"):
            generation, outcomes = msgspec.msgpack.decode(body)
            for row, ok, line, category, new, digest in outcomes:
                found[row] = (int(ok), category, new, line, digest or None, generation)
    return dict(sorted(found.items()))
