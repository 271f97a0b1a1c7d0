"""The resilient client on httpx.MockTransport: what it retries, waits for and hides."""

from __future__ import annotations

import asyncio
import gc
import gzip
import logging
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import quote
from uuid import UUID

import httpx
import pytest
import stamina
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from incident_link_api.commands import RemoveLinkedIncidents, UnlinkTicket
from incident_link_api.contraforce import IncidentReference
from shared.clients import registry
from shared.clients.auth import BasicCredential, D3ApiKeyCredential
from shared.clients.classify import Retry, parse_retry_after
from shared.clients.contraforce import ContraForceClient
from shared.clients.d3 import D3Client
from shared.clients.http import ResilientHttp, RetryDecider, RetryPolicy, _Transient
from shared.clients.pacing import Pacer
from shared.config import get_settings
from shared.errors import UpstreamAuthRejected, UpstreamRejected, UpstreamUnavailable

WORKSPACE = UUID("7b2d8c1e-0f4a-4c5e-9a51-2d1f0e6b9c3a")
SECRET = "s3cret-value-never-shown"
NO_WAIT = RetryPolicy(
    attempts=4,
    budget_seconds=30,
    initial_wait_seconds=0,
    max_wait_seconds=0,
    retry_after_cap_seconds=5,
)
OK = httpx.Response(200, json={"data": True, "meta": {"requestId": "r-ok"}})

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def no_real_waits() -> Iterator[None]:
    """stamina's test mode: the configured attempts, zero sleeps (waits are tested below)."""
    stamina.set_testing(True, attempts=100, cap=True)
    yield
    stamina.set_testing(False)


def scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering each request with the next response (or raising the exception)."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handle, seen


def contraforce(handler: Handler, policy: RetryPolicy = NO_WAIT) -> ContraForceClient:
    return ContraForceClient(
        "https://cf.example/api/v2",
        BasicCredential("client-id", SecretStr(SECRET)),
        policy=policy,
        timeout=httpx.Timeout(5),
        transport=httpx.MockTransport(handler),
    )


def unlink() -> UnlinkTicket:
    return UnlinkTicket(
        workspace_id=WORKSPACE,
        incident=IncidentReference.model_validate({"id": "inc-1", "workspaceId": str(WORKSPACE)}),
    )


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_transient_status_is_retried_until_success(status: int) -> None:
    handler, seen = scripted(httpx.Response(status), httpx.Response(status), OK)
    answer = await contraforce(handler).unlink_ticket(unlink())
    assert (answer.reply.data, answer.attempts, len(seen)) == (True, 3, 3)


async def test_a_call_answered_at_once_builds_no_retry_state_and_a_retry_goes_through_stamina(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    built: list[object] = []
    real = stamina.retry_context

    def counted(*args: object, **kwargs: object) -> object:
        built.append(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(stamina, "retry_context", counted)
    await contraforce(scripted(OK)[0]).unlink_ticket(unlink())
    assert built == []

    handler, seen = scripted(httpx.Response(503), OK)
    with caplog.at_level(logging.WARNING):
        answer = await contraforce(handler).unlink_ticket(unlink())
    assert (answer.attempts, len(seen), len(built)) == (2, 2, 1)
    assert "attempt=1 failed (answered HTTP 503): retrying" in caplog.text


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("reset")],
)
async def test_transport_errors_are_retried(error: Exception) -> None:
    handler, seen = scripted(error, OK)
    answer = await contraforce(handler).unlink_ticket(unlink())
    assert (answer.attempts, len(seen)) == (2, 2)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_never_retried(status: int) -> None:
    handler, seen = scripted(httpx.Response(status, json={"code": "X", "status": status}))
    with pytest.raises(UpstreamRejected):
        await contraforce(handler).unlink_ticket(unlink())
    assert len(seen) == 1


async def test_attempts_are_bounded_then_upstream_unavailable_names_the_upstream() -> None:
    handler, seen = scripted(httpx.Response(503, headers={"Retry-After": "2"}))
    with pytest.raises(UpstreamUnavailable) as caught:
        await contraforce(handler).unlink_ticket(unlink())
    assert len(seen) == NO_WAIT.attempts
    assert caught.value.upstream == "contraforce"
    assert caught.value.status == 503
    assert caught.value.retry_after == 2
    assert "contraforce unavailable after 4 attempt(s)" in caught.value.message


async def test_401_is_our_credentials_refused_and_carries_the_problem_fields() -> None:
    problem = {
        "status": "401",
        "code": "UNAUTHORIZED",
        "requestId": "req-9",
        "title": "Unauthorized",
    }
    handler, _ = scripted(httpx.Response(401, json=problem))
    with pytest.raises(UpstreamAuthRejected) as caught:
        await contraforce(handler).unlink_ticket(unlink())
    assert (caught.value.status, caught.value.code, caught.value.request_id) == (
        401,
        "UNAUTHORIZED",
        "req-9",
    )


