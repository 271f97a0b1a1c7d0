"""A local stand-in for the Azure Functions host: serves a v2-model ``FunctionApp`` over ASGI.

One concern, the host's side of an invocation: index the app's functions, route a request to
one, convert the request and the answer as the worker does; templates live in
:mod:`local.routing`, the queue poller in :mod:`local.queues`.

The host knows nothing about any particular app. It reads the metadata every function carries
(``Function.get_function_json()``, the same document the Python worker hands the real host),
and for every ``httpTrigger`` it serves ``/{routePrefix}/{route}`` on a starlette
:class:`~starlette.routing.Router` the way the Functions host does:

* ``routePrefix`` comes from ``host.json`` (``extensions.http.routePrefix``, default ``api``);
* route templates are literal segments and ``{name}`` parameters (see :mod:`local.routing`),
  matched case-insensitively, literal segments before parameters, whatever order the functions
  were registered in;
* the request reaches the handler as an ``azure.functions.HttpRequest`` built as the worker
  builds it: lower-cased headers and query names with repeated values joined by ``,``, query
  parameters with empty values dropped from ``params`` (the host does so for the Python
  worker; ``url`` keeps the query string as sent, so ``?dryRun`` is read from there), route
  values as strings, the raw body bytes;
* ``authLevel`` is enforced with the keys given to :class:`LocalHost`: ``function`` accepts the
  function key or the master key, ``admin`` only the master key, from the ``x-functions-key``
  header or else the ``code`` query parameter; a missing or wrong key is a bare 401. The key
  is the first ``x-functions-key`` header line (or ``code`` value) compared whole, as the
  Functions host's ``AuthenticationLevelHandler`` takes ``values.First()``: ``key,zzz`` is
  not ``key``;
* the body is read before dispatch, on every route (anonymous ones included), within a size
  limit (``max_body_bytes``: by default ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` from the
  environment, the Functions host's own setting, else 100 MB, Azure's default; a bare 413) and
  a time limit (a body that stops arriving before its ``Content-Length`` is a bare 408, as
  Kestrel answers a body that arrives too slowly);
* a handler that raises becomes a bare 500 and its exception is logged;
* one INFO line per request: method, path as sent, percent-encoded (so ``%0A`` cannot start a
  forged log line; never the query string, which may hold ``code``) and cut at 256
  characters, status, duration.

The host's own answers (401, 404, 405, 408, 413, 500) have empty bodies, as Azure's do.

Handlers get their trigger argument and nothing else: a function that asks for another binding
(a named HTTP output, a queue output) or a parameter no binding fills (``context``) is refused
at start-up with :class:`UnsupportedBindingError`.

Deliberate differences from Azure: a path that matches a route whose methods exclude the
request's method answers 405 with ``Allow`` (the methods of the most specific matching
template; Azure answers 404); a body over the limit is a bare 413 (Azure's host answers 500
when its ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` is exceeded, azure-functions-host#10519);
``functionTimeout`` is not enforced. Queue-triggered functions are
collected in :attr:`LocalHost.queue_functions`; :class:`local.queues.QueueRunner` polls their
queues and runs them (``make run`` starts it from ``on_startup``). Functions with other triggers
are skipped with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import azure.functions as func
from azure.functions.http import HttpRequest as WorkerHttpRequest
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Router, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

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
# Set by the host from the response itself; a handler's own values would contradict it.
_HOP_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_CLIENT_CLOSED = 499
# Azure Functions: "The HTTP request length is limited to 100 MB (104,857,600 bytes)"
# (learn.microsoft.com, azure-functions/functions-bindings-http-webhook-trigger#limits).
MAX_REQUEST_BODY_BYTES = 104_857_600
# The host's setting that changes that limit (azure-functions-host#7204, PR #7229).
BODY_SIZE_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"
BODY_TIMEOUT_SECONDS = 10.0
# Characters a logged path keeps as they are; everything else is percent-encoded.
_LOGGABLE_PATH = "/%:@!$&'()*+,;=-._~"
_LOGGED_PATH_CHARS = 256
_BODILESS = frozenset({HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED})


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


@dataclass(frozen=True, slots=True)
class _HttpFunction:
    route: HttpRoute
    template: RouteTemplate
    handler: Callable[..., Any]
    request_name: str


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


def _refuse_other_bindings(name: str, handler: Callable[..., Any], trigger: str) -> None:
    """Handlers get their trigger argument only; anything more is refused, not left unset."""
    try:
        parameters = set(inspect.signature(handler).parameters)
    except (TypeError, ValueError):
        return
    if unfilled := sorted(parameters - {trigger}):
        raise UnsupportedBindingError(
            f"function {name!r}: the local host passes only {trigger!r}, not {unfilled}"
        )


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
    for binding in others:
        is_return = _binding_kind(binding) == _HTTP_OUTPUT and binding.get("name") == _RETURN
        if not is_return:
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
    return _HttpFunction(served, template, handler, str(trigger["name"]))


def _queue_function(
    name: str,
    handler: Callable[..., Any],
    trigger: Mapping[str, Any],
    others: Sequence[Mapping[str, Any]],
) -> QueueFunction:
    if others:
        raise UnsupportedBindingError(
            f"function {name!r}: the local host runs queue triggers without other bindings"
        )
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
    )


def _index(app: func.FunctionRegister) -> list[func.Function]:
    """``app.get_functions()``, callable more than once per app.

    The library remembers every name it indexed in ``functions_bindings`` to reject duplicates,
    so a second call on the same app fails on the first name. The worker indexes once per
    process; here the app may already have been indexed (a route printer, an earlier host), so
    the memo is cleared first. Duplicates within the app are still rejected.
    """
    app.functions_bindings = None
    return app.get_functions()


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


def _raw_path(scope: Scope) -> bytes:
    raw: bytes = scope.get("raw_path") or quote(str(scope["path"])).encode()
    return raw


def _request_url(scope: Scope, headers: Mapping[str, str]) -> str:
    """``{scheme}://{host}{path}{?query}`` with the path as sent (still percent-encoded)."""
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    query: bytes = scope.get("query_string", b"")
    path = _raw_path(scope).split(b"?", 1)[0].decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (
        f"?{query.decode('latin-1')}" if query else ""
    )


