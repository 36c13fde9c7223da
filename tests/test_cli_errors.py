"""The command line's error surface, in process: prefix matching off, secrets masked in
argparse's errors, checks of values that reach requests, the result folder, --debug and the
one-line internal error. No request is sent by any of these."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

import bulkops._cli as cli
from bulkops import ConfigError, JobConfig, Operation, Secret
from bulkops._checks import (
    check_base_url,
    check_object_type,
    check_out_dir,
    check_property_name,
    check_token_text,
    cleartext_warning,
    origin,
    same_base_url,
)
from bulkops._cli_guard import internal_error, redact, remember_secret, secrets_in_argv

TOKEN = "pat-test-cli-errors-not-a-real-token-0001"


@pytest.fixture
def environ(monkeypatch):
    for name in list(os.environ):
        if name.startswith("HUBSPOT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    return monkeypatch


def run_main(capsys, *argv: object) -> tuple[int, str]:
    """``bulkops ARGV`` in process; returns the exit code and stdout + stderr."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors and --help
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out + err


def csv_file(tmp_path: Path) -> Path:
    src = tmp_path / "in.csv"
    src.write_text("subject,hs_pipeline_stage\nT1,1\n")
    return src


# -- argparse ----------------------------------------------------------------------------------
def all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


def test_no_parser_matches_option_prefixes():
    parsers = list(all_parsers(cli.build_parser()))
    assert len(parsers) >= 6  # bulkops, run, demo, resume, retry, fake-server
    assert all(p.allow_abbrev is False for p in parsers), [p.prog for p in parsers]


def test_token_on_the_command_line_is_unrecognized_and_never_echoed(environ, capsys, tmp_path):
    src = csv_file(tmp_path)
    # Prefix matching used to read "--token X" as "--token-file X" and print X back.
    for argv in (
        ("run", "create", "--input", src, "--token", TOKEN),
        ("run", "create", "--input", src, f"--token={TOKEN}"),
        ("resume", tmp_path, "--token", "short-secret"),
        ("run", TOKEN, "--input", src),  # a token pasted where the operation goes
        ("run", "create", "--input", src, "--rate-limit", TOKEN),
    ):
        code, output = run_main(capsys, *argv)
        assert code == 2, argv
        assert "error:" in output
        assert TOKEN not in output and "short-secret" not in output, output
    code, output = run_main(capsys, "run", "create", "--input", src, "--token", TOKEN)
    assert "unrecognized arguments: --token ***" in output


def test_an_abbreviated_option_is_refused(environ, capsys, tmp_path):
    code, output = run_main(capsys, "run", "create", "--inp", csv_file(tmp_path))
    assert code == 2 and "--input" in output


def test_secrets_in_argv_and_redact():
    argv = ["--token", "abc", "--token=xyz", "--out", "o", "--token"]
    assert secrets_in_argv(argv) == ["abc", "xyz"]
    # Short secrets are masked as whole words only, so messages stay readable.
    assert redact("invalid choice: 'abc' (a abcd)", ["abc"]) == "invalid choice: '***' (a abcd)"
    assert redact(f"url http://x/?k={TOKEN}&y") == "url http://x/?k=***&y"
    oauth = "CJSP5qf1KhICAQEYs-gDIIGOBii1hQIyGQAf3xBKmlwHjX7OIpuIFEavB2-qYAGQsF4"
    assert redact(f"got {oauth}") == "got ***"
    # File names, ids and URLs that are not token-like are left alone.
    text = "--input tickets_export_2026_12_final_version.csv row 12345678901234567890"
    assert redact(text) == text
    remember_secret("remembered-secret-value")
    assert redact("x remembered-secret-value y") == "x *** y"


# -- values that reach the request -------------------------------------------------------------
@pytest.mark.parametrize("value", ["tickets", "contacts", "0-5", "2-123", "p_my_object", "Deals"])
def test_object_types_accepted(value):
    check_object_type(value)


