"""Command-line polish: --version, help with defaults taken from JobConfig, "did you mean",
flags rather than field names in errors, an 80-column progress display, and result paths
that paste into a shell."""

from __future__ import annotations

import argparse
import io
import os
import shlex

import pytest

import bulkops
import bulkops._cli as cli
from bulkops import JobConfig, Operation, Secret, run_job
from bulkops._cli_help import config_default, flag_message
from bulkops._engine import Progress
from bulkops._progress import WIDTH, ProgressDisplay, fit, format_summary
from bulkops.testing import DEFAULT_FAKE_TOKEN, FakeConfig, FakeHubSpot

from .test_cli_errors import TOKEN, all_parsers, run_main


@pytest.fixture
def environ(monkeypatch):
    for name in list(os.environ):
        if name.startswith("HUBSPOT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    return monkeypatch


def test_version(capsys):
    code, output = run_main(capsys, "--version")
    assert code == 0 and output.strip() == f"bulkops {bulkops.__version__}"


def test_every_option_has_help_and_shows_its_default(capsys):
    parsers = [p for p in all_parsers(cli.build_parser()) if p.prog != "bulkops fake-server"]
    for parser in parsers:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(
                action, argparse._SubParsersAction | argparse._HelpAction | argparse._VersionAction
            ):
                continue
            assert action.help, f"{parser.prog} {action.option_strings or action.dest}: no help"
            shown = formatter._get_help_string(action) % {"default": action.default}
            if action.option_strings and action.default not in (None, False, (), []):
                assert "default" in shown, f"{parser.prog} {action.option_strings}: {shown}"


def test_cli_defaults_are_jobconfig_defaults():
    run = next(p for p in all_parsers(cli.build_parser()) if p.prog == "bulkops run")
    defaults = {a.dest: a.default for a in run._actions}
    for name in ("object_type", "batch_size", "max_attempts", "timeout"):
        assert defaults[name] == config_default(name)
    assert config_default("mapping") == bulkops.ColumnMapping()


@pytest.mark.parametrize(
    ("argv", "guess"),
    [(("rn",), "'run'"), (("resme", "out"), "'resume'"), (("run", "updat"), "'update'")],
)
def test_did_you_mean_for_a_misspelled_command_or_operation(environ, capsys, tmp_path, argv, guess):
    code, output = run_main(capsys, *argv, "--input", tmp_path / "x.csv")
    assert code == 2
    assert f"did you mean {guess}?" in output


def test_a_token_in_place_of_the_operation_is_not_echoed_in_a_suggestion(environ, capsys, tmp_path):
    code, output = run_main(capsys, "run", TOKEN, "--input", tmp_path / "x.csv")
    assert code == 2 and TOKEN not in output


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("batch_size must be between 1 and 100", "--batch-size must be between 1 and 100"),
        ("id_property (--id-property) 'a b' is not", "--id-property 'a b' is not"),
        ("daily_share must be in (0, 1]", "--daily-budget must be in (0, 1]"),
        ("dry_run_reads applies to update", "--dry-run=reads applies to update"),
        ("the input holds no rows", "the input holds no rows"),  # no field: unchanged
        ("cannot read --input x", "cannot read --input x"),
    ],
)
def test_errors_name_flags(message, expected):
    assert flag_message(message) == expected


def test_a_config_error_on_the_command_line_names_the_flag(environ, capsys, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("subject\nT\n")
    code, output = run_main(capsys, "run", "create", "--input", src, "--batch-size", 500)
    assert code == 2
    assert "bulkops: --batch-size must be between 1 and 100" in output
    assert "batch_size" not in output
    code, output = run_main(capsys, "run", "create", "--input", src, "--dry-run=reads")
    assert code == 2 and "--dry-run=reads applies to update, upsert and archive" in output


async def test_a_misspelled_id_property_gets_a_suggestion(tmp_path):
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        cfg = JobConfig(
            operation=Operation.UPSERT,
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=tmp_path,
            id_property="externl_id",
        )
        report = await run_job(cfg, [{"externl_id": "1", "subject": "x"}])
        assert report.stop is not None
        assert "(did you mean external_id?)" in report.stop.message


def busy() -> Progress:
    return Progress(
        elapsed=3725.0,
        rows_read=1_234_567,
        succeeded=1_200_000,
        failed=34_567,
        in_engine=10_000,
        requests=123_456,
        throttled={"TEN_SECONDLY_ROLLING": 12, "SECONDLY": 3},
        limit=171.0,
        ceiling=190,
        others=19.4,
        daily_remaining=987_654,
        reading_done=False,
        stopping="daily_limit",
        waiting="HubSpot asked to wait 30 s (Retry-After); until 12:34:56",
    )


def test_fit_packs_parts_into_lines():
    assert fit(["a", "b"], width=10) == ["a | b"]
    assert fit(["aaaaa", "bbbb", "cccc"], width=13, prefix="> ") == ["> aaaaa", "  bbbb | cccc"]
    assert all(len(line) <= 20 for line in fit(["x" * 50, "y"], width=20))


def test_the_log_display_fits_80_columns():
    stream = io.StringIO()
    display = ProgressDisplay(mode="log", stream=stream, expected_rows=2_000_000)
    display(busy())
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2
    assert all(len(line) <= WIDTH for line in lines), lines
    text = " ".join(lines)
    for needle in ("1,234,567/2,000,000 rows", "429s 15", "limit 171/190", "STOPPING"):
        assert needle in text


def test_the_bar_display_fits_80_columns():
    stream = io.StringIO()
    display = ProgressDisplay(mode="bar", stream=stream, expected_rows=2_000_000)
    assert display._live is not None
    display._live.console.width = 200  # a wide terminal: the display still keeps to 80
    with display:
        display(busy())
    lines = [line.rstrip() for line in stream.getvalue().splitlines() if line.strip()]
    assert lines and all(len(line) <= WIDTH for line in lines), lines


async def test_the_results_path_pastes_into_a_shell(tmp_path):
    out = tmp_path / "my jobs" / "it's here"
    async with FakeHubSpot(FakeConfig(rate_limit=None)) as fake:
        cfg = JobConfig(
            operation=Operation.CREATE,
            token=Secret(DEFAULT_FAKE_TOKEN),
            base_url=fake.url,
            out_dir=out,
            rate_limit=0,
        )
        report = await run_job(cfg, [{"subject": "x", "hs_pipeline_stage": "1"}])
    summary = format_summary(report)
    line = next(x for x in summary.splitlines() if "results in" in x)
    quoted = line.split("results in ", 1)[1].rsplit(": succeeded.jsonl", 1)[0]
    assert shlex.split(quoted) == [str(out)]