def body_limit(environ: Mapping[str, str] = os.environ) -> int:
    """The request body limit the Functions host applies: ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT``
    (bytes) when set, else Azure's 100 MB."""
    raw = environ.get(BODY_SIZE_LIMIT_SETTING, "").strip()
    if not raw:
        return MAX_REQUEST_BODY_BYTES
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ValueError(f"{BODY_SIZE_LIMIT_SETTING} must be a positive number of bytes")
    return int(raw)


def _presented_key(
    raw_headers: Iterable[tuple[bytes, bytes]], query: Sequence[tuple[str, str]]
) -> str | None:
    """The first ``x-functions-key`` header line, whole, wins when present, even if empty;
    otherwise the first ``code`` value. Read from the header lines as sent, not from the
    ``,``-joined value the handler gets: one line ``key,zzz`` is not the key."""
    header = FUNCTIONS_KEY_HEADER.encode()
    sent = next((value for name, value in raw_headers if name.lower() == header), None)
    if sent is not None:
        return sent.decode("latin-1").strip()
    return next((value for name, value in query if name.casefold() == CODE_QUERY_PARAMETER), None)


class _BodyRefused(Exception):
    """The request body was not read: too large (413) or too slow (408)."""

    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


async def _read_body(request: Request, *, max_bytes: int, within: float) -> bytes:
    """The whole request body; `ClientDisconnect` when the client goes away first.

    Raises `_BodyRefused` for a body over ``max_bytes`` (declared or sent) or one that has not
    fully arrived within ``within`` seconds.
    """
    declared = request.headers.get("content-length", "").split(",", 1)[0].strip()
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise _BodyRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within), contextlib.aclosing(request.stream()) as stream:
            async for chunk in stream:
                size += len(chunk)
                if size > max_bytes:
                    raise _BodyRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                chunks.append(chunk)
    except TimeoutError as exc:
        raise _BodyRefused(HTTPStatus.REQUEST_TIMEOUT) from exc
    return b"".join(chunks)


def _bare(status: int, headers: Mapping[str, str] | None = None) -> Response:
    """One of the host's own answers: a status and an empty body, as Azure's are."""
    return Response(b"", status_code=status, headers=headers)


def _content_type(response: func.HttpResponse) -> str:
    mimetype = str(response.mimetype)
    if mimetype.startswith("text/"):
        return f"{mimetype}; charset={response.charset}"
    return mimetype


def _response(result: object, *, head: bool) -> Response:
    """The handler's answer as the worker's http converter sends it (repeated headers kept)."""
    if isinstance(result, str):
        result = func.HttpResponse(result, mimetype="text/plain", charset="utf-8")
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
    response = Response(bytes(result.get_body()), status_code=status)  # sets Content-Length
    response.raw_headers = [*headers, *response.raw_headers]
    if head or status < 200 or status in _BODILESS:
        response.body = b""
    return response


async def _invoke(target: _HttpFunction, request: func.HttpRequest) -> object:
    handler = target.handler
    if inspect.iscoroutinefunction(handler):
        return await handler(**{target.request_name: request})
    return await asyncio.to_thread(handler, **{target.request_name: request})


