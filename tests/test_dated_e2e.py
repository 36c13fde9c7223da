"""Jobs on the date-versioned API and on v3, end to end against the embedded fake: the paths
each version sends (the fake records them), the 2026-09 validation rules, and the accounting
invariant on every job."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from bulkops import ConfigError, Operation, run_job
from bulkops._cli import confirm_permanent_delete, main
from bulkops._versions import ApiVersion
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot, FaultPlan, ValidationRule

from .accounting import assert_accounted
from .test_e2e import config, ticket

RULE = ValidationRule.parse("hs_ticket_priority=HIGH requires content")
VERSIONS = ["2026-09", "v3"]


def objects(version: str, op: str) -> str:
    return ApiVersion.parse(version).objects_path("tickets", op)


def schema(version: str) -> str:
    return ApiVersion.parse(version).properties_path("tickets")


@pytest.fixture
async def fake():
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as server:
        yield server


@pytest.mark.parametrize("version", VERSIONS)
async def test_create(fake, tmp_path, version):
    rows = [ticket(n) for n in range(1, 151)]
    cfg = config(fake, tmp_path, Operation.CREATE, api_version=ApiVersion.parse(version))
    await run_job(cfg, rows)
    ok, bad = assert_accounted(tmp_path, 150)
    assert not bad
    assert fake.stored("tickets", ok[7]["id"])["properties"]["subject"] == "Ticket 7"
    assert fake.stats.paths == Counter({schema(version): 1, objects(version, "create"): 2})


@pytest.mark.parametrize("version", VERSIONS)
async def test_update(fake, tmp_path, version):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 121)])
    rows = [{"id": i, "content": f"c{i}"} for i in ids]
    await run_job(
        config(fake, tmp_path, Operation.UPDATE, api_version=ApiVersion.parse(version)), rows
    )
    _, bad = assert_accounted(tmp_path, 120)
    assert not bad
    assert fake.stored("tickets", ids[0])["properties"]["content"] == f"c{ids[0]}"
    assert fake.stats.paths == Counter({schema(version): 1, objects(version, "update"): 2})


@pytest.mark.parametrize("version", VERSIONS)
async def test_upsert(fake, tmp_path, version):
    fake.seed_records("tickets", [ticket(n) for n in range(1, 11)])
    cfg = config(
        fake,
        tmp_path,
        Operation.UPSERT,
        id_property="external_id",
        api_version=ApiVersion.parse(version),
    )
    report = await run_job(cfg, [ticket(n, content="v2") for n in range(1, 31)])
    _, bad = assert_accounted(tmp_path, 30)
    assert not bad
    assert report.to_json()["written"] == {"created": 20, "updated": 10, "new_unknown": 0}
    assert fake.stats.paths == Counter({schema(version): 1, objects(version, "upsert"): 1})


@pytest.mark.parametrize("version", VERSIONS)
async def test_archive(fake, tmp_path, version):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 21)])
    cfg = config(
        fake, tmp_path, Operation.ARCHIVE, api_version=ApiVersion.parse(version), preflight=False
    )
    await run_job(cfg, [{"id": i} for i in ids[:15]])
    assert_accounted(tmp_path, 15)
    assert len(fake.records("tickets")) == 5
    assert fake.stats.paths == Counter({objects(version, "archive"): 1})


@pytest.mark.parametrize("version", VERSIONS)
async def test_read(fake, tmp_path, version):
    ids = fake.seed_records("tickets", [ticket(n, content=f"c{n}") for n in range(1, 6)])
    cfg = config(
        fake,
        tmp_path,
        Operation.READ,
        api_version=ApiVersion.parse(version),
        properties=("content",),
    )
    await run_job(cfg, [{"id": i} for i in ids] + [{"id": "777777777"}])
    ok, bad = assert_accounted(tmp_path, 6)
    assert ok[2]["properties"]["content"] == "c2"
    assert bad[6]["error"]["category"] == "OBJECT_NOT_FOUND"
    assert fake.stats.paths == Counter({schema(version): 1, objects(version, "read"): 1})


async def test_the_default_sends_only_dated_paths(tmp_path):
    # Served versions without v3 or v1: any legacy request would be a 404 and fail the job.
    cfg = FakeConfig(rate_limit=None, api_versions=frozenset({"2026-09"}))
    async with FakeHubSpot(cfg) as fake:
        report = await run_job(
            config(fake, tmp_path, Operation.CREATE, id_property="external_id"),
            [ticket(n) for n in range(1, 51)],
        )
        assert_accounted(tmp_path, 50)
        assert report.exit_code == 0
        assert set(fake.stats.paths) == {
            "/crm/properties/2026-09/tickets",
            "/crm/objects/2026-09/tickets/batch/create",
        }


async def test_read_backs_of_unknown_creates_use_the_jobs_version(tmp_path):
    # Writes that are applied and then answered 500 leave the outcome unknown: the engine
    # settles them by reading on the unique property, on the job's version too.
    faults = FaultPlan(seed=3, p_write_then_fail=0.3)
    async with FakeHubSpot(FakeConfig(rate_limit=None, faults=faults)) as fake:
        cfg = config(
            fake,
            tmp_path,
            Operation.CREATE,
            id_property="external_id",
            backoff_base=0.0,
            backoff_cap=0.0,
        )
        await run_job(cfg, [ticket(n) for n in range(1, 801)])
        _, bad = assert_accounted(tmp_path, 800)
        assert not bad
        assert fake.stats.paths["/crm/objects/2026-09/tickets/batch/read"] >= 1
        assert not [p for p in fake.stats.paths if "/v3/" in p]
        assert max(fake.stats.creates_by_unique.values()) == 1  # nothing created twice


def rule_rows(*, content: bool = False) -> list[dict[str, Any]]:
    """200 tickets; rows 5, 77 and 150 are HIGH without content. ``content``: every other row
    has content."""
    rows = [ticket(n, content=f"c{n}") if content else ticket(n) for n in range(1, 201)]
    for n in (5, 77, 150):
        rows[n - 1]["hs_ticket_priority"] = "HIGH"  # and no content: breaks the rule
        rows[n - 1].pop("content", None)
    rows[9]["hs_ticket_priority"] = "HIGH"
    rows[9]["content"] = "details"  # row 10 keeps the rule
    return rows


@pytest.mark.parametrize("preflight", [True, False])
async def test_a_2026_09_create_writes_the_rest_and_fails_rule_breakers(tmp_path, preflight):
    async with FakeHubSpot(FakeConfig(rate_limit=None, validation_rules=[RULE])) as fake:
        report = await run_job(
            config(fake, tmp_path, Operation.CREATE, preflight=preflight), rule_rows()
        )
        _, bad = assert_accounted(tmp_path, 200)
        assert sorted(bad) == [5, 77, 150]
        for line in bad.values():
            assert line["error"]["category"] == "VALIDATION_ERROR"
            assert (
                "content is required when hs_ticket_priority is HIGH" in (line["error"]["message"])
            )
        assert len(fake.records("tickets")) == 197
        assert report.exit_code == 1
        assert report.requests.by_kind.get("isolation", 0) == 0  # a 207 names each record


async def test_the_same_job_on_v3_is_not_checked_against_the_rules(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None, validation_rules=[RULE])) as fake:
        cfg = config(fake, tmp_path, Operation.CREATE, api_version=ApiVersion.parse("v3"))
        await run_job(cfg, rule_rows())
        _, bad = assert_accounted(tmp_path, 200)
        assert not bad


async def test_a_whole_batch_400_for_a_rule_is_isolated(tmp_path):
    # Should HubSpot refuse the whole batch for a broken rule even with trace ids (not known),
    # the dispatcher's isolation sends the records lacking the named property alone. (When
    # most rows lack it without meeting the condition, every one of them is a suspect: that
    # is the dispatcher's heuristic, outside this test.)
    cfg = FakeConfig(rate_limit=None, validation_rules=[RULE], validation_rules_multi_status=False)
    async with FakeHubSpot(cfg) as fake:
        report = await run_job(config(fake, tmp_path, Operation.CREATE), rule_rows(content=True))
        _, bad = assert_accounted(tmp_path, 200)
        assert sorted(bad) == [5, 77, 150]
        assert all("content is required" in b["error"]["message"] for b in bad.values())
        assert len(fake.records("tickets")) == 197
        assert fake.stats.by_status[400] == 2 + 3  # two batches, then each breaker alone
        # Each breaker alone, and the rest of each batch together: (2 + 1) + (1 + 1).
        assert report.requests.by_kind.get("isolation", 0) == 5


@pytest.mark.parametrize("version", VERSIONS)
async def test_associations_without_a_category_are_written(fake, tmp_path, version):
    contact = fake.seed_records("contacts", [{"email": "a@b.c"}])[0]
    rows = [
        {
            "properties": ticket(1),
            "associations": [{"to": {"id": contact}, "types": [{"associationTypeId": 16}]}],
        },
        {"subject": "t2", "hs_pipeline": "0", "hs_pipeline_stage": "1", "assoc:16": contact},
    ]
    cfg = config(fake, tmp_path, Operation.CREATE, api_version=ApiVersion.parse(version))
    await run_job(cfg, rows)
    ok, bad = assert_accounted(tmp_path, 2)
    assert not bad
    for line in ok.values():
        [assoc] = fake.record("tickets", line["id"])["associations"]
        assert assoc["to"]["id"] == contact
        assert assoc["types"] == [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 16}
        ]


# -- the command line ----------------------------------------------------------------------


async def bulkops_cli(*args: Any, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``python -m bulkops ARGS`` with the fake's token; stdin is a pipe, not a terminal."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUBSPOT_")}
    environ["HUBSPOT_ACCESS_TOKEN"] = DEFAULT_FAKE_TOKEN
    with anyio.fail_after(60):
        return await anyio.run_process(
            [sys.executable, "-m", "bulkops", *map(str, args)],
            input=stdin,
            env=environ,
            check=False,
        )


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("flags", "segment"),
    [
        ((), "/2026-09/"),
        (("--api-version", "2026-03"), "/2026-03/"),
        (("--api-version", "v3"), "/v3/"),
        (("--api", "v3"), "/v3/"),  # the older spelling
    ],
)
async def test_cli_api_version(fake, tmp_path, flags, segment):
    src = jsonl(tmp_path / "in.jsonl", [ticket(n) for n in range(1, 21)])
    out = tmp_path / "out"
    done = await bulkops_cli(
        "run", "create", "--input", src, "--out", out, "--base-url", fake.url, "--rate-limit",
        0, "--progress", "none", *flags,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert_accounted(out, 20)
    assert len(fake.stats.paths) == 2  # the schema and one create
    assert all(segment in p for p in fake.stats.paths)
    assert b"v1" not in done.stderr  # no sunset warning outside v1


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--api-version", "2026-06"], "March and September only"),
        (["--api-version", "2025-09"], "older than the first dated version"),
    ],
)
def test_cli_refuses_a_bad_version_naming_it(tmp_path, capsys, flags, says):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "create", "--input", str(tmp_path / "x.jsonl"), *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--api-version" in err and says in err and "Traceback" not in err


def test_cli_refuses_disagreeing_api_flags_and_v1_names_without_v1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "t")
    src = str(jsonl(tmp_path / "in.jsonl", [ticket(1)]))
    base = ["run", "create", "--input", src, "--out", str(tmp_path / "o")]
    assert main([*base, "--api", "v3", "--api-version", "2026-09"]) == 2
    assert "--api v3 and --api-version 2026-09 disagree" in capsys.readouterr().err
    assert main(["run", "batch-create", "--input", src, "--api-version", "2026-09"]) == 2
    assert "batch-create is a v1 operation: add --api-version v1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


async def test_cli_v1_job_warns_once_of_the_sunset(fake, tmp_path):
    src = jsonl(tmp_path / "in.jsonl", [ticket(n) for n in range(1, 11)])
    done = await bulkops_cli(
        "run", "batch-create", "--api", "v1", "--input", src, "--out", tmp_path / "o",
        "--base-url", fake.url, "--rate-limit", 0, "--progress", "none",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    err = done.stderr.decode()
    assert err.count("September 2027") == 1
    assert "--api-version 2026-09" in err
    assert fake.stats.paths["/crm-objects/v1/objects/tickets/batch-create"] == 1


async def test_cli_v1_batch_delete_needs_yes_without_a_terminal(fake, tmp_path):
    ids = fake.seed_records("tickets", [ticket(n) for n in range(1, 6)])
    src = jsonl(tmp_path / "ids.jsonl", [{"id": i} for i in ids])
    line = ["run", "batch-delete", "--api-version", "v1", "--input", src, "--base-url", fake.url,
            "--rate-limit", 0, "--progress", "none"]  # fmt: skip
    refused = await bulkops_cli(*line, "--out", tmp_path / "a", stdin=b"yes\n")
    assert refused.returncode == 2
    err = refused.stderr.decode()
    assert "permanently" in err and "add --yes" in err and "Traceback" not in err
    assert fake.stats.requests == 0 and len(fake.records("tickets")) == 5

    done = await bulkops_cli(*line, "--out", tmp_path / "b", "--yes")
    assert done.returncode == 0, done.stderr.decode()
    assert_accounted(tmp_path / "b", 5)
    assert fake.records("tickets", include_archived=True) == []  # gone for good


class Terminal(io.StringIO):
    """Typed answers on a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("answer", ["yes\n", "Y\n"])
