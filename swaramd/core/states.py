"""The appliance states of DESIGN §5, shared by the conversation, panel and status."""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    """What the appliance is doing; `status` prints `.value`."""

    IDLE = "idle"
    CONNECTING = "connecting"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    MUTED = "muted"
    BACKOFF = "backoff"
    HALTED = "halted"
    AUDIO_ERROR = "audio_error"


class HaltReason(str, Enum):
    """Why the appliance halted and waits for a person (DESIGN §4)."""

    AUTH = "auth"
    CREDITS = "credits"
