"""Header checks: one plain message for a header that cannot be right, None for one that can."""

from __future__ import annotations

from typing import Any

import pytest

from bulkops._header import check_columns, header_problems, sniff_delimiter
from bulkops._models import Operation
from bulkops._preflight import PropertySchema


def prop(name: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "string", **extra}


SCHEMA = PropertySchema.from_hubspot(
    {
        "results": [
            prop("subject", "Ticket name"),
            prop("content", "Ticket description"),
            prop("hs_pipeline", "Pipeline"),
            prop("hs_pipeline_stage", "Ticket status"),
            prop("hs_ticket_priority", "Priority"),
            prop("external_id", "External ID", hasUniqueValue=True),
        ]
    },
    object_type="tickets",
)


def check(columns: list[str], **kwargs: Any) -> str | None:
    options: dict[str, Any] = {
        "schema": SCHEMA,
        "operation": Operation.CREATE,
        "id_property": None,
        "object_type": "tickets",
    }
    options.update(kwargs)
    return check_columns(columns, **options)


def test_a_right_header_passes() -> None:
    assert check(["subject", "hs_pipeline", "hs_pipeline_stage", "assoc:16"]) is None
    assert check(["id", "subject"], operation=Operation.UPDATE) is None
    assert (
        check(["external_id", "subject"], operation=Operation.UPSERT, id_property="external_id")
        is None
    )
    assert check(["id", "whatever"], operation=Operation.ARCHIVE) is None  # archive sends no props


def test_no_schema_checks_only_what_needs_none() -> None:
    assert check(["no_such_property"], schema=None) is None
    assert check(["subject"], schema=None, operation=Operation.UPDATE) is not None


def test_a_ui_label_maps_to_its_internal_name() -> None:
    message = check(["Ticket name", "hs_pipeline", "hs_pipeline_stage"])
    assert message == "column not a property of tickets: 'Ticket name' (did you mean subject?)"


@pytest.mark.parametrize(
    ("column", "meant"),
    [
        ("priority", "hs_ticket_priority"),  # the label, whatever the case
        ("hs_ticket_prority", "hs_ticket_priority"),  # a typo
        ("Ticket Status", "hs_pipeline_stage"),
        ("External-ID", "external_id"),
        ("subjet", "subject"),
    ],
)
def test_unknown_columns_get_the_closest_name_or_label(column: str, meant: str) -> None:
    message = check([column, "subject"])
    assert message is not None
    assert f"{column!r} (did you mean {meant}?)" in message


def test_several_unknown_columns_are_one_message() -> None:
    names = ["zzz1", "zzz2", "zzz3", "zzz4", "zzz5", "zzz6", "zzz7"]
    message = check(["subject", *names])
    assert message == (
        "columns not properties of tickets: 'zzz1', 'zzz2', 'zzz3', 'zzz4', 'zzz5', and 2 more"
    )


def test_id_association_and_id_property_columns_are_not_properties() -> None:
    columns = ["id", "associations", "assoc:USER_DEFINED:7", "email", "subject"]
    assert check(columns, operation=Operation.UPDATE, id_property="email") is None


@pytest.mark.parametrize(
    ("column", "flag"),
    [
        ("subject;hs_pipeline;hs_pipeline_stage", "`;`-delimited file: --delimiter ';'"),
        ("subject|hs_pipeline", "`|`-delimited file: --delimiter '|'"),
        ("subject\ths_pipeline", "tab-delimited file: --delimiter '\\t'"),
        ("subject,hs_pipeline", "`,`-delimited file: --delimiter ','"),
    ],
)
def test_one_column_holding_a_separator_names_the_delimiter(column: str, flag: str) -> None:
    message = check([column])
    assert message is not None and message.endswith(flag)
    assert message.startswith(f"the header is one column {column!r}")


@pytest.mark.parametrize("operation", [Operation.UPDATE, Operation.ARCHIVE, Operation.READ])
def test_a_missing_id_column_is_named(operation: Operation) -> None:
    message = check(["subject", "content"], operation=operation)
    assert message == (
        f"{operation.value} needs the record id in a column 'id' (or --id-property with a "
        "unique property); the columns are 'subject', 'content'"
    )


def test_a_missing_id_property_column_is_named() -> None:
    message = check(["subject"], operation=Operation.UPSERT, id_property="external_id")
    assert message == (
        "no column 'external_id' for the id property (--id-property external_id); "
        "the columns are 'subject'"
    )


def test_schema_keeps_labels_and_names() -> None:
    assert SCHEMA.names()[:2] == ["subject", "content"]
    assert SCHEMA.labels()["Ticket name"] == "subject"


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["a", "b"], []),
        (["a", "", "b", ""], ["empty column name at column 2, 4"]),
        (["a", "b", "a"], ["duplicate column names 'a'"]),
        (["a", "b\x00"], ["NUL byte in the column name at column 2"]),
    ],
)
def test_header_problems(names: list[str], expected: list[str]) -> None:
    assert header_problems(names) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("a,b,c\n", ","),
        ("a\tb\tc\n", "\t"),
        ("a;b;c\n", ";"),
        ('"x;y",b,c\n', ","),  # separators inside quotes do not count
        ("name, with; one\tof\teach\n", "\t"),
        ("single\n", ","),
    ],
)
def test_sniff_delimiter(line: str, expected: str) -> None:
    assert sniff_delimiter(line) == expected
