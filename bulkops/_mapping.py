"""Column mapping: input columns -> HubSpot properties, applied in one place before normalising.

A spreadsheet export names its columns as HubSpot's UI labels them ("Ticket name", "Priority")
and holds option labels ("High") where the API wants internal names and option values
(``subject``, ``HIGH``). :class:`ColumnMapping` is the job's choice (``JobConfig.mapping``):

* ``rename``: column -> property (``--map "Ticket name=subject"``, ``--map-file``);
* ``ignore``: columns never sent (``--ignore-column``);
* ``constants``: property -> one value for every row (``--set hs_pipeline=0``);
* ``match_labels``: a column that is a property's label means that property, and a value that
  is an option's label means that option's value (``--match-labels``; needs the schema).

:class:`Mapper` applies it to the header (so ``_header.check_columns`` sees mapped names) and to
each row. Explicit choices win over labels; ``id``, ``associations`` and ``assoc:`` columns
are never relabelled.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ._checks import check_property_name
from ._errors import ConfigError
from ._preflight import PropertySchema

__all__ = ["ColumnMapping", "ColumnPlan", "Mapper", "parse_assignment", "read_map_file"]

_CACHED_KEYS = 10_000  # distinct column names remembered (JSONL rows may vary their keys)


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnMapping:
    """How input columns become properties; the default maps nothing."""

    rename: tuple[tuple[str, str], ...] = ()  # (column, property)
    ignore: tuple[str, ...] = ()
    constants: tuple[tuple[str, str], ...] = ()  # (property, value)
    match_labels: bool = False

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for column, prop in self.rename:
            if column in seen:
                raise ConfigError(f"mapping: column {column!r} is mapped twice (--map)")
            seen.add(column)
            check_property_name(prop, option=f"mapping target of {column!r} (--map)")
        for prop, _value in self.constants:
            check_property_name(prop, option="constant property (--set)")
        both = seen & set(self.ignore)
        if both:
            raise ConfigError(
                f"mapping: column {sorted(both)[0]!r} is both mapped (--map) and ignored "
                "(--ignore-column)"
            )

    @property
    def active(self) -> bool:
        return bool(self.rename or self.ignore or self.constants or self.match_labels)

    def to_meta(self) -> dict[str, Any]:
        return {
            "rename": [list(p) for p in self.rename],
            "ignore": list(self.ignore),
            "constants": [list(p) for p in self.constants],
            "match_labels": self.match_labels,
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> ColumnMapping:
        if not meta:
            return cls()
        return cls(
            rename=tuple((str(c), str(p)) for c, p in meta.get("rename") or ()),
            ignore=tuple(str(c) for c in meta.get("ignore") or ()),
            constants=tuple((str(p), str(v)) for p, v in meta.get("constants") or ()),
            match_labels=bool(meta.get("match_labels")),
        )


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """Where one input column goes: ``how`` is map, label, same, ignored or constant."""

    column: str
    property: str | None
    how: str

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "property": self.property, "how": self.how}


def parse_assignment(text: str, *, flag: str) -> tuple[str, str]:
    """``"Ticket name=subject"`` -> ("Ticket name", "subject"); the last ``=`` splits, so a
    column name may hold one."""
    left, eq, right = text.rpartition("=")
    if not eq or not left.strip() or not right.strip():
        raise ConfigError(f"{flag} {text!r}: write COLUMN=PROPERTY (e.g. 'Ticket name=subject')")
    return left.strip(), right.strip()


def read_map_file(path: str | Path) -> tuple[tuple[str, str], ...]:
    """A mapping file: JSON ``{"column": "property"}``, or CSV rows ``column,property`` (a
    first row ``column,property`` is a header and skipped)."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read --map-file {name}: {exc.strerror}") from None
    if name.lower().endswith(".json") or data.lstrip()[:1] == b"{":
        try:
            loaded = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"--map-file {name} is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise ConfigError(f'--map-file {name}: expected {{"column": "property", ...}}')
        return tuple((k.strip(), v.strip()) for k, v in loaded.items())
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"--map-file {name} is not UTF-8 text") from None
    pairs = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise ConfigError(f"--map-file {name} line {number}: expected column,property")
        column, prop = row[0].strip(), row[1].strip()
        if number == 1 and (column.lower(), prop.lower()) == ("column", "property"):
            continue
        pairs.append((column, prop))
    return tuple(pairs)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _never_relabelled(name: str, id_property: str | None) -> bool:
    return (
        name in ("id", "associations", "properties")
        or name == id_property
        or (name.startswith("assoc:"))
    )


