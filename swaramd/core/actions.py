"""What the conversation asks the daemon to do: one frozen dataclass per action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from swaramd.core.states import HaltReason, State


@dataclass(frozen=True, slots=True)
class Send:
    """Send this client event (built by core.protocol)."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Connect:
    """Open the link (it reconnects by policy from then on)."""


@dataclass(frozen=True, slots=True)
class HangUp:
    """Close the link with 1000 and stay disconnected."""


@dataclass(frozen=True, slots=True)
class ResumeLink:
    """Leave a halt: the person acted."""


@dataclass(frozen=True, slots=True)
class Flush:
    """Silence the speaker now and drop everything queued."""


@dataclass(frozen=True, slots=True)
class Play:
    """Queue reply audio for `response_id`."""

    pcm: bytes
    response_id: str


@dataclass(frozen=True, slots=True)
class EndResponse:
    """No more audio for `response_id`: play what is queued even below the prebuffer."""

    response_id: str


@dataclass(frozen=True, slots=True)
class PlayEarcon:
    """Play a short tone; the uplink is gated while it plays."""

    name: str


@dataclass(frozen=True, slots=True)
class RetryAudio:
    """Try to reopen the failed audio devices now, not at the next scheduled retry."""


@dataclass(frozen=True, slots=True)
class RunTool:
    """Run a local tool; answer with `Conversation.on_tool_result`."""

    call_id: str
    name: str
    arguments: str
    session: int = 0        # which session called it: the result goes back to that one only


@dataclass(frozen=True, slots=True)
class ShowState:
    """The shown state changed (LED, status, sd_notify STATUS=)."""

    state: State
    halt_reason: HaltReason | None


Action = (Send | Connect | HangUp | ResumeLink | RetryAudio | Flush | Play | EndResponse
          | PlayEarcon | RunTool | ShowState)
