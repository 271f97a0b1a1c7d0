"""What one attempt's outcome means (`shared.clients.classify`), as a table: every status
family, every `Retry-After` form, every transport failure. Pure: no client, no transport."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.clients.classify import (
    Accept,
    Decision,
    GiveUp,
    Reject,
    Retry,
    classify,
)

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
        ("7", 7.0),
        (" 0 ", 0.0),
        ("120", 120.0),
        ("Mon, 23 Nov 2026 12:00:30 GMT", 30.0),
        ("Mon, 23 Nov 2026 12:00:30 -0000", 30.0),  # no zone given: read as UTC
        ("Mon, 23 Nov 2026 13:00:30 +0100", 30.0),
        ("Mon, 23 Nov 2026 11:59:00 GMT", 0.0),  # a date gone by: no wait, never negative
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
    header: str, seconds: float | None
) -> None:
    decision = classify(answer(503, header), now=at_now)
    assert decision == Retry("answered HTTP 503", status=503, retry_after=seconds)


def test_a_429_carries_its_retry_after() -> None:
    assert classify(answer(429, "2"), now=at_now) == Retry(
        "answered HTTP 429", status=429, retry_after=2.0
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
