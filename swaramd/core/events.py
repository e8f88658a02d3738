"""Server events as typed values, one frozen dataclass per event type.

swaram speaks a subset of the OpenAI Realtime protocol. The decoder in
`protocol.py` turns each text frame into one of these, into `UnknownEvent`
(a well-formed event swaramd has no use for), or into `Malformed` (a frame
that is not a JSON object with a string `type`, or a known event missing a
field swaramd needs). Nothing here raises on the peer's mistakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SessionCreated:
    """The service accepted the connection (sent on connect)."""

    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """Our `session.update` was applied: the session is live and audio may flow."""

    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The service heard the user start speaking (barge-in trigger)."""

    item_id: str | None
    audio_start_ms: int | None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The service heard the user stop speaking; a reply is coming."""

    item_id: str | None
    audio_end_ms: int | None


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """The whole transcript of one user turn."""

    item_id: str | None
    transcript: str


@dataclass(frozen=True, slots=True)
class ItemCreated:
    """A conversation item was added (the user's turn, or our tool result)."""

    item: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    """A reply started."""

    response_id: str | None


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """A piece of reply audio: PCM16 LE mono 24 kHz, already base64-decoded."""

    response_id: str
    item_id: str | None
    pcm: bytes


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """A piece of the text of what swaram is saying."""

    response_id: str | None
    delta: str


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """The service asks us to run a local tool; `arguments` is a JSON string."""

    call_id: str
    name: str
    arguments: str
    response_id: str | None


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """A reply finished (completed, cancelled, failed or incomplete); `reason` is what its
    `status_details` say of why, when it did not complete."""

    response_id: str | None
    status: str | None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """An `error` event; its message is safe to log (the service says so)."""

    code: str | None
    message: str
    error_type: str | None

    @property
    def wants_reconnect(self) -> bool:
        """The service wants a fresh session: `server_error` (after a backoff) or
        `session_expired` (at once, as a 1001 close would)."""
        return self.code in ("server_error", "session_expired")


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A well-formed event of a type swaramd does not act on (logged at debug)."""

    type: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame that could not be decoded, and why (counted, never fatal)."""

    reason: str
    type: str | None = None


ServerEvent = (
    SessionCreated | SessionUpdated | SpeechStarted | SpeechStopped | InputTranscript
    | ItemCreated | ResponseCreated | AudioDelta | TranscriptDelta | FunctionCall
    | ResponseDone | ErrorEvent | UnknownEvent
)
Decoded = ServerEvent | Malformed
