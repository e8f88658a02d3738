"""A simulated swaram service: a real `websockets` server on loopback, for `swaramd demo`.

It speaks the service's documented events in the
service's session order: `session.created` on connect; `session.update` must
come first and is answered with `session.updated`; then the audio appended is
judged by an energy VAD (`vad.py`), which sends `speech_started` /
`speech_stopped`, the user's transcript, and a reply from the `Script`: a
tool call, audio deltas with a transcript delta stream, `response.done`.
User speech during a reply cancels it, as the real service does. Any key is
accepted, but a Bearer header is required (else `error` and close 4001).

Everything it sends and receives is kept in `journal` with its
`time.monotonic()` (audio as sample counts, not payloads); `turns` sums each
user turn up; client events that are not one of the seven documented ones, or
are malformed, are answered with an `error` (the session goes on) and listed
in `invalid`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from swaramd.demo.recording import RATE
from swaramd.demo.script import Reply, Script, ToolCall
from swaramd.demo.vad import AudioMemory, EnergyVad, VadChange

DOCUMENTED = frozenset({"session.update", "input_audio_buffer.append",
                        "input_audio_buffer.commit", "input_audio_buffer.clear",
                        "response.create", "response.cancel", "conversation.item.create"})
SESSION_KEYS = frozenset({"instructions", "voice", "tools", "tool_choice", "turn_detection"})
CHUNK_S = 0.1           # audio per delta
SEND_SPEED = 2.0        # replies stream twice as fast as they play, like a real service
KEEP_S = 15.0           # received audio kept for the echo
PREROLL_S = 0.2         # echo a little before the detected start
EVENT_SPACING_S = 0.005


@dataclass(frozen=True, slots=True)
class Entry:
    """One event the service sent ("sent") or received ("received"), or a "note"."""

    t: float
    direction: str
    type: str
    detail: dict[str, Any]


@dataclass
class TurnRecord:
    """One user turn as the service saw it; times are `time.monotonic()`."""

    number: int
    speech_started: float
    item_id: str = ""
    span: tuple[int, int] = (0, 0)      # received-audio sample indexes of the utterance
    speech_stopped: float | None = None
    transcript: str = ""
    tool: str | None = None
    tool_output: Any = None
    reply_transcript: str = ""
    reply_gloss: str = ""
    reply_audio_s: float = 0.0
    reply_first_delta: float | None = None
    reply_status: str | None = None
    barged_in_at: float | None = None   # the next utterance began while this reply played


class SimulatedSwaram:
    """Start with `async with SimulatedSwaram(script) as sim:`; connect to `sim.url`."""

    def __init__(self, script: Script, *, listener: Callable[[Entry], None] | None = None,
                 speed: float = SEND_SPEED) -> None:
        self.script = script
        self.listener = listener
        self.speed = speed
        self.journal: list[Entry] = []
        self.received: list[dict[str, Any]] = []
        self.invalid: list[str] = []
        self.turns: list[TurnRecord] = []
        self.vad_loudest_db = -120.0
        self._changed = asyncio.Event()
        self._server: Server | None = None
        self._sessions: list[_Session] = []

    @property
    def url(self) -> str:
        """The `ws://127.0.0.1:PORT/v1/realtime?model=...` URL to put in `server.url`."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1/realtime?model=mal-realtime-simple"

    def record(self, direction: str, kind: str, **detail: Any) -> None:
        """Add to the journal and tell the listener."""
        entry = Entry(time.monotonic(), direction, kind, detail)
        self.journal.append(entry)
        self._changed.set()
        if self.listener is not None:
            self.listener(entry)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until `predicate()` holds, re-checked on every journal entry; bounded."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def __aenter__(self) -> SimulatedSwaram:
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None,
                                   max_size=2**20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        for session in self._sessions:
            session.ws.transport.abort()
        self._server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        session = _Session(self, ws, len(self._sessions) + 1)
        self._sessions.append(session)
        await session.run()


