"""The local checks of one row, shared by a job's intake and the dry run: mapping, normalising
and pre-flight. Pure: a row in, an item to send or the outcome that ends it out."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._coerce import Coercer
from ._config import JobConfig
from ._errors import INPUT_ERROR, PREFLIGHT, InputError
from ._header import check_columns
from ._mapping import Mapper
from ._models import Item, Operation, Outcome
from ._normalize import Normalizer
from ._preflight import REFUSE, PropertySchema

__all__ = ["RowCheck", "split_passthrough"]

_VALIDATED = frozenset({Operation.CREATE, Operation.UPDATE, Operation.UPSERT})

_Check = Callable[[str], bool]
_ItemsOf = Callable[[Iterable[int], list[dict[str, Any]]], list[Item] | None]
_value_of: Callable[[tuple[str, Any]], Any] = operator.itemgetter(1)


# Markers in RowCheck._columns beside the schema's checkers (None: a property that takes
# anything; REFUSE: one that takes nothing).
def _skip(value: str) -> bool:
    """The column "id": the record id, never a property (the general path skips it too)."""
    raise AssertionError("a marker, never called")


def _unseen(value: str) -> bool:
    """A column not looked at yet."""
    raise AssertionError("a marker, never called")


def _elsewhere(value: str) -> bool:
    """A column only the general path handles ("assoc:..." columns)."""
    raise AssertionError("a marker, never called")


_COLUMNS_KEPT = 10_000  # bounded, as Normalizer's own cache of plain names


class RowCheck:
    """Builds the per-job checkers once; calling it checks one parsed row."""

    def __init__(self, config: JobConfig, schema: PropertySchema | None) -> None:
        self._config = config
        self._schema = schema
        coercer = Coercer(
            types=schema.types() if schema is not None else None,
            zone=config.zone,
            hooks=config.coerce,
        )
        self._normalize = Normalizer(
            config.operation,
            api=config.api,
            id_property=config.id_property,
            empty_clears=config.empty_clears,
            coerce=coercer,
        )
        self._creating = config.operation is Operation.CREATE
        self._validate = None
        if schema is not None and config.preflight and config.operation in _VALIDATED:
            self._validate = schema.validate
        self.mapper: Mapper | None = None
        if config.mapping.active:
            self.mapper = Mapper(config.mapping, schema, id_property=config.id_property)
        # The flat path (see _flat): rows as a CSV gives them, checked in one walk.
        self._flat_ok = not config.passthrough and self.mapper is None and not coercer.has_hooks
        self._keep_empty = config.empty_clears
        self._finish = self._normalize.finish
        # A create without an id property: Normalizer.finish has nothing to check.
        self._plain_create = self._creating and not config.id_property
        self._required: tuple[str, ...] = ()
        if self._validate is not None and self._creating and schema is not None:
            self._required = schema.required_order()
        # Column name -> its checker, or a marker: each name is looked at once, not per row.
        self._columns: dict[str, _Check | None] = {}
        # _by_header's and _items_of's, from the header: each checked column's getter and check.
        self._column_checks: tuple[tuple[Callable[[dict[str, Any]], Any], _Check], ...] = ()
        self._by_header_chosen = False
        # Every name and value of every row is a string, the names those of the source's header
        # (a CSV's rows): the intake says so.
        self.text_only = False

    def header_problem(self, header: Sequence[str] | None) -> str | None:
        """One message when the (mapped) header cannot be right for the job, else None."""
        if header is None:
            return None
        config = self._config
        missing = [name for name in config.passthrough if name not in header]
        if missing:
            return (
                f"no column {missing[0]!r} for --passthrough {missing[0]}; the columns are "
                f"{', '.join(map(repr, header[:5]))}{' ...' if len(header) > 5 else ''}"
            )
        # Passthrough columns are not sent, so they are never "not a property".
        header = [name for name in header if name not in config.passthrough]
        if self.mapper is not None:
            header = self.mapper.columns(header)
        problem = check_columns(
            header,
            schema=self._schema,
            operation=config.operation,
            id_property=config.id_property,
            object_type=config.object_type,
        )
        if problem is not None and self.mapper is not None:
            problem += " (column names as mapped by --map, --set and --match-labels)"
        return problem

    def __call__(self, row: int, data: dict[str, Any]) -> Item | Outcome:
        """The item to send, or the failed outcome of a row that cannot be sent. The item keeps
        the row as given (``raw``), so failed.jsonl holds the input, not the mapped row.

        The common case is checked in one walk of the row (the flat path): every value a
        string, every column a plain property or "id", no passthrough, mapping or hooks. It
        normalises and pre-flights as the general path does, in the same order, and hands any
        other row (a non-string value or name, an association column) to the general path,
        which then decides everything. A value the schema refuses only marks the row:
        ``validate`` then names the errors, exactly as for any other row."""
        if not self._flat_ok or type(data) is not dict:
            return self._general(row, data)
        if self.text_only and not self._keep_empty:
            return self._text(row, data)
        return self._flat(row, data)

    def checker(
        self, header: Sequence[str] | None = None
    ) -> Callable[[int, dict[str, Any]], Item | Outcome]:
        """What to call for each row: the text path itself when it applies to every row (a
        CSV's rows, see ``text_only``), else this check. Ask once ``text_only`` is set.

        With the source's ``header`` (a text-only source's rows have exactly its names), and
        every column a plain property, each row is checked by :meth:`_by_header`: the columns'
        checks are found once, here, and only the checked columns are looked at per row."""
        self._by_header_chosen = False
        if not (self._flat_ok and self.text_only and not self._keep_empty):
            return self
        if header is not None:
            checked = self._checked_columns(header)
            if checked is not None:
                self._column_checks = tuple(
                    (operator.itemgetter(name), check) for name, check in checked
                )
                self._by_header_chosen = True
                return self._by_header
        return self._text

    def many_checker(self) -> _ItemsOf | None:
        """What to call for a slice of rows before checking them one by one: the items
        :meth:`_by_header` would give them, when :meth:`checker` chose it for every row and
        the job is a plain create; else None. Ask after :meth:`checker`."""
        return self._items_of if self._by_header_chosen and self._plain_create else None

    def _items_of(self, rows: Iterable[int], datas: list[dict[str, Any]]) -> list[Item] | None:
        """The items :meth:`_by_header` gives for these rows (numbers and data), when each
        gives an item: no value refused, nothing required missing. The slice is checked a
        column at a time with map() and filter(), so no Python code runs per row. None when
        a row would fail: the caller then checks the slice row by row, as usual."""
        if all(map(all, map(dict.values, datas))):
            properties = datas  # no empty cell: each row is its own properties
        else:
            properties = list(
                map(dict, map(filter, itertools.repeat(_value_of), map(dict.items, datas)))
            )
        for value_of, check in self._column_checks:
            if not all(map(check, filter(None, map(value_of, datas)))):
                return None  # a value refused (an empty cell is checked by no one)
        for name in self._required:
            if not all(map(dict.get, properties, itertools.repeat(name))):
                return None
        return list(map(Item, rows, datas, properties))

    def _checked_columns(self, header: Sequence[str]) -> tuple[tuple[str, _Check], ...] | None:
        """The header's columns that have a check, with it; None when a column is not a plain
        property (the column "id", an "assoc:" column), which only the other paths handle."""
        checked: list[tuple[str, _Check]] = []
        for name in header:
            check = self._columns.get(name, _unseen)
            if check is _unseen:
                check = self._learn(name)
            if check is _skip or check is _elsewhere:
                return None
            if check is not None:
                checked.append((name, check))
        return tuple(checked)

    def _by_header(self, row: int, data: dict[str, Any]) -> Item | Outcome:
        """The text path for rows whose names are the header's, every column a plain property
        (see :meth:`checker`): the properties are the non-empty values, and only the columns
        with a check are looked at. The same item or outcome as :meth:`_text` gives."""
        # A row with no empty cell is its own properties: nothing changes either dict later
        # (the item's raw row and properties are only read), and all() runs no Python per cell.
        if all(data.values()):
            properties = data
        else:
            properties = {name: value for name, value in data.items() if value}
        bad = False
        for value_of, check in self._column_checks:
            value = value_of(data)
            if value and not check(value):  # REFUSE refuses every value
                bad = True
                break
        return self._flat_end(row, data, properties, bad)

    def _text(self, row: int, data: dict[str, Any]) -> Item | Outcome:
        """The flat path for rows known to hold only strings (a CSV's), with no empty values
        kept: no type checks, and a column's marker tested only when it has one. A column
        not seen yet is learnt, then the row checked again from the start."""
        columns = self._columns
        properties: dict[str, str] = {}
        bad = False
        try:
            for name, value in data.items():
                if value:  # an empty cell is no value (and no column check)
                    check = columns[name]
                    if check is not None:
                        if check is _skip:
                            continue
                        if check is _elsewhere:
                            return self._general(row, data)
                        if not check(value):  # REFUSE refuses every value
                            bad = True
                    properties[name] = value
        except KeyError:
            for name in data:
                if name not in columns:
                    self._learn(name)
            if all(name in columns for name in data):
                return self._text(row, data)
            return self._flat(row, data)  # more columns than are kept: looked at per row
        return self._flat_end(row, data, properties, bad)

    def _flat(self, row: int, data: dict[str, Any]) -> Item | Outcome:
        keep_empty = self._keep_empty
        columns = self._columns
        properties: dict[str, str] = {}
        bad = False
        for name, value in data.items():
            if type(value) is not str:
                return self._general(row, data)
            if not value and not keep_empty:
                continue  # as Normalizer: an empty cell is no value (and no column check)
            check = columns.get(name, _unseen)
            if check is _unseen:
                check = self._learn(name)
            if check is None:
                properties[name] = value
                continue
            if check is _elsewhere:
                return self._general(row, data)
            if check is _skip:
                if type(name) is not str:
                    return self._general(row, data)  # equal to "id", but refused there
                continue
            properties[name] = value
            if check is REFUSE or (value and not check(value)):
                bad = True
        return self._flat_end(row, data, properties, bad)

    def _flat_end(
        self, row: int, data: dict[str, Any], properties: dict[str, str], bad: bool
    ) -> Item | Outcome:
        required = self._required
        if required and not bad and not all(map(properties.get, required)):
            bad = True
        if self._plain_create:
            item = Item(row, data, properties)  # what Normalizer.finish makes of it
        else:
            try:
                item = self._finish(row, data, properties, None)
            except InputError as exc:
                return _input_error(row, data, None, exc)
        if bad:
            return self._preflight(item)
        return item

    def _learn(self, name: Any) -> _Check | None:
        """What the flat path does with a column, kept for the rows after this one."""
        check: _Check | None
        if type(name) is not str or name[:6] == "assoc:":
            check = _elsewhere  # the general path raises or parses associations
        elif name == "id":
            check = _skip
        else:
            # A plain property: the normaliser would have noted it as one by now.
            self._normalize.seen_plain(name)
            check = None
            if self._validate is not None and self._schema is not None:
                check = self._schema.column_check(name)
        if len(self._columns) < _COLUMNS_KEPT and type(name) is str:
            self._columns[name] = check
        return check

    def _general(self, row: int, data: dict[str, Any]) -> Item | Outcome:
        carried = None
        sent = data
        if self._config.passthrough:
            carried, sent = split_passthrough(data, self._config.passthrough)
        mapped = self.mapper(sent) if self.mapper is not None else sent
        try:
            item = self._normalize(row, mapped)
        except InputError as exc:
            return _input_error(row, data, carried, exc)
        item.raw = data  # failed lines keep the whole row, for a retry
        item.passthrough = carried
        if self._validate is not None:
            return self._preflight(item)
        return item

    def _preflight(self, item: Item) -> Item | Outcome:
        assert self._validate is not None
        errors = self._validate(item.properties, creating=self._creating)
        if errors:
            return Outcome(
                item,
                False,
                category=PREFLIGHT,
                message="; ".join(e.message for e in errors),
                extra={
                    "properties": [e.property for e in errors],
                    "codes": [e.code for e in errors],
                },
            )
        return item


def _input_error(
    row: int, data: dict[str, Any], carried: dict[str, Any] | None, exc: InputError
) -> Outcome:
    extra = {"property": exc.field} if exc.field else {}
    failed = Item(row, data, {}, passthrough=carried)
    return Outcome(failed, False, category=INPUT_ERROR, message=str(exc), extra=extra)


def split_passthrough(
    data: dict[str, Any], names: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the passthrough columns, the rest): what is carried and what is sent."""
    carried = {name: data.get(name) for name in names}
    sent = {k: v for k, v in data.items() if k not in carried}
    return carried, sent
