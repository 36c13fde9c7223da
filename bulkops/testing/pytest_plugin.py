"""pytest fixtures for testing code that runs bulkops jobs: a fake HubSpot and a job config.

Installed with bulkops (entry point ``pytest11``), so the fixtures are there in any project
that has bulkops and pytest-asyncio installed::

    async def test_my_import(fake_hubspot, bulkops_config):
        report = await bulkops.run_job(bulkops_config, [{"subject": "x", ...}])
        assert report.succeeded == 1
        assert len(fake_hubspot.records("tickets")) == 1

* ``fake_hubspot_config``: the :class:`~bulkops.testing.FakeConfig` the fake starts with
  (HubSpot's lowest rate limit is off, so tests run fast); override it in a conftest to script
  answers, faults or schemas.
* ``fake_hubspot``: a started :class:`~bulkops.testing.FakeHubSpot` on 127.0.0.1 (revoke or
  rotate its token, script answers, read its request log and counters).
* ``bulkops_config``: a :class:`~bulkops.JobConfig` that creates tickets on that fake, with
  its ``out_dir`` in ``tmp_path``; change it with ``dataclasses.replace``.

Nothing heavy is imported when pytest starts (this module is loaded in every pytest run of a
project that has bulkops installed): the fake and the engine are imported by the fixtures.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from bulkops import JobConfig
    from bulkops.testing import FakeConfig, FakeHubSpot

__all__ = ["bulkops_config", "fake_hubspot", "fake_hubspot_config"]

_NEEDS_ASYNCIO = "the fake_hubspot fixture needs pytest-asyncio: pip install pytest-asyncio"


@pytest.fixture
def fake_hubspot_config() -> FakeConfig:
    from bulkops.testing import FakeConfig

    return FakeConfig(rate_limit=None)


async def _fake_hubspot(fake_hubspot_config: FakeConfig) -> AsyncIterator[FakeHubSpot]:
    from bulkops.testing import FakeHubSpot

    async with FakeHubSpot(fake_hubspot_config) as fake:
        yield fake


if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    # pytest-asyncio's own decorator: the fixture works in its strict mode and in auto mode.
    fake_hubspot = pytest_asyncio.fixture(_fake_hubspot, name="fake_hubspot")
else:  # pragma: no cover - only without pytest-asyncio

    @pytest.fixture(name="fake_hubspot")
    def _fake_hubspot_unavailable() -> Any:
        pytest.fail(_NEEDS_ASYNCIO, pytrace=False)


@pytest.fixture
def bulkops_config(fake_hubspot: FakeHubSpot, tmp_path: Path) -> JobConfig:
    from bulkops import JobConfig, Operation, Secret
    from bulkops.testing import DEFAULT_FAKE_TOKEN

    return JobConfig(
        operation=Operation.CREATE,
        object_type="tickets",
        token=Secret(DEFAULT_FAKE_TOKEN),
        base_url=fake_hubspot.url,
        out_dir=tmp_path / "bulkops-out",
        rate_limit=0,  # the fake has no limit either: as fast as the test machine goes
    )