class _Session:
    """The service's side of one connection."""

    def __init__(self, sim: SimulatedSwaram, ws: ServerConnection, number: int) -> None:
        self.sim, self.ws, self.number = sim, ws, number
        self.vad = EnergyVad()
        self.configured = False
        self.memory = AudioMemory(int(KEEP_S * RATE))
        self._turn: TurnRecord | None = None
        self._last_reply: TurnRecord | None = None
        self._active: tuple[str, asyncio.Task[None], TurnRecord] | None = None
        self._tool_calls: dict[str, tuple[ToolCall, TurnRecord]] = {}
        self._ids = 0
        self._tg: asyncio.TaskGroup | None = None

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self.number}_{self._ids}"

    async def send(self, event: dict[str, Any], **detail: Any) -> None:
        """Send one server event and journal it.

        Events other than audio are spaced by a few milliseconds, so the daemon has
        handled each before the next is sent and the demo's timeline reads in order.
        """
        self.sim.record("sent", event["type"], **detail)
        await self.ws.send(json.dumps(event, ensure_ascii=False))
        if event["type"] != "response.output_audio.delta":
            await asyncio.sleep(EVENT_SPACING_S)

    async def run(self) -> None:
        """Greet, then handle every client frame until the connection ends."""
        assert self.ws.request is not None      # the handshake is done
        auth = self.ws.request.headers.get("Authorization", "")
        bearer = auth.startswith("Bearer ") and len(auth) > len("Bearer ")
        self.sim.record("note", "connected", path=self.ws.request.path, bearer=bearer)
        try:
            if not bearer:
                await self.send({"type": "error", "error": {
                    "type": "invalid_request_error", "code": "invalid_api_key",
                    "message": "missing API key"}})
                await self.ws.close(4001, "invalid or missing API key")
                return
            await self.send({"type": "session.created", "session": {
                "id": f"sess_demo_{self.number}", "model": "mal-realtime-simple"}})
            async with asyncio.TaskGroup() as tg:   # owns the reply being streamed
                self._tg = tg
                try:
                    async for frame in self.ws:
                        await self._on_frame(frame)
                finally:
                    await self._cancel_active()
        except* ConnectionClosed:
            pass
        finally:
            self.sim.record("note", "closed", code=self.ws.close_code)

    # --- client events --------------------------------------------------------

    async def _on_frame(self, frame: str | bytes) -> None:
        try:
            event = json.loads(frame)
        except ValueError:
            event = None
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(event, dict) or kind not in DOCUMENTED:
            await self._reject(f"not a documented client event: {str(kind or frame)[:60]!r}")
            return
        self.sim.received.append(event)
        if kind == "input_audio_buffer.append":
            await self._on_append(event)
            return
        self.sim.record("received", kind, event=event)
        if not self.configured and kind != "session.update":
            await self._reject(f"{kind} before session.update")
        elif kind == "session.update":
            await self._on_session_update(event)
        elif kind == "conversation.item.create":
            await self._on_item_create(event)
        elif kind == "response.cancel":
            if self._active is None:
                await self._error("response_cancel_not_active", "no active response")
            await self._cancel_active()
        elif kind == "input_audio_buffer.clear":
            self.memory.clear()
        elif kind == "input_audio_buffer.commit" and self.vad.in_speech:
            await self._on_vad(VadChange(False, self.vad.audio_ms))
        elif kind == "response.create" and self._active is None and self._turn is not None:
            await self._answer(self._turn, self._utterance(self._turn))

    async def _reject(self, problem: str) -> None:
        self.sim.invalid.append(problem)
        await self._error("invalid_event", problem)

    async def _error(self, code: str, message: str) -> None:
        await self.send({"type": "error", "error": {"type": "invalid_request_error",
                                                    "code": code, "message": message}},
                        code=code, message=message)

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        session = event.get("session")
        if not isinstance(session, dict) or not set(session) <= SESSION_KEYS:
            await self._reject("session.update: session must be an object with only "
                               + ", ".join(sorted(SESSION_KEYS)))
            return
        self.configured = True
        await self.send({"type": "session.updated", "session": {
            "id": f"sess_demo_{self.number}", "model": "mal-realtime-simple",
            "voice": session.get("voice", "mal-female"), **session}})

    async def _on_append(self, event: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(event.get("audio", ""), validate=True)
        except (binascii.Error, ValueError, TypeError):
            await self._reject("input_audio_buffer.append: audio is not base64")
            return
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        self.sim.record("received", "input_audio_buffer.append", samples=len(samples))
        if not self.configured:     # no audio before session.updated
            await self._reject("input_audio_buffer.append before session.update")
            return
        self.memory.add(samples)
        for change in self.vad.feed(samples):
            await self._on_vad(change)
        self.sim.vad_loudest_db = max(self.sim.vad_loudest_db, self.vad.loudest_db)

    def _utterance(self, turn: TurnRecord) -> bytes:
        start, end = turn.span
        return self.memory.cut(start - int(PREROLL_S * RATE), end)

    async def _on_item_create(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        call_id = item.get("call_id") if isinstance(item, dict) else None
        if not isinstance(item, dict) or item.get("type") != "function_call_output" \
                or call_id not in self._tool_calls or not isinstance(item.get("output"), str):
            await self._reject("conversation.item.create: expected the function_call_output "
                               "of a pending call")
            return
        call, turn = self._tool_calls.pop(call_id)
        turn.tool_output = item["output"]
        await self.send({"type": "conversation.item.created", "item": {
            "id": self._id("item"), **item}}, item_type="function_call_output")
        # The service carries on by itself: no response.create is needed.
        self._start(turn, call.then(item["output"]))

    # --- turn-taking ------------------------------------------------------------

    async def _on_vad(self, change: VadChange) -> None:
        samples = change.audio_ms * RATE // 1000
        if change.started:
            number = len(self.sim.turns) + 1
            item_id = self._id("item")
            await self.send({"type": "input_audio_buffer.speech_started",
                             "audio_start_ms": change.audio_ms, "item_id": item_id},
                            turn=number)
            started = TurnRecord(number, time.monotonic(), item_id, (samples, samples))
            self._barge_in(started.speech_started)
            await self._cancel_active()
            self.sim.turns.append(started)
            self._turn = started
            return
        turn = self._turn
        if turn is None or turn.speech_stopped is not None:
            return
        turn.speech_stopped = time.monotonic()
        turn.span = (turn.span[0], samples)
        await self.send({"type": "input_audio_buffer.speech_stopped",
                         "audio_end_ms": change.audio_ms, "item_id": turn.item_id},
                        turn=turn.number)
        utterance = self._utterance(turn)
        heard = self.sim.script.transcript(turn.number, utterance)
        turn.transcript = heard.transcript
        await self.send({"type": "conversation.item.created", "item": {
            "id": turn.item_id, "type": "message", "role": "user",
            "content": [{"type": "input_audio", "transcript": heard.transcript}]}},
            item_type="message")
        await self.send({"type": "conversation.item.input_audio_transcription.completed",
                         "item_id": turn.item_id, "content_index": 0,
                         "transcript": heard.transcript},
                        transcript=heard.transcript, gloss=heard.gloss)
        await self._answer(turn, utterance)

    def _barge_in(self, now: float) -> None:
        """Note a reply the user spoke over: still streaming, or sent and still playing."""
        last = self._last_reply
        if last is None or last.reply_first_delta is None or last.barged_in_at is not None:
            return
        streaming = self._active is not None and self._active[2] is last
        if streaming or now < last.reply_first_delta + last.reply_audio_s:
            last.barged_in_at = now

    async def _answer(self, turn: TurnRecord, utterance: bytes) -> None:
        answer = self.sim.script.respond(turn.number, utterance)
        if isinstance(answer, ToolCall):
            rid, call_id = self._id("resp"), self._id("call")
            turn.tool = answer.name
            self._tool_calls[call_id] = (answer, turn)
            await self.send({"type": "response.created", "response": {
                "id": rid, "status": "in_progress"}}, response_id=rid)
            await self.send({"type": "response.function_call_arguments.done",
                             "response_id": rid, "item_id": self._id("item"),
                             "output_index": 0, "call_id": call_id, "name": answer.name,
                             "arguments": answer.arguments},
                            name=answer.name, arguments=answer.arguments, call_id=call_id)
            await self.send({"type": "response.done", "response": {
                "id": rid, "status": "completed"}}, response_id=rid, status="completed")
            return
        self._start(turn, answer)

    def _start(self, turn: TurnRecord, reply: Reply) -> None:
        rid = self._id("resp")
        turn.reply_transcript, turn.reply_gloss = reply.transcript, reply.gloss
        turn.reply_audio_s = len(reply.pcm) / 2 / RATE
        assert self._tg is not None
        task = self._tg.create_task(self._stream(rid, turn, reply), name=f"reply {rid}")
        self._active = (rid, task, turn)
        self._last_reply = turn

    async def _stream(self, rid: str, turn: TurnRecord, reply: Reply) -> None:
        """One spoken reply: created, audio and transcript deltas at SEND_SPEED, done."""
        item_id = self._id("item")
        chunk = int(CHUNK_S * RATE) * 2
        chunks = [reply.pcm[i:i + chunk] for i in range(0, len(reply.pcm), chunk)] or [b""]
        words = reply.transcript.split(" ")
        said = 0
        try:
            await self.send({"type": "response.created", "response": {
                "id": rid, "status": "in_progress"}}, response_id=rid)
            for i, pcm in enumerate(chunks):
                if i == 0:
                    turn.reply_first_delta = time.monotonic()
                await self.send({"type": "response.output_audio.delta", "response_id": rid,
                                 "item_id": item_id, "output_index": 0, "content_index": 0,
                                 "delta": base64.b64encode(pcm).decode("ascii")},
                                response_id=rid, samples=len(pcm) // 2)
                due = (i + 1) * len(words) // len(chunks)
                if due > said:
                    text = " ".join(words[said:due]) + ("" if due == len(words) else " ")
                    await self.send({"type": "response.output_audio_transcript.delta",
                                     "response_id": rid, "item_id": item_id, "delta": text},
                                    response_id=rid, delta=text)
                    said = due
                await asyncio.sleep(CHUNK_S / self.sim.speed)
            self._active = None
            turn.reply_status = "completed"
            await self.send({"type": "response.done", "response": {
                "id": rid, "status": "completed"}}, response_id=rid, status="completed",
                transcript=reply.transcript, gloss=reply.gloss)
        except ConnectionClosed:
            pass

    async def _cancel_active(self) -> None:
        """Cancel the reply being streamed (user speech or `response.cancel`)."""
        active, self._active = self._active, None
        if active is None:
            return
        rid, task, turn = active
        task.cancel()
        await asyncio.wait([task])
        turn.reply_status = "cancelled"
        with contextlib.suppress(ConnectionClosed):
            await self.send({"type": "response.done", "response": {
                "id": rid, "status": "cancelled"}}, response_id=rid, status="cancelled")