async def test_non_json_error_page_is_still_a_typed_error() -> None:
    page = httpx.Response(404, text="<html>not here</html>", headers={"content-type": "text/html"})
    handler, _ = scripted(page)
    with pytest.raises(UpstreamRejected) as caught:
        await contraforce(handler).unlink_ticket(unlink())
    assert caught.value.status == 404


async def test_html_502_after_retries_is_upstream_unavailable() -> None:
    handler, _ = scripted(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(UpstreamUnavailable):
        await contraforce(handler).unlink_ticket(unlink())


async def test_200_with_an_undocumented_body_is_an_upstream_fault_not_a_success() -> None:
    handler, _ = scripted(httpx.Response(200, json={"data": "yes"}))
    with pytest.raises(UpstreamUnavailable, match="not the documented shape"):
        await contraforce(handler).unlink_ticket(unlink())


async def test_request_goes_to_the_settings_base_url_with_only_the_uuid_in_the_path() -> None:
    handler, seen = scripted(OK)
    await contraforce(handler).unlink_ticket(unlink())
    assert str(seen[0].url) == f"https://cf.example/api/v2/workspaces/{WORKSPACE}/tickets/unlink"
    assert seen[0].headers["authorization"].startswith("Basic ")


async def test_a_cookie_an_upstream_sets_is_not_sent_on_the_next_call() -> None:
    """Every call authenticates itself; a cookie from one answer (perhaps for another caller's
    call) must not ride along on the next."""
    with_cookie = httpx.Response(
        200,
        json={"data": True, "meta": {}},
        headers={"Set-Cookie": "ARRAffinity=abc; Path=/; Domain=cf.example"},
    )
    handler, seen = scripted(with_cookie, OK)
    client = contraforce(handler)
    await client.unlink_ticket(unlink())
    await client.unlink_ticket(unlink())
    assert [request.headers.get("cookie") for request in seen] == [None, None]


@settings(max_examples=200, deadline=None)
@given(
    base=st.sampled_from(
        [
            "https://cf.example",
            "https://cf.example/",
            "https://cf.example/api/v2",
            "https://cf.example:8443/api/v2/",
            "https://user:pw@cf.example/a%20b/",
        ]
    ),
    segments=st.lists(
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
        min_size=1,
        max_size=4,
    ),
    query=st.sampled_from(["", "?token=abc", "?a=1&b=%20"]),
)
def test_a_path_is_joined_to_the_base_url_exactly_as_httpx_joins_it(
    base: str, segments: list[str], query: str
) -> None:
    """Paths are resolved once per client and cached: the URL must be the one httpx builds."""
    path = "/".join(quote(segment, safe="") for segment in segments) + query
    http = ResilientHttp(
        upstream="contraforce",
        base_url=base,
        auth=httpx.BasicAuth("u", "p"),
        policy=NO_WAIT,
        timeout=httpx.Timeout(5),
    )
    reference = httpx.AsyncClient(base_url=base)
    assert http.build("POST", path, json={}).url == reference.build_request("POST", path).url


async def test_an_answer_is_freed_when_dropped_without_waiting_for_the_cycle_collector() -> None:
    """Cycles per call are what the collector's pauses are made of under load (bench P1)."""
    http = ResilientHttp(
        upstream="contraforce",
        base_url="https://cf.example/api/v2",
        auth=httpx.BasicAuth("u", "p"),
        policy=NO_WAIT,
        timeout=httpx.Timeout(5),
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json={"data": True})),
    )
    gc.disable()
    try:
        delivered = await http.send(http.build("POST", "tickets/unlink", json={}))
        assert delivered.response.json()["data"] is True
        answer = weakref.ref(delivered.response)
        del delivered
        assert answer() is None
    finally:
        gc.enable()
        await http.aclose()


async def test_each_attempt_timeout_is_bounded_by_the_remaining_budget() -> None:
    handler, seen = scripted(OK)
    policy = RetryPolicy(attempts=2, budget_seconds=3, initial_wait_seconds=0, max_wait_seconds=0)
    await contraforce(handler, policy).unlink_ticket(unlink())
    timeout = seen[0].extensions["timeout"]
    assert 0 < timeout["read"] <= 3
    assert 0 < timeout["connect"] <= 3


