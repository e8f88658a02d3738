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


class Mode(StrEnum):
    """How conversations start and end (`conversation.mode`)."""

    ON_DEMAND = "on_demand"        # a press (or the wake word) starts one; idle hangs up
    ALWAYS_ON = "always_on"        # the kiosk: connected from start, never hangs up
    PUSH_TO_TALK = "push_to_talk"  # streams while the button is held


class Duplex(StrEnum):
    """Whether the mic stays open while the speaker plays (`audio.duplex`)."""

    AUTO = "auto"   # full while the echo canceller runs, else half
    HALF = "half"   # the mic is shut while the speaker plays, and for the echo tail
    FULL = "full"   # the mic stays open: the hardware or the canceller removes the echo


class HaltReason(StrEnum):
    """Why the appliance halted and waits for a person."""

    AUTH = "auth"
    CREDITS = "credits"
