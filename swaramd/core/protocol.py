"""The wire protocol, sans I/O: builders for client events, a decoder for server events.

Rules this module keeps (docs/design.md, "On the wire"):

- Only the seven client events the service documents can be built here;
  `CLIENT_EVENT_TYPES` lists them and nothing else in swaramd writes JSON to
  the wire.
- `session.update` has the service's flat shape: instructions, voice, tools,
  tool_choice, and turn_detection only where the config sets it. No
  `session.type`, no `audio` object.
- `decode()` never raises: a frame becomes a typed event, an `UnknownEvent`,
  or a `Malformed` value that says why. Both names of the renamed audio and
  transcript events are accepted.
- The audio paths run 50 times a second each way, so they use libraries made
  for it: `orjson` parses server events and `pybase64` (SIMD) codes the audio.
  With the standard library those two were a fifth of the daemon's
  instructions on the audio path (docs/performance.md).
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import pybase64

from swaramd.core.config import SessionConfig
from swaramd.core.events import (
    AudioDelta,
    Decoded,
    ErrorEvent,
    FunctionCall,
    InputTranscript,
    ItemCreated,
    Malformed,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
    UnknownEvent,
)

WIRE_RATE = 24_000
"""Hz. Audio on the wire is mono PCM16 little-endian at this rate, both ways."""

CLIENT_EVENT_TYPES = frozenset({
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "response.create",
    "response.cancel",
    "conversation.item.create",
})

# --- client events -----------------------------------------------------------


def session_update(cfg: SessionConfig, tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The opening `session.update`, flat shape; `tools` are function-tool schemas."""
    session: dict[str, Any] = {
        "instructions": cfg.instructions,
        "voice": cfg.voice,
        "tools": [dict(t) for t in tools],
        "tool_choice": cfg.tool_choice,
    }
    if cfg.turn_detection is not None:
        session["turn_detection"] = dict(cfg.turn_detection)
    return {"type": "session.update", "session": session}


def audio_append(pcm: bytes) -> dict[str, Any]:
    """`input_audio_buffer.append` with one frame of PCM16 LE mono 24 kHz, as a dict: the
    form the tests validate against the SDK's types; the daemon sends `audio_append_text`,
    which the tests hold equal to it."""
    return {"type": "input_audio_buffer.append", "audio": pybase64.b64encode_as_string(pcm)}


def audio_append_text(pcm: bytes) -> str:
    """The encoded append frame, built without a dict round trip (50 times a second)."""
    return '{"type":"input_audio_buffer.append","audio":"' + \
        pybase64.b64encode_as_string(pcm) + '"}'


def audio_commit() -> dict[str, Any]:
    """`input_audio_buffer.commit`: end of the user's turn (Simple-mode nudge)."""
    return {"type": "input_audio_buffer.commit"}


def audio_clear() -> dict[str, Any]:
    """`input_audio_buffer.clear`: drop what was sent of this turn (Simple-mode nudge)."""
    return {"type": "input_audio_buffer.clear"}


def response_create() -> dict[str, Any]:
    """`response.create`: ask for a reply now (Simple-mode nudge)."""
    return {"type": "response.create"}


def response_cancel() -> dict[str, Any]:
    """`response.cancel`: stop the current reply (an explicit interrupt)."""
    return {"type": "response.cancel"}


def function_call_output(call_id: str, output: Any) -> dict[str, Any]:
    """A tool's result as `conversation.item.create`; `output` is sent as a JSON string."""
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": text},
    }


def encode(event: Mapping[str, Any]) -> str:
    """One client event as a JSON text frame; refuses any type the service does not document."""
    kind = event.get("type")
    if kind not in CLIENT_EVENT_TYPES:
        raise ValueError(f"not a client event the service documents: {kind!r}")
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:      # a lone surrogate (echoed from the peer): escape it
            text = json.dumps(event, separators=(",", ":"))
    return text


# --- server events -----------------------------------------------------------


