from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkops._preflight import FieldError, PropertySchema


def options(*values: str, hidden: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"label": v.title(), "value": v, "hidden": v in hidden, "displayOrder": i}
        for i, v in enumerate(values)
    ]


def prop(name: str, type_: str, field_type: str, **extra: Any) -> dict[str, Any]:
    """One property as GET /crm/v3/properties/tickets returns it (trimmed)."""
    return {
        "name": name,
        "label": name.replace("_", " ").title(),
        "type": type_,
        "fieldType": field_type,
        "groupName": "ticketinformation",
        "description": "",
        "options": extra.pop("options", []),
        "displayOrder": -1,
        "calculated": extra.pop("calculated", False),
        "externalOptions": extra.pop("externalOptions", False),
        "hasUniqueValue": extra.pop("hasUniqueValue", False),
        "hidden": False,
        "hubspotDefined": True,
        "modificationMetadata": {
            "archivable": False,
            "readOnlyDefinition": True,
            "readOnlyValue": extra.pop("readOnlyValue", False),
        },
        "formField": True,
        "dataSensitivity": "non_sensitive",
        "createdAt": "2019-08-06T02:43:12.264Z",
        "updatedAt": "2024-01-11T15:31:33.102Z",
        **extra,
    }


TICKETS_BODY: dict[str, Any] = {
    "results": [
        prop("subject", "string", "text"),
        prop("content", "string", "textarea"),
        prop("hs_pipeline", "enumeration", "select", options=options("0", "1")),
        prop("hs_pipeline_stage", "enumeration", "select", options=options("1", "2", "3", "4")),
        prop(
            "hs_ticket_priority",
            "enumeration",
            "select",
            options=options("LOW", "MEDIUM", "HIGH", "URGENT", hidden=("URGENT",)),
        ),
        prop(
            "hs_ticket_category", "enumeration", "checkbox", options=options("A", "B", "C", "x;y")
        ),
        prop("source_type", "enumeration", "radio", options=options(*(f"S{i}" for i in range(14)))),
        prop("hubspot_owner_id", "enumeration", "select", externalOptions=True),
        prop("amount", "number", "number"),
        prop("is_escalated", "bool", "booleancheckbox", options=options("true", "false")),
        prop("due_date", "date", "date"),
        prop("closed_date", "datetime", "date"),
        prop("phone", "phone_number", "phonenumber"),
        prop("external_id", "string", "text", hasUniqueValue=True),
        prop("hs_object_id", "number", "number", readOnlyValue=True),
        prop("time_to_close", "number", "calculation_equation", calculated=True),
        prop("hs_lastmodifieddate", "datetime", "date", readOnlyValue=True),
        prop("hs_future_type", "hologram", "somethingnew"),
    ]
}
VALID_TICKET = {
    "subject": "Printer on fire",
    "content": "Again.",
    "hs_pipeline": "0",
    "hs_pipeline_stage": "1",
    "hs_ticket_priority": "HIGH",
    "closed_date": "2024-05-01T10:00:00Z",
}


@pytest.fixture(scope="module")
def schema() -> PropertySchema:
    return PropertySchema.from_hubspot(TICKETS_BODY, object_type="tickets")


def codes(schema: PropertySchema, props: dict[str, str], *, creating: bool = False) -> list[str]:
    return [e.code for e in schema.validate(props, creating=creating)]


# --- parsing the schema ---------------------------------------------------------------------


def test_schema_from_a_realistic_body(schema: PropertySchema) -> None:
    assert schema.has("subject") and schema.has("hs_object_id")
    assert not schema.has("no_such_property")
    assert schema.is_unique("external_id")
    assert not schema.is_unique("subject") and not schema.is_unique("missing")
    # hs_pipeline is optional: the default pipeline is used (docs/hubspot-api.md section 2).
    assert schema.required_on_create() == {"subject", "hs_pipeline_stage"}
    assert repr(schema) == f"<PropertySchema tickets: {len(TICKETS_BODY['results'])} properties>"


