"""JSON Schemas (draft 2020-12) of what a job leaves behind, shipped in the package so a
consumer can validate against the version it runs: a line of ``succeeded.jsonl`` or
``failed.jsonl``, ``report.json``, the summary line that ends stdout, and ``bulkops status
--json``. Each output carries its ``version`` (the result lines are version 1)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["NAMES", "load_schema"]

NAMES = ("failed", "report", "status", "succeeded", "summary")


def load_schema(name: str) -> dict[str, Any]:
    """The schema called ``name`` (one of :data:`NAMES`), as a dict."""
    if name not in NAMES:
        raise ValueError(f"no schema {name!r}; there are {', '.join(NAMES)}")
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
