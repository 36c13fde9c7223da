"""A dry run: every local check of a job over the whole input, and no write.

It reads the schema (as a job does, through the one request path, ``Channel``), then each
row: the header check, mapping, normalising and pre-flight (``_rowcheck.RowCheck``, the
job's own), and duplicate keys. It counts what would be sent and what would fail, and
estimates the requests, the wall time at the account's limit and the share of the daily
quota. With ``dry_run_reads`` (update, upsert, archive) it also reads the target records
back in batches to count those that exist: reads cost requests, and the report says so.

Its only requests are reads, and it leaves ``report.json`` only: no journal, no result files.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import orjson

from ._channel import Channel
from ._config import JobConfig
from ._dialect_v3 import V3Dialect
from ._dry_run_report import DryRunReport, ReadCheck, estimate, format_dry_run
from ._engine import Job, _host_of
from ._errors import INPUT_ERROR, ConfigError
from ._http import Transport, TransportFailure
from ._intake import Source, rows_of
from ._models import Api, Item, Operation, Outcome
from ._policy import Context, Halt, Throttle, Wait, decide_schema
from ._preflight import PropertySchema
from ._rowcheck import RowCheck
from ._schema_read import read_schema
from ._stats import Stop, StopReason

__all__ = ["DryRunReport", "dry_run", "format_dry_run"]

FIRST_SHOWN = 20  # failures, duplicates and missing ids kept in the report
_READERS = 4  # batch reads in flight at once (the limiter paces them)
_READ_KIND = "dry_run_read"
_READ_BATCH = 100  # HubSpot's batch read limit


async def dry_run(
    config: JobConfig,
    source: Source,
    *,
    transport: Transport | None = None,
    input_name: str = "",
    write_report: bool = True,
) -> DryRunReport:
    """Check ``source`` as ``config``'s job would, without writing a record.

    The report is also written to ``config.out_dir/report.json`` (the only file written),
    unless ``write_report`` is false.
    """
    # The job's own parts (transport, channel, schema read) with a config it can hold.
    job = Job(
        dataclasses.replace(config, dry_run=False, dry_run_reads=False),
        source,
        transport=transport,
        input_name=input_name,
    )
    run = _DryRun(config, job)
    report = await run.run(source, input_name or job._input_name)
    if not write_report:
        return report
    config.out_dir.mkdir(parents=True, exist_ok=True)
    (config.out_dir / "report.json").write_bytes(
        orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2)
    )
    return report


class _DryRun:
    def __init__(self, config: JobConfig, job: Job) -> None:
        self.config = config
        self.job = job
        self.rows_read = 0
        self.would_send = 0
        self.failures: list[dict[str, Any]] = []
        self.failed_by_category: dict[str, int] = {}
        self.duplicates = 0
        self.first_duplicates: list[dict[str, Any]] = []
        self._keys: dict[str, int] = {}  # key -> first row with it
        self.mapping: list[dict[str, Any]] = []
        self.exist = 0
        self.missing = 0
        self.first_missing: list[int] = []
        self.read_requests = 0

    async def run(self, source: Source, input_name: str) -> DryRunReport:
        config, job = self.config, self.job
        reads = config.dry_run_reads
        host = _host_of(config.base_url)
        async with job._transport_cm() as transport:
            channel = job._channel = job._make_channel(transport)
            host = channel.host
            schema: PropertySchema | None = None
            if config.preflight or config.id_property or config.mapping.match_labels:
                schema = await read_schema(channel, config, job.latch, job._rng)
            if not job.latch.is_set:
                await self._check_rows(source, schema, channel if reads else None)
        limiter = job.limiter.stats()
        stats = job.stats
        return DryRunReport(
            operation=config.operation.value,
            object_type=config.object_type,
            api_version=str(config.api_version),
            host=host,
            input=input_name,
            out_dir=str(config.out_dir),
            stop=job.latch.stop,
            rows_read=self.rows_read,
            would_send=self.would_send,
            would_fail=sum(self.failed_by_category.values()),
            failed_by_category=dict(sorted(self.failed_by_category.items())),
            first_failures=tuple(self.failures),
            duplicate_keys=self.duplicates,
            first_duplicates=tuple(self.first_duplicates),
            requests_made=dict(sorted(stats.requests.items())),
            estimate=estimate(
                write_requests=-(-self.would_send // config.max_batch),
                configured=config.rate_limit,
                limiter=limiter,
                learned=bool(stats.by_status) and config.adaptive,
            ),
            reads=ReadCheck(self.read_requests, self.exist, self.missing, tuple(self.first_missing))
            if reads
            else None,
            mapping=tuple(self.mapping),
        )

    async def _check_rows(
        self, source: Source, schema: PropertySchema | None, channel: Channel | None
    ) -> None:
        check = RowCheck(self.config, schema)
        rows = rows_of(source)
        send, receive = anyio.create_memory_object_stream[list[Item]](_READERS)
        async with anyio.create_task_group() as tg:
            if channel is not None:
                for _ in range(_READERS):
                    tg.start_soon(self._reader, channel, receive.clone())
            receive.close()
            async with send:
                await self._walk(rows, check, send if channel is not None else None)

    async def _walk(self, rows: Any, check: RowCheck, reads: Any) -> None:
        batch: list[Item] = []
        first = True
        try:
            async for raw in rows:
                if first:
                    first = False
                    header = getattr(rows, "header", None)
                    if header is not None and check.mapper is not None:
                        self.mapping = [p.to_json() for p in check.mapper.plan(header)]
                    problem = check.header_problem(header)
                    if problem is not None:
                        self.job.latch.set(Stop(StopReason.INPUT, problem))
                        return
                self.rows_read += 1
                if raw.data is None:
                    self._fail(raw.row, INPUT_ERROR, raw.error or "unreadable record")
                    continue
                checked = check(raw.row, raw.data)
                if isinstance(checked, Outcome):
                    self._fail(raw.row, checked.category or "ERROR", checked.message or "")
                    continue
                self.would_send += 1
                self._note_key(checked)
                if reads is not None:
                    batch.append(checked)
                    if len(batch) == _READ_BATCH:
                        await reads.send(batch)
                        batch = []
                if self.job.latch.is_set:
                    return
            if batch and reads is not None:
                await reads.send(batch)
        except anyio.BrokenResourceError:
            return  # every reader stopped: the latch holds why
        except ConfigError as exc:
            self.job.latch.set(Stop(StopReason.INPUT, str(exc)))
        finally:
            aclose = getattr(rows, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    def _fail(self, row: int, category: str, message: str) -> None:
        self.failed_by_category[category] = self.failed_by_category.get(category, 0) + 1
        if len(self.failures) < FIRST_SHOWN:
            self.failures.append({"row": row, "category": category, "message": message})

    def _note_key(self, item: Item) -> None:
        key = item.key
        if key is None:
            return
        earlier = self._keys.setdefault(key, item.row)
        if earlier != item.row:
            self.duplicates += 1
            if len(self.first_duplicates) < FIRST_SHOWN:
                self.first_duplicates.append({"row": item.row, "same_as": earlier, "key": key})

    # -- --dry-run=reads ---------------------------------------------------------------------
    async def _reader(self, channel: Channel, batches: Any) -> None:
        dialect = _read_dialect(self.config)
        async with batches:
            async for items in batches:
                found = await self._read(channel, dialect, items)
                if found is None:
                    return  # stopped: the report says why
                missing = [item.row for item in items if item.row not in found]
                self.exist += len(items) - len(missing)
                self.missing += len(missing)
                # Batches finish in any order; the report keeps the lowest rows.
                self.first_missing = sorted(self.first_missing + missing[:FIRST_SHOWN])[
                    :FIRST_SHOWN
                ]

    async def _read(
        self, channel: Channel, dialect: V3Dialect, items: list[Item]
    ) -> set[int] | None:
        """The rows among ``items`` whose record exists; None when the job had to stop."""
        config, job = self.config, self.job
        request = dialect.request(items)
        attempt = 0
        while True:
            answer = await channel.call(request, _READ_KIND)
            if answer is None:
                return None
            self.read_requests += 1
            if not isinstance(answer, TransportFailure) and answer.status in (200, 207):
                parsed = dialect.parse_ok(items, answer)
                return {o.item.row for o in parsed.outcomes if o.ok}
            if not isinstance(answer, TransportFailure) and answer.status == 404:
                # HubSpot answers a batch read of which no record exists with a 404 (the
                # object type itself was found by the schema read).
                return set()
            ctx = Context(
                operation=Operation.READ,
                retry=config.retry,
                answered_before=channel.answered,
                hubspot_seen=channel.hubspot_seen,
                in_outage=channel.in_outage,
                host=channel.host,
                rng=job._rng,
            )
            # The same readings as the schema read's: auth, daily limit, 429s, retries.
            verdict = decide_schema(answer, attempt + 1, ctx, what=repr(config.object_type))
            if isinstance(verdict, Halt):
                job.latch.set(verdict.stop)
                return None
            if isinstance(verdict, Throttle):
                await anyio.sleep(channel.throttle(verdict.policy, verdict.retry_after))
            elif isinstance(verdict, Wait):
                attempt += verdict.charge
                await anyio.sleep(verdict.delay)
            else:
                job.latch.set(
                    Stop(StopReason.OUTAGE, "the records could not be read back; try again")
                )
                return None


def _read_dialect(config: JobConfig) -> V3Dialect:
    # v1 tickets are the same records, read through v3 (as the job's read-backs do).
    object_type = "tickets" if config.api is Api.V1 else config.object_type
    idp = config.id_property if config.api is not Api.V1 else None
    return V3Dialect(
        Operation.READ,
        object_type,
        version=config.api_version,
        id_property=idp,
        properties=[idp] if idp else [],
    )
