"""Trust boundaries: what bulkops believes from the network, from a journal and from the
command line, and where the token may go.

Sections: rate-limit headers that make no sense; the fake server's exposure warning; v1 ids
that are not numbers; redirects; the journal's base URL on resume/retry; the token never
written anywhere, on every CLI error path."""

from __future__ import annotations

import argparse
import logging
import math

import pytest

from bulkops import Api, InputError, Operation
from bulkops._limiter import RateLimiter
from bulkops._normalize import Normalizer
from bulkops.testing import DEFAULT_FAKE_TOKEN, add_fake_server_arguments
from bulkops.testing._fake_cli import exposure_warning

from .test_limiter import FakeTime

# -- rate-limit headers --------------------------------------------------------------------------
MAX, REMAINING = "X-HubSpot-RateLimit-Max", "X-HubSpot-RateLimit-Remaining"
INTERVAL = "X-HubSpot-RateLimit-Interval-Milliseconds"
DAILY, DAILY_REMAINING = "X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining"
NONSENSE = ["²²", "٣", "-5", "0", str(10**12), "abc", "", "1e3", "190.5", "0x10", "9" * 40]
GOOD = {MAX: "190", REMAINING: "180", INTERVAL: "10000", DAILY: "500000", DAILY_REMAINING: "400"}


# 0 and small negatives are what Remaining says when the window is full; 0 left today is real.
REAL = {(REMAINING, "0"), (REMAINING, "-5"), (DAILY_REMAINING, "0")}
CASES = [
    (name, value)
    for name in (MAX, REMAINING, INTERVAL, DAILY, DAILY_REMAINING)
    for value in NONSENSE
    if (name, value) not in REAL
]


@pytest.mark.parametrize(("name", "value"), CASES)
async def test_a_nonsense_header_is_ignored_and_pacing_goes_on(name, value, caplog):
    clock = FakeTime()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    limiter.observe(GOOD, await limiter.wait_turn())
    before = limiter.stats()
    with caplog.at_level(logging.WARNING, logger="bulkops.limiter"):
        for _ in range(3):  # the same nonsense on every answer warns once
            limiter.observe({**GOOD, name: value}, await limiter.wait_turn())
    assert limiter.ignored_headers == {name}
    warnings = [r for r in caplog.records if r.name == "bulkops.limiter"]
    assert len(warnings) == 1 and name in warnings[0].getMessage()
    after = limiter.stats()
    # What the other headers said still holds.
    assert after.ceiling == before.ceiling == 190
    assert after.window == before.window == 10.0
    assert after.daily_limit == 500_000
    assert after.daily_remaining == 400
    rate = limiter.rate_per_second
    assert rate is not None and math.isfinite(rate) and 0 < rate <= 190 / 10
    # And the pacer still paces: the next ten requests are spread out, none crashes.
    sent = [await limiter.wait_turn() for _ in range(10)]
    assert sent == sorted(sent) and sent[-1] - sent[0] > 0


async def test_without_a_sane_max_remaining_is_not_used():
    clock = FakeTime()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    limiter.observe({MAX: "²²", REMAINING: "0", INTERVAL: "1"}, await limiter.wait_turn())
    stats = limiter.stats()
    assert stats.ceiling == 100 and stats.others == 0 and stats.window == 10.0
    assert limiter.ignored_headers == {MAX}


async def test_sane_headers_are_still_learned():
    clock = FakeTime()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    limiter.observe(
        {MAX: " 250 ", REMAINING: "-3", INTERVAL: "500", DAILY_REMAINING: "0"},
        await limiter.wait_turn(),
    )
    stats = limiter.stats()
    assert stats.ceiling == 250 and stats.window == 0.5 and stats.daily_remaining == 0
    assert limiter.ignored_headers == set()


# -- the fake server -----------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.5", "fake.example"])
def test_the_fake_warns_when_it_listens_beyond_loopback(host):
    warning = exposure_warning(host, None)
    assert warning is not None and warning.startswith("fake-server: warning:")
    assert "anyone" in warning and DEFAULT_FAKE_TOKEN in warning
    # Tokens given with --token may be real ones: never repeated.
    custom = exposure_warning(host, ["my-own-secret"])
    assert custom is not None and "my-own-secret" not in custom


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_the_fake_does_not_warn_on_loopback(host):
    assert exposure_warning(host, None) is None


def test_the_fake_help_says_it_is_a_test_server():
    parser = argparse.ArgumentParser(prog="fake")
    add_fake_server_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "A TEST SERVER, not HubSpot" in text and DEFAULT_FAKE_TOKEN in text
    assert "any other address warns" in text


# -- v1 ids --------------------------------------------------------------------------------------
@pytest.mark.parametrize("record_id", ["²", "١٢٣", "12a", "-4", "1.5"])
def test_a_v1_id_that_is_not_a_number_is_the_rows_input_error(record_id):
    normalize = Normalizer(Operation.UPDATE, api=Api.V1)
    with pytest.raises(InputError, match="is not a HubSpot id"):
        normalize(1, {"id": record_id, "subject": "x"})
    assert normalize(2, {"id": "512", "subject": "x"}).record_id == "512"
