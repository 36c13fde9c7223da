"""Test support for bulkops: an in-process fake of HubSpot's CRM batch APIs.

Start it on the running event loop (``async with FakeHubSpot(FakeConfig(...)) as fake:``) and
point a client at ``fake.url``; ``bulkops fake-server`` runs it standalone. For tests without
sockets, :class:`MockTransport` answers a job's requests from a function.
"""

from __future__ import annotations

from bulkops.testing._fake_cli import add_fake_server_arguments, run_fake_server_from_args
from bulkops.testing._fake_config import DEFAULT_FAKE_TOKEN, FakeConfig, FakeStats
from bulkops.testing._fake_faults import FaultPlan
from bulkops.testing._fake_log import LoggedRequest, RequestLog, ScriptedAnswer
from bulkops.testing._fake_schema import PropertyDef, ValidationRule
from bulkops.testing._fake_server import FakeHubSpot
from bulkops.testing._mock_transport import MockTransport, json_response

__all__ = [
    "DEFAULT_FAKE_TOKEN",
    "FakeConfig",
    "FakeHubSpot",
    "FakeStats",
    "FaultPlan",
    "LoggedRequest",
    "MockTransport",
    "PropertyDef",
    "RequestLog",
    "ScriptedAnswer",
    "ValidationRule",
    "add_fake_server_arguments",
    "json_response",
    "run_fake_server_from_args",
]