def test_permanent_delete_goes_on_when_the_user_says_yes(tmp_path, answer):
    src = jsonl(tmp_path / "ids.jsonl", [{"id": str(n)} for n in range(1, 8)])
    prompt = io.StringIO()
    confirm_permanent_delete(str(src), stdin=Terminal(answer), stderr=prompt)
    assert "PERMANENTLY delete about 7 tickets" in prompt.getvalue()


@pytest.mark.parametrize("answer", ["no\n", "\n", ""])
def test_permanent_delete_stops_on_anything_but_yes(tmp_path, answer):
    src = jsonl(tmp_path / "ids.jsonl", [{"id": "1"}])
    with pytest.raises(ConfigError, match="not confirmed; nothing was deleted"):
        confirm_permanent_delete(str(src), stdin=Terminal(answer), stderr=io.StringIO())


def test_permanent_delete_from_stdin_needs_yes_even_on_a_terminal():
    # The records come on stdin, so it cannot also carry the answer.
    with pytest.raises(ConfigError, match="add --yes"):
        confirm_permanent_delete("-", stdin=Terminal("yes\n"), stderr=io.StringIO())


@pytest.mark.parametrize("preflight", [True, False])
async def test_a_version_hubspot_does_not_publish_stops_the_job(fake, tmp_path, preflight):
    cfg = config(
        fake,
        tmp_path,
        Operation.CREATE,
        api_version=ApiVersion.parse("2027-03"),
        preflight=preflight,
    )
    report = await run_job(cfg, [ticket(n) for n in range(1, 301)])
    assert report.exit_code == 2
    assert "404" in report.to_json()["stop"]["message"]
    assert fake.records("tickets") == []
    if preflight:
        assert fake.stats.requests == 1  # the schema read
    else:
        assert fake.stats.requests <= 3  # batches already in flight when the first 404 came
        assert "--api-version" in report.to_json()["stop"]["message"]
