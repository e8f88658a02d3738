"""The panel's pure rules: gesture table, gesture recogniser, LED pattern data.

Synchronous and table-driven; time is a number we pass in, nothing sleeps.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

import swaramd.core.panel as panel_module
from swaramd.core.panel import (
    COLOURS,
    HALT_PATTERNS,
    LED_PATTERNS,
    OFF,
    ON,
    Gesture,
    GestureRecogniser,
    PanelInput,
    Pattern,
    colour_for,
    input_for_gesture,
    on_off,
    on_off_colour,
    pattern_for,
)
from swaramd.core.states import HaltReason, Mode, State

G, S, In = Gesture, State, PanelInput

# --- the gesture table ---------------------------------------------------------------

# The documented button table, row by row, plus the choices made where it is silent.
EXPECTED = [
    # on_demand: starts from idle, interrupts while speaking, ends while listening,
    # retries from halted; a long press toggles muted.
    ("on_demand", G.SHORT_PRESS, S.IDLE, In.START),
    ("on_demand", G.SHORT_PRESS, S.SPEAKING, In.INTERRUPT),
    ("on_demand", G.SHORT_PRESS, S.LISTENING, In.HANG_UP),
    ("on_demand", G.SHORT_PRESS, S.HALTED, In.RETRY),
    ("on_demand", G.SHORT_PRESS, S.THINKING, In.HANG_UP),
    ("on_demand", G.SHORT_PRESS, S.CONNECTING, In.HANG_UP),
    ("on_demand", G.SHORT_PRESS, S.BACKOFF, In.HANG_UP),
    ("on_demand", G.SHORT_PRESS, S.AUDIO_ERROR, In.RETRY),
    ("on_demand", G.LONG_PRESS, S.LISTENING, In.TOGGLE_MUTE),
    ("on_demand", G.LONG_PRESS, S.MUTED, In.TOGGLE_MUTE),
    ("on_demand", G.LONG_PRESS, S.SPEAKING, In.TOGGLE_MUTE),
    ("on_demand", G.LONG_PRESS, S.IDLE, None),
    ("on_demand", G.LONG_PRESS, S.HALTED, None),
    ("on_demand", G.PRESSED, S.IDLE, None),
    ("on_demand", G.RELEASED, S.LISTENING, None),
    # always_on (kiosk): never hangs up
    ("always_on", G.SHORT_PRESS, S.LISTENING, None),
    ("always_on", G.SHORT_PRESS, S.SPEAKING, In.INTERRUPT),
    ("always_on", G.SHORT_PRESS, S.THINKING, None),
    ("always_on", G.SHORT_PRESS, S.HALTED, In.RETRY),
    ("always_on", G.SHORT_PRESS, S.BACKOFF, In.RETRY),
    ("always_on", G.SHORT_PRESS, S.AUDIO_ERROR, In.RETRY),
    ("always_on", G.LONG_PRESS, S.LISTENING, In.TOGGLE_MUTE),
    ("always_on", G.LONG_PRESS, S.MUTED, In.TOGGLE_MUTE),
    # push_to_talk: the edges are the inputs; holding is not muting
    ("push_to_talk", G.PRESSED, S.IDLE, In.TALK_START),
    ("push_to_talk", G.PRESSED, S.LISTENING, In.TALK_START),
    ("push_to_talk", G.PRESSED, S.SPEAKING, In.TALK_START),
    ("push_to_talk", G.PRESSED, S.HALTED, None),
    ("push_to_talk", G.RELEASED, S.LISTENING, In.TALK_END),
    ("push_to_talk", G.RELEASED, S.THINKING, In.TALK_END),
    ("push_to_talk", G.RELEASED, S.BACKOFF, In.TALK_END),
    ("push_to_talk", G.SHORT_PRESS, S.LISTENING, None),
    ("push_to_talk", G.SHORT_PRESS, S.HALTED, In.RETRY),
    ("push_to_talk", G.LONG_PRESS, S.LISTENING, None),
    # the wake word: starts and interrupts as a short press does, never hangs up or
    # retries; in always_on it opens the microphone; push_to_talk ignores it
    ("on_demand", G.WAKE_WORD, S.IDLE, In.START),
    ("on_demand", G.WAKE_WORD, S.SPEAKING, In.INTERRUPT),
    ("on_demand", G.WAKE_WORD, S.LISTENING, None),
    ("on_demand", G.WAKE_WORD, S.THINKING, None),
    ("on_demand", G.WAKE_WORD, S.HALTED, None),
    ("on_demand", G.WAKE_WORD, S.MUTED, None),
    ("always_on", G.WAKE_WORD, S.LISTENING, In.LISTEN),
    ("always_on", G.WAKE_WORD, S.THINKING, In.LISTEN),
    ("always_on", G.WAKE_WORD, S.SPEAKING, In.INTERRUPT),
    ("always_on", G.WAKE_WORD, S.MUTED, None),
    ("always_on", G.WAKE_WORD, S.BACKOFF, None),
    ("push_to_talk", G.WAKE_WORD, S.IDLE, None),
    ("push_to_talk", G.WAKE_WORD, S.SPEAKING, None),
]


@pytest.mark.parametrize(("mode", "gesture", "state", "expected"), EXPECTED)
def test_gesture_means(mode: str, gesture: Gesture, state: State,
                       expected: PanelInput | None) -> None:
    assert input_for_gesture(gesture, state, mode) is expected


@pytest.mark.parametrize("mode", list(Mode))
def test_every_gesture_in_every_state_has_one_answer(mode: str) -> None:
    for gesture, state in itertools.product(Gesture, State):
        assert input_for_gesture(gesture, state, mode) in (*PanelInput, None)


@pytest.mark.parametrize("mode", ["on_demand", "always_on"])
def test_edges_mean_nothing_outside_push_to_talk(mode: str) -> None:
    for gesture, state in itertools.product((G.PRESSED, G.RELEASED), State):
        assert input_for_gesture(gesture, state, mode) is None


def test_push_to_talk_never_mutes_and_always_ends_a_talk() -> None:
    for state in State:
        assert input_for_gesture(G.LONG_PRESS, state, "push_to_talk") is None
        assert input_for_gesture(G.RELEASED, state, "push_to_talk") is In.TALK_END


def test_unknown_mode_is_named() -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        input_for_gesture(G.SHORT_PRESS, S.IDLE, "sometimes")


# --- the recogniser ------------------------------------------------------------------

# Each script: a list of (time, "down" | "up" | "tick") and the gestures expected
# from each step. long_press_s 2.0, debounce 0.05.
SCRIPTS = {
    "short press": [
        (0.0, "down", (G.PRESSED,)),
        (0.3, "up", (G.RELEASED, G.SHORT_PRESS)),
    ],
    "bouncy press and release": [
        (0.000, "down", (G.PRESSED,)),
        (0.002, "up", ()),
        (0.004, "down", ()),
        (0.050, "tick", ()),
        (0.400, "up", (G.RELEASED, G.SHORT_PRESS)),
        (0.401, "down", ()),
        (0.403, "up", ()),
        (0.450, "tick", ()),
    ],
    "tap shorter than the lockout": [
        (0.0, "down", (G.PRESSED,)),
        (0.02, "up", ()),
        (0.05, "tick", (G.RELEASED, G.SHORT_PRESS)),
    ],
    "long press, reported while held": [
        (0.0, "down", (G.PRESSED,)),
        (1.9, "tick", ()),
        (2.0, "tick", (G.LONG_PRESS,)),
        (5.0, "tick", ()),
        (6.0, "up", (G.RELEASED,)),
    ],
    "two presses": [
        (0.0, "down", (G.PRESSED,)),
        (0.2, "up", (G.RELEASED, G.SHORT_PRESS)),
        (0.4, "down", (G.PRESSED,)),
        (2.4, "tick", (G.LONG_PRESS,)),
        (2.5, "up", (G.RELEASED,)),
    ],
    "release without a press (held at start)": [
        (0.0, "up", ()),
    ],
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_recogniser_script(name: str) -> None:
    recogniser = GestureRecogniser(long_press_s=2.0, debounce_s=0.05)
    for now, what, expected in SCRIPTS[name]:
        if what == "tick":
            got = recogniser.on_timer(now)
        else:
            got = recogniser.on_edge(what == "down", now)
        assert got == expected, f"{name} at {now}: {what}"


def test_recogniser_deadlines() -> None:
    r = GestureRecogniser(long_press_s=2.0, debounce_s=0.05)
    assert r.deadline is None
    r.on_edge(True, 10.0)
    assert r.deadline == 12.0                     # long press
    r.on_edge(False, 10.01)                       # bounce inside the lockout
    assert r.deadline == pytest.approx(10.05)     # settle when the lockout ends
    r.on_edge(True, 10.02)
    assert r.deadline == 12.0
    assert r.on_timer(12.0) == (G.LONG_PRESS,)
    assert r.deadline is None and r.pressed
    r.on_edge(False, 13.0)
    assert r.deadline is None and not r.pressed


def test_recogniser_rejects_nonsense_times() -> None:
    with pytest.raises(ValueError):
        GestureRecogniser(long_press_s=0.01, debounce_s=0.05)


# --- LED patterns --------------------------------------------------------------------


def _period(pattern: Pattern) -> float:
    return sum(seconds for _, seconds in pattern)


def _rotations(pattern: Pattern) -> set[Pattern]:
    rounded = tuple((level, round(seconds, 3)) for level, seconds in pattern)
    return {rounded[i:] + rounded[:i] for i in range(len(rounded))}


ALL_SHOWN = [(s, None) for s in State if s is not S.HALTED] + [(S.HALTED, r) for r in HaltReason]


@pytest.mark.parametrize(("state", "reason"), ALL_SHOWN)
@pytest.mark.parametrize("pwm", [True, False])
def test_patterns_are_well_formed(state: State, reason: HaltReason | None, pwm: bool) -> None:
    pattern = pattern_for(state, reason, pwm=pwm)
    assert pattern
    for level, seconds in pattern:
        assert 0.0 <= level <= 1.0
        assert seconds > 0
        if not pwm:
            assert level in (0.0, 1.0)
    assert _period(on_off(pattern)) == pytest.approx(_period(pattern))


@pytest.mark.parametrize("pwm", [True, False])
def test_every_state_looks_different(pwm: bool) -> None:
    looks = [pattern_for(s, r, pwm=pwm) for s, r in ALL_SHOWN]
    for a, b in itertools.combinations(looks, 2):
        assert not _rotations(a) & _rotations(b)


LOOKS = [  # the documented LED looks, in numbers
    (S.IDLE, None, OFF),
    (S.LISTENING, None, ON),
    (S.MUTED, None, ((1.0, 0.1), (0.0, 1.9))),
    (S.BACKOFF, None, ((1.0, 0.5), (0.0, 1.5))),
    (S.AUDIO_ERROR, None, ((1.0, 0.1), (0.0, 0.1))),
    (S.HALTED, HaltReason.AUTH, ((1.0, 0.2), (0.0, 0.2), (1.0, 0.2), (0.0, 1.2))),
    (S.HALTED, HaltReason.CREDITS,
     ((1.0, 0.2), (0.0, 0.2), (1.0, 0.2), (0.0, 0.2), (1.0, 0.2), (0.0, 1.2))),
]


@pytest.mark.parametrize(("state", "reason", "expected"), LOOKS)
def test_blink_patterns(state: State, reason: HaltReason | None, expected: Pattern) -> None:
    assert pattern_for(state, reason) == expected


def test_pulses_and_breathe() -> None:
    slow, fast, breathe = (LED_PATTERNS[s] for s in (S.CONNECTING, S.THINKING, S.SPEAKING))
    assert _period(slow) == pytest.approx(2.0) and _period(fast) == pytest.approx(0.5)
    assert _period(breathe) == pytest.approx(3.0)
    for pattern in (slow, fast):
        levels = [level for level, _ in pattern]
        assert min(levels) == 0.0 and max(levels) == 1.0
        assert len(set(levels)) > 5                     # a fade, not a blink
    assert min(level for level, _ in breathe) > 0.0     # breathing never goes quite dark
    assert on_off(slow) == ((1.0, 1.0), (0.0, 1.0))   # starts lit: shows at once


def test_halted_without_a_reason_still_shows() -> None:
    assert pattern_for(S.HALTED) == HALT_PATTERNS[HaltReason.AUTH]


def test_on_off_merges_across_the_repeat() -> None:
    assert on_off(((0.0, 0.5), (0.7, 1.0), (0.2, 0.5))) == ((1.0, 1.0), (0.0, 1.0))
    assert on_off(((0.3, 1.0),)) == OFF


def test_colours() -> None:
    assert set(COLOURS) == set(State)
    for state in State:
        colour = colour_for(state)
        assert all(0.0 <= c <= 1.0 for c in colour)
        assert all(c in (0.0, 1.0) for c in colour_for(state, pwm=False))
    assert colour_for(S.LISTENING) == (0.0, 1.0, 0.0)
    assert on_off_colour((1.0, 0.5, 0.2)) == (1.0, 1.0, 0.0)


def test_core_panel_imports_no_io() -> None:
    tree = ast.parse(Path(panel_module.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not imported & {"asyncio", "gpiozero", "pyaudio", "websockets", "socket",
                           "threading", "time"}
