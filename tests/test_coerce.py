"""Schema-aware coercion: dates by the property's type, the configured zone, per-property hooks."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from bulkops import ConfigError, JobConfig, Operation, Secret, run_job
from bulkops._coerce import Coercer
from bulkops._errors import InputError
from bulkops._models import Operation as Op
from bulkops._normalize import Normalizer
from bulkops.testing._mock_transport import json_response

from .accounting import assert_accounted
from .mockhub import PROPERTIES, MockHub

TYPES = {"closed_on": "date", "closed_at": "datetime", "score": "number"}


def test_a_date_is_a_day_for_a_date_property_and_midnight_utc_for_a_datetime() -> None:
    coerce = Coercer(types=TYPES)
    assert coerce("closed_on", date(2026, 3, 4)) == "2026-03-04"
    assert coerce("closed_at", date(2026, 3, 4)) == "2026-03-04T00:00:00.000Z"


def test_a_datetime_at_midnight_is_a_day_for_a_date_property_even_naive() -> None:
    coerce = Coercer(types=TYPES)
    assert coerce("closed_on", datetime(2026, 3, 4)) == "2026-03-04"
    with pytest.raises(InputError, match=r"'closed_on' is a date property.*time of day"):
        coerce("closed_on", datetime(2026, 3, 4, 12, 30))


def test_a_naive_datetime_is_refused_without_a_zone_and_placed_in_the_configured_one() -> None:
    naive = datetime(2026, 7, 1, 12, 0)
    with pytest.raises(InputError, match=r"'closed_at'.*no time zone"):
        Coercer(types=TYPES)("closed_at", naive)
    paris = Coercer(types=TYPES, zone=ZoneInfo("Europe/Paris"))
    assert paris("closed_at", naive) == "2026-07-01T10:00:00.000Z"  # CEST is UTC+2
    assert paris("closed_at", date(2026, 1, 2)) == "2026-01-01T23:00:00.000Z"
    aware = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert paris("closed_at", aware) == "2026-07-01T12:00:00.000Z"  # its own zone wins


def test_without_a_schema_a_naive_datetime_uses_the_zone_and_other_values_the_default() -> None:
    coerce = Coercer(zone=ZoneInfo("UTC"))
    assert coerce("when", datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000Z"
    assert coerce("score", Decimal("1E+2")) == "100"
    assert coerce("flag", True) == "true"
    assert coerce("x", None) is None


def test_a_hook_wins_over_the_default_and_sees_string_values_too() -> None:
    coerce = Coercer(types=TYPES, hooks={"score": lambda v: f"{float(v):.1f}", "phone": str.strip})
    assert coerce("score", "3") == "3.0"
    assert coerce("phone", "  +33 1 ") == "+33 1"
    item = Normalizer(Op.CREATE, coerce=coerce)(1, {"phone": " 5 ", "subject": " s "})
    assert item.properties == {"phone": "5", "subject": " s "}


def test_a_failing_hook_or_a_wrong_return_fails_the_row_naming_the_property() -> None:
    def broken(value: Any) -> str:
        raise ZeroDivisionError("division by zero")

    not_text: Any = int
    coerce = Coercer(hooks={"score": not_text, "bad": broken})
    with pytest.raises(InputError, match="'bad': the coerce hook failed: ZeroDivisionError"):
        coerce("bad", "x")
    with pytest.raises(InputError, match="'score': the coerce hook must return a str or None"):
        coerce("score", "3")


def test_pandas_values_follow_the_schema() -> None:
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    coerce = Coercer(types=TYPES, zone=ZoneInfo("UTC"))
    assert coerce("closed_on", pd.Timestamp("2026-03-04")) == "2026-03-04"
    assert coerce("closed_at", pd.Timestamp("2026-03-04 05:06:07.123456")) == (
        "2026-03-04T05:06:07.123Z"
    )
    assert coerce("closed_on", np.datetime64("2026-03-04")) == "2026-03-04"
    assert coerce("closed_at", np.datetime64("2026-03-04T01:02:03")) == "2026-03-04T01:02:03.000Z"
    assert coerce("closed_on", pd.NaT) is None
    assert coerce("score", np.int64(7)) == "7"
    assert coerce("score", pd.NA) is None


def test_the_config_refuses_an_unknown_zone_and_a_hook_that_is_not_callable() -> None:
    base: dict[str, Any] = {"operation": Operation.CREATE, "token": Secret("pat-test-x")}
    with pytest.raises(ConfigError, match="timezone 'Mars/Olympus' is not a time zone name"):
        JobConfig(**base, timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"coerce\['score'\] must map a property name"):
        JobConfig(**base, coerce={"score": "int"})  # type: ignore[dict-item]
    assert JobConfig(**base, timezone="Europe/Paris").zone == ZoneInfo("Europe/Paris")


async def test_a_job_coerces_by_the_schema_it_read(tmp_path: Path) -> None:
    hub = MockHub()
    schema = {
        "results": [
            *PROPERTIES["results"],
            {"name": "closed_on", "type": "date", "fieldType": "date"},
            {"name": "closed_at", "type": "datetime", "fieldType": "date"},
        ]
    }
    hub.script[1] = json_response(200, schema)
    rows: list[dict[str, Any]] = [
        {"subject": "a", "closed_on": date(2026, 1, 2), "closed_at": date(2026, 1, 2)},
        {"subject": "b", "closed_at": datetime(2026, 1, 2, 9, 30)},  # naive, zone configured
        {"subject": "c", "closed_on": datetime(2026, 1, 2, 9, 30)},  # a time for a date
        {"subject": "d", "content": 5},
    ]
    config = JobConfig(
        operation=Operation.CREATE,
        token=Secret("pat-test-engine-test-token"),
        base_url="http://hub.test",
        out_dir=tmp_path,
        rate_limit=0,
        timezone="America/New_York",
        coerce={"content": lambda v: f"#{v}"},
    )
    for row in rows:
        row["hs_pipeline_stage"] = "1"
    report = await run_job(config, rows, transport=hub.transport)
    assert_accounted(tmp_path, 4)
    assert (report.succeeded, report.failed) == (3, 1)
    sent = sorted(hub.records.values(), key=lambda p: p["subject"])
    assert sent[0]["closed_on"] == "2026-01-02"
    assert sent[0]["closed_at"] == "2026-01-02T05:00:00.000Z"
    assert sent[1]["closed_at"] == "2026-01-02T14:30:00.000Z"
    assert sent[2]["content"] == "#5"
    failed = [orjson.loads(line) for line in (tmp_path / "failed.jsonl").read_bytes().splitlines()]
    assert failed[0]["row"] == 3 and "time of day" in failed[0]["error"]["message"]
