"""The gpiozero panel on gpiozero's own MockFactory.

The button is pressed with `drive_low()`; LED patterns are checked from the
pin's recorded `(timestamp, state)` history. Every pattern is recorded at once,
on its own pins, over one shared window, to keep the suite fast.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from swaramd.adapters.panel import NullPanel, Panel, open_panel, select_pin_factory
from swaramd.core.config import GpioConfig
from swaramd.core.errors import PanelError
from swaramd.core.panel import Gesture, PanelInput, Pattern, input_for_gesture, pattern_for
from swaramd.core.states import HaltReason, State

G = Gesture
SHOWN = [(s, None) for s in State if s is not State.HALTED] + \
        [(State.HALTED, r) for r in HaltReason]
WINDOW_S = 3.6          # longer than the longest period (speaking, 3 s) plus a step
SWITCH_S = 0.3          # a new state shows at once (a few ms on an idle machine); the bound
                        # leaves room for a loaded one and still fails a worker that plays
                        # out its current step (up to 1.2 s in these patterns)


@pytest.fixture(autouse=True)
def mock_factory() -> Iterator[MockFactory]:
    """A fresh MockFactory with PWM pins as Device.pin_factory, reset after each test."""
    saved = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = saved


@pytest.fixture
def idle_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop that is never run: for LED-only tests, which hand nothing over."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _ignore(gesture: Gesture) -> None:
    pass


def _merge(pattern: Pattern) -> list[tuple[float, float]]:
    """A pattern as a pin records it: neighbouring equal levels are one state."""
    merged: list[tuple[float, float]] = []
    for level, seconds in pattern:
        if merged and abs(merged[-1][0] - level) < 1e-6:
            merged[-1] = (level, merged[-1][1] + seconds)
        else:
            merged.append((level, seconds))
    if len(merged) > 1 and abs(merged[0][0] - merged[-1][0]) < 1e-6:
        level, seconds = merged.pop()
        merged[0] = (level, merged[0][1] + seconds)
    return merged


def _observed(states: list[Any]) -> list[tuple[float, float]]:
    """Complete steps (level, seconds) after the first change; the last is still running."""
    return [(float(states[i].state), states[i + 1].timestamp) for i in range(1, len(states) - 1)]


def assert_plays(states: list[Any], pattern: Pattern, invert: bool = False) -> None:
    """The pin went through at least one whole cycle of `pattern`, in order and in time."""
    expected = _merge(tuple((1.0 - lv if invert else lv, s) for lv, s in pattern))
    observed = _observed(states)
    m = len(expected)
    assert len(observed) >= m, f"only {len(observed)} steps of {m} in the window"
    starts = [k for k in range(m) if abs(expected[k][0] - observed[0][0]) < 1e-6]
    assert starts, f"first level {observed[0][0]} is not in the pattern"
    k = starts[0] if len(starts) == 1 else next(
        k for k in starts
        if all(abs(expected[(k + j) % m][0] - lv) < 1e-6 for j, (lv, _) in enumerate(observed)))
    for j, (level, seconds) in enumerate(observed):
        want_level, want_s = expected[(k + j) % m]
        assert abs(level - want_level) < 1e-6, f"step {j}: level {level}, want {want_level}"
        # Each step ends on the worker's wake-up, late by a scheduling delay: tens of ms
        # with both cores busy. The bound still tells 0.1 s from 0.5 s and 1.9 s steps.
        assert abs(seconds - want_s) <= 0.15 + 0.2 * want_s, f"step {j}: {seconds:.3f} s"
    period = sum(s for _, s in expected)
    assert sum(s for _, s in observed[:m]) == pytest.approx(period, abs=0.3)


@pytest.fixture(scope="module")
def recordings() -> dict[tuple[bool, State, HaltReason | None], list[Any]]:
    """Every state on its own PWM LED and on its own on/off LED, over one window."""
    loop = asyncio.new_event_loop()
    factories = {True: MockFactory(pin_class=MockPWMPin), False: MockFactory(pin_class=MockPin)}
    panels: list[Panel] = []
    pins = {}
    try:
        for pwm, factory in factories.items():
            for i, (state, reason) in enumerate(SHOWN):
                panel = Panel(GpioConfig(button_pin=2 + i, led_pin=14 + i), factory, loop, _ignore)
                panels.append(panel)
                assert panel.pwm is pwm
                pin = factory.pin(14 + i)
                pin.clear_states()
                panel.show(state, reason)
                pins[(pwm, state, reason)] = pin
        time.sleep(WINDOW_S)
        return {key: list(pin.states) for key, pin in pins.items()}
    finally:
        for panel in panels:
            panel.close()
        for factory in factories.values():
            factory.reset()
        loop.close()


@pytest.mark.parametrize("pwm", [True, False], ids=["pwm", "on_off"])
@pytest.mark.parametrize(("state", "reason"), SHOWN, ids=[f"{s.value}-{r}" for s, r in SHOWN])
def test_each_state_plays_its_pattern(recordings: dict[Any, list[Any]], pwm: bool, state: State,
                                      reason: HaltReason | None) -> None:
    states = recordings[(pwm, state, reason)]
    if state is State.IDLE:
        assert [float(s.state) for s in states] == [0.0]           # off, never lit
    elif state is State.LISTENING:
        assert [float(s.state) for s in states] == [0.0, 1.0]      # on, and stays on
        assert states[1].timestamp < SWITCH_S
    else:
        assert_plays(states, pattern_for(state, reason, pwm=pwm))


def _time_to(pin: Any, level: float, limit: float = 1.0) -> float:
    start = time.monotonic()
    while abs(float(pin.state) - level) > 1e-6:
        assert time.monotonic() - start < limit, f"pin never reached {level}"
        time.sleep(0.0005)
    return time.monotonic() - start


@pytest.mark.parametrize(("first", "then", "level"), [
    ((State.CONNECTING, None), (State.LISTENING, None), 1.0),       # mid-fade to on
    ((State.SPEAKING, None), (State.IDLE, None), 0.0),              # mid-breathe to off
    ((State.HALTED, HaltReason.CREDITS), (State.IDLE, None), 0.0),  # mid-blink to off
])
def test_state_change_mid_pattern_switches_at_once(
        idle_loop: asyncio.AbstractEventLoop, mock_factory: MockFactory,
        first: tuple[State, HaltReason | None], then: tuple[State, HaltReason | None],
        level: float) -> None:
    with Panel(GpioConfig(), mock_factory, idle_loop, _ignore) as panel:
        led = mock_factory.pin(25)
        panel.show(*first)
        time.sleep(0.5)       # mid-pattern: part-way up the fade, or in the second blink
        assert 0.0 < float(led.state) or first[0] is State.HALTED
        panel.show(*then)
        assert _time_to(led, level) < SWITCH_S
        changes = len(led.states)
        time.sleep(0.3)
        assert len(led.states) == changes, "the old pattern is still playing"


def test_close_turns_the_led_off_and_stops_the_threads(
        idle_loop: asyncio.AbstractEventLoop, mock_factory: MockFactory) -> None:
    panel = Panel(GpioConfig(), mock_factory, idle_loop, _ignore)
    led = mock_factory.pin(25)
    panel.show(State.CONNECTING)
    time.sleep(0.5)
    assert 0.0 < float(led.state) < 1.0          # half-lit, mid-fade
    panel.close()
    assert float(led.state) == 0.0
    assert not [t for t in threading.enumerate() if t.name.startswith("swaramd-")]
    changes = len(led.states)
    time.sleep(0.2)
    assert len(led.states) == changes
    panel.close()                                 # twice is harmless


def test_active_low_led_inverts(idle_loop: asyncio.AbstractEventLoop,
                                mock_factory: MockFactory) -> None:
    with Panel(GpioConfig(led_active_high=False), mock_factory, idle_loop, _ignore) as panel:
        led = mock_factory.pin(25)
        assert float(led.state) == 1.0            # off is high
        led.clear_states()
        panel.show(State.AUDIO_ERROR)
        time.sleep(0.7)
        assert_plays(list(led.states), pattern_for(State.AUDIO_ERROR), invert=True)


def test_rgb_led_shows_the_colour_of_each_state(idle_loop: asyncio.AbstractEventLoop,
                                                mock_factory: MockFactory) -> None:
    gpio = GpioConfig(rgb_pins=(5, 6, 13))
    with Panel(gpio, mock_factory, idle_loop, _ignore) as panel:
        red, green, blue = (mock_factory.pin(n) for n in gpio.rgb_pins or ())
        panel.show(State.LISTENING)
        assert _time_to(green, 1.0) < SWITCH_S
        assert (red.state, blue.state) == (0.0, 0.0)
        assert _time_to(mock_factory.pin(25), 1.0) < SWITCH_S  # the single LED shows it too
        panel.show(State.BACKOFF)                 # amber, starting with its "on" step
        assert _time_to(red, 1.0) < SWITCH_S and _time_to(green, 0.5) < SWITCH_S
        assert blue.state == 0.0
        assert _time_to(red, 0.0) == pytest.approx(0.5, abs=0.1)
    assert (red.state, green.state, blue.state) == (0.0, 0.0, 0.0)


def test_rgb_led_on_the_led_pin_replaces_it(idle_loop: asyncio.AbstractEventLoop,
                                            mock_factory: MockFactory) -> None:
    gpio = GpioConfig(led_pin=25, rgb_pins=(25, 24, 23))
    with Panel(gpio, mock_factory, idle_loop, _ignore) as panel:
        panel.show(State.MUTED)                   # red
        assert _time_to(mock_factory.pin(25), 1.0) < SWITCH_S


# --- the button ----------------------------------------------------------------------


class Inputs:
    """Collects gestures in the loop and checks they arrive on the loop's thread."""

    def __init__(self) -> None:
        self.gestures: list[Gesture] = []
        self.thread = threading.get_ident()
        self.arrived = asyncio.Event()

    def __call__(self, gesture: Gesture) -> None:
        assert threading.get_ident() == self.thread
        self.gestures.append(gesture)
        self.arrived.set()

    def inputs(self, state: State, mode: str) -> list[PanelInput]:
        meant = (input_for_gesture(g, state, mode) for g in self.gestures)
        return [i for i in meant if i is not None]


