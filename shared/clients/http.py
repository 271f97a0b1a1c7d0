"""The resilient sender every upstream client uses: pooled client, pacing, retries, redaction.

- One `httpx.AsyncClient` per upstream (pooled, explicit timeouts), built by the upstream client.
- Pacing (`shared.clients.pacing`): with a `pacer`, at most its rate of requests leave in any
  rolling second (D3 documents 50/s), so bulk work stays under the limit instead of provoking
  429s; a caller below the limit never waits.
- Retries (stamina): what `shared.clients.classify` decides is a `Retry` (connect errors,
  timeouts, 408, 429, 500, 502, 503, 504) - exponential backoff with jitter, `Retry-After`
  (seconds or HTTP-date, clamped by the parser) honored and capped. Never 400/401/403/404/422.
  A 2xx whose body its client cannot read (`Unreadable`: HTML, a member the decision needs
  mistyped, over the size cap) is retried too, as an ambiguous send: the upstream may have
  acted, as after a lost answer.
- One deadline per call (`RetryPolicy.budget_seconds`, RETRY_BUDGET_SECONDS): connect, every
  read, every wait for a pacing permit or between retries, and every retry end when it fires
  (an answer trickled one byte at a time cannot hold a call past it), and the pacing permit
  in hand is given back. Each attempt's httpx timeouts are bounded by what remains of it.
- Bodies: an answer is read as a stream of at most `max_body_bytes` (MAX_UPSTREAM_BODY_BYTES)
  on the wire, then decoded (gzip, deflate: the codings we ask for) to at most as many bytes;
  past either cap, or undecodable, the body is not used (a 2xx is then unreadable, any other
  status is decided on its status alone).
- Every attempt is logged with its number, method, path (no query), status and duration, and
  every retry with its upstream, the attempt that failed, why and the wait (`shared.retrying`,
  which replaces stamina's bare `stamina.retry_scheduled` line and names the retry after the
  call each failure carries; stamina loads with the first retry). Headers and bodies are never
  logged.
- Every attempt is a dependency span carrying its `traceparent` upstream, and every pacing wait
  a metric (`shared.telemetry`), around one attempt here, whatever the transport.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar, overload

import httpx

from incident_link_api.base import Upstream
from incident_link_api.outcome import PreparedRequest
from shared import retrying, telemetry
from shared.clients.bounds import DEFAULT_MAX_UPSTREAM_BODY_BYTES
from shared.clients.classify import Accept, FinalDecision, Reject, Retry, classify
from shared.clients.pacing import Pacer
from shared.clients.reading import Unreadable
from shared.clients.transport import POOL_LIMITS
from shared.errors import (
    UpstreamAuthRejected,
    UpstreamError,
    UpstreamRejected,
    UpstreamUnavailable,
)

logger = logging.getLogger(__name__)

MASK = "***"
USER_AGENT = "incident-link-actions/0.1"
ACCEPT_ENCODING = "gzip, deflate"  # what `_decoded` reads, within the cap; nothing else
T = TypeVar("T")


class MaskedAuth(Protocol):
    """An `httpx.Auth` that can also say which headers it sets, with their values masked."""

    def masked_headers(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one upstream call. Built from settings, shared by every client."""

    attempts: int = 5
    budget_seconds: float = 60.0
    initial_wait_seconds: float = 0.5
    max_wait_seconds: float = 10.0
    retry_after_cap_seconds: float = 30.0


class _Transient(Exception):
    """One failed attempt that may succeed if tried again: its `Retry` decision, and the call it
    failed in (`upstream=... METHOD /path`), which names the retry in our retry log line."""

    def __init__(self, decision: Retry, *, call: str) -> None:
        super().__init__(decision.reason)
        self.decision = decision
        self.reason = decision.reason  # what `shared.retrying.log_retry` says failed
        self.call = call


