"""What an answer means: pure, synchronous decisions over a batch and what came back.

``decide(batch, answer, dialect, ctx) -> Verdict`` is the whole policy of the engine. The worker
(``_worker``) sends, calls it, and applies the verdict; nothing here awaits, sleeps or mutates
an item, so every branch is tested with plain values (``tests/test_policy.py``).

==========================  ==================================================================
2xx                         per-item results and errors from the body; items it does not
                            mention are unknown (a create may have happened: see below)
2xx that is not JSON        the host is not HubSpot (first answer: stop, exit 2), else unknown
401 / 403                   stop the job: the token is bad or lacks scopes
429                         by ``policyName`` (or the message, or Daily-Remaining: 0): DAILY
                            stops the job; rolling/secondly pause everyone and resend, until
                            429s have lasted ``throttled_timeout``
423, 408, 5xx, no answer    transient: back off (full jitter, or Retry-After) and resend
other 4xx                   the dialect decides: fail the record, isolate it (a conflict or
                            an invalid value that names it; else split in halves), or stop
                            the job when every batch would fail
==========================  ==================================================================

Retry safety. Update, upsert, archive and read are idempotent and resent freely. A create whose
outcome is unknown (timeout, reset after sending, 5xx, or a 2xx that does not mention it) is
never resent blindly: with an id property it is read back by that unique value (phase VERIFY)
and only a missing one is created again; without one it fails as AMBIGUOUS. A re-create that
HubSpot answers with a conflict on the unique value means an earlier attempt did create it
(reads can lag writes): it is settled as created with the id HubSpot names.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._dialect import Dialect, Fatal, Parsed, Rejected, suspects
from ._errors import AMBIGUOUS, BATCH_REJECTED, RETRIES_EXHAUSTED, UNACCOUNTED
from ._http import HttpResponse, TransportFailure
from ._models import Batch, Item, Operation, Outcome, Phase
from ._retry import RetryPolicy, parse_retry_after
from ._stats import Stop, StopReason

__all__ = [
    "Action",
    "Answer",
    "Context",
    "Halt",
    "Resend",
    "Retry",
    "SchemaBody",
    "SchemaVerdict",
    "Settle",
    "Split",
    "Throttle",
    "Verdict",
    "Wait",
    "auth_stop",
    "conflicting",
    "daily_limit_stop",
    "decide",
    "decide_schema",
    "is_hubspot_answer",
    "not_hubspot_message",
    "rate_limit_policy",
    "redirect_stop",
]

Answer = HttpResponse | TransportFailure


# -- verdicts: a closed set -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Settle:
    """These items are finished."""

    outcomes: list[Outcome]


@dataclass(frozen=True, slots=True)
class Retry:
    """Send these items again after ``delay`` seconds, packed with whatever else is waiting.
    ``maybe_written``: the write may have reached HubSpot (the items are marked so)."""

    items: list[Item]
    delay: float
    phase: Phase = Phase.WRITE
    maybe_written: bool = False


@dataclass(frozen=True, slots=True)
class Resend:
    """Send this exact batch again after ``delay`` (an isolation half keeps its shape)."""

    batch: Batch
    delay: float
    maybe_written: bool = False


@dataclass(frozen=True, slots=True)
class Split:
    """Isolate a rejected record: send these groups as batches of their own."""

    groups: list[list[Item]]
    depth: int
    phase: Phase = Phase.WRITE


@dataclass(frozen=True, slots=True)
class Throttle:
    """A rolling or secondly 429: the limiter pauses every sender, then the batch goes again."""

    policy: str
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop the job: no new batches; the items of this one stay unprocessed (resumable)."""

    stop: Stop


