"""A programmable hostile upstream on real loopback HTTP: raw asyncio, on a thread of its own.

Each request it receives takes the next `Behaviour` of the plan (the last one again once the
plan runs out) and is answered exactly as that says, byte by byte: any status line, repeated
or garbage `Retry-After` lines, any body and `Content-Encoding`, a delay before the headers, a
body trickled chunk by chunk, a connection dropped before the headers, in the middle of the
body or after it. Every request is logged with its behaviour and whether its answer was
written whole (`Seen`), so a test can say what the client was told.

No HTTP library is used on this side: a library would refuse to send most of what this sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal, cast

Reset = Literal["none", "before_headers", "mid_body", "after_body"]
NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True)
class Body:
    """An answer's body as sent, and what a 2xx carrying it means for each item (`meaning`:
    success, nothing, permanent, or unreadable)."""

    content: bytes
    meaning: tuple[str, ...]
    content_type: str = "application/json"
    content_encoding: str | None = None
    label: str = ""


@dataclass(frozen=True)
class Behaviour:
    status: int
    body: Body
    retry_after: tuple[bytes, ...] = ()
    delay: float = 0.0  # before the status line
    trickle: float = 0.0  # between body chunks
    chunk: int = 65_536
    reset: Reset = "none"

    @property
    def pace_seconds(self) -> float:
        """How long this answer takes to send, at the least."""
        chunks = max(1, -(-len(self.body.content) // self.chunk))
        return self.delay + (self.trickle * chunks if self.trickle else 0.0)


@dataclass
class Seen:
    """One request as the fake upstream received it, and how far its answer got."""

    behaviour: Behaviour
    finished: bool = False  # every byte of the answer was handed to the socket


@dataclass
class _Program:
    plan: tuple[Behaviour, ...] = ()
    seen: list[Seen] = field(default_factory=list)


class FakeUpstream:
    """Serve on 127.0.0.1 (a free port) until `close`; `program` a plan before each call."""

    def __init__(self) -> None:
        self._program = _Program()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake upstream did not start")
        server = cast("asyncio.Server", self._server)  # set by the thread before `_ready`
        self.port: int = server.sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def program(self, plan: tuple[Behaviour, ...]) -> list[Seen]:
        """Answer the next requests by `plan`; returns the log they will be written to."""
        self._program = _Program(plan)
        return self._program.seen

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.set_write_buffer_limits(0)  # drain() returns once the kernel has it
        try:
            while await _read_request(reader):
                program = self._program  # a request from an earlier call is logged there
                behaviour = program.plan[min(len(program.seen), len(program.plan) - 1)]
                seen = Seen(behaviour)
                program.seen.append(seen)
                if not await _answer(writer, behaviour, seen):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            writer.transport.abort()


async def _read_request(reader: asyncio.StreamReader) -> bool:
    """Read one request (head and body); False at the end of the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return True


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Whatever"


async def _answer(writer: asyncio.StreamWriter, behaviour: Behaviour, seen: Seen) -> bool:
    """Send `behaviour`'s answer; True if the connection may serve another request."""
    if behaviour.delay:
        await asyncio.sleep(behaviour.delay)
    if behaviour.reset == "before_headers":
        return False
    status, body = behaviour.status, behaviour.body
    informational = status < 200
    content = b"" if informational or status in NO_BODY_STATUSES else body.content
    lines = [
        b"HTTP/1.1 %d %s" % (status, _reason(status)),
        b"Content-Type: " + body.content_type.encode(),
    ]
    if body.content_encoding and content:
        lines.append(b"Content-Encoding: " + body.content_encoding.encode())
    lines.extend(b"Retry-After: " + value for value in behaviour.retry_after)
    if not informational and status not in NO_BODY_STATUSES:
        lines.append(b"Content-Length: %d" % len(content))
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
    await writer.drain()
    for index, part in enumerate(_chunks(content, behaviour.chunk)):
        if behaviour.trickle:
            await asyncio.sleep(behaviour.trickle)
        if behaviour.reset == "mid_body" and index * behaviour.chunk >= len(content) // 2:
            return False
        writer.write(part)
        await writer.drain()
    if behaviour.reset == "mid_body" and content:
        return False
    seen.finished = True
    return behaviour.reset == "none" and not informational


def _chunks(content: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start : start + size]


@contextlib.contextmanager
def fake_upstream() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream()
    try:
        yield upstream
    finally:
        upstream.close()
