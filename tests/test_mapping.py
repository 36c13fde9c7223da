"""Column mapping: renames, ignored columns, constants and label matching, as pure functions
and end to end (the header check sees mapped names; failed.jsonl keeps the input as given)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bulkops import ColumnMapping, ConfigError, JobConfig, Operation, Secret, dry_run, run_job
from bulkops._config import config_from_meta, config_to_meta
from bulkops._mapping import Mapper, parse_assignment, read_map_file
from bulkops._preflight import PropertySchema
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot, PropertyDef

from .accounting import assert_accounted, read_jsonl


def schema() -> PropertySchema:
    def enum(name: str, label: str, options: list[tuple[str, str]], **kw: Any) -> dict[str, Any]:
        opts = [{"label": lab, "value": val} for lab, val in options]
        return {"name": name, "label": label, "type": "enumeration", "options": opts, **kw}

    return PropertySchema.from_hubspot(
        {
            "results": [
                {"name": "subject", "label": "Ticket name", "type": "string"},
                {"name": "content", "label": "Ticket description", "type": "string"},
                enum("hs_ticket_priority", "Priority", [("High", "HIGH"), ("Low", "LOW")]),
                enum("hs_pipeline_stage", "Ticket status", [("New", "1"), ("Closed", "4")]),
                enum(
                    "hs_ticket_category",
                    "Category",
                    [("Billing issue", "BILLING_ISSUE"), ("Product issue", "PRODUCT_ISSUE")],
                    fieldType="checkbox",
                ),
            ]
        },
        object_type="tickets",
    )


def test_renames_ignores_and_constants_apply_to_rows_and_header():
    mapping = ColumnMapping(
        rename=(("Ticket name", "subject"),),
        ignore=("Notes",),
        constants=(("hs_pipeline", "0"),),
    )
    mapper = Mapper(mapping, None)
    row = {"Ticket name": "Printer", "Notes": "internal", "content": "x"}
    assert mapper(row) == {"subject": "Printer", "content": "x", "hs_pipeline": "0"}
    assert mapper.columns(["Ticket name", "Notes", "content"]) == [
        "subject",
        "content",
        "hs_pipeline",
    ]
    hubspot_shaped = {"id": "5", "properties": {"Ticket name": "P", "Notes": "n"}}
    assert mapper(hubspot_shaped) == {"id": "5", "properties": {"subject": "P", "hs_pipeline": "0"}}
    plan = [p.to_json() for p in mapper.plan(["Ticket name", "Notes", "content"])]
    assert plan == [
        {"column": "Ticket name", "property": "subject", "how": "map"},
        {"column": "Notes", "property": None, "how": "ignored"},
        {"column": "content", "property": "content", "how": "same"},
        {"column": "=0", "property": "hs_pipeline", "how": "constant"},
    ]


def test_labels_match_columns_and_option_values():
    mapper = Mapper(ColumnMapping(match_labels=True), schema())
    row = {
        "ticket  NAME": "P",  # case and spacing do not matter
        "Priority": "high",
        "Ticket status": "Closed",
        "Category": "Billing issue;Product issue",
        "id": "7",
    }
    assert mapper(row) == {
        "subject": "P",
        "hs_ticket_priority": "HIGH",
        "hs_pipeline_stage": "4",
        "hs_ticket_category": "BILLING_ISSUE;PRODUCT_ISSUE",
        "id": "7",
    }
    # Values that are already option values, or no option at all, are left alone.
    assert mapper({"hs_ticket_priority": "LOW", "Priority": "Urgent"}) == {
        "hs_ticket_priority": "Urgent"
    }


def test_an_explicit_map_wins_over_a_label():
    mapper = Mapper(ColumnMapping(rename=(("Priority", "content"),), match_labels=True), schema())
    assert mapper({"Priority": "High"}) == {"content": "High"}


def test_match_labels_needs_the_schema():
    with pytest.raises(ConfigError, match="--match-labels"):
        Mapper(ColumnMapping(match_labels=True), None)


def test_mapping_is_checked_when_built():
    with pytest.raises(ConfigError, match="mapped twice"):
        ColumnMapping(rename=(("a", "subject"), ("a", "content")))
    with pytest.raises(ConfigError, match="both mapped"):
        ColumnMapping(rename=(("a", "subject"),), ignore=("a",))
    with pytest.raises(ConfigError, match="--set"):
        ColumnMapping(constants=(("bad name!", "1"),))


def test_assignments_and_map_files(tmp_path):
    assert parse_assignment("Ticket name=subject", flag="--map") == ("Ticket name", "subject")
    assert parse_assignment("a=b=c", flag="--map") == ("a=b", "c")
    with pytest.raises(ConfigError, match="--map 'subject'"):
        parse_assignment("subject", flag="--map")
    js = tmp_path / "m.json"
    js.write_text('{"Ticket name": "subject", "Status": "hs_pipeline_stage"}')
    assert read_map_file(js) == (("Ticket name", "subject"), ("Status", "hs_pipeline_stage"))
    cs = tmp_path / "m.csv"
    cs.write_text("column,property\nTicket name,subject\n\n")
    assert read_map_file(cs) == (("Ticket name", "subject"),)
    cs.write_text("a,b,c\n")
    with pytest.raises(ConfigError, match="line 1"):
        read_map_file(cs)
    with pytest.raises(ConfigError, match="cannot read --map-file"):
        read_map_file(tmp_path / "missing.csv")


def test_the_mapping_is_journaled_for_resume():
    mapping = ColumnMapping(rename=(("A", "subject"),), constants=(("x", "1"),), match_labels=True)
    cfg = JobConfig(operation=Operation.CREATE, token=Secret("t" * 20), mapping=mapping, limit=5)
    meta = config_to_meta(cfg)
    again = config_from_meta(meta, token=cfg.token, out_dir=cfg.out_dir)
    assert again.mapping == mapping
    assert again.limit is None  # a trial run's limit is not the job's: resume goes on


# -- end to end --------------------------------------------------------------------------------
LABELLED_TICKETS = [
    PropertyDef(name="subject", label="Ticket name", required=True),
    PropertyDef(name="content", label="Ticket description"),
    PropertyDef(name="hs_pipeline", label="Pipeline", type="enumeration", options=("0",)),
    PropertyDef(
        name="hs_pipeline_stage",
        label="Ticket status",
        type="enumeration",
        options=("1", "2"),
        required=True,
    ),
]


def config(fake: FakeHubSpot, out: Path, **kw: Any) -> JobConfig:
    return JobConfig(
        operation=Operation.CREATE,
        token=Secret(DEFAULT_FAKE_TOKEN),
        base_url=fake.url,
        out_dir=out,
        rate_limit=0,
        **kw,
    )


async def test_a_mapped_csv_is_written_and_failed_lines_keep_the_input(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("Title,Notes,Ticket status\nT1,n1,1\nT2,n2,9\nT3,n3,2\n")
    mapping = ColumnMapping(
        rename=(("Title", "subject"), ("Ticket status", "hs_pipeline_stage")),
        ignore=("Notes",),
        constants=(("hs_pipeline", "0"),),
    )
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        await run_job(config(fake, tmp_path / "out", mapping=mapping), src)
        ok, bad = assert_accounted(tmp_path / "out", 3)
        assert sorted(bad) == [2]  # stage 9 is not an option
        assert bad[2]["input"] == {"Title": "T2", "Notes": "n2", "Ticket status": "9"}
        stored = fake.stored("tickets", ok[1]["id"])["properties"]
        assert (stored["subject"], stored["hs_pipeline"], stored["hs_pipeline_stage"]) == (
            "T1",
            "0",
            "1",
        )
        assert "Notes" not in stored


async def test_the_header_check_sees_mapped_names(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("Title,hs_pipeline_stage\nT1,1\n")
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        mapping = ColumnMapping(rename=(("Title", "subjct"),))
        report = await run_job(config(fake, tmp_path / "a", mapping=mapping), src)
        assert report.stop is not None
        assert "'subjct' (did you mean subject?)" in report.stop.message
        assert "--map" in report.stop.message
        assert fake.stats.requests == 1  # the schema read only


async def test_labels_matched_end_to_end_and_shown_by_the_dry_run(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("Ticket name,Ticket status,Pipeline\nT1,1,0\nT2,2,0\n")
    cfg_schemas = {"tickets": LABELLED_TICKETS}
    async with FakeHubSpot(FakeConfig(rate_limit=None, schemas=cfg_schemas)) as fake:
        mapping = ColumnMapping(match_labels=True)
        plan = await dry_run(config(fake, tmp_path / "dry", mapping=mapping, dry_run=True), src)
        assert plan.would_send == 2 and plan.would_fail == 0
        assert {m["column"]: m["property"] for m in plan.mapping} == {
            "Ticket name": "subject",
            "Ticket status": "hs_pipeline_stage",
            "Pipeline": "hs_pipeline",
        }
        await run_job(config(fake, tmp_path / "out", mapping=mapping, preflight=False), src)
        ok, _ = assert_accounted(tmp_path / "out", 2)
        assert fake.stored("tickets", ok[2]["id"])["properties"]["subject"] == "T2"
        assert read_jsonl(tmp_path / "out" / "failed.jsonl") == []