Action = Settle | Retry | Resend | Split | Throttle | Halt


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a batch. ``charge``: this answer was an attempt of the batch's records
    (a 429, an isolation split and a failure during an outage are not)."""

    actions: tuple[Action, ...]
    charge: bool = True


@dataclass(frozen=True, slots=True)
class Context:
    """What the policy knows besides the answer; plain values, built per decision."""

    operation: Operation
    retry: RetryPolicy
    # Creates with an unknown outcome can be read back (an id property and a read dialect).
    read_back: bool = False
    # The job has had an HTTP answer before; until then "cannot connect" means a wrong host.
    answered_before: bool = True
    # ... and one that looked like HubSpot's; until then an HTML page means a wrong host.
    hubspot_seen: bool = True
    # The blind-bisection budget allows another split.
    may_isolate: bool = True
    # HubSpot looks down: failures are not the records' attempts.
    in_outage: bool = False
    # Seconds since the last answer that was not a 429.
    throttled_for: float = 0.0
    id_property: str | None = None
    host: str = "the server"
    rng: random.Random = field(default_factory=random.Random)


# -- the decision ---------------------------------------------------------------------------------
def decide(batch: Batch, answer: Answer, dialect: Dialect, ctx: Context) -> Verdict:
    if isinstance(answer, TransportFailure):
        if answer.kind == "connect" and not ctx.answered_before:
            return _halt(StopReason.UNREACHABLE, str(answer))
        return _transient(batch, str(answer), ctx, maybe_written=answer.maybe_sent)
    status = answer.status
    if 200 <= status < 300:
        fast = dialect.parse_fast(batch.items, answer)
        if fast is not None:
            return _parsed(batch, fast, ctx)
        if not is_hubspot_answer(answer, dialect_allows_empty=True):
            if not ctx.hubspot_seen:
                return _halt(StopReason.NOT_HUBSPOT, not_hubspot_message(answer, ctx.host))
            return _transient(batch, _short_reason(answer), ctx, maybe_written=True)
        return _parsed(batch, dialect.parse_ok(batch.items, answer), ctx)
    if 300 <= status < 400:
        return Verdict((Halt(redirect_stop(answer, ctx.host)),), charge=False)
    if status in (401, 403):
        return Verdict((Halt(auth_stop(answer)),), charge=False)
    if status == 429:
        policy = rate_limit_policy(answer)
        if policy == "DAILY":
            return Verdict((Halt(daily_limit_stop()),), charge=False)
        if ctx.throttled_for > ctx.retry.throttled_timeout:
            return _halt(
                StopReason.RATE_LIMITED,
                f"HubSpot has answered only 429 ({policy}) for {ctx.throttled_for:.0f} s; "
                "another integration may be using the whole limit. Finished records are "
                "kept; continue with `bulkops resume OUT` later.",
            )
        return Verdict((Throttle(policy, parse_retry_after(answer.headers)),), charge=False)
    if status in (408, 423) or status >= 500:
        # 408/423: HubSpot did not act (423 = records locked by rapid upserts; wait >= 2 s).
        # 5xx: it may have (HubSpot has been seen to write and then fail).
        return _transient(
            batch,
            _short_reason(answer),
            ctx,
            maybe_written=status >= 500,
            minimum=2.0 if status == 423 else 0.0,
            retry_after=parse_retry_after(answer.headers),
        )
    verdict = dialect.parse_rejection(batch.items, answer)
    if isinstance(verdict, Parsed):
        return _parsed(batch, verdict, ctx)
    if isinstance(verdict, Fatal):
        return _halt(StopReason.CONFIG, verdict.message)
    return _rejected(batch, verdict, ctx)


def _halt(reason: StopReason, message: str) -> Verdict:
    return Verdict((Halt(Stop(reason, message)),), charge=False)


# -- answers with per-item results ----------------------------------------------------------------
def _parsed(batch: Batch, parsed: Parsed, ctx: Context) -> Verdict:
    if batch.phase is Phase.VERIFY:
        return _read_back(parsed, ctx)
    if parsed.all_ok and not parsed.unmentioned:
        # The common answer: every row written. Nothing is left to count an attempt against
        # (attempts only say when to give up, and how often a failed row was tried).
        return Verdict((Settle(parsed.outcomes),), charge=False)
    done: list[Outcome] = []
    again: list[Item] = []
    for outcome in parsed.outcomes:
        if outcome.ok:  # nearly every row: nothing to reconsider
            done.append(outcome)
            continue
        settled = _conflict_after_unknown(outcome, ctx)
        if settled is _READ_AGAIN:
            again.append(outcome.item)
        else:
            done.append(settled or outcome)
    actions: list[Action] = []
    if done:
        actions.append(Settle(done))
    if again:
        actions.append(Retry(again, ctx.retry.delay(1, rng=ctx.rng), Phase.VERIFY, True))
    if parsed.unmentioned:
        reason = parsed.stray_error or "HubSpot's answer did not mention this record"
        actions.extend(_unknown(parsed.unmentioned, reason, ctx, exhausted=UNACCOUNTED))
    return Verdict(tuple(actions))


# "Read it back again": a conflict after an unknown create that names no existing id.
_READ_AGAIN = Outcome(Item(0, {}, {}), False, category="read again")  # a sentinel, never settled
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)", re.IGNORECASE)


def _conflict_after_unknown(outcome: Outcome, ctx: Context) -> Outcome | None:
    # Returns a settled outcome, _READ_AGAIN, or None (the outcome stands as it is).
    """A create that may already have been written, answered "already exists" on its unique
    value: the earlier attempt wrote it. Settled as created with the id HubSpot names, or read
    back again when it names none (never failed, never created twice)."""
    item = outcome.item
    if outcome.ok or outcome.category != "CONFLICT" or not item.maybe_written:
        return None
    if ctx.operation is not Operation.CREATE:
        return None
    found = _EXISTING_ID.search(outcome.message or "")
    if found:
        return Outcome(
            item, True, hubspot_id=found.group(1), new=True, extra={"verified": "conflict"}
        )
    if ctx.read_back:
        return _READ_AGAIN
    return None


def _read_back(parsed: Parsed, ctx: Context) -> Verdict:
    """Read-back of creates with an unknown outcome: found means created; missing, not."""
    done: list[Outcome] = []
    missing: list[Item] = []
    for outcome in parsed.outcomes:
        item = outcome.item
        if outcome.ok:
            done.append(
                Outcome(
                    item, True, hubspot_id=outcome.hubspot_id, new=True, extra={"verified": True}
                )
            )
        elif outcome.category == "OBJECT_NOT_FOUND":
            missing.append(item)
        else:
            done.append(
                Outcome(item, False, category=outcome.category or "ERROR", message=outcome.message)
            )
    actions: list[Action] = []
    if done:
        actions.append(Settle(done))
    if missing:
        # Not found: not created, so created now. If HubSpot's reads lagged its write, the
        # create answers with a conflict naming the record, settled by _conflict_after_unknown.
        actions.extend(
            _retry(missing, "not created (checked by reading it back)", ctx, 0.0, charge=False)
        )
    if parsed.unmentioned:
        reason = parsed.stray_error or "read-back incomplete"
        delay = ctx.retry.delay(1, rng=ctx.rng)
        actions.extend(_retry(parsed.unmentioned, reason, ctx, delay, phase=Phase.VERIFY))
    # An answered read-back is not an attempt of the record's write: the attempt it checked was.
    return Verdict(tuple(actions), charge=False)


# -- retries --------------------------------------------------------------------------------------
def _retry(
    items: Sequence[Item],
    reason: str,
    ctx: Context,
    delay: float,
    *,
    phase: Phase = Phase.WRITE,
    exhausted: str = RETRIES_EXHAUSTED,
    maybe_written: bool = False,
    batch: Batch | None = None,
    charge: bool = True,
) -> list[Action]:
    """Queue items again, except those whose attempts this answer used up (when it is one
    of their attempts: ``charge``)."""
    if ctx.in_outage or not charge:
        keep, spent = list(items), []
    else:
        keep = [it for it in items if it.attempts + 1 < ctx.retry.max_attempts]
        spent = [it for it in items if it.attempts + 1 >= ctx.retry.max_attempts]
    actions: list[Action] = []
    if spent:
        actions.append(
            Settle(
                [
                    Outcome(
                        it,
                        False,
                        category=exhausted,
                        message=f"gave up after {it.attempts + 1} attempts: {reason}",
                    )
                    for it in spent
                ]
            )
        )
    if keep:
        if batch is not None and batch.split_depth and len(keep) == len(batch.items):
            actions.append(Resend(batch, delay, maybe_written))
        else:
            actions.append(Retry(keep, delay, phase, maybe_written))
    return actions


def _unknown(
    items: Sequence[Item],
    reason: str,
    ctx: Context,
    *,
    exhausted: str = RETRIES_EXHAUSTED,
    delay: float | None = None,
    batch: Batch | None = None,
) -> list[Action]:
    """HubSpot may or may not have acted on these items."""
    wait = (
        ctx.retry.delay(max(it.attempts for it in items) + 1, rng=ctx.rng)
        if delay is None
        else delay
    )
    if ctx.operation.idempotent:
        return _retry(items, reason, ctx, wait, exhausted=exhausted, batch=batch)
    if ctx.read_back:
        return _retry(
            items,
            f"{reason}; checking whether it was created",
            ctx,
            wait,
            phase=Phase.VERIFY,
            maybe_written=True,
        )
    hint = (
        f"HubSpot may or may not have created this record ({reason}). It was not sent again, "
        "to avoid a duplicate. Re-run with --id-property <a unique property> so bulkops can "
        "check before resending, or look the record up in HubSpot and feed this row back "
        "only if it is missing."
    )
    return [Settle([Outcome(it, False, category=AMBIGUOUS, message=hint) for it in items])]


def _transient(
    batch: Batch,
    reason: str,
    ctx: Context,
    *,
    maybe_written: bool,
    minimum: float = 0.0,
    retry_after: float | None = None,
) -> Verdict:
    attempt = max(it.attempts for it in batch.items) + 1
    delay = ctx.retry.delay(attempt, minimum=minimum, retry_after=retry_after, rng=ctx.rng)
    charge = not ctx.in_outage
    if batch.phase is Phase.VERIFY:
        actions = _retry(batch.items, reason, ctx, delay, phase=Phase.VERIFY)
    elif maybe_written:
        actions = _unknown(batch.items, reason, ctx, delay=delay, batch=batch)
    else:
        actions = _retry(batch.items, reason, ctx, delay, batch=batch)
    return Verdict(tuple(actions), charge=charge)


# -- whole-batch rejections -----------------------------------------------------------------------
def _rejected(batch: Batch, verdict: Rejected, ctx: Context) -> Verdict:
    items = batch.items
    if verdict.category == "CONFLICT":
        named = conflicting(items, verdict.message)
        if named and len(named) < len(items):
            # The conflict names the value: that record fails (or, if an earlier attempt may
            # have written it, is settled as created); the rest go again, without it.
            outcomes = [_conflict_outcome(it, verdict, ctx) for it in named]
            rows = {it.row for it in named}
            rest = [it for it in items if it.row not in rows]
            return Verdict((Settle(outcomes), Retry(rest, 0.0, batch.phase)), charge=False)
    if len(items) == 1:
        return Verdict((Settle([_conflict_outcome(items[0], verdict, ctx)]),))
    if verdict.isolatable and ctx.may_isolate:
        suspected = suspects(items, verdict.fields, verdict.message)
        if suspected and len(suspected) < len(items):
            # The error names a property and value: send the records that carry it alone and
            # the rest together. One request per bad record instead of 2*log2(n).
            rows = {it.row for it in suspected}
            groups = [[it] for it in suspected] + [[it for it in items if it.row not in rows]]
        else:
            # Nothing to go by: split in halves until the bad records stand alone; the others
            # are written on the way. About 2*log2(n) requests per bad record.
            mid = len(items) // 2
            groups = [items[:mid], items[mid:]]
        return Verdict((Split(groups, batch.split_depth + 1, batch.phase),), charge=False)
    why = "isolation budget spent" if verdict.isolatable else "the error names no single record"
    message = (
        f"HubSpot rejected the whole batch of {len(items)} ({verdict.category}: "
        f"{verdict.message}); the record at fault was not isolated ({why}). Fix the data "
        "and feed failed.jsonl back in."
    )
    return Verdict(
        (Settle([Outcome(it, False, category=BATCH_REJECTED, message=message) for it in items]),)
    )


def _conflict_outcome(item: Item, verdict: Rejected, ctx: Context) -> Outcome:
    outcome = Outcome(item, False, category=verdict.category, message=verdict.message)
    if verdict.category == "CONFLICT":
        settled = _conflict_after_unknown(outcome, ctx)
        if settled is not None and settled is not _READ_AGAIN:
            return settled
        found = _EXISTING_ID.search(verdict.message)
        if found:
            outcome.extra = {**(outcome.extra or {}), "existing_id": found.group(1)}
    return outcome


def conflicting(items: Sequence[Item], message: str) -> list[Item]:
    """The items a conflict message names by their value (``prop=value``, or the value quoted)."""
    found: list[Item] = []
    for it in items:
        for name, value in it.properties.items():
            if value and (
                f"{name}={value} " in message
                or f"{name}={value}." in message
                or f"'{value}'" in message
                or f'"{value}"' in message
            ):
                found.append(it)
                break
    return found


# -- shared readings of an answer (the schema read uses them too) ---------------------------------
def rate_limit_policy(response: HttpResponse) -> str:
    """A 429's policy: ``policyName``, else what the message or the daily header says."""
    body = response.json()
    policy = ""
    message = ""
    if isinstance(body, Mapping):
        policy = str(body.get("policyName") or "").upper()
        message = str(body.get("message") or "").lower()
    if not policy:
        if "daily" in message or response.headers.get("X-HubSpot-RateLimit-Daily-Remaining") == "0":
            policy = "DAILY"
        elif "secondly" in message and "ten" not in message:
            policy = "SECONDLY"
    return policy or "TEN_SECONDLY_ROLLING"