async def _panel(inputs: Inputs, **gpio: Any) -> Panel:
    panel = open_panel(GpioConfig(pin_factory="mock", **gpio), asyncio.get_running_loop(), inputs)
    assert isinstance(panel, Panel)
    return panel


async def test_a_bouncy_press_is_one_input(mock_factory: MockFactory) -> None:
    inputs = Inputs()
    with await _panel(inputs):
        button = mock_factory.pin(17)
        button.drive_low(); button.drive_high(); button.drive_low()     # noqa: E702
        await asyncio.sleep(0.2)
        button.drive_high(); button.drive_low(); button.drive_high()    # noqa: E702
        await asyncio.sleep(0.2)
    assert inputs.gestures == [G.PRESSED, G.RELEASED, G.SHORT_PRESS]
    assert inputs.inputs(State.IDLE, "on_demand") == [PanelInput.START]


async def test_each_press_is_one_input(mock_factory: MockFactory) -> None:
    inputs = Inputs()
    with await _panel(inputs):
        button = mock_factory.pin(17)
        for _ in range(4):
            button.drive_low()
            await asyncio.sleep(0.08)
            button.drive_high()
            await asyncio.sleep(0.08)
    assert inputs.inputs(State.SPEAKING, "on_demand") == [PanelInput.INTERRUPT] * 4


