"""Header checks: a mistake in the column names is one message for the job, not one per row.

Two kinds of check live here, both pure:

* what the reader can tell alone (``header_problems``, ``sniff_delimiter``): blank, duplicate
  or NUL names, and which separator a header line uses;
* what needs the job and the account (``check_columns``): names that are not properties of
  the object, a file read with the wrong delimiter, a missing id column.

The engine calls ``check_columns`` once with ``stream.header`` before the first write.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Sequence

from ._models import Operation
from ._preflight import PropertySchema

__all__ = ["check_columns", "header_problems", "sniff_delimiter"]

# Separators a spreadsheet export uses, in the order a tie is broken.
_DELIMITERS = ",\t;|"
_SHOWN_COLUMNS = 5  # unknown columns named in one message
_OPS_BY_ID = (Operation.UPDATE, Operation.ARCHIVE, Operation.READ)
_WRITES = (Operation.CREATE, Operation.UPDATE, Operation.UPSERT)


def header_problems(names: Sequence[str]) -> list[str]:
    """What is wrong with a CSV header's names, as phrases; empty when nothing is.

    ``names`` are as read (already stripped): blank, duplicate and NUL-holding names are
    refused, since each would silently drop or mix up a column's values.
    """
    problems = []
    blank = [str(i) for i, name in enumerate(names, 1) if not name]
    if blank:
        problems.append(f"empty column name at column {', '.join(blank)}")
    duplicates = [name for name, count in Counter(names).items() if count > 1 and name]
    if duplicates:
        problems.append(f"duplicate column names {', '.join(map(repr, duplicates))}")
    nul = [str(i) for i, name in enumerate(names, 1) if "\x00" in name]
    if nul:
        # Nearly always a UTF-16 file read as UTF-8, or a binary file.
        problems.append(f"NUL byte in the column name at column {', '.join(nul)}")
    return problems


def sniff_delimiter(header_line: str) -> str:
    """The separator a header line uses: the most frequent of , tab ; | outside quotes.

    A header with none of them (a single column) is comma-separated.
    """
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(_DELIMITERS, key=lambda d: counts[d])  # max keeps the first of equals
    return best if counts[best] else ","


def check_columns(
    columns: Sequence[str],
    *,
    schema: PropertySchema | None,
    operation: Operation,
    id_property: str | None,
    object_type: str,
) -> str | None:
    """One plain message when a CSV/TSV header cannot be right for the job, else None.

    Checked in this order, the first problem found is the message:

    1. one column whose name holds ``;``, ``|``, a tab or a comma: the file was split on
       the wrong delimiter;
    2. no ``id`` column for update, archive or read by record id; no column for the id
       property when one is given;
    3. (with a schema, when writing) columns that are not properties of the object, each
       with the closest property name, matched on names and on the labels HubSpot's UI
       shows ("Ticket name" is ``subject``). ``id``, ``associations``, ``assoc:<typeId>``
       columns and the id property are not properties and are never reported.
    """
    if len(columns) == 1:
        wrong = _looks_delimited(columns[0])
        if wrong:
            what, flag = ("tab", "\\t") if wrong == "\t" else (f"`{wrong}`", wrong)
            return (
                f"the header is one column {columns[0]!r}: this looks like a {what}-delimited "
                f"file: --delimiter '{flag}'"
            )
    present = set(columns)
    if id_property:
        if id_property not in present:
            return (
                f"no column {id_property!r} for the id property (--id-property {id_property}); "
                f"the columns are {_listed(columns)}"
            )
    elif operation in _OPS_BY_ID and "id" not in present:
        return (
            f"{operation.value} needs the record id in a column 'id' (or --id-property with a "
            f"unique property); the columns are {_listed(columns)}"
        )
    if schema is None or operation not in _WRITES:
        return None
    unknown = [
        name for name in columns if not schema.has(name) and not _not_a_property(name, id_property)
    ]
    if not unknown:
        return None
    described = [_with_suggestion(name, schema) for name in unknown[:_SHOWN_COLUMNS]]
    if len(unknown) > _SHOWN_COLUMNS:
        described.append(f"and {len(unknown) - _SHOWN_COLUMNS} more")
    what = "a property" if len(unknown) == 1 else "properties"
    return (
        f"{'column' if len(unknown) == 1 else 'columns'} not {what} of {object_type}: "
        f"{', '.join(described)}"
    )


def _looks_delimited(name: str) -> str | None:
    """The separator a lone column name holds, if it holds one (a file split on the wrong one)."""
    counts = {separator: name.count(separator) for separator in _DELIMITERS}
    best = max(_DELIMITERS, key=counts.__getitem__)
    return best if counts[best] else None


def _not_a_property(name: str, id_property: str | None) -> bool:
    return name in ("id", "associations", id_property) or name.startswith("assoc:")


def _with_suggestion(name: str, schema: PropertySchema) -> str:
    guess = closest_name(name, schema.names(), schema.labels())
    return f"{name!r} (did you mean {guess}?)" if guess else repr(name)


def closest_name(name: str, names: Iterable[str], labels: dict[str, str]) -> str | None:
    """The property a column most likely means: an exact name or label whatever the case
    or separators, else the closest name or label by difflib's ratio."""
    by_key: dict[str, str] = {}
    for prop in names:
        by_key.setdefault(_key(prop), prop)
    for label, prop in labels.items():
        by_key.setdefault(_key(label), prop)
    key = _key(name)
    if key in by_key:
        return by_key[key]
    close = difflib.get_close_matches(key, by_key, n=1, cutoff=0.6)
    if close:
        return by_key[close[0]]
    # "priority" for hs_ticket_priority: HubSpot prefixes its own names with hs_ and the
    # object's name; a column that is the tail of exactly one name means that name.
    tails = [prop for k, prop in by_key.items() if k.endswith("_" + key)]
    return tails[0] if len(set(tails)) == 1 else None


def _key(text: str) -> str:
    return "_".join(text.lower().replace("-", " ").replace("_", " ").split())


def _listed(columns: Sequence[str]) -> str:
    shown = ", ".join(map(repr, columns[:_SHOWN_COLUMNS]))
    if len(columns) > _SHOWN_COLUMNS:
        shown += f" and {len(columns) - _SHOWN_COLUMNS} more"
    return shown or "none"
