"""The API version as a value: what parses, what is refused, and the paths each version spells."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkops._config import JobConfig, Secret, config_from_meta, config_to_meta
from bulkops._errors import ConfigError
from bulkops._models import Api, Operation
from bulkops._versions import DEFAULT_API_VERSION, ApiVersion


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2026-03", "2026-03"),
        ("2026-09", "2026-09"),
        ("2031-03", "2031-03"),
        (" V3 ", "v3"),
        ("v1", "v1"),
    ],
)
def test_parse_accepts_dated_and_legacy_versions(text: str, canonical: str) -> None:
    version = ApiVersion.parse(text)
    assert str(version) == canonical
    assert version == ApiVersion.parse(canonical)
    assert repr(version) == f"ApiVersion({canonical!r})"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-06", "March and September"),
        ("2027-12", "March and September"),
        ("2025-09", "older than the first dated version, 2026-03"),
        ("2026-9", "YYYY-03, YYYY-09, v3 or v1"),
        ("v4", "YYYY-03, YYYY-09, v3 or v1"),
        ("latest", "YYYY-03, YYYY-09, v3 or v1"),
        ("", "YYYY-03, YYYY-09, v3 or v1"),
    ],
)
def test_parse_refuses_other_months_earlier_versions_and_names(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        ApiVersion.parse(text)
    assert repr(text.strip().lower()) in str(caught.value)


def test_the_default_is_the_newest_dated_version_tested() -> None:
    assert DEFAULT_API_VERSION == ApiVersion.parse("2026-09")
    assert DEFAULT_API_VERSION.is_dated and DEFAULT_API_VERSION.enforces_validation_rules


@pytest.mark.parametrize(
    ("text", "dated", "rules", "v1", "api"),
    [
        ("2026-03", True, False, False, Api.V3),
        ("2026-09", True, True, False, Api.V3),
        ("2027-03", True, True, False, Api.V3),
        ("v3", False, False, False, Api.V3),
        ("v1", False, False, True, Api.V1),
    ],
)
def test_what_each_version_is(text: str, dated: bool, rules: bool, v1: bool, api: Api) -> None:
    version = ApiVersion.parse(text)
    assert version.is_dated is dated
    assert version.enforces_validation_rules is rules
    assert version.is_legacy_v1 is v1
    assert version.api is api


def test_paths() -> None:
    dated, v3, v1 = ApiVersion.parse("2026-09"), ApiVersion.parse("v3"), ApiVersion.parse("v1")
    assert dated.objects_path("tickets", Operation.CREATE) == (
        "/crm/objects/2026-09/tickets/batch/create"
    )
    assert dated.objects_path("2-123", "read") == "/crm/objects/2026-09/2-123/batch/read"
    assert dated.properties_path("tickets") == "/crm/properties/2026-09/tickets"
    assert v3.objects_path("tickets", Operation.CREATE) == "/crm/v3/objects/tickets/batch/create"
    assert v3.properties_path("tickets") == "/crm/v3/properties/tickets"
    # v1 has no properties API or read by unique value: those go through v3, as before.
    assert v1.properties_path("tickets") == "/crm/v3/properties/tickets"
    assert v1.objects_path("tickets", Operation.READ) == "/crm/v3/objects/tickets/batch/read"


# -- JobConfig.api_version ------------------------------------------------------------------


def job(**kw: object) -> JobConfig:
    return JobConfig(operation=Operation.CREATE, token=Secret("t"), **kw)  # type: ignore[arg-type]


def test_job_config_speaks_the_default_dated_version() -> None:
    config = job()
    assert config.api_version == DEFAULT_API_VERSION and config.api is Api.V3


def test_job_config_derives_api_from_the_version_and_keeps_api_v1_as_an_alias() -> None:
    assert job(api_version=ApiVersion.parse("v1")).api is Api.V1
    assert job(api_version=ApiVersion.parse("v3")).api is Api.V3
    legacy = job(api=Api.V1)
    assert legacy.api_version == ApiVersion.parse("v1")
    with pytest.raises(ConfigError, match="api_version 2026-03 contradicts api=v1"):
        job(api=Api.V1, api_version=ApiVersion.parse("2026-03"))
    with pytest.raises(ConfigError, match="api_version must be an ApiVersion, not str"):
        job(api_version="2026-09")
    # v1's own rules still apply when v1 comes from the version.
    with pytest.raises(ConfigError, match="v1 supports tickets only"):
        job(api_version=ApiVersion.parse("v1"), object_type="contacts")


def test_the_journal_keeps_the_version_and_old_journals_keep_their_paths() -> None:
    config = job(api_version=ApiVersion.parse("2026-03"))
    meta = config_to_meta(config)
    assert meta["api_version"] == "2026-03"
    again = config_from_meta(meta, token=Secret("t"), out_dir=Path("x"))
    assert again.api_version == ApiVersion.parse("2026-03")
    # A job journaled before api_version existed resumes on the paths it started on.
    del meta["api_version"]
    assert config_from_meta(meta, token=Secret("t"), out_dir=Path("x")).api_version == (
        ApiVersion.parse("v3")
    )
    meta["api"] = "v1"
    assert config_from_meta(meta, token=Secret("t"), out_dir=Path("x")).api is Api.V1
