"""docs/library.md's examples run as they are (each in its own interpreter, in a scratch
folder, since a JobConfig without out_dir makes a folder in the working directory)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "library.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
# What each example prints when it works (the logging set-up prints nothing).
EXPECTED = {0: "500 ids; results in bulkops-jobs/", 1: "fix the token", 3: "'succeeded': 300"}


def test_the_doc_has_its_examples() -> None:
    assert len(BLOCKS) == 4


@pytest.mark.parametrize("block", range(len(BLOCKS)))
def test_a_doc_example_runs(block: int, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKS[block]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert EXPECTED.get(block, "") in done.stdout