@pytest.mark.parametrize(
    ("object_type", "required"),
    [
        ("tickets", {"subject", "hs_pipeline_stage"}),
        ("0-5", {"subject", "hs_pipeline_stage"}),
        ("contacts", set()),
        ("0-3", set()),
        ("2-1234567", set()),
    ],
)
def test_required_on_create_depends_on_the_object_type(
    object_type: str, required: set[str]
) -> None:
    schema = PropertySchema.from_hubspot(TICKETS_BODY, object_type=object_type)
    assert schema.required_on_create() == required


@pytest.mark.parametrize(
    "body",
    [{}, {"results": "nope"}, {"results": [{"label": "no name"}]}, {"results": [{"name": ""}]}],
)
def test_a_malformed_schema_body_raises(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="tickets property schema"):
        PropertySchema.from_hubspot(body, object_type="tickets")


def test_minimal_property_entries_are_enough() -> None:
    schema = PropertySchema.from_hubspot(
        {"results": [{"name": "n", "type": "number"}, {"name": "e", "type": "enumeration"}]},
        object_type="deals",
    )
    assert codes(schema, {"n": "x"}) == ["INVALID_INTEGER"]
    assert codes(schema, {"e": "anything"}) == ["INVALID_OPTION"]  # no options: nothing allowed


# --- the rules ------------------------------------------------------------------------------


def test_a_valid_record_gives_an_empty_list(schema: PropertySchema) -> None:
    assert schema.validate(VALID_TICKET, creating=True) == []
    assert schema.validate({}, creating=False) == []


def test_unknown_property(schema: PropertySchema) -> None:
    assert schema.validate({"subjet": "typo"}, creating=False) == [
        FieldError("subjet", "PROPERTY_DOESNT_EXIST", 'Property "subjet" does not exist')
    ]


@pytest.mark.parametrize("name", ["hs_object_id", "time_to_close", "hs_lastmodifieddate"])
def test_read_only_and_calculated_properties(schema: PropertySchema, name: str) -> None:
    [error] = schema.validate({name: "5"}, creating=False)
    assert error.code == "READ_ONLY_VALUE"
    assert name in error.message and "'5'" in error.message


@pytest.mark.parametrize(
    "name",
    [
        "amount",
        "is_escalated",
        "due_date",
        "closed_date",
        "hs_pipeline",
        "hs_ticket_category",
        "hs_ticket_priority",
        "subject",
    ],
)
def test_empty_string_passes_every_value_check(schema: PropertySchema, name: str) -> None:
    assert schema.validate({name: ""}, creating=False) == []


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("no_such_property", "PROPERTY_DOESNT_EXIST"),
        ("hs_object_id", "READ_ONLY_VALUE"),
        ("time_to_close", "READ_ONLY_VALUE"),
    ],
)
def test_empty_string_cannot_clear_what_cannot_be_set(
    schema: PropertySchema, name: str, code: str
) -> None:
    assert codes(schema, {name: ""}) == [code]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("HIGH", True),
        ("URGENT", True),  # hidden options are still valid values
        ("high", False),  # values are case-sensitive
        ("High", False),  # ...and the label is not the value
        (" HIGH", False),
        ("HIGH;LOW", False),  # only checkboxes take several
        ("NOPE", False),
    ],
)
def test_select_options(schema: PropertySchema, value: str, ok: bool) -> None:
    assert codes(schema, {"hs_ticket_priority": value}) == ([] if ok else ["INVALID_OPTION"])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("A", True),
        ("A;B", True),
        ("C;A;B", True),
        ("A;A", True),
        ("A;X", False),
        ("A;", False),
        (";A", False),
        ("A; B", False),
        ("a", False),
        ("x;y", True),  # an option value that itself holds ";"
        ("A;x;y", False),
    ],
)
def test_multi_checkbox_options(schema: PropertySchema, value: str, ok: bool) -> None:
    assert codes(schema, {"hs_ticket_category": value}) == ([] if ok else ["INVALID_OPTION"])