def daily_limit_stop() -> Stop:
    return Stop(
        StopReason.DAILY_LIMIT,
        "HubSpot's daily API limit for this account is reached; it resets at midnight in "
        "the account's time zone. Every finished record is kept; continue with "
        "`bulkops resume OUT` after the reset.",
    )


def redirect_stop(response: HttpResponse, host: str) -> Stop:
    """HubSpot's API does not redirect; following one would carry the token elsewhere."""
    target = str(response.headers.get("Location", ""))[:200] or "another address"
    return Stop(
        StopReason.CONFIG,
        f"{host} answered {response.status}, a redirect to {target}. bulkops never follows "
        "redirects (the token stays with the host you named); check --base-url.",
    )


def auth_stop(response: HttpResponse) -> Stop:
    body = response.json()
    detail = str(body.get("message", "")) if isinstance(body, Mapping) else ""
    category = str(body.get("category", "")) if isinstance(body, Mapping) else ""
    if response.status == 401:
        message = (
            "HubSpot rejected the access token (401"
            + (f" {category}" if category else "")
            + "). Check HUBSPOT_ACCESS_TOKEN or --token-file."
        )
    else:
        message = (
            "the access token lacks a permission this job needs (403"
            + (f" {category}" if category else "")
            + f"): {detail[:300]}"
        )
    return Stop(StopReason.AUTH, message, status=response.status)


