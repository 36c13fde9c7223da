"""Input records to items: both input shapes, ids, associations, and errors that name the field."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from bulkops._errors import InputError
from bulkops._models import Operation
from bulkops._normalize import Normalizer, jsonable_input, property_text
from bulkops._sources import JsonNumber


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


# --- values of every kind -------------------------------------------------------------------


class FakeDtype:
    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name

    def __str__(self) -> str:
        return self.name


class FakeNumpyScalar:
    """What numpy scalars look like to the normaliser: a dtype, item() and their own str()."""

    def __init__(self, value: Any, kind: str, text: str | None = None, name: str = "x") -> None:
        self._value = value
        self.dtype = FakeDtype(kind, name)
        self._text = text

    def item(self) -> Any:
        return self._value

    def __float__(self) -> float:
        return float(self._value)

    def __str__(self) -> str:
        return self._text if self._text is not None else str(self._value)

    def __ne__(self, other: object) -> bool:
        return bool(self._value != self._value)  # NaT is not equal to itself


class NAType:
    """Named like pandas' pd.NA, whose type is only known by its name."""

    def __bool__(self) -> bool:
        raise TypeError("boolean value of NA is ambiguous")


PARIS = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("x", "x"),
        (JsonNumber("1.10"), "1.10"),
        (True, "true"),
        (False, "false"),
        (7, "7"),
        (2**70, str(2**70)),
        (1.5, "1.5"),
        (Decimal("1.10"), "1.10"),
        (Decimal("1E+2"), "100"),
        (Decimal("-0"), "-0"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("1E+400"), "1E+400"),  # exact, not 401 characters
        (date(2026, 1, 2), "2026-01-02"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(2026, 1, 2, 4, 4, 5, 678_901, tzinfo=PARIS), "2026-01-02T03:04:05.678Z"),
        (FakeNumpyScalar(12, "i"), "12"),
        (FakeNumpyScalar(True, "b"), "true"),
        (FakeNumpyScalar(0.10000000149011612, "f", text="0.1"), "0.1"),  # a float32
        (FakeNumpyScalar("s", "U"), "s"),
        (None, None),
        (math.nan, None),
        (Decimal("NaN"), None),
        (NAType(), None),
        (FakeNumpyScalar(math.nan, "f"), None),
        (FakeNumpyScalar(0, "M"), None),  # NaT: not equal to itself
    ],
)
def test_property_text(value: Any, text: str | None) -> None:
    if isinstance(value, FakeNumpyScalar) and value.dtype.kind == "M":
        value._value = math.nan  # NaT
    assert property_text("p", value) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (datetime(2026, 1, 2, 3, 4, 5), "has no time zone"),
        (math.inf, "inf is not a number HubSpot takes"),
        (Decimal("-Infinity"), "-Infinity is not a number HubSpot takes"),
        ({"a": 1}, "must be a single value, not a nested object (dict)"),
        ([1, 2], "must be a single value, not a list (list)"),
        (b"bytes", "must be a string, number, boolean, date or null, not bytes"),
        (object(), "not object"),
        (FakeNumpyScalar(5, "M", name="datetime64[ns]"), "numpy datetime64[ns] has no time zone"),
        (FakeNumpyScalar(1j, "c", name="complex128"), "not numpy complex128"),
    ],
)
def test_values_that_cannot_be_sent_name_the_property(value: Any, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)) as info:
        Normalizer(Operation.CREATE)(1, {"subject": "x", "closedate": value})
    assert info.value.field == "closedate"
    assert "'closedate'" in str(info.value)


def test_missing_values_are_left_out_or_cleared() -> None:
    record = {"id": "5", "a": None, "b": math.nan, "c": NAType(), "d": Decimal("NaN")}
    assert Normalizer(Operation.UPDATE)(1, record).properties == {}
    cleared = Normalizer(Operation.UPDATE, empty_clears=True)(1, record).properties
    assert cleared == {"a": "", "b": "", "c": "", "d": ""}


def test_a_non_string_property_name_is_an_input_error() -> None:
    with pytest.raises(InputError, match="property name 3 is not a string"):
        Normalizer(Operation.CREATE)(1, {"subject": "x", 3: "y"})  # type: ignore[dict-item]


