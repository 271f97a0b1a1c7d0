"""A local stand-in for the Azure Functions host: serves a v2-model ``FunctionApp`` over ASGI.

The host knows nothing about any particular app. It reads the metadata every function carries
(``Function.get_function_json()``, the same document the Python worker hands the real host),
and for every ``httpTrigger`` it serves ``/{routePrefix}/{route}`` the way the Functions host
does:

* ``routePrefix`` comes from ``host.json`` (``extensions.http.routePrefix``, default ``api``);
* route templates are ASP.NET Core templates (see :mod:`local.routing`), matched
  case-insensitively, literal segments before constrained parameters before parameters before
  catch-alls, whatever order the functions were registered in;
* the request reaches the handler as an ``azure.functions.HttpRequest`` built as the worker
  builds it: lower-cased headers and query names with repeated values joined by ``,``, query
  parameters with empty values dropped from ``params`` (the host does so for the Python
  worker; ``url`` keeps the query string as sent, so ``?dryRun`` is read from there), route
  values as strings, the raw body bytes;
* ``authLevel`` is enforced with the keys given to :class:`LocalHost`: ``function`` accepts the
  function key or the master key, ``admin`` only the master key, from the ``x-functions-key``
  header or else the ``code`` query parameter; a missing or wrong key is a bare 401;
* the body is read before dispatch, within a size limit (100 MB, Azure's HTTP request length
  limit: a bare 413) and a time limit (a body that stops arriving before its
  ``Content-Length`` is a bare 408, as Kestrel answers a body that arrives too slowly);
* a handler that raises becomes a bare 500 and its exception is logged;
* one INFO line per request: method, path as sent, percent-encoded (so ``%0A`` cannot start a
  forged log line; never the query string, which may hold ``code``), status, duration.

The host's own answers (401, 404, 405, 408, 413, 500) have empty bodies, as Azure's do.

Deliberate differences from Azure: a path that matches a route whose methods exclude the
request's method answers 405 with ``Allow`` (Azure answers 404); ``functionTimeout`` is not
enforced. Queue-triggered functions are collected in :attr:`LocalHost.queue_functions` for a
poller to run; nothing polls them yet. Functions with other triggers are skipped with a warning.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, quote

import azure.functions as func
from azure.functions._abc import RetryContext, TraceContext
from azure.functions.http import HttpRequest as WorkerHttpRequest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from local.routing import RouteTemplate, split_path

__all__ = [
    "CODE_QUERY_PARAMETER",
    "DEFAULT_ROUTE_PREFIX",
    "FUNCTIONS_KEY_HEADER",
    "HttpRoute",
    "LocalHost",
    "QueueFunction",
    "UnsupportedBindingError",
    "load_host_json",
    "route_prefix_from",
]

logger = logging.getLogger(__name__)

FUNCTIONS_KEY_HEADER = "x-functions-key"
CODE_QUERY_PARAMETER = "code"
DEFAULT_ROUTE_PREFIX = "api"

_HTTP_TRIGGER = "httptrigger"
_HTTP_OUTPUT = "http"
_QUEUE_TRIGGER = "queuetrigger"
_RETURN = "$return"
_CONTEXT_PARAMETER = "context"
# Set by the host from the response itself; a handler's own values would contradict it.
_HOP_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_CLIENT_CLOSED = 499
# Azure Functions: "The HTTP request length is limited to 100 MB (104,857,600 bytes)"
# (learn.microsoft.com, azure-functions/functions-bindings-http-webhook-trigger#limits).
MAX_REQUEST_BODY_BYTES = 104_857_600
BODY_TIMEOUT_SECONDS = 10.0
# Characters a logged path keeps as they are; everything else is percent-encoded.
_LOGGABLE_PATH = "/%:@!$&'()*+,;=-._~"
_BODILESS = frozenset({HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED})

T = TypeVar("T")


class UnsupportedBindingError(ValueError):
    """A function declares a binding this local host cannot provide."""


# --------------------------------------------------------------------------- host.json


def load_host_json(path: Path) -> dict[str, Any]:
    """Parse ``host.json``; it must hold a JSON object."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise TypeError(f"{path} must hold a JSON object")
    return document


def _get_ignoring_case(mapping: Mapping[str, Any], key: str) -> Any:
    """The Functions host reads its configuration case-insensitively."""
    folded = key.casefold()
    return next((value for name, value in mapping.items() if name.casefold() == folded), None)


