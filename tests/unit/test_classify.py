"""What one attempt's outcome means (`shared.clients.classify`), as a table: every status
family, every `Retry-After` form, every transport failure. Pure: no client, no transport."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from incident_link_actions_client import _core as client_core
from shared.clients.bounds import RETRY_AFTER_MAX_SECONDS
from shared.clients.classify import (
    Accept,
    Decision,
    GiveUp,
    Reject,
    Retry,
    classify,
    parse_retry_after,
)
from shared.errors import UpstreamUnavailable
from shared.problems import from_error

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def at_now() -> datetime:
    return NOW


def never() -> datetime:
    raise AssertionError("the clock is read only for the Retry-After of an answer to retry")


def answer(status: int, retry_after: str | None = None) -> httpx.Response:
    """An answer as the wire brings it: a header's bytes may be anything (UTF-8 here)."""
    headers = [] if retry_after is None else [(b"Retry-After", retry_after.encode())]
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 206, 299])
def test_a_2xx_is_accepted(status: int) -> None:
    assert classify(answer(status), now=never) == Accept()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_transient_status_is_retried_with_its_status_and_no_wait_hint_when_none_is_sent(
    status: int,
) -> None:
    assert classify(answer(status), now=at_now) == Retry(
        f"answered HTTP {status}", status=status, retry_after=None, may_have_acted=False
    )


def test_401_is_our_credentials_refused() -> None:
    assert classify(answer(401), now=never) == Reject(auth=True)


@pytest.mark.parametrize("status", [400, 402, 403, 404, 405, 409, 410, 413, 415, 422, 451, 499])
def test_any_other_4xx_is_rejected_and_never_retried(status: int) -> None:
    assert classify(answer(status), now=never) == Reject(auth=False)


@pytest.mark.parametrize("status", [100, 199, 300, 301, 302, 304, 307, 399, 501, 505, 511, 599])
def test_any_other_status_gives_up_as_unavailable(status: int) -> None:
    assert classify(answer(status), now=never) == GiveUp()


@pytest.mark.parametrize("status", [200, 404, 501])
def test_a_retry_after_on_an_answer_not_retried_changes_nothing_and_reads_no_clock(
    status: int,
) -> None:
    expected = classify(answer(status), now=never)
    assert classify(answer(status, "5"), now=never) == expected


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7),
        (" 0 ", 0),
        ("120", 120),
        ("Mon, 23 Nov 2026 12:00:30 GMT", 30),
        ("Mon, 23 Nov 2026 12:00:30 -0000", 30),  # no zone given: read as UTC
        ("Mon, 23 Nov 2026 13:00:30 +0100", 30),
        ("Mon, 23 Nov 2026 11:59:00 GMT", 0),  # a date gone by: no wait, never negative
        ("soon", None),
        ("1.5", None),
        ("-1", None),
        ("1e3", None),
        ("0x10", None),
        ("²", None),
        ("٣", None),
        ("", None),
    ],
)
def test_a_retry_carries_the_retry_after_as_seconds_or_none_if_unusable(
    header: str, seconds: int | None
) -> None:
    decision = classify(answer(503, header), now=at_now)
    assert decision == Retry("answered HTTP 503", status=503, retry_after=seconds)


def test_a_429_carries_its_retry_after() -> None:
    assert classify(answer(429, "2"), now=at_now) == Retry(
        "answered HTTP 429", status=429, retry_after=2
    )


@pytest.mark.parametrize(
    ("error", "reason", "may_have_acted"),
    [
        (httpx.ConnectTimeout("slow"), "timed out (ConnectTimeout)", False),
        (httpx.PoolTimeout("busy"), "timed out (PoolTimeout)", False),
        (httpx.WriteTimeout("slow"), "timed out (WriteTimeout)", False),
        (httpx.ReadTimeout("slow"), "timed out (ReadTimeout)", True),
        (httpx.ConnectError("refused"), "connection failed (ConnectError)", False),
        (httpx.WriteError("broken"), "connection failed (WriteError)", False),
        (httpx.ReadError("reset"), "connection failed (ReadError)", True),
        (httpx.RemoteProtocolError("eof"), "connection failed (RemoteProtocolError)", True),
        (httpx.LocalProtocolError("bad"), "connection failed (LocalProtocolError)", False),
        (httpx.ProxyError("proxy"), "connection failed (ProxyError)", False),
        (httpx.UnsupportedProtocol("ftp"), "connection failed (UnsupportedProtocol)", False),
    ],
)
def test_no_answer_is_retried_and_says_whether_the_upstream_may_have_acted(
    error: httpx.TransportError, reason: str, may_have_acted: bool
) -> None:
    """A failure after the request went out (a read timeout, a dropped connection) may follow
    an effect upstream; one before it (connect, pool, write) cannot."""
    assert classify(error, now=never) == Retry(
        reason, status=None, retry_after=None, may_have_acted=may_have_acted
    )