def test_a_decimal_or_numpy_id_is_a_record_id() -> None:
    n = Normalizer(Operation.UPDATE)
    assert n(1, {"id": Decimal("512")}).record_id == "512"
    assert n(2, {"id": FakeNumpyScalar(513, "i")}).record_id == "513"


def test_real_pandas_and_numpy_values() -> None:
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    frame = pd.DataFrame(
        {
            "subject": ["a", "b"],
            "amount": [1.5, np.nan],
            "count": np.array([3, 4], dtype=np.int64),
            "ratio": np.array([0.1, 0.2], dtype=np.float32),
            "vip": np.array([True, False]),
            "closedate": [pd.Timestamp("2026-01-02 04:04:05.5", tz="Europe/Paris"), pd.NaT],
            "n": pd.array([1, None], dtype="Int64"),
        }
    )
    first, second = frame.to_dict("records")
    # to_dict turns numpy scalars into Python ones (a float32 0.1 into the float it is);
    # numpy scalars themselves are tested below.
    normalize = Normalizer(Operation.CREATE)
    assert normalize(1, first).properties == {
        "subject": "a",
        "amount": "1.5",
        "count": "3",
        "ratio": "0.10000000149011612",
        "vip": "true",
        "closedate": "2026-01-02T03:04:05.500Z",
        "n": "1",
    }
    assert normalize(2, second).properties == {
        "subject": "b",
        "count": "4",
        "ratio": "0.20000000298023224",
        "vip": "false",
    }
    assert property_text("p", np.float32(0.1)) == "0.1"
    assert property_text("p", np.int64(-7)) == "-7"
    assert property_text("p", np.bool_(True)) == "true"
    assert property_text("p", np.datetime64("NaT")) is None
    assert property_text("p", pd.NA) is None
    with pytest.raises(InputError, match="no time zone"):
        property_text("p", np.datetime64("2026-01-02"))
    with pytest.raises(InputError, match="no time zone"):
        property_text("p", pd.Timestamp("2026-01-02"))


# --- jsonable_input: the raw input in a result line ------------------------------------------


def test_jsonable_input_writes_what_orjson_cannot_and_reads_back_the_same() -> None:
    raw: dict[Any, Any] = {
        "subject": "x",
        "amount": Decimal("1.10"),
        "big": 2**70,
        "nan": math.nan,
        "na": NAType(),
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "day": date(2026, 1, 2),
        "np": FakeNumpyScalar(12, "i"),
        "naive": datetime(2026, 1, 2, 3, 4, 5),
        "inf": math.inf,
        "bad\udcff": "lone \udcff surrogate",
        7: "int key",
        "associations": [{"to": {"id": Decimal("77")}, "types": ()}],
    }
    data = jsonable_input(raw)
    line = orjson.dumps(data)  # the whole point: this does not raise
    back = orjson.loads(line)
    assert back["amount"] == "1.10" and back["big"] == str(2**70)
    assert back["nan"] is None and back["na"] is None
    assert back["when"] == "2026-01-02T03:04:05.000Z" and back["day"] == "2026-01-02"
    assert back["np"] == "12"
    assert back["naive"] == {"type": "datetime", "value": "2026-01-02 03:04:05"}
    assert back["inf"] == {"type": "float", "value": "inf"}
    assert back["bad\\udcff"] == "lone \\udcff surrogate"
    assert back["7"] == "int key"
    assert back["associations"] == [{"to": {"id": "77"}, "types": []}]
    # Fed back in, the line is read the same way: the same text is sent ...
    sendable = {k: v for k, v in raw.items() if k in ("subject", "amount", "big", "when", "np")}
    normalize = Normalizer(Operation.CREATE)
    again = {k: back[k] for k in sendable}
    assert normalize(1, again).properties == normalize(1, sendable).properties
    # ... and what was refused is refused again, naming the same property.
    for name in ("naive", "inf"):
        with pytest.raises(InputError) as info:
            normalize(1, {"subject": "x", name: back[name]})
        assert info.value.field == name


def test_jsonable_input_leaves_plain_json_alone() -> None:
    raw = {"a": "x", "b": 1, "c": 1.5, "d": None, "e": True, "f": [1, {"g": "h"}]}
    assert jsonable_input(raw) == raw
