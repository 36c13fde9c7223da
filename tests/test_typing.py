"""Typed callers: a user program on the documented API passes mypy --strict; py.typed ships."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import bulkops

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "tests" / "typing" / "user_program.py"


def test_the_package_is_marked_typed() -> None:
    assert (Path(bulkops.__file__).parent / "py.typed").is_file()


def test_a_user_program_on_the_documented_api_passes_mypy_strict() -> None:
    pytest.importorskip("mypy")
    try:
        importlib.metadata.version("pandas-stubs")  # the program uses pandas
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("pandas-stubs is not installed (the test extra installs it)")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(PROGRAM)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_type_error_in_a_user_program_is_caught(tmp_path: Path) -> None:
    # The check above can fail: the same run on a program that misuses the API does.
    pytest.importorskip("mypy")
    bad = tmp_path / "bad_program.py"
    bad.write_text(
        "import bulkops\ndef f(report: bulkops.JobReport) -> str:\n    return report.succeeded\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1 and "Incompatible return value" in result.stdout
