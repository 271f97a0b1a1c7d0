"""`AsyncClient`: the asynchronous client, on `httpx.AsyncClient`.

`Client` (`_sync.py`) is generated from this file by `tools/generate_sync_client.py` (with
`unasync`), and `make lint` checks it is current: edit this file, then run
`.venv/bin/python tools/generate_sync_client.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import monotonic  # by name: unasync turns `import asyncio` into `import time`
from types import TracebackType
from typing import Any, Self

import httpx
import stamina

from incident_link_actions_client import _core
from incident_link_actions_client._core import (
    Action,
    Pending,
    RemoveRequest,
    Retry,
    RetryHook,
    RetryOptions,
    UnlinkRequest,
)
from incident_link_actions_client.errors import StillPending
from incident_link_api.outcome import Outcome


class AsyncClient:
    """Calls the Incident Link Actions app. Methods take and return the app's own models.

    `base_url` is the app's `…/api`; `key` its function key (sent as `x-functions-key`). Every
    action call carries an `Idempotency-Key` (yours, or a fresh one) that the client's own
    retries of that call reuse, so a lost answer never acts twice. A 202 is followed to its
    `Location`, waiting what `Retry-After` says, for at most `max_wait_seconds`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        key: str | None = None,
        timeout: float = 60.0,
        retry: RetryOptions | None = None,
        max_wait_seconds: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: _core.AsyncSleep = asyncio.sleep,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        headers = {_core.FUNCTION_KEY_HEADER: key} if key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._retry = retry or RetryOptions()
        self._max_wait = max_wait_seconds
        self._sleep = sleep
        self._clock = clock

    @property
    def base_url(self) -> httpx.URL:
        return self._http.base_url

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- actions ------------------------------------------------------------------------------

    async def unlink_ticket(
        self,
        request: UnlinkRequest,
        *,
        dry_run: bool = False,
        respond_async: bool = False,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Unlink the service ticket of one incident, or of each (a sequence is one bulk call)."""
        return await self._act(
            "unlink_ticket",
            request,
            dry_run,
            respond_async=respond_async,
            wait=wait,
            idempotency_key=idempotency_key,
        )

    async def remove_linked_incidents(
        self,
        request: RemoveRequest,
        *,
        dry_run: bool = False,
        respond_async: bool = False,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Remove links from a D3 source incident (a sequence is one bulk call)."""
        return await self._act(
            "remove_linked_incidents",
            request,
            dry_run,
            respond_async=respond_async,
            wait=wait,
            idempotency_key=idempotency_key,
        )

    async def operation(self, operation_id: str, *, wait: bool = False) -> Outcome:
        """An operation's Outcome; with `wait`, once it is final (pending otherwise)."""
        answer = await self._read(
            self._http.build_request("GET", _core.operation_path(operation_id))
        )
        if isinstance(answer, Pending):
            return await self._follow(answer) if wait else answer.outcome
        return answer

    # ---- documents ----------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """`GET health`: 200 or 503, both with a JSON report naming settings (never values)."""
        response = await self._send(self._http.build_request("GET", "health"))
        return _core.document(response, allowed={200, 503})

    async def openapi(self, *, swagger: bool = False) -> dict[str, Any]:
        """The OpenAPI 3.1 document, or with `swagger` the Swagger 2.0 one."""
        path = "swagger.json" if swagger else "openapi.json"
        response = await self._send(self._http.build_request("GET", path))
        return _core.document(response, allowed={200})

    # ---- the machinery ------------------------------------------------------------------------

    async def _act(
        self,
        action: Action,
        request: UnlinkRequest | RemoveRequest,
        dry_run: bool,  # noqa: FBT001 - private
        *,
        respond_async: bool,
        wait: bool,
        idempotency_key: str | None,
    ) -> Outcome:
        built = _core.action_request(
            self._http,
            action,
            _core.body_of(request),
            idempotency_key=idempotency_key or _core.new_idempotency_key(),
            dry_run=dry_run,
            respond_async=respond_async,
        )
        answer = await self._read(built)
        if isinstance(answer, Pending):
            return await self._follow(answer) if wait else answer.outcome
        return answer

    async def _read(self, request: httpx.Request) -> Outcome | Pending:
        return _core.read(await self._send(request), base_url=self._http.base_url)

    async def _follow(self, pending: Pending) -> Outcome:
        deadline = self._clock() + self._max_wait
        while True:
            if self._clock() + pending.retry_after > deadline:
                raise StillPending(
                    f"operation {pending.outcome.operation_id} still pending after "
                    f"{self._max_wait:g} s; poll {pending.location}",
                    outcome=pending.outcome,
                )
            await self._sleep(pending.retry_after)
            answer = await self._read(self._http.build_request("GET", pending.location))
            if not isinstance(answer, Pending):
                return answer
            pending = answer

    async def _send(self, request: httpx.Request) -> httpx.Response:
        options = self._retry
        try:
            async for attempt in stamina.retry_context(
                on=RetryHook(options),
                attempts=options.attempts,
                timeout=options.budget_seconds,
                wait_initial=options.initial_wait_seconds,
                wait_max=options.max_wait_seconds,
                wait_jitter=options.initial_wait_seconds,
            ):
                with attempt:
                    try:
                        response = await self._http.send(request)
                    except httpx.TransportError as exc:
                        raise Retry(cause=exc) from exc
                    return _core.check_transient(response)
        except Retry as exc:
            raise _core.gave_up(exc) from exc
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover
