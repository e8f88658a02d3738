"""The status record that `swaramd status` prints (DESIGN §5).

One mutable object owned by the daemon's loop; adapters bump its counters,
the control socket serialises a snapshot. It never holds the API key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swaramd.core.states import HaltReason, State


@dataclass(slots=True)
class AudioCounters:
    """Audio faults since start: playback underruns, capture overruns, dropped uplink frames."""

    underruns: int = 0
    overruns: int = 0
    dropped_frames: int = 0
    echo_cancel: dict[str, Any] | None = None   # the engine's echo canceller, when known


@dataclass(slots=True)
class ProtocolCounters:
    """Peer mistakes since start: undecodable frames and `error` events."""

    malformed_frames: int = 0
    error_events: int = 0


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
    protocol: ProtocolCounters = field(default_factory=ProtocolCounters)
    extra: dict[str, Any] = field(default_factory=dict)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The JSON object of DESIGN §5 (plus any extra fields), as of `now`."""
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
                "echo_cancel": self.audio.echo_cancel or {
                    "active": False, "erle_db": None, "delay_ms": None},
            },
            "protocol": {
                "malformed_frames": self.protocol.malformed_frames,
                "error_events": self.protocol.error_events,
            },
        }
        out.update(self.extra)
        return out
