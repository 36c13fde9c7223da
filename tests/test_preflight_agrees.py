"""Pre-flight and the fake's own validation agree: a property pre-flight rejects is one the
fake rejects, and the other way round (hypothesis over valid and invalid values)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bulkops._preflight import PropertySchema
from bulkops.testing._fake_schema import validate_props
from bulkops.testing._fake_types import build_types, property_json

TICKETS = build_types(None)["tickets"]
SCHEMA = PropertySchema.from_hubspot(
    {"results": [property_json(TICKETS, p) for p in TICKETS.properties]}, object_type="tickets"
)

# Each property with values of its type, some valid, some not.
VALUES: dict[str, list[str]] = {
    "subject": ["x", "Printer on fire", "  spaced  "],
    "content": ["", "long text " * 10],
    "hs_pipeline": ["0", "1", "zero"],
    "hs_pipeline_stage": ["1", "4", "5", "one"],
    "hs_ticket_priority": ["LOW", "HIGH", "low", "SUPER"],
    "hs_ticket_category": ["PRODUCT_ISSUE", "PRODUCT_ISSUE;BILLING_ISSUE", "NOPE", ";"],
    "source_type": ["EMAIL", "FAX"],
    "customer_score": ["12", "12.5", "-3", "1e3", "lots", "1,000"],
    "is_escalated": ["true", "false", "yes", "1"],
    "due_date": ["2026-12-01", "2026-13-01", "1733011200000", "tomorrow"],
    "createdate": ["2026-12-01T10:00:00Z", "2026-12-01", "1733011200000", "noon"],
    "external_id": ["e1", "e-2"],
    "hs_lastmodifieddate": ["2026-12-01T10:00:00Z"],  # read-only
    "no_such_property": ["x"],
}

records = st.fixed_dictionaries(
    {},
    optional={name: st.sampled_from(values) for name, values in VALUES.items()},
)


@settings(max_examples=300, deadline=None)
@given(records, st.booleans())
def test_preflight_and_the_fake_reject_the_same_properties(
    record: dict[str, Any], creating: bool
) -> None:
    ours = {e.property for e in SCHEMA.validate(record, creating=creating)}
    _, problems = validate_props(TICKETS, dict(record), creating)
    theirs = {p[0] for p in problems}
    assert ours == theirs, (record, creating, ours, theirs)
