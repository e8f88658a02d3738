"""The appliance states, shared by the conversation, the panel and the status record."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
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


class HaltReason(StrEnum):
    """Why the appliance halted and waits for a person."""

    AUTH = "auth"
    CREDITS = "credits"
