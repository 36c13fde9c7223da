"""The public surface: what ``import bulkops`` offers is exactly ``__all__``, all of it
importable, typed, and free of internals."""

from __future__ import annotations

import enum
import types

import bulkops
import bulkops.testing


def _public_names(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    } - {"annotations"}


def test_all_is_complete_and_has_no_duplicates() -> None:
    assert len(bulkops.__all__) == len(set(bulkops.__all__))
    assert _public_names(bulkops) == set(bulkops.__all__) - {"__version__"}
    for name in bulkops.__all__:
        assert hasattr(bulkops, name), name


def test_the_testing_kit_exports_what_it_lists() -> None:
    assert _public_names(bulkops.testing) == set(bulkops.testing.__all__)


def test_modes_stop_reasons_and_categories_are_enums() -> None:
    for name in ("Mode", "StopReason", "Category", "JobStatus", "Operation"):
        assert issubclass(getattr(bulkops, name), enum.StrEnum), name
    assert bulkops.StopReason.DAILY_LIMIT.exit_code == 3
    assert bulkops.StopReason.NOT_HUBSPOT.exit_code == 2
    assert bulkops.Category.AMBIGUOUS == "AMBIGUOUS"


def test_no_internal_name_is_exported() -> None:
    internals = {"Dispatcher", "Scheduler", "Channel", "Workers", "Intake", "Journal"}
    assert not internals & set(bulkops.__all__)


def test_the_types_a_typed_caller_needs_are_exported() -> None:
    wanted = {
        "AccessToken", "AiohttpTransport", "DataFrameLike", "JobInfo", "JobReport", "JobStatus",
        "Mode", "Operation", "RowCounts", "Secret", "Source", "Stop", "StopReason",
        "TokenProvider", "Transport",
    }  # fmt: skip
    assert wanted <= set(bulkops.__all__)
