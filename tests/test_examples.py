"""Every example in examples/ runs as a user would run it, against the embedded fake."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
async def test_example_runs(example: Path, tmp_path: Path) -> None:
    with anyio.fail_after(120):
        done = await anyio.run_process([sys.executable, str(example)], cwd=tmp_path, check=False)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    assert "Traceback" not in output
