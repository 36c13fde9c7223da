"""The local checks of one row, shared by a job's intake and the dry run: mapping, normalising
and pre-flight. Pure: a row in, an item to send or the outcome that ends it out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._coerce import Coercer
from ._config import JobConfig
from ._errors import INPUT_ERROR, PREFLIGHT, InputError
from ._header import check_columns
from ._mapping import Mapper
from ._models import Item, Operation, Outcome
from ._normalize import Normalizer
from ._preflight import PropertySchema

__all__ = ["RowCheck", "split_passthrough"]

_VALIDATED = frozenset({Operation.CREATE, Operation.UPDATE, Operation.UPSERT})


class RowCheck:
    """Builds the per-job checkers once; calling it checks one parsed row."""

    def __init__(self, config: JobConfig, schema: PropertySchema | None) -> None:
        self._config = config
        self._schema = schema
        self._normalize = Normalizer(
            config.operation,
            api=config.api,
            id_property=config.id_property,
            empty_clears=config.empty_clears,
            coerce=Coercer(
                types=schema.types() if schema is not None else None,
                zone=config.zone,
                hooks=config.coerce,
            ),
        )
        self._creating = config.operation is Operation.CREATE
        self._validate = None
        if schema is not None and config.preflight and config.operation in _VALIDATED:
            self._validate = schema.validate
        self.mapper: Mapper | None = None
        if config.mapping.active:
            self.mapper = Mapper(config.mapping, schema, id_property=config.id_property)

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
        the row as given (``raw``), so failed.jsonl holds the input, not the mapped row."""
        carried = None
        sent = data
        if self._config.passthrough:
            carried, sent = split_passthrough(data, self._config.passthrough)
        mapped = self.mapper(sent) if self.mapper is not None else sent
        try:
            item = self._normalize(row, mapped)
        except InputError as exc:
            extra = {"property": exc.field} if exc.field else {}
            failed = Item(row, data, {}, passthrough=carried)
            return Outcome(failed, False, category=INPUT_ERROR, message=str(exc), extra=extra)
        item.raw = data  # failed lines keep the whole row, for a retry
        item.passthrough = carried
        if self._validate is not None:
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


def split_passthrough(
    data: dict[str, Any], names: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the passthrough columns, the rest): what is carried and what is sent."""
    carried = {name: data.get(name) for name in names}
    sent = {k: v for k, v in data.items() if k not in carried}
    return carried, sent