async def test_d3_sends_the_api_key_in_the_configured_header() -> None:
    handler, seen = scripted(
        httpx.Response(200, json={"error": "", "returnData": {"Status": "Successful"}})
    )
    client = D3Client(
        "https://d3.example/MainApp/VSOC/api",
        D3ApiKeyCredential("X-D3-Key", SecretStr(SECRET)),
        policy=NO_WAIT,
        timeout=httpx.Timeout(5),
        transport=httpx.MockTransport(handler),
    )
    command = RemoveLinkedIncidents(
        site="SOC", username="Admin", source_incident="1", linked_incidents=("2",)
    )
    await client.remove_linked_incidents(command)
    assert str(seen[0].url) == "https://d3.example/MainApp/VSOC/api/Command/RemoveLinkedIncidents"
    assert seen[0].headers["X-D3-Key"] == SECRET
    await client.aclose()


async def test_attempts_are_logged_with_their_number_and_never_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, _ = scripted(httpx.Response(500), OK)
    with caplog.at_level(logging.DEBUG):
        await contraforce(handler).unlink_ticket(unlink())
    attempts = [r.getMessage() for r in caplog.records if " -> " in r.getMessage()]
    assert [("attempt=1" in m, "attempt=2" in m) for m in attempts] == [
        (True, False),
        (False, True),
    ]
    assert SECRET not in caplog.text
    assert "Basic " not in caplog.text


def test_dry_run_description_masks_the_credential() -> None:
    client = contraforce(scripted(OK)[0])
    described = client.describe(client.prepare_unlink(unlink()))
    assert described.headers["Authorization"] == "Basic ***"
    assert SECRET not in described.model_dump_json()
    assert described.body == {"incident": {"id": "inc-1", "workspaceId": str(WORKSPACE)}}


# ---- the retry decision, with an injected clock ---------------------------------------------


def decider(now: float = 0.0, budget: float = 30.0) -> RetryDecider:
    return RetryDecider(NO_WAIT, deadline=budget, clock=lambda: now)


def failure(status: int, retry_after: int | None) -> _Transient:
    decision = Retry(f"answered HTTP {status}", status=status, retry_after=retry_after)
    return _Transient(decision, call="upstream=contraforce POST /x")


def test_retry_after_is_the_wait_when_it_fits_the_budget() -> None:
    assert decider()(failure(429, 2)) == 2


def test_retry_after_is_capped() -> None:
    assert decider()(failure(429, 600)) == NO_WAIT.retry_after_cap_seconds


def test_no_retry_when_retry_after_would_overrun_the_budget() -> None:
    assert decider(now=28.0)(failure(429, 3)) is False


def test_backoff_retry_only_while_budget_remains() -> None:
    assert decider(now=10.0)(failure(503, None)) is True
    assert decider(now=30.0)(failure(503, None)) is False


def test_other_exceptions_are_not_retried() -> None:
    assert decider()(ValueError("bug")) is False


NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("Mon, 23 Nov 2026 12:00:30 GMT", 30.0),
        ("Mon, 23 Nov 2026 11:59:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_parses_seconds_and_http_dates(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


# ---- issue 25: one deadline per call, bodies read within a cap -------------------------------


class Trickle(httpx.AsyncByteStream):
    """A body sent `chunk` by `chunk`, `pause` seconds apart; counts what was pulled."""

    def __init__(self, chunks: list[bytes], pause: float = 0.0) -> None:
        self.chunks = chunks
        self.pause = pause
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if self.pause:
                await asyncio.sleep(self.pause)
            self.pulled += len(chunk)
            yield chunk


def streamed(status: int, body: Trickle, **headers: str) -> Handler:
    def handle(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, stream=body)

    return handle


async def test_finding_3_a_body_trickled_past_the_budget_ends_the_call_and_frees_its_permit() -> (
    None
):
    """Headers at once, then one byte at a time: each read is quick, so only the call's own
    deadline can end it. It ends the call (never an answer read whole after the budget) and
    gives the pacing permit back. No clock is asserted: the body is 40 bytes 0.1 s apart, the
    budget 0.5 s, so a call that read it whole would have pulled every byte and succeeded."""
    body = Trickle([bytes([b]) for b in b'{"data": true, "pad": "' + b" " * 14 + b'"}'], 0.1)
    pacer = Pacer(1)
    client = ContraForceClient(
        "https://cf.example/api/v2",
        BasicCredential("client-id", SecretStr(SECRET)),
        policy=RetryPolicy(attempts=3, budget_seconds=0.5, initial_wait_seconds=0),
        timeout=httpx.Timeout(5),
        pacer=pacer,
        transport=httpx.MockTransport(streamed(200, body)),
    )
    with pytest.raises(UpstreamUnavailable, match=r"within the 0\.5 s budget") as caught:
        await client.unlink_ticket(unlink())
    assert body.pulled < len(b"".join(body.chunks))
    assert caught.value.may_have_acted  # its headers came: the request had gone out
    assert pacer.out == 0
    await client.aclose()


async def test_the_deadline_also_ends_a_wait_for_a_pacing_permit() -> None:
    pacer = Pacer(1)
    slow = Trickle([b"{}"], pause=5)
    client = ContraForceClient(
        "https://cf.example/api/v2",
        BasicCredential("client-id", SecretStr(SECRET)),
        policy=RetryPolicy(attempts=1, budget_seconds=0.3),
        timeout=httpx.Timeout(5),
        pacer=pacer,
        transport=httpx.MockTransport(streamed(200, slow)),
    )
    first = asyncio.ensure_future(client.unlink_ticket(unlink()))
    await asyncio.sleep(0)
    with pytest.raises(UpstreamUnavailable, match="0 attempt"):
        await client.unlink_ticket(unlink())  # waits in line behind the first for the permit
    with pytest.raises(UpstreamUnavailable):
        await first
    assert (pacer.out, pacer.waiting) == (0, 0)
    await client.aclose()


def padded_ok(size: int) -> bytes:
    """A valid success answer of `size` bytes or more (the padding is an extra member)."""
    return b'{"data": true, "pad": "' + b" " * size + b'"}'


async def test_finding_11_a_gzip_body_that_inflates_past_the_cap_is_an_upstream_failure() -> None:
    """20 KB on the wire, 20 MB inflated, a valid `data: true` inside: read whole it was
    accepted; past the decompression cap it is an unreadable answer, retried as one that may
    have acted, and never inflated further than the cap."""
    bomb = gzip.compress(padded_ok(20 * 1_048_576))
    body = Trickle([bomb])
    client = ContraForceClient(
        "https://cf.example/api/v2",
        BasicCredential("client-id", SecretStr(SECRET)),
        policy=NO_WAIT,
        timeout=httpx.Timeout(5),
        transport=httpx.MockTransport(streamed(200, body, **{"Content-Encoding": "gzip"})),
    )
    with pytest.raises(UpstreamUnavailable, match="inflates past the 1048576-byte cap") as caught:
        await client.unlink_ticket(unlink())
    assert caught.value.may_have_acted
    await client.aclose()


async def test_finding_11_a_body_past_the_size_cap_is_not_read_whole() -> None:
    chunks = [padded_ok(4 * 1_048_576)[i : i + 65_536] for i in range(0, 4 * 1_048_576, 65_536)]
    body = Trickle(chunks)
    client = ContraForceClient(
        "https://cf.example/api/v2",
        BasicCredential("client-id", SecretStr(SECRET)),
        policy=RetryPolicy(attempts=1, budget_seconds=30),
        timeout=httpx.Timeout(5),
        transport=httpx.MockTransport(streamed(200, body)),
        max_body_bytes=1_048_576,
    )
    with pytest.raises(UpstreamUnavailable, match="over the 1048576-byte cap"):
        await client.unlink_ticket(unlink())
    assert body.pulled <= 1_048_576 + 65_536
    await client.aclose()


async def test_a_refusal_whose_body_is_past_the_cap_is_decided_on_its_status() -> None:
    bomb = gzip.compress(b"{" + b" " * (8 * 1_048_576) + b"}")
    handler = streamed(404, Trickle([bomb]), **{"Content-Encoding": "gzip"})
    with pytest.raises(UpstreamRejected) as caught:
        await contraforce(handler).unlink_ticket(unlink())
    assert caught.value.status == 404


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
        ("identity", lambda data: data),
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),
    ],
)
async def test_a_compressed_answer_within_the_cap_is_read(
    encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    payload = encode(b'{"data": true, "meta": {"requestId": "r-z"}}')
    handler = streamed(200, Trickle([payload[:3], payload[3:]]), **{"Content-Encoding": encoding})
    answer = await contraforce(handler).unlink_ticket(unlink())
    assert (answer.reply.data, answer.request_id) == (True, "r-z")


@pytest.mark.parametrize(
    ("encoding", "payload"),
    [
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(b'{"data": true}')[:-12]),  # cut short
        ("br", b"\x0b\x02\x80{}\x03"),  # a coding we never ask for
    ],
)
async def test_an_answer_that_cannot_be_decoded_is_unreadable_not_a_crash(
    encoding: str, payload: bytes
) -> None:
    handler = streamed(200, Trickle([payload]), **{"Content-Encoding": encoding})
    with pytest.raises(UpstreamUnavailable, match="not the documented shape"):
        await contraforce(handler).unlink_ticket(unlink())


async def test_we_ask_only_for_the_codings_we_read_within_the_cap() -> None:
    handler, seen = scripted(OK)
    await contraforce(handler).unlink_ticket(unlink())
    assert seen[0].headers["accept-encoding"] == "gzip, deflate"


def test_max_upstream_body_bytes_is_the_cap_both_clients_are_built_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_UPSTREAM_BODY_BYTES", "4096")
    assert registry.client_options(get_settings(), "d3")["max_body_bytes"] == 4096