@pytest.mark.parametrize(
    "value",
    ["", "..", "%2e%2e", "tickets?x=", "tickets#f", "a/b", "/tickets", "tick ets", "0-", "-5",
     "tickets\n", "_x", "2-1-3"],
)  # fmt: skip
def test_object_types_refused(value):
    with pytest.raises(ConfigError, match="--object"):
        check_object_type(value)
    with pytest.raises(ConfigError, match="--object"):
        JobConfig(operation=Operation.CREATE, token=Secret("t"), object_type=value)


@pytest.mark.parametrize("value", ["a?b", "x&y=1", "..", "a/b", "a b", "", "%41", "a#b", "é"])
def test_property_names_refused(value):
    with pytest.raises(ConfigError, match="--id-property"):
        JobConfig(operation=Operation.UPSERT, token=Secret("t"), id_property=value)
    with pytest.raises(ConfigError, match="--properties"):
        JobConfig(operation=Operation.READ, token=Secret("t"), properties=("subject", value))
    with pytest.raises(ConfigError, match="--properties-with-history"):
        JobConfig(operation=Operation.READ, token=Secret("t"), properties_with_history=(value,))


def test_property_names_accepted():
    for name in ("subject", "hs_pipeline_stage", "External_ID", "a-b", "0abc"):
        check_property_name(name, option="x")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user:hunter2@example.com", "user name or password"),
        ("https://:hunter2@example.com", "user name or password"),
        ("https://hunter2@example.com", "user name or password"),
        ("https://api.hubapi.com?hapikey=hunter2", "query string"),
        ("https://api.hubapi.com/?", "query string"),
        ("https://api.hubapi.com#hunter2", "fragment"),
        ("ftp://example.com", "http:// or https://"),
        ("api.hubapi.com", "http:// or https://"),
        ("https://", "no host"),
        ("https://:443/x", "no host"),
        ("http://example.com:hunter2/", "not a valid URL"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://exa mple.com/", "spaces or control"),
        ("http://example.com/\nhunter2", "spaces or control"),
    ],
)
def test_base_urls_refused_without_echoing_them(url, problem):
    with pytest.raises(ConfigError, match=problem) as info:
        JobConfig(operation=Operation.CREATE, token=Secret("t"), base_url=url)
    assert "hunter2" not in str(info.value)
    assert "base_url" in str(info.value)


def test_base_urls_accepted_and_compared():
    for url in ("https://api.hubapi.com", "http://127.0.0.1:8080/", "https://[::1]:9/prefix"):
        check_base_url(url)
    assert origin("https://api.hubapi.com") == "api.hubapi.com"
    assert origin("http://u:p@[::1]:9/x") == "[::1]:9"
    assert same_base_url("https://API.hubapi.com:443/", "https://api.hubapi.com")
    assert not same_base_url("https://api.hubapi.com", "http://api.hubapi.com")
    assert not same_base_url("http://127.0.0.1:1", "http://127.0.0.1:2")


def test_plain_http_beyond_this_machine_warns():
    assert cleartext_warning("http://crm.example:8080/x") == (
        "bulkops: warning: crm.example:8080 is plain http: the token would travel unencrypted"
    )
    for url in ("https://api.hubapi.com", "http://127.0.0.1:5", "http://localhost", "http://[::1]"):
        assert cleartext_warning(url) is None


@pytest.mark.parametrize(
    ("token", "what"),
    [
        ("pat-xx1-abc\ndef", "a line break at character 12"),
        ("pat-na1\x00abc", "a control character at character 8"),
        ("pat na1", "a space"),
        ("pat-test-é", "a non-ASCII character"),
    ],
)
def test_tokens_that_cannot_go_in_a_header(environ, capsys, tmp_path, token, what):
    with pytest.raises(ConfigError, match=what) as info:
        check_token_text(token, source="X")
    assert token not in str(info.value)
    with pytest.raises(ConfigError, match="token"):
        JobConfig(operation=Operation.CREATE, token=Secret(token))
    # From the environment and from a file: a plain error naming the source, exit 2.
    if "\x00" not in token:  # the environment cannot hold a NUL
        environ.setenv("HUBSPOT_ACCESS_TOKEN", token)
        code, output = run_main(capsys, "run", "create", "--input", csv_file(tmp_path))
        assert code == 2 and "HUBSPOT_ACCESS_TOKEN" in output and what in output
    path = tmp_path / "token"
    path.write_bytes(token.encode() + b"\n")
    path.chmod(0o600)
    code, output = run_main(
        capsys, "run", "create", "--input", csv_file(tmp_path), "--token-file", path
    )
    assert code == 2 and f"--token-file {path}" in output and what in output, output
    assert "Traceback" not in output