class Mapper:
    """Applies a :class:`ColumnMapping` to headers and rows, with the schema for labels."""

    def __init__(
        self,
        mapping: ColumnMapping,
        schema: PropertySchema | None,
        *,
        id_property: str | None = None,
    ) -> None:
        if mapping.match_labels and schema is None:
            raise ConfigError("--match-labels needs the property schema (drop --no-preflight)")
        self._mapping = mapping
        self._schema = schema
        self._id_property = id_property
        self._rename = dict(mapping.rename)
        self._ignore = frozenset(mapping.ignore)
        self._constants = dict(mapping.constants)
        self._labels: dict[str, str] = {}
        # property -> ({folded option label: value}, the values), where a label is not its value.
        self._options: dict[str, tuple[dict[str, str], frozenset[str]]] = {}
        if mapping.match_labels and schema is not None:
            self._labels = {_fold(label): name for label, name in schema.labels().items()}
            for name in schema.names():
                options = {
                    _fold(label): value
                    for label, value in schema.option_labels(name).items()
                    if label != value
                }
                if options:
                    values = frozenset(schema.option_labels(name).values())
                    self._options[name] = (options, values)
        self._resolved: dict[str, tuple[str | None, str]] = {}

    def _resolve(self, column: str) -> tuple[str | None, str]:
        """(property or None when ignored, how)."""
        found = self._resolved.get(column)
        if found is not None:
            return found
        if column in self._ignore:
            found = (None, "ignored")
        elif column in self._rename:
            found = (self._rename[column], "map")
        elif (
            self._labels
            and not _never_relabelled(column, self._id_property)
            and not (self._schema is not None and self._schema.has(column))
            and _fold(column) in self._labels
        ):
            found = (self._labels[_fold(column)], "label")
        else:
            found = (column, "same")
        if len(self._resolved) < _CACHED_KEYS:
            self._resolved[column] = found
        return found

    def columns(self, header: Sequence[str]) -> list[str]:
        """The header as the job sees it: mapped names, ignored columns gone, constants added."""
        names = [prop for prop, _ in map(self._resolve, header) if prop is not None]
        return names + [p for p in self._constants if p not in names]

    def plan(self, header: Iterable[str]) -> list[ColumnPlan]:
        """Where each column goes, and the constants, for the dry run's report."""
        plans = [ColumnPlan(column, *self._resolve(column)) for column in header]
        constants = self._constants.items()
        plans += [ColumnPlan(f"={value}", prop, "constant") for prop, value in constants]
        return plans

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """One row, mapped; a HubSpot-shaped row is mapped inside its ``properties``."""
        nested = data.get("properties")
        if isinstance(nested, Mapping):
            out = dict(data)
            out["properties"] = self._map_flat(nested)
            return out
        return self._map_flat(data)

    def _map_flat(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        options = self._options
        for column, value in data.items():
            prop, _how = self._resolve(column) if type(column) is str else (column, "same")
            if prop is None:
                continue
            if options and type(value) is str and prop in options:
                value = self._option_value(options[prop], value)
            out[prop] = value
        out.update(self._constants)
        return out

    def _option_value(self, options: tuple[dict[str, str], frozenset[str]], value: str) -> str:
        by_label, values = options
        if not value or value in values:
            return value
        whole = by_label.get(_fold(value))
        if whole is not None:
            return whole
        if ";" in value:  # a multi-checkbox value: each part may be a label
            return ";".join(by_label.get(_fold(part), part) for part in value.split(";"))
        return value