def route_prefix_from(host_json: Mapping[str, Any]) -> str:
    """``extensions.http.routePrefix`` without surrounding slashes; ``api`` when unset."""
    section: Any = host_json
    for key in ("extensions", "http"):
        section = _get_ignoring_case(section, key) if isinstance(section, Mapping) else None
    prefix = _get_ignoring_case(section, "routePrefix") if isinstance(section, Mapping) else None
    if prefix is None:
        return DEFAULT_ROUTE_PREFIX
    if not isinstance(prefix, str):
        raise TypeError("host.json extensions.http.routePrefix must be a string")
    return prefix.strip("/")


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """One HTTP-triggered function as served; ``methods`` is ``None`` when any method goes."""

    function_name: str
    route: str
    path: str
    methods: tuple[str, ...] | None
    auth_level: func.AuthLevel

    def allows(self, method: str) -> bool:
        return self.methods is None or method.upper() in self.methods


@dataclass(frozen=True, slots=True)
class QueueFunction:
    """A queue-triggered function, kept for a poller: ``handler(**{arg_name: message})``."""

    function_name: str
    queue_name: str
    connection: str | None
    arg_name: str
    handler: Callable[..., Any]
    bindings: tuple[Mapping[str, Any], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _HttpFunction:
    route: HttpRoute
    template: RouteTemplate
    handler: Callable[..., Any]
    request_name: str
    response_name: str
    wants_context: bool


def _binding_kind(binding: Mapping[str, Any]) -> str:
    return str(binding.get("type", "")).casefold()


def _auth_level(raw: object) -> func.AuthLevel:
    """``"FUNCTION"`` (v2 metadata) or ``"function"`` (function.json); unset means FUNCTION."""
    if raw is None:
        return func.AuthLevel.FUNCTION
    wanted = str(raw).casefold()
    for level in func.AuthLevel:
        if wanted in {level.name.casefold(), str(level.value).casefold()}:
            return level
    raise ValueError(f"unknown authLevel {raw!r}")


def _methods(raw: object) -> tuple[str, ...] | None:
    if not raw:
        return None
    if not isinstance(raw, list):
        raise TypeError(f"httpTrigger methods must be a list, not {raw!r}")
    return tuple(dict.fromkeys(str(method).upper() for method in raw))


def _declares_context(handler: Callable[..., Any], binding_names: Iterable[str]) -> bool:
    try:
        parameters = inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False
    return _CONTEXT_PARAMETER in parameters and _CONTEXT_PARAMETER not in set(binding_names)


def _full_template(prefix: str, route: str) -> str:
    route = route.strip("/")
    return "/".join(part for part in (prefix, route) if part)


def _http_function(
    name: str,
    handler: Callable[..., Any],
    trigger: Mapping[str, Any],
    others: Sequence[Mapping[str, Any]],
    prefix: str,
) -> _HttpFunction:
    response_name = _RETURN
    for binding in others:
        direction = str(binding.get("direction", "")).upper()
        if _binding_kind(binding) == _HTTP_OUTPUT and direction == "OUT":
            response_name = str(binding["name"])
        else:
            raise UnsupportedBindingError(
                f"function {name!r}: the local host cannot provide a {binding.get('type')!r}"
                f" binding ({binding.get('name')!r})"
            )
    route = trigger.get("route")
    route = name if route is None else str(route)
    template = RouteTemplate(_full_template(prefix, route))
    served = HttpRoute(
        function_name=name,
        route=route,
        path="/" + template.text,
        methods=_methods(trigger.get("methods")),
        auth_level=_auth_level(trigger.get("authLevel")),
    )
    names = [str(trigger["name"]), *(str(b["name"]) for b in others)]
    return _HttpFunction(
        route=served,
        template=template,
        handler=handler,
        request_name=str(trigger["name"]),
        response_name=response_name,
        wants_context=_declares_context(handler, names),
    )


# --------------------------------------------------------------------------- worker objects


class _Out(func.Out[T], Generic[T]):
    """What the worker passes for an output binding that is not ``$return``."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, val: T) -> None:
        self._value = val

    def get(self) -> T:
        return self._value  # type: ignore[return-value]  # unset reads as None, as in the worker


class _TraceContext(TraceContext):
    def __init__(self, trace_parent: str, trace_state: str) -> None:
        self._parent, self._state = trace_parent, trace_state

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def trace_state(self) -> str:
        return self._state

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class _Context(func.Context):
    """The ``context`` argument, for handlers that declare one."""

    def __init__(self, function_name: str, invocation_id: str, trace: _TraceContext) -> None:
        self._function_name = function_name
        self._invocation_id = invocation_id
        self._trace = trace
        self._local = threading.local()
        self._local.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return str(Path.cwd())

    @property
    def trace_context(self) -> _TraceContext:
        return self._trace

    @property
    def retry_context(self) -> _RetryContext:
        return _RetryContext()


# --------------------------------------------------------------------------- request / response


def _joined(pairs: Iterable[tuple[str, str]], *, fold: Callable[[str], str]) -> dict[str, str]:
    """Repeated names collapse into one entry, values joined by ``,`` (``StringValues``)."""
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        key = name.casefold()
        names.setdefault(key, fold(name))
        values.setdefault(key, []).append(value)
    return {names[key]: ",".join(found) for key, found in values.items()}


def _request_headers(scope: Scope) -> dict[str, str]:
    raw: list[tuple[bytes, bytes]] = scope.get("headers", [])
    return _joined(
        ((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw), fold=str.lower
    )


def _query_pairs(scope: Scope) -> list[tuple[str, str]]:
    query: bytes = scope.get("query_string", b"")
    return parse_qsl(query.decode("latin-1"), keep_blank_values=True)


def _request_url(scope: Scope, raw_path: bytes, headers: Mapping[str, str]) -> str:
    """``{scheme}://{host}{path}{?query}`` with the path as sent (still percent-encoded)."""
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    query: bytes = scope.get("query_string", b"")
    path = raw_path.split(b"?", 1)[0].decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (
        f"?{query.decode('latin-1')}" if query else ""
    )


def _presented_key(headers: Mapping[str, str], query: Sequence[tuple[str, str]]) -> str | None:
    """The header wins when present, even if empty; otherwise the first ``code`` value."""
    if FUNCTIONS_KEY_HEADER in headers:
        return headers[FUNCTIONS_KEY_HEADER].split(",", 1)[0]
    return next((value for name, value in query if name.casefold() == CODE_QUERY_PARAMETER), None)


def _content_type(response: func.HttpResponse) -> str:
    mimetype = str(response.mimetype)
    if mimetype.startswith("text/"):
        return f"{mimetype}; charset={response.charset}"
    return mimetype


def _encode_response(result: object) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers (repeated names kept) and body, as the worker's http converter sends."""
    if isinstance(result, str):
        return 200, [(b"content-type", b"text/plain; charset=utf-8")], result.encode()
    if not isinstance(result, func.HttpResponse):
        raise TypeError(
            f"an HTTP function must return azure.functions.HttpResponse or str,"
            f" not {type(result).__name__}"
        )
    status = int(result.status_code)
    if not 100 <= status <= 599:
        raise ValueError(f"invalid HTTP status code {status}")
    pairs: list[tuple[str, str]] = list(result.headers.items())
    headers = [
        (name.lower().encode("latin-1"), str(value).encode("latin-1")) for name, value in pairs
    ]
    headers = [(name, value) for name, value in headers if name not in _HOP_HEADERS]
    if not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", _content_type(result).encode("latin-1")))
    return status, headers, bytes(result.get_body())


class _BodyRefused(Exception):
    """The request body was not read: too large (413) or too slow (408)."""

    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


async def _read_body(
    receive: Receive, headers: Mapping[str, str], *, max_bytes: int, within: float
) -> bytes | None:
    """The whole request body, or ``None`` when the client went away first.

    Raises `_BodyRefused` for a body over ``max_bytes`` (declared or sent) or one that has not
    fully arrived within ``within`` seconds.
    """
    declared = headers.get("content-length", "").split(",", 1)[0].strip()
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise _BodyRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    raise _BodyRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError as exc:
        raise _BodyRefused(HTTPStatus.REQUEST_TIMEOUT) from exc


def _loggable_path(scope: Scope) -> str:
    """The path as sent, percent-encoded: a decoded ``%0A`` would start a forged log line."""
    raw: bytes = scope.get("raw_path") or str(scope["path"]).encode()
    return quote(raw.split(b"?", 1)[0], safe=_LOGGABLE_PATH)


async def _send(
    send: Send,
    status: int,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    *,
    head: bool = False,
) -> None:
    bodiless = status < 200 or status in _BODILESS
    length = [] if bodiless else [(b"content-length", str(len(body)).encode())]
    start: Message = {"type": "http.response.start", "status": status}
    await send({**start, "headers": [*headers, *length]})
    await send({"type": "http.response.body", "body": b"" if head or bodiless else body})


# --------------------------------------------------------------------------- the host


class LocalHost:
    """Serves ``app``'s HTTP triggers as the Functions host would; an ASGI 3 app (:attr:`asgi`)."""

    def __init__(
        self,
        app: func.FunctionRegister,
        *,
        host_json: Mapping[str, Any],
        function_key: str,
        master_key: str | None = None,
        on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
        on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
        max_body_bytes: int = MAX_REQUEST_BODY_BYTES,
        body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
    ) -> None:
        if not function_key:
            raise ValueError("function_key must not be empty")
        if master_key is not None and not master_key:
            raise ValueError("master_key must not be empty (pass None for no master key)")
        self._function_key = function_key.encode()
        self._master_key = None if master_key is None else master_key.encode()
        self._on_startup = tuple(on_startup)
        self._on_shutdown = tuple(on_shutdown)
        self._max_body_bytes = max_body_bytes
        self._body_timeout = body_timeout_seconds
        self.route_prefix = route_prefix_from(host_json)

        http_functions: list[_HttpFunction] = []
        queue_functions: list[QueueFunction] = []
        for function in _index(app):
            handler = function.get_user_function()
            name = function.get_function_name() or handler.__name__
            document = json.loads(function.get_function_json())
            bindings: list[Mapping[str, Any]] = list(document.get("bindings", []))
            triggers = [b for b in bindings if _binding_kind(b).endswith("trigger")]
            if len(triggers) != 1:
                raise ValueError(f"function {name!r} must have exactly one trigger")
            trigger = triggers[0]
            others = [b for b in bindings if b is not trigger]
            kind = _binding_kind(trigger)
            if kind == _HTTP_TRIGGER:
                http_functions.append(
                    _http_function(name, handler, trigger, others, self.route_prefix)
                )
            elif kind == _QUEUE_TRIGGER:
                queue_functions.append(_queue_function(name, handler, trigger, others))
            else:
                logger.warning(
                    "Function %s has a %s trigger, which the local host does not run",
                    name,
                    trigger.get("type"),
                )

        self.http_routes: tuple[HttpRoute, ...] = tuple(f.route for f in http_functions)
        self.queue_functions: tuple[QueueFunction, ...] = tuple(queue_functions)
        # ASP.NET tries more specific templates first; ties go to the template text.
        self._http = sorted(
            http_functions, key=lambda f: (f.template.precedence, f.template.text.casefold())
        )

    @property
    def asgi(self) -> ASGIApp:
        """The ASGI 3 application (the host itself); serve it at the server's root."""
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self._on_startup, self._on_shutdown)
            return
        if scope["type"] != "http":
            await receive()
            await send({"type": "websocket.close", "code": 1000})
            return
        started = time.perf_counter()
        status = HTTPStatus.INTERNAL_SERVER_ERROR.value
        try:
            status = await self._serve(scope, receive, send)
        finally:
            logger.info(
                "%s %s %d %.1fms",
                scope["method"],
                _loggable_path(scope),
                status,
                (time.perf_counter() - started) * 1000,
            )

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> int:
        method = str(scope["method"]).upper()
        head = method == "HEAD"
        raw_path: bytes = scope.get("raw_path") or quote(str(scope["path"])).encode()
        segments = split_path(raw_path)

        target: _HttpFunction | None = None
        route_values: dict[str, str] = {}
        allowed: dict[str, None] = {}
        for candidate in self._http:
            values = candidate.template.match(segments)
            if values is None:
                continue
            if candidate.route.allows(method):
                target, route_values = candidate, values
                break
            allowed.update(dict.fromkeys(candidate.route.methods or ()))
        if target is None:
            if allowed:
                allow = ", ".join(allowed).encode()
                await _send(send, HTTPStatus.METHOD_NOT_ALLOWED, [(b"allow", allow)], head=head)
                return HTTPStatus.METHOD_NOT_ALLOWED
            await _send(send, HTTPStatus.NOT_FOUND, head=head)
            return HTTPStatus.NOT_FOUND

        headers = _request_headers(scope)
        query = _query_pairs(scope)
        if not self._authorized(target.route.auth_level, _presented_key(headers, query)):
            await _send(send, HTTPStatus.UNAUTHORIZED, head=head)
            return HTTPStatus.UNAUTHORIZED

        try:
            body = await _read_body(
                receive, headers, max_bytes=self._max_body_bytes, within=self._body_timeout
            )
        except _BodyRefused as refused:
            await _send(send, refused.status, [(b"connection", b"close")], head=head)
            return refused.status
        if body is None:
            return _CLIENT_CLOSED
        request = WorkerHttpRequest(
            method=method,
            url=_request_url(scope, raw_path, headers),
            headers=headers,
            params={k: v for k, v in _joined(query, fold=str).items() if v},
            route_params=route_values,
            body_type="bytes",
            body=body,
        )
        try:
            status, response_headers, response_body = await _invoke(target, request, headers)
        except Exception:
            logger.exception("Function %s failed", target.route.function_name)
            await _send(send, HTTPStatus.INTERNAL_SERVER_ERROR, head=head)
            return HTTPStatus.INTERNAL_SERVER_ERROR
        await _send(send, status, response_headers, response_body, head=head)
        return status

    def _authorized(self, level: func.AuthLevel, presented: str | None) -> bool:
        if level is func.AuthLevel.ANONYMOUS:
            return True
        if presented is None:
            return False
        accepted = [self._master_key]
        if level is func.AuthLevel.FUNCTION:
            accepted.append(self._function_key)
        offered = presented.encode()
        # Compare against every accepted key, so timing does not tell which one matched.
        results = [hmac.compare_digest(offered, key) for key in accepted if key is not None]
        return any(results)