@given(
    status=st.integers(min_value=100, max_value=999),
    retry_after=st.none() | st.text(max_size=40),
)
def test_every_status_and_retry_after_has_one_decision_and_a_wait_never_negative(
    status: int, retry_after: str | None
) -> None:
    decision: Decision = classify(answer(status, retry_after), now=at_now)
    assert isinstance(decision, Accept | Retry | Reject | GiveUp)
    if isinstance(decision, Retry):
        assert decision.status == status
        assert decision.retry_after is None or decision.retry_after >= 0


# ---- issue 25: a `Retry-After` is clamped before any arithmetic, by one parser ---------------


def test_finding_2_a_retry_after_of_400_digits_is_the_top_of_the_range_not_infinity() -> None:
    decision = classify(answer(503, "9" * 400), now=at_now)
    assert decision == Retry("answered HTTP 503", status=503, retry_after=RETRY_AFTER_MAX_SECONDS)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("100000000000000000000", RETRY_AFTER_MAX_SECONDS),
        ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_MAX_SECONDS),
        ("3600", 3600),
        ("3601", RETRY_AFTER_MAX_SECONDS),
        ("Mon, 23 Nov 2026 12:00:00 GMT", 0),
    ],
)
def test_finding_10_the_retry_after_we_pass_on_is_within_the_documented_range(
    header: str, seconds: int
) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_a_repeated_retry_after_is_read_value_by_value_and_the_longest_wait_wins() -> None:
    repeated = httpx.Response(
        503,
        headers=[
            (b"Retry-After", b"Mon, 23 Nov 2026 12:00:30 GMT"),
            (b"Retry-After", b"soon"),
            (b"Retry-After", b"7"),
        ],
    )
    assert classify(repeated, now=at_now) == Retry("answered HTTP 503", status=503, retry_after=30)


def test_a_date_retry_after_with_a_fraction_of_a_second_left_rounds_up_to_a_whole_second() -> None:
    assert parse_retry_after("Mon, 23 Nov 2026 12:00:01 GMT", now=NOW.replace(microsecond=1)) == 1


RETRY_AFTER_TEXT = (
    st.text(max_size=40)
    | st.integers(min_value=-(10**6), max_value=10**30).map(str)
    | st.text(alphabet="0123456789", min_size=1, max_size=400)
    | st.datetimes(
        min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(9999, 12, 31),  # noqa: DTZ001 - the zone is `timezones`
        timezones=st.just(UTC),
    ).map(format_datetime)
    | st.floats(allow_nan=True, allow_infinity=True).map(str)
)


@given(value=st.none() | RETRY_AFTER_TEXT)
def test_the_app_and_its_client_read_every_retry_after_alike_within_the_range(
    value: str | None,
) -> None:
    """The typed client keeps its own copy of the parser (it installs without `shared`): both
    give the same answer for any header, always a whole number of seconds in range."""
    ours = parse_retry_after(value, now=NOW)
    assert ours == client_core.parse_retry_after(value, now=NOW)
    assert ours is None or (isinstance(ours, int) and 0 <= ours <= RETRY_AFTER_MAX_SECONDS)


def test_the_client_reads_retry_after_into_the_same_range_as_the_app() -> None:
    assert client_core.RETRY_AFTER_MAX_SECONDS == RETRY_AFTER_MAX_SECONDS


@pytest.mark.parametrize("given_wait", [float("inf"), 1e300, float("nan"), -5.0, 1e20])
def test_finding_2_an_unavailable_upstream_tells_the_caller_a_bounded_whole_wait(
    given_wait: float,
) -> None:
    """However the error was built, its wait is bounded, so the answer's arithmetic cannot
    fail (`math.ceil(inf)` was our 500)."""
    error = UpstreamUnavailable("down", upstream="d3", attempts=1, retry_after=given_wait)
    assert isinstance(error.retry_after, int)
    assert 0 <= error.retry_after <= RETRY_AFTER_MAX_SECONDS
    problem = from_error(error)
    assert problem.retry_after is not None
    assert 1 <= problem.retry_after <= RETRY_AFTER_MAX_SECONDS
