"""A scriptable loopback swaram service: a real `websockets` server on 127.0.0.1.

Each connection runs the next script in the list (the last one repeats).
A script is either `Reject(status)` (refuse the handshake) or an async
function given a `Peer`. Every frame the client sends is parsed and checked
strictly (tests/support/strict.py); problems are collected in `invalid`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.support.strict import check_client_event


@dataclass(frozen=True)
class Reject:
    """Refuse the WebSocket handshake with this HTTP status."""

    status: int


@dataclass
class Peer:
    """The service's side of one connection, for scripts to drive."""

    ws: ServerConnection
    service: FakeService
    index: int
    received: list[dict[str, Any]] = field(default_factory=list)
    _inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def send(self, event: dict[str, Any] | str) -> None:
        await self.ws.send(event if isinstance(event, str) else json.dumps(event))

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            return await self._inbox.get()

    async def wait_for(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                event = await self._inbox.get()
                if event.get("type") == kind:
                    return event

    async def setup(self) -> dict[str, Any]:
        """session.created, then wait for session.update, then session.updated."""
        await self.send({"type": "session.created", "session": {"id": f"sess_{self.index}"}})
        update = await self.wait_for("session.update")
        await self.send({"type": "session.updated", "session": update.get("session", {})})
        return update

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code, reason)

    async def stall(self, seconds: float = 30.0) -> None:
        """Stop reading (so pings go unanswered) and stay silent."""
        self.ws.transport.pause_reading()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ws.wait_closed(), seconds)

    async def hold(self, seconds: float = 30.0) -> None:
        """Keep the connection open and answering (pings included)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ws.wait_closed(), seconds)


Script = Reject | Callable[[Peer], Awaitable[None]]


def realtime_url(server: Server) -> str:
    """The swaram-style endpoint URL of a loopback test server."""
    port = server.sockets[0].getsockname()[1]
    return f"ws://127.0.0.1:{port}/v1/realtime?model=mal-realtime-simple"


def audio_delta(pcm: bytes, response_id: str = "resp_1") -> dict[str, Any]:
    return {"type": "response.output_audio.delta", "response_id": response_id,
            "item_id": "item_1", "delta": base64.b64encode(pcm).decode()}


class FakeService:
    """Start with `async with FakeService(scripts) as svc:`; connect to `svc.url`."""

    def __init__(self, scripts: Sequence[Script], key: str = "swaram_test_key_0123456789") -> None:
        self.scripts = list(scripts)
        self.key = key
        self.attempts: list[float] = []
        self.headers: list[Headers] = []
        self.peers: list[Peer] = []
        self.invalid: list[str] = []
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return realtime_url(self._server)

    @property
    def received(self) -> list[dict[str, Any]]:
        return [e for p in self.peers for e in p.received]

    def _script(self, index: int) -> Script:
        return self.scripts[min(index, len(self.scripts) - 1)]

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        index = len(self.attempts)
        self.attempts.append(time.monotonic())
        self.headers.append(request.headers)
        script = self._script(index)
        if isinstance(script, Reject):
            return conn.respond(script.status, "rejected by test script\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        index = len(self.attempts) - 1
        peer = Peer(ws, self, index)
        self.peers.append(peer)
        script = self._script(index)
        assert not isinstance(script, Reject)
        reader = asyncio.ensure_future(self._read(peer))
        try:
            await script(peer)
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, peer: Peer) -> None:
        try:
            async for frame in peer.ws:
                try:
                    event = json.loads(frame)
                    check_client_event(event)
                except (ValueError, AssertionError) as exc:
                    self.invalid.append(str(exc))
                    continue
                peer.received.append(event)
                peer._inbox.put_nowait(event)
        except ConnectionClosed:
            pass

    async def __aenter__(self) -> FakeService:
        self._server = await serve(self._handle, "127.0.0.1", 0,
                                   process_request=self._process_request,
                                   ping_interval=None, compression=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        for peer in self.peers:  # a stalled peer would not answer a closing handshake
            peer.ws.transport.abort()
        self._server.close()
        async with asyncio.timeout(5):
            await self._server.wait_closed()