def test_invalid_option_messages_name_the_bad_value_and_list_allowed_ones(
    schema: PropertySchema,
) -> None:
    [error] = schema.validate({"hs_ticket_category": "A;X"}, creating=False)
    assert error.message == (
        "Property \"hs_ticket_category\": 'X' (in 'A;X') is not one of the allowed options: "
        "'A', 'B', 'C', 'x;y'"
    )
    [error] = schema.validate({"source_type": "S99"}, creating=False)
    assert error.property == "source_type"
    assert "'S99'" in error.message
    assert error.message.endswith(
        "'S0', 'S1', 'S10', 'S11', 'S12', 'S13', 'S2', 'S3', 'S4', 'S5' and 4 more"
    )


def test_external_options_are_not_checked_against_the_empty_list(schema: PropertySchema) -> None:
    assert schema.validate({"hubspot_owner_id": "123456"}, creating=False) == []


@pytest.mark.parametrize(
    "value",
    ["0", "5", "007", "-0.5", "+3", "1e3", "1E-3", "2.5e+10", "-1.25E5", "123456789012345678901"],
)
def test_valid_numbers(schema: PropertySchema, value: str) -> None:
    assert codes(schema, {"amount": value}) == []


@pytest.mark.parametrize(
    "value",
    [
        " 5",
        "5 ",
        "1,000",
        "1_000",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "1e999",  # parses, but not to a finite number
        ".5",
        "5.",
        "--1",
        "1e",
        "e3",
        "0x10",
        "abc",
        "\u0661\u0662",  # Arabic-Indic digits: float() takes them, HubSpot does not
        "\u00b2",  # superscript two: str.isdigit() says yes
        "+",
    ],
)
def test_invalid_numbers(schema: PropertySchema, value: str) -> None:
    [error] = schema.validate({"amount": value}, creating=False)
    assert error.code == "INVALID_INTEGER"
    assert error.property == "amount" and repr(value) in error.message


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("true", True),
        ("false", True),
        ("TRUE", True),
        ("False", True),
        ("yes", False),
        ("1", False),
        ("t", False),
        (" true", False),
        ("truee", False),
    ],
)
def test_booleans(schema: PropertySchema, value: str, ok: bool) -> None:
    assert codes(schema, {"is_escalated": value}) == ([] if ok else ["INVALID_BOOLEAN"])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2024-02-29", True),
        ("1999-12-31", True),
        ("2024-02-30", False),
        ("2023-02-29", False),
        ("2024-13-01", False),
        ("0000-01-01", False),
        ("2024-1-01", False),
        ("2024/01/01", False),
        ("2024-01-01T00:00:00Z", False),
        ("\uff12\uff10\uff12\uff14-01-01", False),  # full-width digits
        ("0", True),  # epoch milliseconds at midnight UTC
        ("1704067200000", True),
        ("-86400000", True),
        ("1704067200001", False),  # not midnight
        ("20240101", False),  # an integer, but not a midnight in milliseconds
        ("1704067200000.0", False),
        ("tomorrow", False),
    ],
)
def test_dates(schema: PropertySchema, value: str, ok: bool) -> None:
    assert codes(schema, {"due_date": value}) == ([] if ok else ["INVALID_DATE"])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2024-01-01T10:00:00Z", True),
        ("2024-01-01T10:00:00.123Z", True),
        ("2024-01-01T10:00:00+02:00", True),
        ("2024-01-01 10:00", True),
        ("2024-01-01", True),
        ("1704067200123", True),  # epoch milliseconds, any time of day
        ("-5", True),
        ("yesterday", False),
        ("2024-13-01T00:00:00Z", False),
        ("2024-01-01T25:00:00Z", False),
        ("2024-01-01T10:00:00ZZ", False),
        ("1.5", False),
    ],
)
def test_datetimes(schema: PropertySchema, value: str, ok: bool) -> None:
    assert codes(schema, {"closed_date": value}) == ([] if ok else ["INVALID_DATETIME"])