def _loggable_path(scope: Scope) -> str:
    """The path as sent, percent-encoded (a decoded ``%0A`` would start a forged log line) and
    cut at ``_LOGGED_PATH_CHARS`` characters."""
    path = quote(_raw_path(scope).split(b"?", 1)[0], safe=_LOGGABLE_PATH)
    if len(path) <= _LOGGED_PATH_CHARS:
        return path
    return f"{path[:_LOGGED_PATH_CHARS]}…({len(path)} chars)"


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await WebSocketClose()(scope, receive, send)
    else:
        await _bare(HTTPStatus.NOT_FOUND)(scope, receive, send)


# --------------------------------------------------------------------------- the host

Serve = Callable[[Request, _HttpFunction], Awaitable[Response]]


class _TemplateRoute(BaseRoute):
    """The functions served on one route template, tried in registration order.

    A path that fits the template is a full match when one of them takes the method, and a
    partial one otherwise: the router then answers from the first partial match (a 405) only
    when no other template takes the request.
    """

    def __init__(
        self, template: RouteTemplate, functions: Sequence[_HttpFunction], serve: Serve
    ) -> None:
        self.template = template
        self.functions = tuple(functions)
        self._serve = serve
        self._app = request_response(self._endpoint)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        values = self.template.match(split_path(_raw_path(scope)))
        if values is None:
            return Match.NONE, {}
        method = str(scope["method"])
        taken = any(function.route.allows(method) for function in self.functions)
        return (Match.FULL if taken else Match.PARTIAL), {"path_params": values}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _endpoint(self, request: Request) -> Response:
        method = request.method
        target = next((f for f in self.functions if f.route.allows(method)), None)
        if target is None:
            allowed = dict.fromkeys(m for f in self.functions for m in f.route.methods or ())
            return _bare(HTTPStatus.METHOD_NOT_ALLOWED, {"allow": ", ".join(allowed)})
        return await self._serve(request, target)


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
        max_body_bytes: int | None = None,
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
        self._max_body_bytes = body_limit() if max_body_bytes is None else max_body_bytes
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
                continue
            _refuse_other_bindings(name, handler, str(trigger["name"]))

        self.http_routes: tuple[HttpRoute, ...] = tuple(f.route for f in http_functions)
        self.queue_functions: tuple[QueueFunction, ...] = tuple(queue_functions)
        self._router = Router(
            routes=_template_routes(http_functions, self._serve),
            redirect_slashes=False,
            default=_not_found,
            lifespan=self._lifespan,
        )

    @property
    def asgi(self) -> ASGIApp:
        """The ASGI 3 application (the host itself); serve it at the server's root."""
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._router(scope, receive, observed)
        except ClientDisconnect:
            status = _CLIENT_CLOSED
        finally:
            logger.info(
                "%s %s %d %.1fms",
                scope["method"],
                _loggable_path(scope),
                HTTPStatus.INTERNAL_SERVER_ERROR if status is None else status,
                (time.perf_counter() - started) * 1000,
            )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: object) -> AsyncIterator[None]:
        for hook in self._on_startup:
            await hook()
        yield
        for hook in self._on_shutdown:
            await hook()

    async def _serve(self, request: Request, target: _HttpFunction) -> Response:
        raw_headers = request.headers.raw
        headers = _joined(
            ((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers), fold=str.lower
        )
        query_string: bytes = request.scope.get("query_string", b"")
        query = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        if not self._authorized(target.route.auth_level, _presented_key(raw_headers, query)):
            return _bare(HTTPStatus.UNAUTHORIZED)
        try:
            body = await _read_body(
                request, max_bytes=self._max_body_bytes, within=self._body_timeout
            )
        except _BodyRefused as refused:
            return _bare(refused.status, {"connection": "close"})
        worker_request = WorkerHttpRequest(
            method=request.method,
            url=_request_url(request.scope, headers),
            headers=headers,
            params={k: v for k, v in _joined(query, fold=str).items() if v},
            route_params=request.path_params,
            body_type="bytes",
            body=body,
        )
        try:
            return _response(await _invoke(target, worker_request), head=request.method == "HEAD")
        except Exception:
            logger.exception("Function %s failed", target.route.function_name)
            return _bare(HTTPStatus.INTERNAL_SERVER_ERROR)

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


def _template_routes(functions: Iterable[_HttpFunction], serve: Serve) -> list[BaseRoute]:
    """One route per template (the same text in any case is one template), most specific first:
    ASP.NET tries literal segments before parameters; ties go to the template text."""
    by_template: dict[str, list[_HttpFunction]] = {}
    for function in functions:
        by_template.setdefault(function.template.text.casefold(), []).append(function)
    groups = sorted(by_template.items(), key=lambda item: (item[1][0].template.precedence, item[0]))
    return [_TemplateRoute(group[0].template, group, serve) for _, group in groups]
