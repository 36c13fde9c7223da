"""Results in code: the public Outcome, on_outcome, open_job's bounded iterator, passthrough
columns, the key in result lines, and read_results into Python, pyarrow and pandas."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import bulkops
from bulkops import ConfigError, JobConfig, Operation, Outcome, Secret, open_job, run_job
from bulkops._config import config_from_meta, config_to_meta

from .accounting import assert_accounted, assert_report_matches_files, read_jsonl
from .mockhub import MockHub, tickets

TOKEN = "pat-test-outcome-test-token"


def config(out: Path, op: Operation = Operation.CREATE, **kw: Any) -> JobConfig:
    kw.setdefault("rate_limit", 0)
    kw.setdefault("backoff_base", 0.001)
    kw.setdefault("backoff_cap", 0.002)
    return JobConfig(
        operation=op, token=Secret(TOKEN), base_url="http://hub.test", out_dir=out, **kw
    )


def keyed(n: int, *, bad: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    """Tickets with a source primary key ``pk``; rows in ``bad`` fail pre-flight."""
    rows: list[dict[str, Any]] = []
    for i, base in enumerate(tickets(n), 1):
        row: dict[str, Any] = {**base, "pk": 10_000 + i}
        if i in bad:
            row["hs_pipeline_stage"] = "9"  # not an option of the pipeline stage
        rows.append(row)
    return rows


async def test_on_outcome_gets_one_outcome_per_row_matching_the_files(tmp_path: Path) -> None:
    hub = MockHub()
    seen: list[Outcome] = []
    cfg = config(tmp_path, id_property="external_id", passthrough=("pk",))
    report = await run_job(
        cfg, keyed(250, bad=frozenset({7})), transport=hub.transport, on_outcome=seen.append
    )
    ok, bad = assert_accounted(tmp_path, 250)
    assert report.succeeded == 249 and len(seen) == 250
    by_row = {o.row: o for o in seen}
    assert sorted(by_row) == list(range(1, 251))
    first = by_row[1]
    assert first.ok and first.key == "ext-1" and first.hubspot_id == ok[1]["id"]
    assert first.new is True and first.category is None and first.input["pk"] == 10_001
    failed = by_row[7]
    assert not failed.ok and failed.category == "PREFLIGHT_VALIDATION"
    assert "hs_pipeline_stage" in (failed.message or "") and failed.key == "ext-7"
    assert failed.input["hs_pipeline_stage"] == "9"
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.ok = False  # type: ignore[misc]
    # The id property's value is in every line, so results join back by key.
    assert ok[1]["key"] == "ext-1" and bad[7]["key"] == "ext-7"


async def test_passthrough_columns_are_carried_not_sent(tmp_path: Path) -> None:
    hub = MockHub()
    seen: list[Outcome] = []
    cfg = config(tmp_path, id_property="external_id", passthrough=("pk",))
    await run_job(
        cfg, keyed(120, bad=frozenset({3})), transport=hub.transport, on_outcome=seen.append
    )
    ok, bad = assert_accounted(tmp_path, 120)
    assert all("pk" not in props for props in hub.records.values())
    assert ok[1]["passthrough"] == {"pk": 10_001}
    assert bad[3]["passthrough"] == {"pk": 10_003}
    # The failed line keeps the whole row, so a retry of failed.jsonl carries pk again.
    assert bad[3]["input"]["pk"] == 10_003
    assert {o.row: o.passthrough["pk"] for o in seen} == {i: 10_000 + i for i in range(1, 121)}


async def test_a_passthrough_column_is_not_an_unknown_property_in_a_csv(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "subject,hs_pipeline_stage,external_id,source_pk\n"
        + "".join(f"T{i},1,ext-{i},pk-{i}\n" for i in range(1, 31))
    )
    hub = MockHub()
    out = tmp_path / "out"
    report = await run_job(
        config(out, id_property="external_id", passthrough=("source_pk",)),
        source,
        transport=hub.transport,
    )
    ok, _ = assert_accounted(out, 30)
    assert report.stop is None and ok[30]["passthrough"] == {"source_pk": "pk-30"}
    # Without the flag the same header is refused: source_pk is not a ticket property.
    refused = await run_job(config(tmp_path / "out2", id_property="external_id"), source,
                            transport=MockHub().transport)  # fmt: skip
    assert refused.stop_reason == "input" and "source_pk" in refused.stop.message  # type: ignore[union-attr]


async def test_a_passthrough_column_missing_from_the_header_is_one_message(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("subject,hs_pipeline_stage\nT1,1\n")
    report = await run_job(
        config(tmp_path / "out", passthrough=("pk",)), source, transport=MockHub().transport
    )
    assert report.stop is not None and report.stop_reason == "input"
    assert "--passthrough pk" in report.stop.message and report.rows.succeeded == 0


def test_passthrough_is_checked_when_the_config_is_built(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is the id property"):
        config(tmp_path, Operation.UPSERT, id_property="external_id", passthrough=("external_id",))
    with pytest.raises(ConfigError, match="given twice"):
        config(tmp_path, passthrough=("pk", "pk"))
    with pytest.raises(ConfigError, match="record id update needs"):
        config(tmp_path, Operation.UPDATE, passthrough=("id",))
    with pytest.raises(ConfigError, match="not one string"):
        config(tmp_path, passthrough="pk")
    cfg = config(tmp_path, passthrough=["pk"])
    assert cfg.passthrough == ("pk",)
    # Journaled, so resume and retry strip the same columns.
    back = config_from_meta(config_to_meta(cfg), token=cfg.token, out_dir=tmp_path)
    assert back.passthrough == ("pk",)


async def test_open_job_streams_every_outcome_then_holds_the_report(tmp_path: Path) -> None:
    hub = MockHub()
    async with open_job(config(tmp_path), tickets(300), transport=hub.transport) as job:
        rows = [outcome.row async for outcome in job.outcomes()]
    assert sorted(rows) == list(range(1, 301))
    assert job.report is not None and job.report.succeeded == 300
    assert_accounted(tmp_path, 300)


async def test_a_slow_consumer_holds_the_job_back_within_the_buffer(tmp_path: Path) -> None:
    """Back-pressure: the job reads no further than the buffer plus what is in the engine."""
    hub = MockHub()
    cfg = config(tmp_path, batch_size=10, max_outstanding=20)
    consumed, worst = 0, 0
    async with open_job(cfg, tickets(400), transport=hub.transport, buffer=5) as job:
        async for _ in job.outcomes():
            consumed += 1
            worst = max(worst, job.progress().rows_read - consumed)
            assert job.buffered <= 5 + 20
    assert consumed == 400
    # read - consumed = buffered + in the engine (+1 row waiting at the gate).
    assert worst <= 5 + 20 + 1


async def test_leaving_open_job_early_stops_the_job_and_keeps_its_results(
    tmp_path: Path,
) -> None:
    hub = MockHub()
    async with open_job(config(tmp_path, concurrency=1), tickets(3000),
                        transport=hub.transport) as job:  # fmt: skip
        async for outcome in job.outcomes():
            if outcome.row >= 50:
                break
    assert job.report is not None and job.report.stop_reason == "interrupted"
    data = assert_report_matches_files(tmp_path)
    assert 50 <= data["rows"]["succeeded"] < 3000


async def test_an_error_in_the_block_cancels_the_job_and_is_raised_as_itself(
    tmp_path: Path,
) -> None:
    class Boom(Exception):
        pass

    hub = MockHub()
    with pytest.raises(Boom):
        async with open_job(config(tmp_path), tickets(3000), transport=hub.transport) as job:
            async for _ in job.outcomes():
                raise Boom
    assert job.report is not None and job.report.status == "cancelled"
    assert_report_matches_files(tmp_path)


async def test_a_failing_source_is_raised_as_itself_from_open_job(tmp_path: Path) -> None:
    async def rows() -> AsyncIterator[dict[str, Any]]:
        yield tickets(1)[0]
        raise LookupError("the database went away")

    with pytest.raises(LookupError, match="went away"):
        async with open_job(config(tmp_path), rows(), transport=MockHub().transport) as job:
            async for _ in job.outcomes():
                pass


async def test_wait_drops_unread_outcomes_and_never_blocks_the_job(tmp_path: Path) -> None:
    async with open_job(
        config(tmp_path), tickets(500), transport=MockHub().transport, buffer=1
    ) as job:
        report = await job.wait()
    assert report.succeeded == 500


async def test_read_results_reads_a_job_folder_back(tmp_path: Path) -> None:
    cfg = config(tmp_path, id_property="external_id", passthrough=("pk",))
    await run_job(cfg, keyed(40, bad=frozenset({2, 5})), transport=MockHub().transport)
    results = bulkops.read_results(tmp_path)
    assert [o.row for o in results] == list(range(1, 41))
    assert [o.row for o in results.failed] == [2, 5]
    assert results.report is not None and results.report.failed == 2
    one = results.outcomes[0]
    assert one.ok and one.key == "ext-1" and one.passthrough == {"pk": 10_001}
    assert one.hubspot_id == read_jsonl(tmp_path / "succeeded.jsonl")[0]["id"]
    two = results.outcomes[1]
    assert two.category == "PREFLIGHT_VALIDATION" and two.input["pk"] == 10_002
    columns = results.columns()
    assert columns["pk"][:3] == [10_001, 10_002, 10_003]
    assert columns["ok"][:3] == [True, False, True]


def test_read_results_of_a_folder_without_results_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no bulkops results"):
        bulkops.read_results(tmp_path)


async def test_results_into_arrow_and_pandas(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    cfg = config(tmp_path, id_property="external_id", passthrough=("pk",))
    await run_job(cfg, keyed(30, bad=frozenset({4})), transport=MockHub().transport)
    results = bulkops.read_results(tmp_path)
    table = results.to_arrow()
    assert isinstance(table, pa.Table) and table.num_rows == 30
    assert table.column("pk").to_pylist()[:2] == [10_001, 10_002]
    frame = results.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert frame.loc[frame["row"] == 4, "category"].item() == "PREFLIGHT_VALIDATION"
    assert frame["key"].tolist()[0] == "ext-1"


async def test_a_missing_extra_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await run_job(config(tmp_path), tickets(3), transport=MockHub().transport)
    results = bulkops.read_results(tmp_path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'bulkops\[arrow\]'"):
        results.to_arrow()
    with pytest.raises(ImportError, match=r"pip install 'bulkops\[pandas\]'"):
        results.to_pandas()
