"""Input records to items: both input shapes, ids, associations, and errors that name the field."""

from __future__ import annotations

import pytest

from bulkops._errors import InputError
from bulkops._models import Operation
from bulkops._normalize import Normalizer


def test_flat_create_skips_empty_cells_and_stringifies() -> None:
    item = Normalizer(Operation.CREATE)(
        3, {"subject": "x", "content": "", "customer_score": 4, "is_escalated": True, "x": None}
    )
    assert item.row == 3 and item.trace_id == "3"
    assert item.properties == {"subject": "x", "customer_score": "4", "is_escalated": "true"}
    assert item.key is None


def test_empty_clears_sends_empty_strings() -> None:
    item = Normalizer(Operation.UPDATE, empty_clears=True)(1, {"id": "5", "content": ""})
    assert item.properties == {"content": ""}


def test_hubspot_shaped_record_with_associations() -> None:
    assoc = [
        {
            "to": {"id": "77"},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16}],
        }
    ]
    item = Normalizer(Operation.CREATE)(1, {"properties": {"subject": "x"}, "associations": assoc})
    assert item.properties == {"subject": "x"} and item.associations == assoc


def test_association_columns() -> None:
    item = Normalizer(Operation.CREATE)(
        1, {"subject": "x", "assoc:16": "101;102", "assoc:USER_DEFINED:7": "5"}
    )
    assert item.properties == {"subject": "x"}
    assert item.associations is not None
    assert [a["to"]["id"] for a in item.associations] == ["101", "102", "5"]
    assert item.associations[2]["types"][0] == {
        "associationCategory": "USER_DEFINED",
        "associationTypeId": 7,
    }


def test_update_needs_a_numeric_id() -> None:
    n = Normalizer(Operation.UPDATE)
    assert n(1, {"id": " 42 ", "subject": "x"}).record_id == "42"
    with pytest.raises(InputError) as exc:
        n(2, {"subject": "x"})
    assert exc.value.field == "id"
    with pytest.raises(InputError, match="not a HubSpot id"):
        n(3, {"id": "abc"})


def test_upsert_takes_the_id_from_the_unique_property_and_keys_case_insensitively() -> None:
    n = Normalizer(Operation.UPSERT, id_property="email")
    item = n(1, {"email": "A@Example.com", "firstname": "A"})
    assert item.record_id == "A@Example.com" and item.key == "a@example.com"
    with pytest.raises(InputError) as exc:
        n(2, {"firstname": "B"})
    assert exc.value.field == "email"


def test_create_with_id_property_requires_its_value() -> None:
    n = Normalizer(Operation.CREATE, id_property="external_id")
    assert n(1, {"subject": "x", "external_id": "E1"}).key == "e1"
    with pytest.raises(InputError, match="external_id"):
        n(2, {"subject": "x"})


def test_archive_and_read_drop_properties() -> None:
    assert Normalizer(Operation.ARCHIVE)(1, {"id": "9", "subject": "x"}).properties == {}
    assert Normalizer(Operation.READ)(1, {"id": "9"}).record_id == "9"


def test_nested_values_are_refused_with_the_field() -> None:
    with pytest.raises(InputError) as exc:
        Normalizer(Operation.CREATE)(1, {"subject": {"a": 1}})
    assert exc.value.field == "subject"


def test_associations_only_on_create() -> None:
    with pytest.raises(InputError):
        Normalizer(Operation.UPDATE)(1, {"id": "1", "assoc:16": "5"})
