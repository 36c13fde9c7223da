"""RowCheck's flat path (one walk of a string-valued row) against its general path
(Normalizer, then PropertySchema.validate): the same item or outcome for every row."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulkops import Secret
from bulkops._config import JobConfig
from bulkops._errors import PREFLIGHT
from bulkops._mapping import ColumnMapping
from bulkops._models import Item, Outcome
from bulkops._preflight import PropertySchema
from bulkops._rowcheck import RowCheck
from bulkops.testing._fake_types import build_types, property_json


def _schema() -> PropertySchema:
    ot = build_types(None)["tickets"]
    body = {"results": [property_json(ot, p) for p in ot.properties]}
    return PropertySchema.from_hubspot(body, object_type="tickets")


class _Name(str):
    """A key that is a str but not exactly one (as a StrEnum member is)."""

    __slots__ = ()


GOOD = {
    "subject": "Printer on fire",
    "content": "It is, really",
    "hs_pipeline": "0",
    "hs_pipeline_stage": "1",
    "hs_ticket_priority": "HIGH",
    "external_id": "ext-1",
}

ROWS: list[dict[Any, Any]] = [
    GOOD,
    {**GOOD, "content": ""},  # an empty cell
    {**GOOD, "subject": ""},  # required, empty
    {k: v for k, v in GOOD.items() if k != "hs_pipeline_stage"},  # required, missing
    {**GOOD, "hs_ticket_priority": "Highest"},  # not an option
    {**GOOD, "hs_ticket_priority": "", "hs_pipeline_stage": "9"},
    {**GOOD, "hs_ticket_category": "PRODUCT_ISSUE;BILLING_ISSUE"},
    {**GOOD, "hs_ticket_category": "PRODUCT_ISSUE;NOPE"},
    {**GOOD, "nosuchproperty": "x"},  # unknown
    {**GOOD, "nosuchproperty": ""},  # unknown, empty: skipped unless --empty-clears
    {**GOOD, "hs_object_id": "12"},  # read-only
    {**GOOD, "hs_object_id": ""},
    {**GOOD, "customer_score": "12.5", "is_escalated": "TRUE", "due_date": "2024-02-30"},
    {**GOOD, "customer_score": "1_000", "is_escalated": "yes", "due_date": "2024-02-29"},
    {**GOOD, "createdate": "2026-01-02T03:04:05Z"},
    {**GOOD, "createdate": "yesterday"},
    {**GOOD, "id": "512"},
    {**GOOD, "id": ""},
    {**GOOD, "id": "51x"},
    {**GOOD, "assoc:16": "1;2"},
    {**GOOD, "assoc:16": ""},
    {**GOOD, "assoc:bad:x:y": "1"},
    {**GOOD, "assoc:USER_DEFINED:7": " 3 ; ;4"},
    {**GOOD, "customer_score": 5},  # non-string values
    {**GOOD, "customer_score": None},
    {**GOOD, "customer_score": math.nan},
    {**GOOD, "customer_score": Decimal("1E+2")},
    {**GOOD, "customer_score": True},
    {**GOOD, "createdate": datetime(2026, 1, 2, tzinfo=UTC)},
    {**GOOD, "createdate": datetime(2026, 1, 2)},  # naive: an input error
    {**GOOD, "subject": ["a"]},
    {**GOOD, 5: "x"},  # a name that is not a string
    {**GOOD, 5: ""},
    {**GOOD, _Name("id"): "1"},  # a str subclass: not a string name to the normaliser
    {**GOOD, _Name("subject"): "S2", _Name("nosuch"): "x", _Name("assoc:16"): "1"},
    {**GOOD, "properties": "a column named properties"},
    {**GOOD, "associations": "a column named associations"},
    {"id": "7", "properties": {"subject": "S", "hs_pipeline_stage": "1"}},
    {
        "properties": {"subject": "S", "hs_pipeline_stage": "1"},
        "associations": [{"to": {"id": "3"}, "types": [{"associationTypeId": 16}]}],
    },
    {"external_id": "EXT-2", "hs_pipeline_stage": "2"},
    {"external_id": "", "subject": "no key"},
    {"id": "1", "hs_ticket_priority": "LOW"},
    {"id": " 42 ", "external_id": " Mixed@Case "},
    {},
]

CONFIGS: list[dict[str, Any]] = [
    {"operation": "create"},
    {"operation": "create", "empty_clears": True},
    {"operation": "create", "preflight": False},
    {"operation": "create", "id_property": "external_id"},
    {"operation": "update"},
    {"operation": "update", "empty_clears": True},
    {"operation": "update", "id_property": "external_id"},
    {"operation": "upsert", "id_property": "external_id"},
    {"operation": "archive"},
]


def _shape(result: Item | Outcome) -> tuple[Any, ...]:
    """Everything a result carries, comparable."""

    def item(it: Item) -> tuple[Any, ...]:
        return (
            type(it),
            it.row,
            it.raw,
            it.raw is not None,
            it.properties,
            list(it.properties),  # the order too: validate reports in it
            it.record_id,
            it.associations,
            it.key,
            it.attempts,
            it.maybe_written,
            it.digest,
            it.passthrough,
        )

    if isinstance(result, Outcome):
        return (
            "outcome",
            item(result.item),
            result.ok,
            result.hubspot_id,
            result.new,
            result.properties,
            result.category,
            result.message,
            result.extra,
        )
    return ("item", item(result))


def _check(schema: PropertySchema | None, **config: Any) -> RowCheck:
    return RowCheck(JobConfig(token=Secret("x"), out_dir=Path("/tmp/unused"), **config), schema)


def _text(data: dict[Any, Any]) -> bool:
    """A row as a CSV gives it: every name and value exactly a string."""
    return all(type(k) is str and type(v) is str for k, v in data.items())


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
@pytest.mark.parametrize("with_schema", [True, False], ids=["schema", "no-schema"])
@pytest.mark.parametrize("text_only", [False, True], ids=["any-rows", "csv-rows"])
def test_flat_path_gives_what_the_general_path_gives(
    config: dict[str, Any], with_schema: bool, text_only: bool
) -> None:
    schema = _schema() if with_schema else None
    fast = _check(schema, **config)
    assert fast._flat_ok
    fast.text_only = text_only  # as the intake sets it for a CSV
    call = fast.checker()  # what the intake calls for each row
    assert (call != fast) is (text_only and not config.get("empty_clears", False))
    slow = _check(schema, **config)
    rows = [data for data in ROWS if _text(data)] if text_only else ROWS
    assert len(rows) > 25
    # Twice over: the second round finds every column in the flat path's cache.
    for _ in range(2):
        for row, data in enumerate(rows, start=1):
            expected = _shape(slow._general(row, dict(data)))
            assert _shape(call(row, dict(data))) == expected, (config, data)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
@pytest.mark.parametrize("with_schema", [True, False], ids=["schema", "no-schema"])
def test_checks_found_from_the_header_give_what_the_general_path_gives(
    config: dict[str, Any], with_schema: bool
) -> None:
    """A CSV's rows all have its header's names: the checker asked with the header finds each
    column's check once, and must still give exactly the general path's result."""
    schema = _schema() if with_schema else None
    rows = [data for data in ROWS if _text(data)]
    by_header = 0
    for row, data in enumerate(rows, start=1):
        header = list(data)
        fast = _check(schema, **config)
        fast.text_only = True
        call = fast.checker(header)
        plain = not any(name == "id" or name.startswith("assoc:") for name in header)
        if config.get("empty_clears", False):
            assert call == fast
        else:
            assert (call == fast._by_header) is plain, header
            by_header += plain
        slow = _check(schema, **config)
        expected = _shape(slow._general(row, dict(data)))
        for _ in range(2):  # the same row again: nothing learnt changes the answer
            assert _shape(call(row, dict(data))) == expected, (config, data)
        # A row with the same names and every value emptied or changed, as a CSV's next row.
        for other in (dict.fromkeys(data, ""), {k: f"{v} x" for k, v in data.items()}):
            expected = _shape(slow._general(row + 1, dict(other)))
            assert _shape(call(row + 1, dict(other))) == expected, (config, other)
    assert by_header > 20 or config.get("empty_clears", False)


def test_flat_path_is_taken_and_learns_each_column_once() -> None:
    check = _check(_schema(), operation="create")
    result = check(1, dict(GOOD))
    assert isinstance(result, Item)
    assert set(check._columns) == set(GOOD)
    # A row the flat path cannot finish changes nothing it learned.
    check(2, {**GOOD, "assoc:16": "1"})
    assert set(check._columns) == {*GOOD, "assoc:16"}


def test_a_refused_value_reports_every_error_in_row_order() -> None:
    check = _check(_schema(), operation="create")
    data = {
        "hs_ticket_priority": "nope",
        "hs_object_id": "1",
        "subject": "",
        "nosuch": "x",
    }
    result = check(3, data)
    assert isinstance(result, Outcome)
    assert result.category == PREFLIGHT
    assert result.extra is not None
    assert result.extra["properties"] == [
        "hs_ticket_priority",
        "hs_object_id",
        "nosuch",
        "hs_pipeline_stage",
        "subject",
    ]
    assert result.extra["codes"] == [
        "INVALID_OPTION",
        "READ_ONLY_VALUE",
        "PROPERTY_DOESNT_EXIST",
        "REQUIRED_PROPERTY",
        "REQUIRED_PROPERTY",
    ]
    assert result.item.raw is data


@pytest.mark.parametrize(
    "config",
    [
        {"operation": "create", "passthrough": ("content",)},
        {"operation": "create", "coerce": {"subject": lambda v: str(v).upper()}},
        {"operation": "create", "mapping": ColumnMapping(rename=(("Title", "subject"),))},
    ],
    ids=["passthrough", "hooks", "mapping"],
)
def test_unusual_jobs_take_the_general_path(config: dict[str, Any]) -> None:
    check = _check(_schema(), **config)
    assert not check._flat_ok


def test_names_seen_on_the_flat_path_count_as_seen_on_the_general_path() -> None:
    # The normaliser takes a str-subclass name when it has seen the name as a str before:
    # rows of the flat path must count as seen for a later row that takes the general path.
    rows: list[dict[str, Any]] = [
        dict(GOOD),
        {_Name("subject"): "S3", _Name("hs_pipeline_stage"): "1", "n": 5},
    ]
    fast, slow = _check(_schema(), operation="create"), _check(_schema(), operation="create")
    for row, data in enumerate(rows, start=1):
        assert _shape(fast(row, dict(data))) == _shape(slow._general(row, dict(data)))


# Values of a ticket CSV's columns, good and bad: an empty cell, an option that is not one, a
# required value missing.
_COLUMN_VALUES = {
    "subject": ["Printer on fire", "", "S"],
    "content": ["It is, really", ""],
    "hs_pipeline": ["0", ""],
    "hs_pipeline_stage": ["1", "2", "9", ""],
    "hs_ticket_priority": ["HIGH", "LOW", "Highest", ""],
    "customer_score": ["12.5", "1_000", ""],
}


@settings(max_examples=300, deadline=None)
@given(
    columns=st.lists(st.sampled_from(sorted(_COLUMN_VALUES)), min_size=1, unique=True),
    picks=st.lists(st.lists(st.integers(0, 3), min_size=6, max_size=6), min_size=1, max_size=20),
    config=st.sampled_from([c for c in CONFIGS if c["operation"] == "create"]),
    with_schema=st.booleans(),
)
def test_a_slice_checked_at_once_gives_what_each_row_gives(
    columns: list[str], picks: list[list[int]], config: dict[str, Any], with_schema: bool
) -> None:
    """RowCheck.many_checker: for a slice of a CSV's rows, either the items the general path
    gives them (when each row gives an item), or None (the intake then goes row by row)."""
    schema = _schema() if with_schema else None
    rows = [
        {
            name: _COLUMN_VALUES[name][pick % len(_COLUMN_VALUES[name])]
            for name, pick in zip(columns, row_picks, strict=False)
        }
        for row_picks in picks
    ]
    fast = _check(schema, **config)
    fast.text_only = True
    fast.checker(columns)
    many = fast.many_checker()
    plain = not config.get("empty_clears") and not config.get("id_property")
    assert (many is not None) is plain
    if many is None:
        return
    slow = _check(schema, **config)
    expected = [slow._general(n, dict(data)) for n, data in enumerate(rows, start=1)]
    got = many(range(1, len(rows) + 1), [dict(data) for data in rows])
    if all(type(result) is Item for result in expected):
        assert got is not None
        assert list(map(_shape, got)) == list(map(_shape, expected))
    else:
        assert got is None


def test_a_slice_is_checked_at_once_for_good_rows_of_a_plain_create() -> None:
    fast = _check(_schema(), operation="create")
    fast.text_only = True
    header = ["subject", "hs_pipeline", "hs_pipeline_stage"]
    fast.checker(header)
    many = fast.many_checker()
    assert many is not None
    good = [{"subject": f"S{n}", "hs_pipeline": "0", "hs_pipeline_stage": "1"} for n in range(3)]
    items = many([4, 5, 6], good)
    assert items is not None
    assert [(it.row, it.properties) for it in items] == [(4, good[0]), (5, good[1]), (6, good[2])]
    bad = [*good, {"subject": "S", "hs_pipeline": "0", "hs_pipeline_stage": "9"}]
    assert many([1, 2, 3, 4], bad) is None
    # Not asked for a header (rows of any shape), or not a plain create: no slice check.
    assert _check(_schema(), operation="create").many_checker() is None
    fast.checker()  # asked again, without the header: the rows may be of any shape now
    assert fast.many_checker() is None
    upsert = _check(_schema(), operation="upsert", id_property="external_id")
    upsert.text_only = True
    upsert.checker(header)
    assert upsert.many_checker() is None