def is_hubspot_answer(response: HttpResponse, *, dialect_allows_empty: bool = False) -> bool:
    """HubSpot answers JSON (or nothing, for a 204). An HTML page, or anything else, means
    the base URL points somewhere else: a proxy, a login page, a catch-all."""
    if not response.body:
        return dialect_allows_empty
    parsed: Any = response.json()
    return isinstance(parsed, Mapping | list)


def not_hubspot_message(response: HttpResponse, host: str) -> str:
    kind = response.content_type or "no content type"
    return (
        f"this does not look like HubSpot: {host} answered {response.status} {kind}. "
        "Check --base-url (or HUBSPOT_BASE_URL)."
    )


def _short_reason(response: HttpResponse) -> str:
    body: Any = response.json()
    message = body.get("message") if isinstance(body, Mapping) else None
    if message is None and body is None and response.body:
        return f"HTTP {response.status} ({response.content_type or 'not JSON'})"
    return f"HTTP {response.status}" + (f": {str(message)[:200]}" if message else "")


# -- the schema read ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SchemaBody:
    """The properties answer, to be read into a schema."""

    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Wait:
    """Ask again after ``delay`` seconds; ``charge``: that was one of the read's attempts."""

    delay: float
    charge: bool = True


SchemaVerdict = SchemaBody | Wait | Throttle | Halt | None


