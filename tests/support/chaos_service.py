"""A loopback swaram service that breaks every connection in a planned way.

Connection i gets fault `plan[i]`; connections past the plan get `hold` (a
healthy session until the service stops). A WebSocket fault runs only once the
session is live and the microphone's first `input_audio_buffer.append` has
arrived, so every set-up connection is proof that audio came back after the
fault before it. Each fault stamps `t_fault` just before its decisive act
(the close frame, the abort, the refusal, the oversized frame...): the
daemon can only learn of the fault after that instant, so the time from
`t_fault` to the next handshake is never more than the daemon's real backoff
delay, and a hot loop cannot hide in it.

Every client frame is checked strictly (tests/support/strict.py); problems are
collected in `invalid`. Audio appends are counted, not kept, so a long run
holds no growing history.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from swaramd.adapters.link import MAX_FRAME_BYTES
from swaramd.core.policy import FAST_BASE_S, QUICK_RECONNECT_S, SLOW_BASE_S
from tests.support.service import realtime_url
from tests.support.strict import check_client_event

CARRY_ON_APPENDS = 5      # 200 ms of microphone (40 ms frames) after a carry-on fault: it went on
CARRY_ON_TIMEOUT_S = 3.0  # ...within this long (the mic sends 25 appends a second)
_PCM = base64.b64encode(bytes(960)).decode()  # 20 ms of silence, a well-formed delta

# The least delay the policy can pick after each kind of ending, at scale 1: the
# first step of its schedule jittered down to half. Later steps only grow.
QUICK_MIN_S = QUICK_RECONNECT_S * 0.5
FAST_MIN_S = FAST_BASE_S * 0.5
SLOW_MIN_S = SLOW_BASE_S * 0.5


@dataclass(frozen=True)
class Fault:
    """One way to break a connection, and what the daemon must do about it."""

    name: str
    min_delay_s: float | None   # at scale 1; None: it must halt instead
    halts: str | None = None    # the halt_reason status must show
    http: int | None = None     # refuse the handshake with this status
    carries_on: bool = False    # the session must go on (mic keeps streaming)


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("close_1000", QUICK_MIN_S),
    Fault("close_1001", QUICK_MIN_S),
    Fault("close_1011", FAST_MIN_S),
    Fault("close_1013", FAST_MIN_S),
    Fault("close_4001", None, halts="auth"),
    Fault("close_4003", None, halts="credits"),
    Fault("close_4008", SLOW_MIN_S),
    Fault("http_401", None, halts="auth", http=401),
    Fault("http_500", FAST_MIN_S, http=500),
    Fault("tcp_reset", FAST_MIN_S),
    Fault("stall", FAST_MIN_S),          # plus the ping timeout: see ChaosService
    Fault("oversized", FAST_MIN_S),      # the daemon refuses it and closes 1009
    Fault("server_error", FAST_MIN_S),
    # Carry-on faults: the session must survive them; the service then ends it
    # with a clean 1000 ("session expired"), so the quick reconnect applies.
    Fault("malformed", QUICK_MIN_S, carries_on=True),
    Fault("unknown_ids", QUICK_MIN_S, carries_on=True),
    Fault("out_of_order", QUICK_MIN_S, carries_on=True),
    Fault("late_delta", QUICK_MIN_S, carries_on=True),
)}
HOLD = "hold"

# (frame, counted in protocol.malformed_frames, counted in protocol.error_events)
MALFORMED_FRAMES: tuple[tuple[str | bytes, bool, bool], ...] = (
    ("}{ not json", True, False),
    (b"\x00\x01\x02 a binary frame", True, False),
    ("[1, 2, 3]", True, False),
    ('"a string"', True, False),
    ("{}", True, False),
    ('{"type": 42}', True, False),
    ("[" * 50_000 + "]" * 50_000, True, False),
    ('{"type": "response.output_audio.delta", "response_id": "r"}', True, False),
    ('{"type": "response.output_audio.delta", "response_id": "r", "delta": "!!not base64"}',
     True, False),
    ('{"type": "response.audio.delta", "response_id": "r", "delta": "AAAA"}', True, False),
    ('{"type": "response.output_audio.delta", "delta": "' + _PCM + '"}', True, False),
    ('{"type": "error"}', True, False),
    ('{"type": "error", "error": "not an object"}', True, False),
    ('{"type": "response.function_call_arguments.done", "call_id": "c"}', True, False),
    ('{"type": "conversation.item.input_audio_transcription.completed"}', True, False),
    ('{"type": "response.output_audio_transcript.delta", "delta": 7}', True, False),
    ('{"type": "no.such.event", "x": [1, {"y": null}]}', False, False),
    ('{"type": "error", "error": {"type": "invalid_request_error", "code": "bad_thing",'
     ' "message": "harmless"}}', False, True),
    ('{"type": "response.done", "response": "oops"}', False, False),
)


@dataclass
class Connection:
    """What happened on connection `index`, stamped with time.monotonic()."""

    index: int
    fault: str
    dwell_stable: bool
    t_attempt: float
    t_live: float | None = None
    t_audio: float | None = None
    t_fault: float | None = None
    t_resume: float | None = None     # halts: when the driver sent SIGHUP
    halted: str | None = None         # halts: the halt_reason status showed
    t_end: float | None = None
    appends: int = 0
    carried_on: bool | None = None
    problems: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    audio: asyncio.Event = field(default_factory=asyncio.Event)


class _Peer:
    """The service's side of one WebSocket connection."""

    def __init__(self, ws: ServerConnection, conn: Connection, service: ChaosService) -> None:
        self.ws, self.conn, self.service = ws, conn, service
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(self, event: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(json.dumps(event) if isinstance(event, dict) else event)

    async def wait_for(self, kind: str) -> dict[str, Any]:
        while True:
            event = await self.inbox.get()
            if event.get("type") == kind:
                return event

    async def wait_appends(self, count: int, timeout: float) -> bool:
        """Wait until `count` more appends arrive; False if they did not within `timeout`."""
        target = self.conn.appends + count
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.conn.appends < target:
                    self.conn.audio.clear()
                    await self.conn.audio.wait()
        return self.conn.appends >= target

    async def carry_on(self, what: str) -> None:
        ok = await self.wait_appends(CARRY_ON_APPENDS, CARRY_ON_TIMEOUT_S)
        self.conn.carried_on = ok if self.conn.carried_on is None else self.conn.carried_on and ok
        if not ok:
            self.conn.problems.append(f"the microphone did not carry on after {what}")

    async def expect_daemon_close(self, what: str) -> None:
        """The daemon must close the connection itself within 5 s after `what`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.ws.wait_closed()
        if self.ws.close_code is None:
            self.conn.problems.append(f"the daemon did not close after {what}")

    async def close(self, code: int, reason: str = "") -> None:
        self.conn.t_fault = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.ws.close(code, reason)

    async def error(self, code: str, message: str) -> None:
        self.service.error_events_sent += 1
        await self.send({"type": "error", "event_id": "evt_chaos",
                         "error": {"type": "server_error" if code == "server_error"
                                   else "invalid_request_error", "code": code,
                                   "message": message}})


class ChaosService:
    """`async with ChaosService(plan, ...) as svc`: the daemon connects to `svc.url`."""

    def __init__(self, plan: list[str], dwell_stable: list[bool], *, stable_s: float,
                 key: str, audio_timeout: float = 10.0, stall_limit: float = 30.0) -> None:
        self.plan, self.dwell_stable = plan, dwell_stable
        self.stable_s, self.key = stable_s, key
        self.audio_timeout, self.stall_limit = audio_timeout, stall_limit
        self.connections: list[Connection] = []
        self.invalid: list[str] = []
        self.malformed_sent = 0
        self.error_events_sent = 0
        self._by_ws: dict[ServerConnection, Connection] = {}
        self._attempted = asyncio.Event()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return realtime_url(self._server)

    async def wait_connection(self, index: int, timeout: float) -> Connection:
        """Connection `index` once its fault has been carried out (TimeoutError if it never)."""
        async with asyncio.timeout(timeout):
            while len(self.connections) <= index:
                self._attempted.clear()
                await self._attempted.wait()
            await self.connections[index].done.wait()
        return self.connections[index]

    async def wait_audio(self, index: int, timeout: float) -> Connection:
        """Connection `index` once its first audio append arrived."""
        async with asyncio.timeout(timeout):
            while len(self.connections) <= index:
                self._attempted.clear()
                await self._attempted.wait()
            conn = self.connections[index]
            while conn.t_audio is None:
                conn.audio.clear()
                await conn.audio.wait()
        return conn

    # --- the server -----------------------------------------------------------------

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        index = len(self.connections)
        fault = self.plan[index] if index < len(self.plan) else HOLD
        conn = Connection(index, fault, index < len(self.plan) and self.dwell_stable[index],
                          time.monotonic())
        self.connections.append(conn)
        self._attempted.set()
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            conn.problems.append("no Bearer key on the handshake")
        status = FAULTS[fault].http if fault in FAULTS else None
        if status is not None:
            conn.t_fault = conn.t_end = time.monotonic()
            conn.done.set()
            return ws.respond(status, "refused by the chaos service\n")
        self._by_ws[ws] = conn
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = self._by_ws.pop(ws)
        peer = _Peer(ws, conn, self)
        reader = asyncio.ensure_future(self._read(peer))
        try:
            async with asyncio.timeout(self.audio_timeout):
                await peer.send({"type": "session.created", "session": {"id": f"s{conn.index}"}})
                update = await peer.wait_for("session.update")
                await peer.send({"type": "session.updated", "session": update["session"]})
                conn.t_live = time.monotonic()
            if not await peer.wait_appends(1, self.audio_timeout):
                conn.problems.append("no audio after session.updated")
                return
            conn.t_audio = time.monotonic()
            if conn.fault == HOLD:
                await ws.wait_closed()  # until the daemon stops (or the service does)
                return
            if conn.dwell_stable:
                await asyncio.sleep(self.stable_s)
            await _ACTIONS[conn.fault](peer)
        except TimeoutError:
            conn.problems.append("no session.update in time")
        except ConnectionClosed as exc:
            conn.problems.append(f"the daemon's side ended the connection first ({exc})")
        finally:
            conn.t_end = time.monotonic()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            ws.transport.abort()  # whatever state it is in, it is over
            conn.done.set()

    async def _read(self, peer: _Peer) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in peer.ws:
                try:
                    event = json.loads(frame)
                    check_client_event(event)
                except (ValueError, AssertionError) as exc:
                    self.invalid.append(f"connection {peer.conn.index}: {exc}"[:500])
                    continue
                if event["type"] == "input_audio_buffer.append":
                    peer.conn.appends += 1
                    peer.conn.audio.set()
                else:
                    peer.inbox.put_nowait(event)

    async def __aenter__(self) -> ChaosService:
        self._server = await serve(self._handle, "127.0.0.1", 0,
                                   process_request=self._process_request,
                                   ping_interval=None, compression=None,
                                   max_size=2**20, close_timeout=2)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        for ws in list(self._server.connections):
            ws.transport.abort()
        self._server.close()
        async with asyncio.timeout(5):
            await self._server.wait_closed()


# --- the faults ---------------------------------------------------------------------------


def _closer(code: int, error: tuple[str, str] | None = None) -> Callable[[_Peer], Awaitable[None]]:
    async def close(peer: _Peer) -> None:
        if error is not None:  # the service sends an `error` before 4001, 4003 and 4008
            await peer.error(*error)
        await peer.close(code, f"chaos {code}")
    return close


async def _tcp_reset(peer: _Peer) -> None:
    """Half a text frame on the wire, then a TCP reset (SO_LINGER 0)."""
    payload = b'{"type":"response.output_audio.delta","response_id":"r","delta":"' + b"A" * 60
    header = bytes([0x81, 126]) + (1000).to_bytes(2, "big")  # promises 1000 bytes
    transport = peer.ws.transport
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.conn.t_fault = time.monotonic()
    transport.write(header + payload)
    transport.abort()


async def _stall(peer: _Peer) -> None:
    """Stop reading (pings go unanswered), say nothing, until the daemon tries anew."""
    service, index = peer.service, peer.conn.index
    peer.conn.t_fault = time.monotonic()
    peer.ws.transport.pause_reading()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(service.stall_limit):
            while len(service.connections) <= index + 1:
                service._attempted.clear()
                await service._attempted.wait()
    if len(service.connections) <= index + 1:
        peer.conn.problems.append(f"stall not noticed within {service.stall_limit} s")


_OVERSIZED: str | None = None


async def _oversized(peer: _Peer) -> None:
    """One text frame over the daemon's 8 MiB limit: it must refuse it (1009), not grow."""
    global _OVERSIZED
    if _OVERSIZED is None:
        _OVERSIZED = '{"type":"response.output_audio.delta","response_id":"big","delta":"' + \
            "A" * MAX_FRAME_BYTES + '"}'
    peer.conn.t_fault = time.monotonic()
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(10):
            await peer.send(_OVERSIZED)
    await peer.expect_daemon_close("an oversized frame")


async def _server_error(peer: _Peer) -> None:
    """`error` with code server_error: the daemon must close and come back with a backoff."""
    peer.conn.t_fault = time.monotonic()
    await peer.error("server_error", "The server had an error (chaos)")
    await peer.expect_daemon_close("server_error")


async def _malformed(peer: _Peer) -> None:
    for frame, malformed, error in MALFORMED_FRAMES:
        await peer.send(frame)
        peer.service.malformed_sent += malformed
        peer.service.error_events_sent += error
    await peer.carry_on("malformed frames")
    await peer.close(1000, "session expired")


def _delta(response_id: str, item_id: str = "item") -> dict[str, Any]:
    return {"type": "response.output_audio.delta", "response_id": response_id,
            "item_id": item_id, "output_index": 0, "content_index": 0, "delta": _PCM}


def _done(response_id: str) -> dict[str, Any]:
    return {"type": "response.done", "response": {"id": response_id, "status": "completed"}}


async def _unknown_ids(peer: _Peer) -> None:
    """Deltas for a response never created and items never announced, dones for strangers."""
    n = peer.conn.index
    for _ in range(3):
        await peer.send(_delta(f"ghost_{n}", "ghost_item"))
    await peer.send({"type": "response.output_audio_transcript.delta",
                     "response_id": f"nobody_{n}", "delta": "?"})
    await peer.send(_done(f"never_{n}"))
    await peer.send({"type": "input_audio_buffer.speech_started", "item_id": "nowhere"})
    await peer.send({"type": "response.created", "response": {"id": f"r_{n}"}})
    for _ in range(2):
        await peer.send(_delta(f"r_{n}", "unannounced_item"))
    await peer.send(_done(f"ghost_{n}"))
    await peer.send(_done(f"r_{n}"))
    await peer.carry_on("deltas for unknown ids")
    await peer.close(1000, "session expired")


async def _out_of_order(peer: _Peer) -> None:
    """done before created, stopped before started, session events mid-session."""
    rid = f"ooo_{peer.conn.index}"
    await peer.send(_done(rid))
    await peer.send({"type": "response.created", "response": {"id": rid}})
    await peer.send({"type": "response.output_audio_transcript.delta", "response_id": rid,
                     "delta": "after done"})
    await peer.send({"type": "input_audio_buffer.speech_stopped", "item_id": "x"})
    await peer.send(_done(rid))
    await peer.send({"type": "input_audio_buffer.speech_started", "item_id": "x"})
    await peer.send({"type": "session.created", "session": {}})
    await peer.send({"type": "session.updated", "session": {}})
    await peer.send({"type": "conversation.item.input_audio_transcription.completed",
                     "item_id": "x", "transcript": "out of order"})
    await peer.carry_on("events out of order")
    await peer.close(1000, "session expired")


async def _late_delta(peer: _Peer) -> None:
    """A whole reply, then (once it has played) more deltas of it: audio after its done."""
    rid = f"late_{peer.conn.index}"
    await peer.send({"type": "response.created", "response": {"id": rid}})
    for _ in range(3):
        await peer.send(_delta(rid))
    await peer.send(_done(rid))
    await peer.carry_on("a whole reply")
    for _ in range(2):
        await peer.send(_delta(rid))
    await peer.send({"type": "response.output_audio_transcript.delta", "response_id": rid,
                     "delta": "late"})
    await peer.carry_on("deltas after response.done")
    await peer.close(1000, "session expired")


_ACTIONS: dict[str, Callable[[_Peer], Awaitable[None]]] = {
    "close_1000": _closer(1000),
    "close_1001": _closer(1001),
    "close_1011": _closer(1011),
    "close_1013": _closer(1013),
    "close_4001": _closer(4001, ("invalid_api_key", "Incorrect API key provided")),
    "close_4003": _closer(4003, ("insufficient_quota", "You are out of credits")),
    "close_4008": _closer(4008, ("too_many_connections", "Too many connections")),
    "tcp_reset": _tcp_reset,
    "stall": _stall,
    "oversized": _oversized,
    "server_error": _server_error,
    "malformed": _malformed,
    "unknown_ids": _unknown_ids,
    "out_of_order": _out_of_order,
    "late_delta": _late_delta,
}
