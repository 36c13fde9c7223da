"""JobConfig refuses a bad setting when it is built, naming the setting: one table."""

from __future__ import annotations

from typing import Any

import pytest

from bulkops import ApiVersion, ConfigError, JobConfig, Operation, Secret

TOKEN = Secret("pat-test-config-test")


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"rate_limit": -1}, "rate_limit must be >= 0"),
        ({"interval": 0}, "interval must be > 0"),
        ({"batch_size": 0}, "batch_size must be between 1 and 100"),
        ({"batch_size": 101}, "batch_size must be between 1 and 100"),
        ({"concurrency": 0}, "concurrency must be >= 1"),
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"backoff_base": -1}, "backoff_base must be >= 0"),
        ({"backoff_base": 5, "backoff_cap": 1}, "backoff_base must be <= backoff_cap"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"outage_timeout": 0}, "outage_timeout must be > 0"),
        ({"throttled_timeout": -5}, "throttled_timeout must be > 0"),
        ({"retry_after_cap": 0}, "retry_after_cap must be > 0"),
        ({"daily_budget": 0}, "daily_budget must be >= 1"),
        ({"daily_share": 1.5}, "daily_share must be in (0, 1]"),
        ({"max_outstanding": 10}, "max_outstanding must be at least batch_size"),
        ({"operation": Operation.UPSERT}, "id_property is required for upsert"),
        ({"operation": Operation.ARCHIVE, "id_property": "x"}, "not supported by archive"),
        ({"api_version": ApiVersion.parse("v1"), "object_type": "deals"}, "v1 supports tickets"),
        ({"properties": ("subject",)}, "properties only apply to read"),
        ({"object_type": "../x"}, "--object"),
        ({"base_url": "http://user:pw@h.test"}, "base_url"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(settings: dict[str, Any], says: str) -> None:
    values: dict[str, Any] = {"operation": Operation.CREATE, "token": TOKEN, **settings}
    with pytest.raises(ConfigError) as info:
        JobConfig(**values)
    assert says in str(info.value)
    assert "pw" not in str(info.value)


def test_the_defaults_are_a_valid_config_and_retry_policy() -> None:
    config = JobConfig(operation=Operation.CREATE, token=TOKEN)
    retry = config.retry
    assert retry.max_attempts == config.max_attempts == 6
    assert retry.outage_timeout == config.outage_timeout == 300.0
    assert str(config.api_version) == "2026-09"
