"""The examples in docs/frames-auth-testing.md run as written (each in its own process)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "frames-auth-testing.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
SCRIPTS = [b for b in BLOCKS if "anyio.run(main)" in b]
TEST_FILES = [b for b in BLOCKS if "def test_" in b]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_doc_has_its_examples() -> None:
    assert len(SCRIPTS) == 3 and len(TEST_FILES) == 1


@pytest.mark.parametrize("code", SCRIPTS, ids=["frame", "oauth", "session"])
def test_a_script_example_runs(code: str, tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    result = run([sys.executable, "-c", code], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout
    if "OAuthTokens" in code:
        assert result.stdout.strip() == "300 created; 2 token fetches"


def test_the_pytest_example_passes(tmp_path: Path) -> None:
    (tmp_path / "test_my_import.py").write_text(TEST_FILES[0])
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
         "asyncio_mode=strict", "test_my_import.py"],
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
