"""The public surface: every exported name exists, once, and the types callers need are in it."""

from __future__ import annotations

import bulkops


def test_every_exported_name_exists_once() -> None:
    names = bulkops.__all__
    assert len(names) == len(set(names)), "a name is exported twice"
    missing = [name for name in names if not hasattr(bulkops, name)]
    assert not missing


def test_the_types_a_typed_caller_needs_are_exported() -> None:
    wanted = {
        "AccessToken", "AiohttpTransport", "DataFrameLike", "JobInfo", "JobReport", "JobStatus",
        "Mode", "Operation", "RowCounts", "Secret", "Source", "Stop", "StopReason",
        "TokenProvider", "Transport",
    }  # fmt: skip
    assert wanted <= set(bulkops.__all__)