class _Missing(Exception):
    """A field swaramd needs is absent or of the wrong type."""


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _Missing(f"{key} must be a string")
    return value


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def _opt_int(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _obj(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise _Missing(f"{key} must be an object")
    return value


def _opt_obj(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _audio_delta(e: Mapping[str, Any]) -> AudioDelta:
    try:
        pcm = pybase64.b64decode(_str(e, "delta"), validate=True)
    except (binascii.Error, ValueError):
        raise _Missing("delta is not base64") from None
    if len(pcm) % 2:
        raise _Missing("delta is not whole PCM16 samples")
    return AudioDelta(_str(e, "response_id"), _opt_str(e, "item_id"), pcm)


def _error(e: Mapping[str, Any]) -> ErrorEvent:
    err = _obj(e, "error")
    message = err.get("message")
    return ErrorEvent(
        code=_opt_str(err, "code"),
        message=message if isinstance(message, str) else "",
        error_type=_opt_str(err, "type"),
    )


def _status_reason(details: Mapping[str, Any]) -> str | None:
    """Why a reply did not complete, from its `status_details`: a reason, an error, or both."""
    err = _opt_obj(details, "error")
    said = [text for text in (_opt_str(details, "reason"), _opt_str(err, "code"),
                              _opt_str(err, "message")) if text]
    return ": ".join(said) or None


_DECODERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "session.created": lambda e: SessionCreated(_opt_obj(e, "session")),
    "session.updated": lambda e: SessionUpdated(_opt_obj(e, "session")),
    "input_audio_buffer.speech_started":
        lambda e: SpeechStarted(_opt_str(e, "item_id"), _opt_int(e, "audio_start_ms")),
    "input_audio_buffer.speech_stopped":
        lambda e: SpeechStopped(_opt_str(e, "item_id"), _opt_int(e, "audio_end_ms")),
    "conversation.item.input_audio_transcription.completed":
        lambda e: InputTranscript(_opt_str(e, "item_id"), _str(e, "transcript")),
    "conversation.item.created": lambda e: ItemCreated(_opt_obj(e, "item")),
    "response.created": lambda e: ResponseCreated(_opt_str(_opt_obj(e, "response"), "id")),
    "response.output_audio.delta": _audio_delta,
    "response.audio.delta": _audio_delta,
    "response.output_audio_transcript.delta":
        lambda e: TranscriptDelta(_opt_str(e, "response_id"), _str(e, "delta")),
    "response.audio_transcript.delta":
        lambda e: TranscriptDelta(_opt_str(e, "response_id"), _str(e, "delta")),
    "response.function_call_arguments.done": lambda e: FunctionCall(
        _str(e, "call_id"), _str(e, "name"), _str(e, "arguments"), _opt_str(e, "response_id")),
    "response.done": lambda e: ResponseDone(
        _opt_str(_opt_obj(e, "response"), "id") or _opt_str(e, "response_id"),
        _opt_str(_opt_obj(e, "response"), "status"),
        _status_reason(_opt_obj(_opt_obj(e, "response"), "status_details"))),
    "error": _error,
}

SERVER_EVENT_TYPES = frozenset(_DECODERS)


def decode(frame: str | bytes) -> Decoded:
    """One WebSocket frame into a typed server event, or a `Malformed` value saying why."""
    if not isinstance(frame, str):
        return Malformed("binary frame; the service sends JSON text")
    try:
        obj = orjson.loads(frame)
    except (ValueError, RecursionError):    # orjson.JSONDecodeError is a ValueError
        # orjson refuses some JSON the standard allows, such as a lone surrogate's escape
        # (in a tool call's arguments, say): a second, rare chance, so that such a call
        # still gets its answer.
        try:
            obj = json.loads(frame)
        except (ValueError, RecursionError):
            return Malformed("not JSON")
    if not isinstance(obj, dict):
        return Malformed("not a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        return Malformed("no string 'type'")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return UnknownEvent(kind)
    try:
        event: Decoded = decoder(obj)
    except _Missing as exc:
        return Malformed(str(exc), kind)
    return event
