"""The result writer's lines: a batch's lines are exactly what ``succeeded_line`` and
``failed_line`` write for each outcome, whichever path (the inline common case or the
general one) wrote them, and the journal gets the same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkops._journal import Journal
from bulkops._models import Item, Outcome
from bulkops._results import FAILED, SUCCEEDED, ResultWriter, failed_line, succeeded_line

from .journal_view import committed_outcomes


def _item(row: int, **kw: object) -> Item:
    item = Item(row, {"subject": f"s{row}", "email": f"u{row}@x.io"}, {"email": f"u{row}@x.io"})
    for name, value in kw.items():
        setattr(item, name, value)
    return item


OUTCOMES = [
    Outcome(_item(1), True, "101", True),  # a create: the inline case
    Outcome(_item(10), True, None, True),  # no id in the answer: null, as the general case
    Outcome(_item(2), True, "102", False),  # an upsert that updated
    Outcome(_item(3), True, "103", None),  # an update: no "new"
    Outcome(_item(4, maybe_written=True), True, "104", None),  # maybe written: new is null
    Outcome(_item(5), True, "105", True, properties={"email": "u5@x.io"}),  # a read
    Outcome(_item(6), True, "106", True, extra={"existing_id": "7"}),
    Outcome(_item(7, passthrough={"pk": 7}), True, "107", True),
    Outcome(_item(8), False, category="VALIDATION_ERROR", message="bad"),
    Outcome(_item(9, passthrough={"pk": 9}), False, category=None, message="?"),
]


@pytest.mark.parametrize("id_property", [None, "email"])
def test_a_batch_writes_each_outcome_as_its_own_line_would(
    tmp_path: Path, id_property: str | None
) -> None:
    journal = Journal.create(tmp_path / "j.sqlite", {"config": {}})
    writer = ResultWriter(tmp_path, journal=journal, id_property=id_property)
    writer.record_many(OUTCOMES)
    writer.flush()
    journal.commit()
    expected = {
        o.item.row: (
            succeeded_line(o, id_property=id_property)
            if o.ok
            else failed_line(o, id_property=id_property)
        )
        for o in OUTCOMES
    }
    written = (tmp_path / SUCCEEDED).read_bytes() + (tmp_path / FAILED).read_bytes()
    assert sorted(written.splitlines()) == sorted(expected.values())
    assert {row: c[3] for row, c in committed_outcomes(journal.path).items()} == expected
    journal.close()
    writer.close()
