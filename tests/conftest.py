"""Shared test set-up."""

from __future__ import annotations

import types
from typing import Any

import aioresponses.core
from aiohttp import ClientResponse


class _ClientResponseWithWriter(ClientResponse):
    """aiohttp 3.14 (a security release) added a required ``stream_writer`` argument that
    aioresponses 0.7.x does not pass (pnuckowski/aioresponses#289). Supply a stand-in until
    aioresponses catches up, instead of pinning aiohttp to a vulnerable version."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(*args, **kwargs)


aioresponses.core.ClientResponse = _ClientResponseWithWriter  # type: ignore[attr-defined]
