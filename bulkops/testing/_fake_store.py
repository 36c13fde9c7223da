"""In-memory record store of the fake HubSpot: records per object type and unique indexes.

Reads can lag writes (``read_lag_s``): a record created less than that long ago is missing from
reads, by id and by unique value, while the unique indexes already hold it, so a second create
with its value conflicts. HubSpot's reads are eventually consistent (docs/hubspot-api.md §11.5, and
peers.md: "Reads can lag writes"); the lag is applied to creates only, an assumption.

A record is just its ``props`` dict (string values only, system ones included, so a response
serializes it as is) plus a few side dicts keyed by record id. No per-record Python object:
dicts holding only strings are not tracked by the cyclic GC, and with millions of stored records
a tracked object per record made garbage collection cost as much as handling the requests.

``keep=False`` (``FakeConfig(store_records=False)``, a benchmark mode): ``create`` fills in the
system properties of the record it is given, so the answer is the same, and stores nothing.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bulkops.testing._fake_schema import ObjectType

FIRST_RECORD_ID = 10_000_001
_MODIFIED = ("hs_lastmodifieddate", "lastmodifieddate")

Props = dict[str, str]
# One update that changed something: (epoch ms, props, the values they replaced or None)
LogEntry = tuple[int, tuple[str, ...], tuple[str | None, ...]]


def now_stamp() -> tuple[str, int]:
    """(ISO-8601 with milliseconds and Z, epoch milliseconds) of the current time."""
    ms = time.time_ns() // 1_000_000
    return iso_from_ms(ms), ms


def iso_from_ms(ms: int) -> str:
    s, frac = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:03d}Z"


def ms_from_iso(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class Table:
    """Records of one object type (live and archived) and its unique indexes (live only)."""

    __slots__ = (
        "_clock",
        "_fresh",
        "_hidden",
        "archived",
        "associations",
        "by_id",
        "created",
        "keep",
        "log",
        "ot",
        "read_lag_s",
        "unique",
    )

    def __init__(
        self,
        ot: ObjectType,
        clock: Callable[[], float] = time.monotonic,
        read_lag_s: float = 0.0,
        *,
        keep: bool = True,
    ) -> None:
        self.ot = ot
        self.keep = keep  # False: created records are answered, not stored (benchmark mode)
        self._clock = clock
        self.read_lag_s = read_lag_s
        # Records not yet readable: id -> clock time it becomes readable, plus the same in
        # creation order so expired entries leave from the front (times only grow).
        self._hidden: dict[str, float] = {}
        self._fresh: deque[tuple[float, str]] = deque()
        self.by_id: dict[str, Props] = {}
        self.created: dict[str, str] = {}  # id -> createdAt
        self.archived: dict[str, str] = {}  # id -> archivedAt
        self.associations: dict[str, list[Any]] = {}
        # id -> updates, oldest first (a tuple: untracked by the GC once it has been seen)
        self.log: dict[str, tuple[LogEntry, ...]] = {}
        # unique prop -> value -> id of the live record holding it
        self.unique: dict[str, dict[str, str]] = {p: {} for p in ot.unique_props}

    def live(self, rid: str) -> Props | None:
        if rid in self.archived:
            return None
        return self.by_id.get(rid)

    def readable(self, rid: str) -> bool:
        """False while a just-created record is hidden from reads by the read lag."""
        hidden = self._hidden
        if not hidden:
            return True
        now = self._clock()
        fresh = self._fresh
        while fresh and fresh[0][0] <= now:
            hidden.pop(fresh.popleft()[1], None)
        return rid not in hidden

    def create(
        self,
        rid: str,
        props: Props,
        iso: str,
        associations: list[Any] | None = None,
        *,
        lagged: bool = True,
    ) -> Props:
        """Store a new record; ``lagged=False`` (seeded data) makes it readable at once."""
        # ``props`` is usually the parsed request dict itself: adopting it avoids a copy.
        props["hs_object_id"] = rid
        if "createdate" not in props:
            props["createdate"] = iso
        props["hs_lastmodifieddate"] = iso
        name = self.ot.name
        if name == "tickets":
            props["hs_ticket_id"] = rid
            props.setdefault("hs_pipeline", "0")  # the default pipeline
        elif name == "contacts":
            props["lastmodifieddate"] = iso
        if not self.keep:
            return props
        self.by_id[rid] = props
        self.created[rid] = iso
        if associations:
            self.associations[rid] = associations
        for p, values in self.unique.items():
            v = props.get(p)
            if v:
                values[v] = rid
        if lagged and self.read_lag_s > 0:
            until = self._clock() + self.read_lag_s
            self._hidden[rid] = until
            self._fresh.append((until, rid))
        return props

    def update(self, rid: str, props: Props, changes: Props, iso: str, ms: int) -> None:
        unique = self.unique
        keys: list[str] | None = None
        olds: list[str | None] = []
        for k, v in changes.items():
            old = props.get(k)
            if old == v or (old is None and not v):
                continue  # unchanged: no history, no index work (re-upserts are common)
            if keys is None:
                keys = []
            keys.append(k)
            olds.append(old)
            if k in unique:
                values = unique[k]
                if old and values.get(old) == rid:
                    del values[old]
                if v:
                    values[v] = rid
            if v:
                props[k] = v
            else:  # "" clears
                del props[k]
        props["hs_lastmodifieddate"] = iso
        if "lastmodifieddate" in props:
            props["lastmodifieddate"] = iso
        if keys is not None:
            # Only the replaced values are kept (history is rebuilt backwards from the current
            # values), as tuples of strings: the GC stops tracking those, it never stops
            # tracking a tuple that holds a dict.
            self.log[rid] = (*self.log.get(rid, ()), (ms, tuple(keys), tuple(olds)))

    def _unindex(self, rid: str) -> None:
        props = self.by_id[rid]
        for p, values in self.unique.items():
            v = props.get(p)
            if v and values.get(v) == rid:
                del values[v]

    def archive(self, rid: str, iso: str) -> None:
        if rid in self.by_id and rid not in self.archived:
            self._unindex(rid)
            self.archived[rid] = iso

    def delete(self, rid: str) -> None:
        """Permanent removal (v1 batch-delete)."""
        if rid not in self.by_id:
            return
        if rid not in self.archived:
            self._unindex(rid)
        for side in (self.created, self.archived, self.associations, self.log, self._hidden):
            side.pop(rid, None)
        del self.by_id[rid]

    # -- slower views (tests, reads with history, v1) ---------------------------------------

    def history_of(self, rid: str, prop: str) -> list[tuple[str, int]]:
        """[(value, epoch ms)] of ``prop``, oldest first ("" marks a clear)."""
        props = self.by_id[rid]
        if prop in _MODIFIED and prop in props:
            return [(props[prop], ms_from_iso(props["hs_lastmodifieddate"]))]
        newest_first: list[tuple[str, int]] = []
        value = props.get(prop)
        for ms, keys, olds in reversed(self.log.get(rid, ())):
            if prop in keys:
                newest_first.append((value if value is not None else "", ms))
                value = olds[keys.index(prop)]
        if value is not None:
            newest_first.append((value, ms_from_iso(self.created[rid])))
        newest_first.reverse()
        return newest_first

    def to_dict(self, rid: str) -> dict[str, Any]:
        props = self.by_id[rid]
        d: dict[str, Any] = {
            "id": rid,
            "properties": dict(props),
            "createdAt": self.created[rid],
            "updatedAt": props["hs_lastmodifieddate"],
            "archived": rid in self.archived,
        }
        if rid in self.archived:
            d["archivedAt"] = self.archived[rid]
        if rid in self.associations:
            d["associations"] = list(self.associations[rid])
        return d


class Store:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        read_lag_s: float = 0.0,
        *,
        keep: bool = True,
    ) -> None:
        # Record ids: one counter for all types, like HubSpot's portal-wide ids.
        self.ids = itertools.count(FIRST_RECORD_ID)
        self._tables: dict[str, Table] = {}
        self._clock = clock
        self._read_lag_s = read_lag_s
        self.keep = keep

    def new_id(self) -> str:
        return str(next(self.ids))

    def table(self, ot: ObjectType) -> Table:
        t = self._tables.get(ot.name)
        if t is None:
            t = self._tables[ot.name] = Table(ot, self._clock, self._read_lag_s, keep=self.keep)
        return t