def test_a_token_file_others_can_read_warns_once(environ, capsys, tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    missing = tmp_path / "missing.csv"  # the job stops right after the token is read
    path.chmod(0o644)
    code, output = run_main(capsys, "run", "create", "--input", missing, "--token-file", path)
    assert code == 2
    warnings = [line for line in output.splitlines() if "warning" in line]
    assert warnings == [
        f"bulkops: warning: --token-file {path} can be read by other users (mode 644); "
        f"chmod 600 {path}"
    ]
    path.chmod(0o600)
    code, output = run_main(capsys, "run", "create", "--input", missing, "--token-file", path)
    assert code == 2 and "warning" not in output and TOKEN not in output


# -- the result folder -------------------------------------------------------------------------
def test_check_out_dir(tmp_path):
    check_out_dir(tmp_path)  # exists and is writable
    check_out_dir(tmp_path / "new" / "deeper")  # will be created under a writable parent
    assert not (tmp_path / "new").exists()  # the check creates nothing
    assert list(tmp_path.iterdir()) == []  # and leaves no probe behind
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match=f"--out {a_file} is a file, not a folder"):
        check_out_dir(a_file)
    with pytest.raises(ConfigError, match=f"{a_file} is a file, not a folder"):
        check_out_dir(a_file / "sub")
    # /proc accepts no new files, even from root: the same path as a read-only file system.
    with pytest.raises(ConfigError, match="--out /proc/bulkops-out cannot be written"):
        check_out_dir(Path("/proc/bulkops-out"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_check_out_dir_unwritable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="cannot be written: Permission denied"):
        check_out_dir(locked / "job")


def test_run_refuses_an_out_that_is_a_file(environ, capsys, tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    src = csv_file(tmp_path)
    # Port 9 is discard: if anything were sent, the error would be "cannot connect".
    code, output = run_main(
        capsys, "run", "create", "--input", src, "--out", a_file, "--base-url", "http://127.0.0.1:9"
    )
    assert code == 2
    assert f"--out {a_file} is a file, not a folder" in output
    assert "talking to" not in output


# -- unexpected errors -------------------------------------------------------------------------
def test_an_unexpected_error_is_one_line_without_debug(environ, capsys, monkeypatch):
    def broken(args):
        raise RuntimeError(f"something broke near {TOKEN}\nsecond line")

    monkeypatch.setattr(cli, "_cmd_demo", broken)
    code, output = run_main(capsys, "demo")
    assert code == 2
    assert output == (
        "bulkops: internal error: RuntimeError: something broke near *** "
        "(run with --debug for details)\n"
    )
    code, output = run_main(capsys, "--debug", "demo")
    assert code == 2
    assert output.startswith("Traceback (most recent call last):")
    assert "RuntimeError: something broke near ***" in output and TOKEN not in output


def test_internal_error_text():
    line = internal_error(KeyError("row"), debug=False)
    assert line == "bulkops: internal error: KeyError: 'row' (run with --debug for details)"
    assert internal_error(ValueError(), debug=False).startswith("bulkops: internal error: Val")


def test_help_documents_the_exit_codes_and_debug(capsys):
    code, output = run_main(capsys, "--help")
    assert code == 0
    text = " ".join(output.split())  # argparse wraps the epilog
    assert "--debug" in text and "2 usage/config error or an internal error" in text
    code, output = run_main(capsys, "run", "--help")
    assert "2 usage/config error (or an internal" in output


def test_fake_server_help_says_it_is_a_test_server(capsys):
    code, output = run_main(capsys, "fake-server", "--help")
    assert code == 0 and "A TEST SERVER, not HubSpot" in output
    code, output = run_main(capsys, "--help")
    assert "(a test server)" in output
