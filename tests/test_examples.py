"""Every example in examples/ runs as a user would run it, against the embedded fake."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import anyio
import pytest

# Not scripts: the notebook (top-level await; tests/test_examples_orchestrators.py runs its
# cells as Jupyter does).
NOT_SCRIPTS = {"07_notebook.py"}
# Examples that run only where their orchestrator is installed. Airflow is not, in tests:
# tests/test_examples_orchestrators.py runs the DAG's task with a stand-in.
NEEDS = {"05_airflow_taskflow.py": "airflow"}
EXAMPLES = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "examples").glob("*.py")
    if p.name not in NOT_SCRIPTS
)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
async def test_example_runs(example: Path, tmp_path: Path) -> None:
    needs = NEEDS.get(example.name)
    if needs is not None and importlib.util.find_spec(needs) is None:
        pytest.skip(f"{needs} is not installed")
    with anyio.fail_after(120):
        done = await anyio.run_process([sys.executable, str(example)], cwd=tmp_path, check=False)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    assert "Traceback" not in output
