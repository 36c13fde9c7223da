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


USUAL = [
    Outcome(_item(21, digest=b"d" * 8), True, "121", True),
    Outcome(_item(22), True, "122", False),  # an upsert that updated
    Outcome(_item(23), True, "123", True),
]


@pytest.mark.parametrize(
    ("batch", "usual"),
    [
        (USUAL, True),
        (USUAL[:1], True),
        ([*USUAL, OUTCOMES[3]], False),  # new unknown (an update)
        ([*USUAL, OUTCOMES[5]], False),  # properties read back
        ([*USUAL, OUTCOMES[6]], False),  # extra fields
        ([*USUAL, OUTCOMES[7]], False),  # passthrough columns
        ([OUTCOMES[8], *USUAL], False),  # a failure
    ],
)
@pytest.mark.parametrize("journaled", [True, False])
def test_a_batch_of_usual_writes_is_written_a_column_at_a_time(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch: list[Outcome],
    usual: bool,
    journaled: bool,
) -> None:
    """A keyless batch of rows all written with the usual line takes the column path
    (_record_usual_writes); its lines, and what the journal keeps, are each outcome's own."""
    taken: list[int] = []
    real = ResultWriter._record_usual_writes

    def spy(self: ResultWriter, outcomes: list[Outcome]) -> None:
        taken.append(len(outcomes))
        real(self, outcomes)

    monkeypatch.setattr(ResultWriter, "_record_usual_writes", spy)
    journal = Journal.create(tmp_path / "j.sqlite", {"config": {}}) if journaled else None
    writer = ResultWriter(tmp_path, journal=journal, id_property=None)
    writer.record_many(batch)
    writer.flush()
    assert taken == ([len(batch)] if usual else [])
    expected = {
        o.item.row: succeeded_line(o, id_property=None)
        if o.ok
        else failed_line(o, id_property=None)
        for o in batch
    }
    written = (tmp_path / SUCCEEDED).read_bytes() + (tmp_path / FAILED).read_bytes()
    assert sorted(written.splitlines()) == sorted(expected.values())
    if journal is not None:
        journal.commit()
        committed = committed_outcomes(journal.path)
        assert {row: c[3] for row, c in committed.items()} == expected
        if 21 in committed:
            # ok, no category, new; and the row's digest
            assert committed[21][:3] == (1, None, True)
            assert committed[21][4] == b"d" * 8
        journal.close()
    writer.close()


def test_a_flush_up_to_a_point_writes_those_lines_and_keeps_the_rest(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "j.sqlite", {"config": {}})
    writer = ResultWriter(tmp_path, journal=journal)
    writer.record_many(OUTCOMES[:2])
    writer.record_many(OUTCOMES[8:9])
    point = writer.buffered()
    writer.record_many(OUTCOMES[2:3])
    writer.record_many(OUTCOMES[9:])
    writer.flush(upto=point)
    assert (tmp_path / SUCCEEDED).read_bytes().splitlines() == [
        succeeded_line(o, id_property=None) for o in OUTCOMES[:2]
    ]
    assert (tmp_path / FAILED).read_bytes().splitlines() == [
        failed_line(OUTCOMES[8], id_property=None)
    ]
    writer.close()  # the rest follows
    assert (tmp_path / SUCCEEDED).read_bytes().splitlines() == [
        succeeded_line(o, id_property=None) for o in OUTCOMES[:3]
    ]
    assert (tmp_path / FAILED).read_bytes().splitlines()[1] == failed_line(
        OUTCOMES[9], id_property=None
    )
    journal.close()