async def test_a_tap_inside_the_lockout_is_still_a_press(mock_factory: MockFactory) -> None:
    inputs = Inputs()
    with await _panel(inputs):
        button = mock_factory.pin(17)
        button.drive_low(); button.drive_high()                         # noqa: E702
        await asyncio.sleep(0.3)
    assert inputs.gestures == [G.PRESSED, G.RELEASED, G.SHORT_PRESS]


async def test_long_press_is_reported_while_held(mock_factory: MockFactory) -> None:
    inputs = Inputs()
    with await _panel(inputs, long_press_s=0.3):
        button = mock_factory.pin(17)
        button.drive_low()
        await asyncio.sleep(0.15)
        assert inputs.gestures == [G.PRESSED]
        await asyncio.sleep(0.45)
        assert inputs.gestures == [G.PRESSED, G.LONG_PRESS]
        button.drive_high()
        await asyncio.sleep(0.1)
    assert inputs.gestures == [G.PRESSED, G.LONG_PRESS, G.RELEASED]
    assert inputs.inputs(State.LISTENING, "on_demand") == [PanelInput.TOGGLE_MUTE]


async def test_push_to_talk_press_reaches_the_loop_at_once(mock_factory: MockFactory) -> None:
    inputs = Inputs()
    with await _panel(inputs, long_press_s=0.3):
        button = mock_factory.pin(17)
        pressed = time.monotonic()
        await asyncio.to_thread(button.drive_low)          # as gpiozero's own thread would
        await asyncio.wait_for(inputs.arrived.wait(), 1.0)
        assert time.monotonic() - pressed < 0.2            # not held back for short vs long
        await asyncio.sleep(0.5)                           # holding past the long-press time
        await asyncio.to_thread(button.drive_high)
        await asyncio.sleep(0.1)
    assert inputs.gestures == [G.PRESSED, G.LONG_PRESS, G.RELEASED]
    assert inputs.inputs(State.LISTENING, "push_to_talk") == [
        PanelInput.TALK_START, PanelInput.TALK_END]


