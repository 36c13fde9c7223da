"""The schema read: the object's properties, once, before the first write.

It goes through the one request path (``Channel``) and its answers are read by the policy
(``_policy.decide_schema``), like a batch's; it is also where a bad token, a wrong host or an
unknown object type shows first. A schema that cannot be had after the retries is no reason to
stop: HubSpot validates on its side.
"""

from __future__ import annotations

import random

import anyio

from ._channel import Channel
from ._config import JobConfig
from ._header import closest_name
from ._http import HttpRequest
from ._models import Api
from ._policy import Context, Halt, SchemaBody, Throttle, Wait, decide_schema
from ._preflight import PropertySchema
from ._stats import Stop, StopLatch, StopReason

__all__ = ["id_property_problem", "read_schema"]


async def read_schema(
    channel: Channel, config: JobConfig, latch: StopLatch, rng: random.Random
) -> PropertySchema | None:
    """The schema, or None (stopped, or not to be had); a stop goes to ``latch``."""
    config = config
    request = HttpRequest("GET", config.api_version.properties_path(config.object_type))
    attempt = 0
    while True:
        answer = await channel.call(request, "schema")
        if answer is None:
            return None
        ctx = Context(
            operation=config.operation,
            retry=config.retry,
            answered_before=channel.answered,
            hubspot_seen=channel.hubspot_seen,
            in_outage=channel.in_outage,
            host=channel.host,
            rng=rng,
        )
        verdict = decide_schema(answer, attempt + 1, ctx, what=repr(config.object_type))
        if isinstance(verdict, SchemaBody):
            try:
                schema = PropertySchema.from_hubspot(
                    verdict.body,
                    object_type=config.object_type,
                    legacy_v1=config.api is Api.V1,
                )
            except ValueError as exc:
                latch.set(
                    Stop(
                        StopReason.NOT_HUBSPOT,
                        f"this does not look like HubSpot: {channel.host} answered the "
                        f"properties read with JSON of another shape ({exc})",
                    )
                )
                return None
            problem = id_property_problem(config, schema)
            if problem:
                latch.set(Stop(StopReason.CONFIG, problem))
                return None
            return schema
        if verdict is None:
            return None  # the schema could not be had; HubSpot validates on its side
        if isinstance(verdict, Halt):
            latch.set(verdict.stop)
            return None
        if isinstance(verdict, Throttle):
            await anyio.sleep(channel.throttle(verdict.policy, verdict.retry_after))
        elif isinstance(verdict, Wait):  # pragma: no branch
            attempt += verdict.charge
            await anyio.sleep(verdict.delay)


def id_property_problem(config: JobConfig, schema: PropertySchema) -> str | None:
    idp = config.id_property
    if not idp:
        return None
    if not schema.has(idp):
        guess = closest_name(idp, schema.names(), schema.labels())
        hint = f" (did you mean {guess}?)" if guess else ""
        return f"the id property {idp!r} does not exist on {config.object_type}{hint}"
    email_on_contacts = idp == "email" and config.object_type in ("contacts", "0-1")
    if not schema.is_unique(idp) and not email_on_contacts:
        return (
            f"the id property {idp!r} of {config.object_type} does not have unique values "
            "(hasUniqueValue is false); HubSpot only matches records on unique properties"
        )
    return None