@dataclass(frozen=True)
class RetryDecider:
    """stamina backoff hook for one call: retry or not, and how long to wait.

    Returns False (give up), True (stamina's jittered exponential backoff) or a float (the
    upstream's `Retry-After`, capped). Gives up when the wait would overrun the budget.
    """

    policy: RetryPolicy
    deadline: float
    clock: Callable[[], float]

    def __call__(self, exc: Exception) -> bool | float:
        if not isinstance(exc, _Transient):
            return False
        remaining = self.deadline - self.clock()
        retry_after = exc.decision.retry_after
        if retry_after is not None:
            wait = min(retry_after, self.policy.retry_after_cap_seconds)
            return wait if wait < remaining else False
        return remaining > self.policy.max_wait_seconds


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing. Every upstream call authenticates itself; a cookie one
    answer set must not ride along on the next call (which may be another caller's). Also
    saves the jar's per-response parsing, which is most of a request's bookkeeping in httpx."""

    def extract_cookies(self, response: httpx.Response) -> None:  # noqa: ARG002 - kept none
        return None


class _CookielessClient(httpx.AsyncClient):
    """`httpx.AsyncClient` without a cookie jar (see `_NoCookies`)."""

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:  # noqa: ARG002 - refused
        raise TypeError("upstream clients keep no cookies")


@dataclass(frozen=True)
class Delivered(Generic[T]):
    """An upstream answer that is not a transient failure, what it is (`classify`'s decision:
    `Accept`, `Reject` or `GiveUp`), what the client's reader made of it (`reply`, for an
    `Accept` when `send` was given a reader) and how many attempts it took."""

    response: httpx.Response
    decision: FinalDecision
    attempts: int
    may_have_acted: bool = False  # an earlier attempt went out and lost its answer
    reply: T | None = None

    @property
    def accepted(self) -> bool:
        """A 2xx, for the upstream's client to read; anything else becomes `error_for`'s error."""
        return isinstance(self.decision, Accept)


@dataclass
class _Progress:
    """How far one call got, for the answer when its deadline fires mid-attempt."""

    attempts: int = 0
    may_have_acted: bool = False  # an attempt went out and lost its answer
    in_flight: bool = False  # an attempt is between its send and the end of its answer
    last: str = "no attempt was made"
    status: int | None = None


class _BodyUnusable(Exception):
    """The body of an answer is not used: over the cap, or not decodable."""


class ResilientHttp:
    """Sends requests to one upstream through one pooled `httpx.AsyncClient`."""

    def __init__(
        self,
        *,
        upstream: Upstream,
        base_url: str,
        auth: httpx.Auth,
        policy: RetryPolicy,
        timeout: httpx.Timeout,
        pacer: Pacer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rate_limit_per_second: float | None = None,
        max_body_bytes: int = DEFAULT_MAX_UPSTREAM_BODY_BYTES,
    ) -> None:
        """`pacer` paces every attempt (None: unpaced). `rate_limit_per_second` is the older
        spelling of `pacer=Pacer(rate)`, kept while callers outside this package move over;
        giving both is an error, so a client's pace is set in one place. `max_body_bytes`
        caps an answer's body on the wire and after decoding."""
        self.upstream: Upstream = upstream
        self._policy = policy
        self._max_body_bytes = max_body_bytes
        self._timeout = timeout
        self._clock = clock
        self._wall_clock = wall_clock
        if rate_limit_per_second is not None:
            if pacer is not None:
                raise TypeError("give a pacer or a rate_limit_per_second, not both")
            pacer = Pacer(rate_limit_per_second)
        self._pacer = pacer
        self._client = _CookielessClient(
            base_url=base_url,
            auth=auth,
            timeout=timeout,
            limits=POOL_LIMITS,  # for httpx's default transport; a given one has its own
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
        )
        # Resolving a path against the base URL parses both; a client sees few paths (one per
        # route and workspace), so each is resolved once.
        self._url_for = lru_cache(maxsize=256)(self._resolve)

    @property
    def base_url(self) -> httpx.URL:
        return self._client.base_url

    def build(
        self, method: str, path: str, *, json: Any, headers: Mapping[str, str] | None = None
    ) -> httpx.Request:
        """Build a request relative to the base URL; `path` must already be encoded."""
        return self._client.build_request(method, self._url_for(path), json=json, headers=headers)

    def _resolve(self, path: str) -> httpx.URL:
        """`path` under the base URL, as httpx joins them (base path + path, no dot-segment
        resolution): `workspaces/x` under `https://h/api/v2/` is `https://h/api/v2/workspaces/x`."""
        base = self._client.base_url
        return base.copy_with(raw_path=base.raw_path + httpx.URL(path).raw_path.lstrip(b"/"))

    @overload
    async def send(self, request: httpx.Request) -> Delivered[None]: ...
    @overload
    async def send(
        self, request: httpx.Request, read: Callable[[httpx.Response], T]
    ) -> Delivered[T]: ...
    async def send(
        self, request: httpx.Request, read: Callable[[httpx.Response], T] | None = None
    ) -> Delivered[T] | Delivered[None]:
        """Send with pacing and retries, within the call's one deadline. Raises
        `UpstreamUnavailable` when retries run out or the deadline fires. `read` turns an
        accepted answer into the client's reply; an `Unreadable` from it is retried as an
        ambiguous send (the upstream may have acted).

        Most calls are answered on the first attempt, which is made without building stamina's
        retry state (about 70 µs and some 50 objects in reference cycles a call, which the
        garbage collector then has to find); only a transient failure goes on to `_retry`."""
        budget = self._policy.budget_seconds
        progress = _Progress()
        scope = asyncio.timeout(budget)
        try:
            async with scope:
                return await self._send(request, read, self._clock() + budget, progress)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise UpstreamUnavailable(
                f"{self.upstream} gave no usable answer within the {budget:g} s budget "
                f"(RETRY_BUDGET_SECONDS), {progress.attempts} attempt(s); last: {progress.last}",
                upstream=self.upstream,
                attempts=progress.attempts,
                status=progress.status,
                may_have_acted=progress.may_have_acted or progress.in_flight,
            ) from exc

    async def _send(
        self,
        request: httpx.Request,
        read: Callable[[httpx.Response], T] | None,
        deadline: float,
        progress: _Progress,
    ) -> Delivered[T]:
        try:
            response, decision, reply = await self._attempt(request, 1, deadline, read, progress)
        except _Transient as failed:
            return await self._retry(request, failed, deadline, read, progress)
        return Delivered(response, decision, 1, progress.may_have_acted, reply)

    async def _retry(
        self,
        request: httpx.Request,
        first: _Transient,
        deadline: float,
        read: Callable[[httpx.Response], T] | None,
        progress: _Progress,
    ) -> Delivered[T]:
        """Attempts after a transient first failure, through stamina. stamina is handed that
        failure as its own first attempt, so whether to retry, the wait, the retry log line and
        the attempt numbers are what they would be had stamina made the first attempt itself.
        stamina loads here, with the first retry (`shared.retrying`, which names each retry
        after the call its failure carries)."""
        import stamina  # noqa: PLC0415 - a call answered at once never needs it

        retrying.use_our_retry_log()
        attempts = 1
        replay: _Transient | None = first
        try:
            async for attempt in stamina.retry_context(
                on=RetryDecider(self._policy, deadline, self._clock),
                attempts=self._policy.attempts,
                timeout=self._policy.budget_seconds,  # a backstop: `send` keeps the deadline
                wait_initial=self._policy.initial_wait_seconds,
                wait_max=self._policy.max_wait_seconds,
                wait_jitter=self._policy.initial_wait_seconds,
            ):
                with attempt:
                    if replay is not None:
                        failed, replay = replay, None
                        raise failed
                    attempts += 1
                    response, decision, reply = await self._attempt(
                        request, attempts, deadline, read, progress
                    )
                    return Delivered(response, decision, attempts, progress.may_have_acted, reply)
        except _Transient as exc:
            raise UpstreamUnavailable(
                f"{self.upstream} unavailable after {attempts} attempt(s): {exc.reason}",
                upstream=self.upstream,
                attempts=attempts,
                status=exc.decision.status,
                retry_after=exc.decision.retry_after,
                may_have_acted=progress.may_have_acted,
            ) from exc
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        request: httpx.Request,
        number: int,
        deadline: float,
        read: Callable[[httpx.Response], T] | None,
        progress: _Progress,
    ) -> tuple[httpx.Response, FinalDecision, T | None]:
        if self._pacer is None:
            return await self._attempt_now(request, number, deadline, read, progress)
        # The permit is given back when the block exits, however: answered, failed, or cut
        # off by the call's deadline (a cancellation).
        async with self._pacer.slot() as waited:
            telemetry.record_rate_wait(self.upstream, waited)
            return await self._attempt_now(request, number, deadline, read, progress)

    async def _attempt_now(
        self,
        request: httpx.Request,
        number: int,
        deadline: float,
        read: Callable[[httpx.Response], T] | None,
        progress: _Progress,
    ) -> tuple[httpx.Response, FinalDecision, T | None]:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise self._transient(request, Retry("retry budget spent"), progress)
        request.extensions["timeout"] = _bounded(self._timeout, remaining).as_dict()
        with telemetry.upstream_attempt(
            self.upstream,
            method=request.method,
            url=str(request.url),
            headers=request.headers,
            number=number,
        ) as span:
            return await self._exchange(request, number, span, read, progress)

    async def _exchange(
        self,
        request: httpx.Request,
        number: int,
        span: telemetry.AttemptSpan,
        read: Callable[[httpx.Response], T] | None,
        progress: _Progress,
    ) -> tuple[httpx.Response, FinalDecision, T | None]:
        """One request and its answer, told to the attempt's span and the log, and what it means
        (`classify`, then the client's `read` of a 2xx): a `Retry` is raised for the send loop,
        any other decision returned."""
        started = self._clock()
        progress.attempts, progress.in_flight = number, True
        try:
            response, unusable = await self._receive(request)
        except httpx.TransportError as exc:
            progress.in_flight = False
            span.failed(type(exc).__name__)
            timed_out = isinstance(exc, httpx.TimeoutException)
            self._log(request, number, "timeout" if timed_out else type(exc).__name__, started)
            raise self._transient(request, classify(exc, now=self._wall_clock), progress) from exc
        progress.in_flight, progress.status = False, response.status_code
        span.answered(response.status_code, response.headers)
        self._log(request, number, str(response.status_code), started)
        decision = classify(response, now=self._wall_clock)
        if isinstance(decision, Retry):
            raise self._transient(request, decision, progress)
        if not isinstance(decision, Accept):
            return response, decision, None
        problem, reply = unusable, None
        if problem is None and read is not None:
            try:
                reply = read(response)
            except Unreadable as exc:
                problem = str(exc)
        if problem is not None:
            ambiguous = Retry(
                f"answered HTTP {response.status_code} with a body that is not the documented "
                f"shape ({problem}); it may have acted",
                status=response.status_code,
                may_have_acted=True,
            )
            raise self._transient(request, ambiguous, progress)
        return response, decision, reply

    async def _receive(self, request: httpx.Request) -> tuple[httpx.Response, str | None]:
        """Send `request` and read its answer within the body caps: the answer with its
        decoded body, and why the body was not used (None when it was)."""
        streamed = await self._client.send(request, stream=True)
        try:
            body, unusable = await _capped_body(streamed, self._max_body_bytes), None
        except _BodyUnusable as exc:
            body, unusable = b"", str(exc)
        finally:
            await streamed.aclose()
            # httpx's answer and its stream refer to each other, which would leave every answer
            # (its request, headers and the transport's response) to the cycle collector.
            streamed.stream = _NO_BODY
        answer = httpx.Response(
            streamed.status_code,
            headers=[(k, v) for k, v in streamed.headers.raw if k.lower() not in _BODY_HEADERS],
            content=body,
            request=request,
            extensions={k: v for k, v in streamed.extensions.items() if k in _ANSWER_EXTENSIONS},
        )
        return answer, unusable

    def _transient(
        self, request: httpx.Request, decision: Retry, progress: _Progress
    ) -> _Transient:
        progress.may_have_acted = progress.may_have_acted or decision.may_have_acted
        progress.last, progress.status = decision.reason, decision.status
        return _Transient(
            decision, call=f"upstream={self.upstream} {request.method} {request.url.path}"
        )

    def _log(self, request: httpx.Request, number: int, result: str, started: float) -> None:
        logger.info(
            "upstream=%s attempt=%d %s %s -> %s in %.0f ms",
            self.upstream,
            number,
            request.method,
            request.url.path,
            result,
            (self._clock() - started) * 1000,
        )

    def describe(self, request: httpx.Request, auth: MaskedAuth) -> PreparedRequest:
        """The request as it would leave, credentials masked, for a dry run. Sends nothing."""
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in {"content-length", "host", "accept-encoding", "connection"}
        }
        headers.update(auth.masked_headers())
        body = json.loads(request.content) if request.content else None
        return PreparedRequest(
            method=request.method, url=str(request.url), headers=headers, body=body
        )

    async def aclose(self) -> None:
        await self._client.aclose()