def decide_schema(answer: Answer, attempt: int, ctx: Context, *, what: str) -> SchemaVerdict:
    """What a properties read's answer means; None: give up on the schema (HubSpot still
    validates on its side). The same readings as for batches, one request path."""
    if isinstance(answer, TransportFailure):
        if answer.kind == "connect" and not ctx.answered_before:
            return Halt(Stop(StopReason.UNREACHABLE, str(answer)))
        return _schema_retry(attempt, ctx)
    status = answer.status
    if status == 200:
        body = answer.json()
        if not isinstance(body, Mapping):
            return Halt(Stop(StopReason.NOT_HUBSPOT, not_hubspot_message(answer, ctx.host)))
        return SchemaBody(body)
    if not is_hubspot_answer(answer) and status < 500 and not ctx.hubspot_seen:
        return Halt(Stop(StopReason.NOT_HUBSPOT, not_hubspot_message(answer, ctx.host)))
    if 300 <= status < 400:
        return Halt(redirect_stop(answer, ctx.host))
    if status in (401, 403):
        return Halt(auth_stop(answer))
    if status in (400, 404):
        body = answer.json()
        message = body.get("message") if isinstance(body, Mapping) else None
        return Halt(
            Stop(
                StopReason.CONFIG,
                f"cannot read the properties of {what} (HTTP {status}"
                + (f": {str(message)[:300]}" if message else "")
                + "). Check --object and --base-url.",
            )
        )
    if status == 429:
        policy = rate_limit_policy(answer)
        if policy == "DAILY":
            return Halt(daily_limit_stop())
        return Throttle(policy, parse_retry_after(answer.headers))
    return _schema_retry(attempt, ctx, retry_after=parse_retry_after(answer.headers))


def _schema_retry(attempt: int, ctx: Context, *, retry_after: float | None = None) -> Wait | None:
    if ctx.in_outage:
        return Wait(0.0, charge=False)  # the channel holds the next request until HubSpot is back
    if attempt >= ctx.retry.max_attempts:
        return None
    return Wait(ctx.retry.delay(attempt, retry_after=retry_after, rng=ctx.rng))