@pytest.mark.parametrize("name", ["subject", "content", "phone", "hs_future_type"])
def test_types_without_rules_accept_anything(schema: PropertySchema, name: str) -> None:
    assert schema.validate({name: "\x00 anything at all \u2603 ;;"}, creating=False) == []


# --- required on create ---------------------------------------------------------------------


def test_required_properties_only_when_creating(schema: PropertySchema) -> None:
    partial = {"subject": "x", "hs_pipeline_stage": ""}
    assert schema.validate(partial, creating=False) == []
    errors = schema.validate(partial, creating=True)
    assert [(e.property, e.code) for e in errors] == [("hs_pipeline_stage", "REQUIRED_PROPERTY")]
    assert 'Property "hs_pipeline_stage" is required' in errors[0].message


def test_contacts_have_no_required_properties() -> None:
    contacts = PropertySchema.from_hubspot(TICKETS_BODY, object_type="contacts")
    assert contacts.validate({"content": "x"}, creating=True) == []


def test_all_errors_are_reported_in_order(schema: PropertySchema) -> None:
    record = {"subject": "", "amount": "ten", "bogus": "1", "hs_pipeline": "9"}
    assert [(e.property, e.code) for e in schema.validate(record, creating=True)] == [
        ("amount", "INVALID_INTEGER"),
        ("bogus", "PROPERTY_DOESNT_EXIST"),
        ("hs_pipeline", "INVALID_OPTION"),  # present, so not also "required"
        ("hs_pipeline_stage", "REQUIRED_PROPERTY"),
        ("subject", "REQUIRED_PROPERTY"),
    ]


def test_long_values_are_truncated_in_messages(schema: PropertySchema) -> None:
    value = "9" * 50 + "x" * 200
    [error] = schema.validate({"amount": value}, creating=False)
    assert '"amount"' in error.message
    assert repr(value[:57] + "...") in error.message
    assert "x" * 60 not in error.message


# --- properties -----------------------------------------------------------------------------


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_finite_float_as_python_prints_it_is_a_number(value: float) -> None:
    schema = PropertySchema.from_hubspot(TICKETS_BODY, object_type="tickets")
    assert schema.validate({"amount": repr(value)}, creating=False) == []


@given(st.integers())
def test_any_integer_is_a_number(value: int) -> None:
    schema = PropertySchema.from_hubspot(TICKETS_BODY, object_type="tickets")
    assert schema.validate({"amount": str(value)}, creating=False) == []


@given(st.text(min_size=1, max_size=12))
def test_an_accepted_number_is_plain_ascii_and_finite(value: str) -> None:
    schema = PropertySchema.from_hubspot(TICKETS_BODY, object_type="tickets")
    if not schema.validate({"amount": value}, creating=False):
        assert set(value) <= set("0123456789+-.eE")
        assert math.isfinite(float(value))


@given(st.dates(min_value=date(1, 1, 1)))
def test_any_calendar_date_is_a_date(value: date) -> None:
    schema = PropertySchema.from_hubspot(TICKETS_BODY, object_type="tickets")
    assert schema.validate({"due_date": value.isoformat()}, creating=False) == []
    midnight = datetime(value.year, value.month, value.day, tzinfo=UTC)
    millis = str(round(midnight.timestamp() * 1000))
    assert schema.validate({"due_date": millis}, creating=False) == []


@given(st.datetimes(timezones=st.sampled_from([UTC, None])))
def test_any_datetime_is_a_datetime(value: datetime) -> None:
    schema = PropertySchema.from_hubspot(TICKETS_BODY, object_type="tickets")
    text = value.isoformat().replace("+00:00", "Z")
    assert schema.validate({"closed_date": text}, creating=False) == []


def test_a_ticket_without_a_pipeline_is_valid(schema: PropertySchema) -> None:
    """The default pipeline is used when none is given (docs/hubspot-api.md section 2)."""
    assert schema.validate({"subject": "x", "hs_pipeline_stage": "1"}, creating=True) == []