_NO_BODY = httpx.ByteStream(b"")
# Headers that describe the body as it came on the wire, not the decoded body we keep.
_BODY_HEADERS = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})
_ANSWER_EXTENSIONS = frozenset({"http_version", "reason_phrase"})
_GZIP = zlib.MAX_WBITS | 16
_ZLIB = zlib.MAX_WBITS
_RAW_DEFLATE = -zlib.MAX_WBITS


async def _capped_body(response: httpx.Response, limit: int) -> bytes:
    """The body of a streamed `response`, decoded, or `_BodyUnusable` once it passes `limit`
    bytes on the wire or decoded (reading stops there), or cannot be decoded."""
    try:  # an answer its transport already read (`httpx.MockTransport` in tests): decoded
        content = response.content
    except httpx.ResponseNotRead:
        pass
    else:
        if len(content) > limit:
            raise _BodyUnusable(f"over the {limit}-byte cap (MAX_UPSTREAM_BODY_BYTES)")
        return content
    declared = response.headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise _BodyUnusable(f"declares more than the {limit}-byte cap (MAX_UPSTREAM_BODY_BYTES)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            raise _BodyUnusable(f"over the {limit}-byte cap (MAX_UPSTREAM_BODY_BYTES)")
        chunks.append(chunk)
    return _decoded(b"".join(chunks), response.headers, limit)


def _decoded(raw: bytes, headers: httpx.Headers, limit: int) -> bytes:
    """`raw` undone of its `Content-Encoding` codings (last applied, first undone), never more
    than `limit` bytes at any step (a gzip bomb stops at the cap, not in memory)."""
    codings = [
        coding.strip().lower()
        for value in headers.get_list("content-encoding")
        for coding in value.split(",")
        if coding.strip()
    ]
    body = raw
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in {"gzip", "x-gzip"}:
            body = _inflated(body, _GZIP, limit)
        elif coding == "deflate":
            try:  # a zlib stream, as RFC 9110 says; some servers send raw deflate
                body = _inflated(body, _ZLIB, limit)
            except _BodyUnusable:
                body = _inflated(body, _RAW_DEFLATE, limit)
        else:
            raise _BodyUnusable("has a Content-Encoding this client did not ask for")
    return body


def _inflated(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
        if len(out) <= limit and not inflater.unconsumed_tail:
            out += inflater.flush()
    except zlib.error as exc:
        raise _BodyUnusable("is not validly compressed") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise _BodyUnusable(f"inflates past the {limit}-byte cap (MAX_UPSTREAM_BODY_BYTES)")
    if not inflater.eof:
        raise _BodyUnusable("is cut short (compressed stream incomplete)")
    return out


def _bounded(timeout: httpx.Timeout, remaining: float) -> httpx.Timeout:
    def cap(value: float | None) -> float:
        return remaining if value is None else min(value, remaining)

    return httpx.Timeout(
        connect=cap(timeout.connect),
        read=cap(timeout.read),
        write=cap(timeout.write),
        pool=cap(timeout.pool),
    )


def error_for(
    delivered: Delivered[Any],
    *,
    upstream: Upstream,
    message: str,
    code: str | None = None,
    request_id: str | None = None,
    errors: Mapping[str, list[str]] | None = None,
) -> UpstreamError:
    """The typed error for a non-2xx answer that retries did not (or may not) fix."""
    status = delivered.response.status_code
    text = f"{upstream} answered HTTP {status}: {message}"
    match delivered.decision:
        case Reject(auth=auth):
            rejected = UpstreamAuthRejected if auth else UpstreamRejected
            return rejected(
                text,
                upstream=upstream,
                attempts=delivered.attempts,
                status=status,
                code=code,
                request_id=request_id,
                errors=errors,
            )
        case _:
            return UpstreamUnavailable(
                text, upstream=upstream, attempts=delivered.attempts, status=status
            )