def _index(app: func.FunctionRegister) -> list[func.Function]:
    """``app.get_functions()``, callable more than once per app.

    The library remembers every name it indexed in ``functions_bindings`` to reject duplicates,
    so a second call on the same app fails on the first name. The worker indexes once per
    process; here the app may already have been indexed (a route printer, an earlier host), so
    the memo is cleared first. Duplicates within the app are still rejected.
    """
    app.functions_bindings = None
    return app.get_functions()


def _queue_function(
    name: str,
    handler: Callable[..., Any],
    trigger: Mapping[str, Any],
    others: Sequence[Mapping[str, Any]],
) -> QueueFunction:
    queue_name = _get_ignoring_case(trigger, "queueName")
    if not queue_name:
        raise ValueError(f"function {name!r}: queueTrigger has no queueName")
    connection = _get_ignoring_case(trigger, "connection")
    return QueueFunction(
        function_name=name,
        queue_name=str(queue_name),
        connection=None if connection is None else str(connection),
        arg_name=str(trigger["name"]),
        handler=handler,
        bindings=tuple(others),
    )


async def _invoke(
    target: _HttpFunction, request: func.HttpRequest, headers: Mapping[str, str]
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    kwargs: dict[str, Any] = {target.request_name: request}
    out: _Out[Any] | None = None
    if target.response_name != _RETURN:
        out = _Out()
        kwargs[target.response_name] = out
    if target.wants_context:
        trace_parent = headers.get("traceparent") or (
            f"00-{uuid.uuid4().hex}-{secrets.token_hex(8)}-00"
        )
        trace = _TraceContext(trace_parent, headers.get("tracestate", ""))
        kwargs[_CONTEXT_PARAMETER] = _Context(target.route.function_name, str(uuid.uuid4()), trace)
    handler = target.handler
    if inspect.iscoroutinefunction(handler):
        result = await handler(**kwargs)
    else:
        result = await asyncio.to_thread(handler, **kwargs)
    return _encode_response(out.get() if out is not None else result)


async def _lifespan(
    receive: Receive,
    send: Send,
    on_startup: Sequence[Callable[[], Awaitable[None]]],
    on_shutdown: Sequence[Callable[[], Awaitable[None]]],
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            for hook in on_startup:
                await hook()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for hook in on_shutdown:
                await hook()
            await send({"type": "lifespan.shutdown.complete"})
            return
