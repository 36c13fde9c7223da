"""A job's metrics as OpenTelemetry instruments (``pip install 'bulkops[otel]'``).

Example::

    from bulkops import Job
    from bulkops.otel import instrument

    job = Job(config, "tickets.csv")
    instrument(job, meter_provider)   # before job.run(); your SDK MeterProvider and exporter
    await job.run()

HTTP client metrics follow the OpenTelemetry semantic conventions:
``http.client.request.duration`` (a histogram, in seconds, with ``http.request.method``,
``http.response.status_code``, ``server.address`` and, for requests that failed,
``error.type``), recorded once per request that came back, from the engine's one request path
(``Channel``). The rest are observed from the job's own counts when the reader collects, so
nothing is counted twice: ``bulkops.rows`` (by ``bulkops.outcome``), ``bulkops.rate_limited``
(429s by ``bulkops.policy``), ``bulkops.requests.in_flight``, ``bulkops.rate_limit.current``
and ``.learned``, ``bulkops.daily_quota.remaining``.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from ._channel import RequestDone
from ._engine import Job

__all__ = ["DURATION_BUCKETS", "instrument"]

# The semantic conventions' advised boundaries for http.client.request.duration.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


def instrument(job: Job, meter_provider: MeterProvider) -> None:
    """Export ``job``'s metrics through ``meter_provider``; call before ``job.run()``."""
    from . import __version__

    meter = meter_provider.get_meter("bulkops", __version__)
    duration = meter.create_histogram(
        "http.client.request.duration",
        unit="s",
        description="Duration of HTTP client requests.",
        explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
    )

    def record(done: RequestDone) -> None:
        host, _, port = done.host.rpartition(":")
        attributes: dict[str, str | int] = {
            "http.request.method": done.method,
            "server.address": host if port.isdigit() else done.host,
        }
        if port.isdigit():
            attributes["server.port"] = int(port)
        if done.status is not None:
            attributes["http.response.status_code"] = done.status
            if done.status >= 400:
                attributes["error.type"] = str(done.status)
        else:
            attributes["error.type"] = done.failure or "_OTHER"
        duration.record(done.duration_s, attributes)

    job.request_observers.append(record)
    stats = job.stats

    def rows(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(stats.succeeded, {"bulkops.outcome": "succeeded"})
        yield Observation(stats.failed, {"bulkops.outcome": "failed"})

    def throttled(_: CallbackOptions) -> Iterable[Observation]:
        for policy, n in stats.throttled.items():
            yield Observation(n, {"bulkops.policy": policy})

    def in_flight(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(job.progress().in_flight)

    def current(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(job.limiter.stats().limit)

    def learned(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(job.limiter.stats().ceiling)

    def daily(_: CallbackOptions) -> Iterable[Observation]:
        left = job.limiter.stats().daily_remaining
        if left is not None:
            yield Observation(left)

    meter.create_observable_counter(
        "bulkops.rows", [rows], unit="{row}", description="Rows finished, by outcome."
    )
    meter.create_observable_counter(
        "bulkops.rate_limited",
        [throttled],
        unit="{response}",
        description="429 answers, by HubSpot's policyName.",
    )
    meter.create_observable_up_down_counter(
        "bulkops.requests.in_flight",
        [in_flight],
        unit="{request}",
        description="Requests sent and not answered yet.",
    )
    meter.create_observable_gauge(
        "bulkops.rate_limit.current",
        [current],
        unit="{request}",
        description="Requests per window the job allows itself now.",
    )
    meter.create_observable_gauge(
        "bulkops.rate_limit.learned",
        [learned],
        unit="{request}",
        description="The account's limit per window, learned from HubSpot's headers.",
    )
    meter.create_observable_gauge(
        "bulkops.daily_quota.remaining",
        [daily],
        unit="{request}",
        description="Requests left today on the account.",
    )
