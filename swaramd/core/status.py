"""The status record that `swaramd status` prints.

One mutable object owned by the daemon's loop: the daemon is its one writer
(the link reports through its listener, the audio engine hands out its
counters), the control socket serialises a snapshot. It never holds the API
key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swaramd.core.states import HaltReason, State


@dataclass(frozen=True, slots=True)
class AudioCounters:
    """Audio faults since start: playback underruns, capture overruns, dropped uplink frames.

    The audio engine counts them and hands out a copy (`AudioEngine.counters()`)."""

    underruns: int = 0
    overruns: int = 0
    dropped_frames: int = 0


@dataclass(slots=True)
class ProtocolCounters:
    """Peer mistakes since start: undecodable frames, `error` events, and replies whose
    `response.done` said `failed` or `incomplete`."""

    malformed_frames: int = 0
    error_events: int = 0
    failed_responses: int = 0


@dataclass(slots=True)
class WakeCounters:
    """The wake word listened for (None: none) and how often it was heard since start."""

    name: str | None = None
    detections: int = 0


@dataclass(slots=True)
class Status:
    """What the daemon is doing now, and what has gone wrong since it started."""

    started_at: float
    state: State = State.IDLE
    halt_reason: HaltReason | None = None
    connected: bool = False
    last_close_code: int | None = None
    reconnects: int = 0
    audio: AudioCounters = field(default_factory=AudioCounters)
    echo_cancel: dict[str, Any] | None = None   # the engine's echo canceller, when known
    protocol: ProtocolCounters = field(default_factory=ProtocolCounters)
    wake_word: WakeCounters = field(default_factory=WakeCounters)
    extra: dict[str, Any] = field(default_factory=dict)

    # What the link reports. The daemon owns the record and forwards the link's
    # listener calls here, so each field has one writer and one rule.

    def on_session_live(self, live: bool) -> None:
        """A session reached `session.updated` (True), or ended (False)."""
        self.connected = live

    def on_link_closed(self, code: int | None) -> None:
        """A connection closed with `code`, from either side (None: no close frame)."""
        self.last_close_code = code

    def on_reconnect(self) -> None:
        """The link tries again after a connection of the same conversation ended."""
        self.reconnects += 1

    def on_malformed_frame(self) -> None:
        """A frame that is not a JSON object with a string `type`, or lacks a needed field."""
        self.protocol.malformed_frames += 1

    def on_error_event(self) -> None:
        """An `error` event arrived, whatever its code."""
        self.protocol.error_events += 1

    def snapshot(self, now: float) -> dict[str, Any]:
        """The documented JSON object (plus any extra fields), as of `now`."""
        out: dict[str, Any] = {
            "state": self.state.value,
            "halt_reason": (
                self.halt_reason.value
                if self.state is State.HALTED and self.halt_reason is not None else None
            ),
            "connected": self.connected,
            "last_close_code": self.last_close_code,
            "reconnects": self.reconnects,
            "uptime_s": round(max(0.0, now - self.started_at), 3),
            "audio": {
                "underruns": self.audio.underruns,
                "overruns": self.audio.overruns,
                "dropped_frames": self.audio.dropped_frames,
                "echo_cancel": self.echo_cancel or {
                    "active": False, "erle_db": None, "delay_ms": None},
            },
            "protocol": {
                "malformed_frames": self.protocol.malformed_frames,
                "error_events": self.protocol.error_events,
                "failed_responses": self.protocol.failed_responses,
            },
            "wake_word": {"name": self.wake_word.name, "detections": self.wake_word.detections},
        }
        out.update(self.extra)
        return out