async def test_a_closed_panel_reports_nothing(mock_factory: MockFactory) -> None:
    inputs = Inputs()
    panel = await _panel(inputs)
    panel.close()
    mock_factory.pin(17).drive_low()
    await asyncio.sleep(0.1)
    assert inputs.gestures == []


# --- factories -----------------------------------------------------------------------


def test_none_is_a_panel_that_does_nothing(mock_factory: MockFactory) -> None:
    loop = asyncio.new_event_loop()
    try:
        with open_panel(GpioConfig(pin_factory="none"), loop, _ignore) as panel:
            assert isinstance(panel, NullPanel)
            panel.show(State.LISTENING)
        assert not mock_factory.pins
    finally:
        loop.close()


def test_mock_installs_a_pwm_mock_factory() -> None:
    Device.pin_factory = None
    factory = select_pin_factory("mock")
    assert isinstance(factory, MockFactory) and factory.pin_class is MockPWMPin
    assert Device.pin_factory is factory
    assert select_pin_factory("mock") is factory


def _no_gpio_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    Device.pin_factory = None
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    for module in ("lgpio", "RPi", "RPi.GPIO", "pigpio", "gpiozero.pins.native"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails, as on a PC


def test_auto_without_gpio_fails_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_gpio_libraries(monkeypatch)
    with pytest.raises(PanelError) as caught:
        select_pin_factory("auto")
    message = str(caught.value)
    assert "\n" not in message
    assert "pin_factory: none" in message and "always_on" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_auto_names_a_missing_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    Device.pin_factory = None
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    with pytest.raises(PanelError, match="no-such-factory"):
        select_pin_factory("auto")


def test_auto_honours_gpiozero_pin_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    Device.pin_factory = None
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpwmpin")
    factory = select_pin_factory("auto")
    try:
        assert isinstance(factory, MockFactory) and factory.pin_class is MockPWMPin
    finally:
        factory.reset()


def test_a_pin_in_use_is_a_clean_panel_error(idle_loop: asyncio.AbstractEventLoop,
                                             mock_factory: MockFactory) -> None:
    with Panel(GpioConfig(), mock_factory, idle_loop, _ignore):
        with pytest.raises(PanelError, match=r"GPIO17 \(BCM\) for the button"):
            Panel(GpioConfig(), mock_factory, idle_loop, _ignore)
        # a second panel that shares only the LED fails too, and frees its button
        with pytest.raises(PanelError, match="GPIO25"):
            Panel(GpioConfig(button_pin=4), mock_factory, idle_loop, _ignore)
        with Panel(GpioConfig(button_pin=4, led_pin=5), mock_factory, idle_loop, _ignore):
            pass


def test_without_pwm_the_leds_switch_on_and_off(idle_loop: asyncio.AbstractEventLoop) -> None:
    factory = MockFactory(pin_class=MockPin)
    try:
        with Panel(GpioConfig(rgb_pins=(5, 6, 13)), factory, idle_loop, _ignore) as panel:
            assert panel.pwm is False
            panel.show(State.BACKOFF)                 # amber becomes yellow: red and green
            for pin in (25, 5, 6):
                assert _time_to(factory.pin(pin), 1.0) < SWITCH_S
            assert factory.pin(13).state is False
    finally:
        factory.reset()


def test_pin_factory_none_never_imports_gpiozero() -> None:
    """A kiosk without a button or LED does not pay gpiozero's memory (about 2 MB)."""
    code = ("import asyncio, sys\n"
            "import swaramd.cli, swaramd.daemon\n"
            "from swaramd.adapters.panel import NullPanel, open_panel\n"
            "from swaramd.core.config import GpioConfig\n"
            "panel = open_panel(GpioConfig(pin_factory='none'), asyncio.new_event_loop(), print)\n"
            "assert isinstance(panel, NullPanel)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'gpiozero'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"
