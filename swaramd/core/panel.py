"""The panel's rules: button gestures to conversation inputs, states to LED patterns.

Pure and synchronous: the gpiozero adapter feeds button edges in
with the time, collects gestures and a deadline, and plays the patterns this
module describes as data. Rules this module keeps:

- What a press *means* is decided here, in one table per conversation mode
  (`GESTURE_TABLE`), never in the adapter (a short press starts
  from `idle`, interrupts while `speaking`, hangs up while `listening` in
  on_demand, retries from `halted`; a long press toggles `muted`; in
  push_to_talk the press and release edges are the inputs). The wake word
  is one more gesture in the same table: it starts and interrupts as a short
  press does, and in always_on it opens the microphone (`listen`).
- One gesture gives at most one input; "nothing to do" is `None`, a value.
- The press edge is reported at once (push-to-talk streams from it); short or
  long is decided on release or when the long-press deadline passes.
- Bounces are ignored by a lockout after each accepted edge; when the lockout
  ends the recogniser settles on the level last seen, so a tap shorter than
  the lockout is still a press and a release, never a stuck button.
- An LED pattern is a tuple of `(level, seconds)` steps that repeats; levels
  are 0.0-1.0. Every pattern has an on/off twin for pins without PWM, derived
  by a threshold, and every state has a colour for an RGB LED.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from swaramd.core.states import HaltReason, Mode, State


class Gesture(StrEnum):
    """What the user did with the button, as the recogniser reports it."""

    PRESSED = "pressed"          # the press edge, at once (push_to_talk starts here)
    RELEASED = "released"        # the release edge (push_to_talk ends here)
    SHORT_PRESS = "short_press"  # released before the long-press time
    LONG_PRESS = "long_press"    # held for the long-press time (reported while still held)
    WAKE_WORD = "wake_word"      # the wake word was heard (adapters.wake), not the button


class PanelInput(StrEnum):
    """What the conversation is asked to do because of a gesture."""

    START = "start"              # start a conversation
    INTERRUPT = "interrupt"      # silence the reply and cancel it (response.cancel)
    HANG_UP = "hang_up"          # end the conversation (on_demand)
    RETRY = "retry"              # try again now (halted, backoff, audio_error)
    TOGGLE_MUTE = "toggle_mute"  # mute or unmute the microphone
    TALK_START = "talk_start"    # push_to_talk: stream the microphone from now
    TALK_END = "talk_end"        # push_to_talk: stop; commit + response.create
    LISTEN = "listen"            # always_on with a wake word: stream the microphone from now



_S = State
_I = PanelInput

# Long press toggles mute wherever the microphone is or is about to be live.
_MUTE = {s: _I.TOGGLE_MUTE for s in (
    _S.CONNECTING, _S.LISTENING, _S.THINKING, _S.SPEAKING, _S.MUTED, _S.BACKOFF)}

GESTURE_TABLE: Mapping[Mode, Mapping[Gesture, Mapping[State, PanelInput]]] = MappingProxyType({
    # The button starts and ends conversations; a press answers "stop" to
    # whatever the last press started.
    Mode.ON_DEMAND: {
        Gesture.SHORT_PRESS: {
            _S.IDLE: _I.START,
            _S.CONNECTING: _I.HANG_UP,
            _S.LISTENING: _I.HANG_UP,
            _S.THINKING: _I.HANG_UP,      # no reply audio yet: nothing to interrupt
            _S.SPEAKING: _I.INTERRUPT,
            _S.MUTED: _I.HANG_UP,
            _S.BACKOFF: _I.HANG_UP,
            _S.HALTED: _I.RETRY,
            _S.AUDIO_ERROR: _I.RETRY,
        },
        Gesture.LONG_PRESS: _MUTE,
        # The word starts and interrupts as a press does; it never hangs up or retries.
        Gesture.WAKE_WORD: {_S.IDLE: _I.START, _S.SPEAKING: _I.INTERRUPT},
    },
    # The kiosk never hangs up; the button interrupts, retries and mutes.
    Mode.ALWAYS_ON: {
        Gesture.SHORT_PRESS: {
            _S.IDLE: _I.START,
            _S.SPEAKING: _I.INTERRUPT,
            _S.BACKOFF: _I.RETRY,
            _S.HALTED: _I.RETRY,
            _S.AUDIO_ERROR: _I.RETRY,
        },
        Gesture.LONG_PRESS: _MUTE,
        # The link stays up; the word opens the microphone (and interrupts a reply).
        Gesture.WAKE_WORD: {_S.IDLE: _I.START, _S.LISTENING: _I.LISTEN,
                            _S.THINKING: _I.LISTEN, _S.SPEAKING: _I.INTERRUPT},
    },
    # Holding is talking, so a long press is not a mute here. A release always
    # ends the talk: the state may have changed while the button was held.
    Mode.PUSH_TO_TALK: {
        Gesture.PRESSED: {s: _I.TALK_START for s in (
            _S.IDLE, _S.CONNECTING, _S.LISTENING, _S.THINKING, _S.SPEAKING)},
        Gesture.RELEASED: {s: _I.TALK_END for s in State},
        Gesture.SHORT_PRESS: {
            _S.BACKOFF: _I.RETRY,
            _S.HALTED: _I.RETRY,
            _S.AUDIO_ERROR: _I.RETRY,
        },
    },
})


def input_for_gesture(gesture: Gesture, state: State, mode: Mode) -> PanelInput | None:
    """The conversation input a gesture means in this state and mode, or None.

    The conversation calls this (`Conversation.on_gesture`) with the state it
    shows, so the meaning of a press is decided where the state is true.
    """
    try:
        table = GESTURE_TABLE[mode]
    except KeyError:
        raise ValueError(f"unknown conversation mode {mode!r}; known: "
                         f"{', '.join(m.value for m in Mode)}") from None
    return table.get(gesture, {}).get(state)


# --- gestures from edges -------------------------------------------------------------

DEBOUNCE_S = 0.05   # contacts settle within a few ms; nobody presses twice in 50 ms


@dataclass(slots=True)
class GestureRecogniser:
    """Turns debounced press/release edges and the clock into gestures.

    Feed `on_edge(pressed, now)` for every raw edge and `on_timer(now)` once
    `deadline` has passed; both return the gestures, in order. The caller
    keeps the deadline (a pure core has no clock of its own).
    """

    long_press_s: float = 2.0
    debounce_s: float = DEBOUNCE_S
    _raw: bool = field(default=False, init=False)
    _pressed: bool = field(default=False, init=False)
    _lock_until: float = field(default=-math.inf, init=False)
    _pressed_at: float = field(default=0.0, init=False)
    _long_done: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.debounce_s < self.long_press_s:
            raise ValueError("need 0 <= debounce_s < long_press_s")

    @property
    def pressed(self) -> bool:
        """The debounced level: True while the button counts as held."""
        return self._pressed

    @property
    def deadline(self) -> float | None:
        """When `on_timer` must next be called, or None if nothing is pending."""
        times = []
        if self._raw != self._pressed:
            times.append(self._lock_until)
        if self._pressed and not self._long_done:
            times.append(self._pressed_at + self.long_press_s)
        return min(times) if times else None

    def on_edge(self, pressed: bool, now: float) -> tuple[Gesture, ...]:
        """A raw edge: the button now reads `pressed`. Edges inside the lockout wait."""
        self._raw = pressed
        if now < self._lock_until:
            return ()
        return self._accept(now)

    def on_timer(self, now: float) -> tuple[Gesture, ...]:
        """The deadline passed: settle after a lockout, and report a long press."""
        gestures: tuple[Gesture, ...] = ()
        if self._raw != self._pressed and now >= self._lock_until:
            gestures = self._accept(now)
        if self._pressed and not self._long_done and now >= self._pressed_at + self.long_press_s:
            self._long_done = True
            gestures += (Gesture.LONG_PRESS,)
        return gestures

    def _accept(self, now: float) -> tuple[Gesture, ...]:
        if self._raw == self._pressed:
            return ()
        self._pressed = self._raw
        self._lock_until = now + self.debounce_s
        if self._pressed:
            self._pressed_at = now
            self._long_done = False
            return (Gesture.PRESSED,)
        if self._long_done:
            return (Gesture.RELEASED,)
        return (Gesture.RELEASED, Gesture.SHORT_PRESS)


# --- LED patterns as data ------------------------------------------------------------

Step = tuple[float, float]
"""One step of a pattern: (level 0.0-1.0, seconds)."""
Pattern = tuple[Step, ...]
"""Steps played in order and repeated until the state changes."""
Colour = tuple[float, float, float]
"""An RGB colour, each channel 0.0-1.0."""

FPS = 25               # fade resolution, as gpiozero's own pulse()
ON_OFF_THRESHOLD = 0.5  # without PWM, a level at or above this is on


def _ramp(start: float, end: float, seconds: float) -> Pattern:
    n = max(1, round(seconds * FPS))
    return tuple((round(start + (end - start) * i / n, 4), seconds / n) for i in range(n))


def pulse(period_s: float) -> Pattern:
    """A linear fade up then down over `period_s`, from dark to full."""
    return _ramp(0.0, 1.0, period_s / 2) + _ramp(1.0, 0.0, period_s / 2)


def breathe(period_s: float, floor: float = 0.05) -> Pattern:
    """A smooth (raised-cosine) swell over `period_s` that never goes quite dark."""
    n = max(2, round(period_s * FPS))
    return tuple(
        (round(floor + (1 - floor) * (1 - math.cos(2 * math.pi * i / n)) / 2, 4), period_s / n)
        for i in range(n))


def blink(on_s: float, off_s: float) -> Pattern:
    """On for `on_s`, off for `off_s`."""
    return ((1.0, on_s), (0.0, off_s))


def blinks(count: int, on_s: float = 0.2, gap_s: float = 0.2, pause_s: float = 1.2) -> Pattern:
    """`count` quick blinks, then a pause: a number a person can count."""
    steps: list[Step] = []
    for _ in range(count - 1):
        steps += [(1.0, on_s), (0.0, gap_s)]
    return (*steps, (1.0, on_s), (0.0, pause_s))


OFF: Pattern = ((0.0, 1.0),)
ON: Pattern = ((1.0, 1.0),)

LED_PATTERNS: Mapping[State, Pattern] = MappingProxyType({
    State.IDLE: OFF,                        # off
    State.CONNECTING: pulse(2.0),           # slow pulse
    State.LISTENING: ON,                    # on
    State.THINKING: pulse(0.5),             # fast pulse
    State.SPEAKING: breathe(3.0),           # slow breathe
    State.MUTED: blink(0.1, 1.9),           # short blink every 2 s
    State.BACKOFF: blink(0.5, 1.5),         # slow blink
    State.HALTED: blinks(2),                # see HALT_PATTERNS
    State.AUDIO_ERROR: blink(0.1, 0.1),     # fast blink
})
"""One pattern per state; `halted` is split by reason in HALT_PATTERNS."""

HALT_PATTERNS: Mapping[HaltReason, Pattern] = MappingProxyType({
    HaltReason.AUTH: blinks(2),     # 2 blinks: the key was refused
    HaltReason.CREDITS: blinks(3),  # 3 blinks: out of credits
})

COLOURS: Mapping[State, Colour] = MappingProxyType({
    State.IDLE: (1.0, 1.0, 1.0),          # (dark anyway)
    State.CONNECTING: (0.0, 0.0, 1.0),    # blue
    State.LISTENING: (0.0, 1.0, 0.0),     # green
    State.THINKING: (0.0, 1.0, 1.0),      # cyan
    State.SPEAKING: (1.0, 1.0, 1.0),      # white
    State.MUTED: (1.0, 0.0, 0.0),         # red, as other speakers show a muted mic
    State.BACKOFF: (1.0, 0.5, 0.0),       # amber
    State.HALTED: (1.0, 0.0, 0.0),        # red: needs a person
    State.AUDIO_ERROR: (1.0, 0.0, 1.0),   # magenta
})
"""The colour of each state on an optional RGB LED; the pattern scales it."""


def on_off(pattern: Pattern) -> Pattern:
    """The on/off twin of a pattern, for an LED pin without PWM.

    Each level becomes 1.0 or 0.0 at `ON_OFF_THRESHOLD`, and neighbouring
    steps at the same level merge (across the repeat too), so the twin keeps
    the rhythm and the period. The twin starts on its first lit step, so a
    new state shows at once rather than after a dark stretch.
    """
    merged: list[Step] = []
    for level, seconds in pattern:
        lit = 1.0 if level >= ON_OFF_THRESHOLD else 0.0
        if merged and merged[-1][0] == lit:
            merged[-1] = (lit, round(merged[-1][1] + seconds, 9))
        else:
            merged.append((lit, seconds))
    if len(merged) > 1 and merged[0][0] == merged[-1][0]:
        level, seconds = merged.pop()
        merged[0] = (level, round(merged[0][1] + seconds, 9))
    first_lit = next((i for i, (level, _) in enumerate(merged) if level), 0)
    return tuple(merged[first_lit:] + merged[:first_lit])


def on_off_colour(colour: Colour) -> Colour:
    """The nearest colour an RGB LED without PWM can show (each channel on or off)."""
    r, g, b = (1.0 if c >= ON_OFF_THRESHOLD else 0.0 for c in colour)
    return (r, g, b)


def pattern_for(state: State, halt_reason: HaltReason | None = None, *,
                pwm: bool = True) -> Pattern:
    """The pattern that shows `state`; without PWM, its on/off twin.

    A `halted` state without a reason shows the auth pattern rather than
    failing: the LED must never be the thing that stops the daemon.
    """
    if state is State.HALTED:
        pattern = HALT_PATTERNS[halt_reason or HaltReason.AUTH]
    else:
        pattern = LED_PATTERNS[state]
    return pattern if pwm else on_off(pattern)


def colour_for(state: State, *, pwm: bool = True) -> Colour:
    """The RGB colour of `state`; without PWM, the nearest on/off colour."""
    colour = COLOURS[state]
    return colour if pwm else on_off_colour(colour)
