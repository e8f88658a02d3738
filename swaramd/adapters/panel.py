"""The panel adapter: the push button and the status LED, through gpiozero.

What a gesture means and which pattern shows a state are decided in
`swaramd.core.panel`; this module only reports and plays.
Rules it keeps:

- gpiozero calls back on its own threads. Those callbacks feed the pure
  `GestureRecogniser` under a short lock and hand each gesture to the asyncio
  loop with `loop.call_soon_threadsafe(on_gesture, gesture)`; nothing else
  crosses (docs/design.md, "Threads"). The press edge goes over at once (push-to-talk streams
  from it); short or long is decided on release or at the long-press deadline,
  which one small thread keeps.
- Each LED has one background player thread whose waits are interruptible
  (`threading.Event.wait`), so a new pattern replaces the old one at once, as
  gpiozero's own blink does. A stopped player turns its LED off: never
  half-lit.
- Every thread is stopped by its handle with a bounded join in `close()`.
- `gpio.pin_factory`: `auto` is gpiozero's own choice (lgpio on Raspberry Pi
  OS Bookworm, or `GPIOZERO_PIN_FACTORY`); `mock` is gpiozero's MockFactory
  with PWM pins; `none` is a panel that does nothing. `auto` on a
  machine without GPIO raises `PanelError` with one line saying what to do.
- gpiozero is imported only when a pin factory is used: a kiosk with
  `pin_factory: none` never loads it (about 2 MB of private memory saved).
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from swaramd.core.config import GpioConfig
from swaramd.core.errors import PanelError
from swaramd.core.panel import (
    Colour,
    Gesture,
    GestureRecogniser,
    colour_for,
    pattern_for,
)
from swaramd.core.states import HaltReason, State

if TYPE_CHECKING:
    from gpiozero.pins import Factory  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

GestureCallback = Callable[[Gesture], object]
"""Called in the loop's thread with each gesture, in order."""

BUTTON_BOUNCE_S = 0.01  # the pin's glitch filter (lgpio); the recogniser's lockout does the rest
JOIN_TIMEOUT_S = 1.0    # cleanup has a time limit
NO_GPIO_HINT = ("set gpio.pin_factory: none with conversation.mode: always_on, "
                "or pin_factory: mock to run without hardware")
GPIO_CHIPS = "/dev/gpiochip*"  # what lgpio, gpiozero's choice on Bookworm, opens


def gpio_absent(name: str) -> str | None:
    """Without opening anything: why `pin_factory: name` will find no GPIO here, or None.

    `auto` with no GPIO chip device and no `$GPIOZERO_PIN_FACTORY` is what makes
    `run` exit 78 on a machine that is not a Pi; `check-config` warns of it.
    """
    if name != "auto" or os.environ.get("GPIOZERO_PIN_FACTORY") or glob.glob(GPIO_CHIPS):
        return None
    return (f"auto finds no GPIO chip on this machine (no {GPIO_CHIPS}), so `swaramd run` "
            f"stops with exit 78; {NO_GPIO_HINT}")


# The config key behind each part the panel opens, for `FILE:LINE: key: problem`.
_KEYS = {"button": "gpio.button_pin", "LED": "gpio.led_pin", "RGB LED": "gpio.rgb_pins"}


def select_pin_factory(name: str) -> Factory | None:
    """The gpiozero pin factory that `gpio.pin_factory` names; None for `none`.

    `mock` reuses a MockFactory already installed as `Device.pin_factory` (so
    tests can press the button through it) and otherwise installs one.
    """
    if name == "none":
        return None
    from gpiozero import Device  # type: ignore[import-untyped]
    from gpiozero.pins.mock import MockFactory, MockPWMPin  # type: ignore[import-untyped]

    if name == "mock":
        if not isinstance(Device.pin_factory, MockFactory):
            Device.pin_factory = MockFactory(pin_class=MockPWMPin)
        return Device.pin_factory
    if name != "auto":
        raise ValueError(f"unknown pin factory {name!r}; known: auto, mock, none")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            Device.ensure_pin_factory()
        except Exception as exc:  # BadPinFactory, or whatever a named factory raised
            log.debug("gpiozero found no pin factory", exc_info=True)
            raise PanelError(f"auto found no usable GPIO on this machine ({exc}); "
                             f"{NO_GPIO_HINT}", "gpio.pin_factory") from None
    for warning in caught:
        log.debug("gpiozero: %s", warning.message)
    log.info("GPIO through %s", type(Device.pin_factory).__name__)
    return Device.pin_factory


def open_panel(gpio: GpioConfig, loop: asyncio.AbstractEventLoop,
               on_gesture: GestureCallback) -> Panel | NullPanel:
    """The panel `gpio` describes: a real one, or a `NullPanel` for `pin_factory: none`.

    Raises `PanelError` (one line, for the CLI to print and exit 78) when the
    GPIO cannot be opened.
    """
    factory = select_pin_factory(gpio.pin_factory)
    if factory is None:
        return NullPanel()
    return Panel(gpio, factory, loop, on_gesture)


class NullPanel:
    """The panel of `pin_factory: none`: no button, no LED, nothing to close."""

    def show(self, state: State, halt_reason: HaltReason | None = None) -> None:
        """Show nothing: there is no LED."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> NullPanel:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Panel:
    """The button and the LED (and an optional RGB LED) on a gpiozero pin factory.

    Gestures reach `on_gesture` in the loop's thread; `show()` plays the
    pattern of a state. Prefer `open_panel()`, which picks the factory.
    """

    def __init__(self, gpio: GpioConfig, factory: Factory, loop: asyncio.AbstractEventLoop,
                 on_gesture: GestureCallback) -> None:
        from gpiozero import Button  # type: ignore[import-untyped]

        self._devices: list[Any] = []
        self._led: _PatternPlayer[float] | None = None
        self._rgb: _PatternPlayer[Colour] | None = None
        self._led_pwm = self._rgb_pwm = True
        self._driver: _ButtonDriver | None = None
        self._shown: tuple[State, HaltReason | None] | None = None
        try:
            button = self._open("button", gpio.button_pin, Button, gpio.button_pin,
                                pull_up=True, bounce_time=BUTTON_BOUNCE_S, pin_factory=factory)
            self._open_leds(gpio, factory)
            self._driver = _ButtonDriver(button, GestureRecogniser(gpio.long_press_s),
                                         loop, on_gesture)
        except BaseException:
            self.close()
            raise

    def _open_leds(self, gpio: GpioConfig, factory: Factory) -> None:
        from gpiozero import LED, PWMLED, RGBLED  # type: ignore[import-untyped]

        rgb = gpio.rgb_pins
        if rgb is not None and gpio.led_pin in rgb:
            log.info("gpio.led_pin %d is one of gpio.rgb_pins; driving the RGB LED only",
                     gpio.led_pin)
        else:
            led, self._led_pwm = self._open_pwm_or_not(
                "LED", gpio.led_pin, lambda pwm: (PWMLED if pwm else LED)(
                    gpio.led_pin, active_high=gpio.led_active_high, pin_factory=factory))
            self._led = _PatternPlayer("swaramd-led", _setter(led), 0.0)
        if rgb is not None:
            device, self._rgb_pwm = self._open_pwm_or_not(
                "RGB LED", rgb[0], lambda pwm: RGBLED(
                    *rgb, active_high=gpio.led_active_high, pwm=pwm, pin_factory=factory))
            self._rgb = _PatternPlayer("swaramd-rgb-led", _setter(device), (0.0, 0.0, 0.0))

    def _open_pwm_or_not(self, what: str, pin: int,
                         make: Callable[[bool], Any]) -> tuple[Any, bool]:
        from gpiozero.exc import PinPWMUnsupported  # type: ignore[import-untyped]

        try:
            return self._open(what, pin, make, True), True
        except PinPWMUnsupported:
            log.info("no PWM on GPIO%d: the %s blinks on/off instead of fading", pin, what)
            return self._open(what, pin, make, False), False

    def _open(self, what: str, pin: int, make: Callable[..., Any], *args: Any,
              **kwargs: Any) -> Any:
        from gpiozero.exc import PinPWMUnsupported  # type: ignore[import-untyped]

        try:
            device = make(*args, **kwargs)
        except PinPWMUnsupported:
            raise
        except Exception as exc:  # gpiozero and its pin libraries raise many kinds
            raise PanelError(f"cannot open GPIO{pin} (BCM) for the {what}: {exc}",
                             _KEYS.get(what, "gpio")) from None
        self._devices.append(device)
        return device

    @property
    def pwm(self) -> bool:
        """Whether the LED fades (PWM) or only switches on and off."""
        return self._led_pwm if self._led is not None else self._rgb_pwm

    def show(self, state: State, halt_reason: HaltReason | None = None) -> None:
        """Show `state` on the LED(s) from now on, replacing any pattern at once."""
        if self._shown == (state, halt_reason):
            return
        self._shown = (state, halt_reason)
        log.debug("LED shows %s%s", state.value, f" ({halt_reason.value})" if halt_reason else "")
        if self._led is not None:
            self._led.play(pattern_for(state, halt_reason, pwm=self._led_pwm))
        if self._rgb is not None:
            r, g, b = colour_for(state, pwm=self._rgb_pwm)
            self._rgb.play(tuple(((r * level, g * level, b * level), seconds) for level, seconds
                                 in pattern_for(state, halt_reason, pwm=self._rgb_pwm)))

    def close(self) -> None:
        """Stop the threads (bounded), turn the LEDs off, and release the pins."""
        if self._driver is not None:
            self._driver.close()
            self._driver = None
        for player in (self._led, self._rgb):
            if player is not None:
                player.close()
        self._led = self._rgb = None
        while self._devices:
            self._devices.pop().close()

    def __enter__(self) -> Panel:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _setter(device: Any) -> Callable[[Any], None]:
    def apply(value: Any) -> None:
        device.value = value
    return apply


T = TypeVar("T")


class _Worker:
    """One background thread with an interruptible wait, stopped by handle in `_stop()`."""

    def __init__(self, name: str) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        """Ask the thread to leave, wake it, and join it (bounded)."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("%s did not stop within %.1f s", self._thread.name, JOIN_TIMEOUT_S)


class _PatternPlayer(_Worker, Generic[T]):
    """Plays one repeating pattern of `(value, seconds)` steps on one LED, in its own thread."""

    def __init__(self, name: str, apply: Callable[[T], None], dark: T) -> None:
        super().__init__(name)
        self._apply = apply
        self._dark = dark
        self._steps: tuple[tuple[T, float], ...] = ((dark, 1.0),)
        self._thread.start()

    def play(self, steps: tuple[tuple[T, float], ...]) -> None:
        """Play `steps` from their start, at once, until the next `play`."""
        with self._lock:
            if steps == self._steps:
                return
            self._steps = steps
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (bounded join); it turns the LED off as it leaves."""
        self._stop()

    def _run(self) -> None:
        try:
            while True:
                self._wake.clear()
                with self._lock:
                    if self._closing:
                        break
                    steps = self._steps
                self._play_until_woken(steps)
            self._apply(self._dark)
        except Exception:  # a dead LED must not take the daemon with it
            log.exception("%s stopped", self._thread.name)

    def _play_until_woken(self, steps: tuple[tuple[T, float], ...]) -> None:
        if all(value == steps[0][0] for value, _ in steps):  # steady: set once, then wait
            self._apply(steps[0][0])
            self._wake.wait()
            return
        period = sum(seconds for _, seconds in steps)
        due = time.monotonic()
        while True:
            for value, seconds in steps:
                self._apply(value)
                due += seconds  # from the schedule, not from now, so the rhythm does not drift
                if self._wake.wait(max(0.0, due - time.monotonic())):
                    return
            if time.monotonic() - due > period:  # fell far behind (suspend): restart the clock
                due = time.monotonic()


class _ButtonDriver(_Worker):
    """Feeds a `GestureRecogniser` from gpiozero's callbacks and keeps its deadline.

    Gestures are handed to the loop inside the lock, so they arrive in order
    whichever thread (gpiozero's or the deadline thread) produced them.
    """

    def __init__(self, button: Any, recogniser: GestureRecogniser,
                 loop: asyncio.AbstractEventLoop, on_gesture: GestureCallback) -> None:
        self._button = button
        self._recogniser = recogniser
        self._loop = loop
        self._on_gesture = on_gesture
        super().__init__("swaramd-button")
        self._thread.start()
        button.when_pressed = self._on_pressed
        button.when_released = self._on_released

    def _on_pressed(self) -> None:
        self._on_edge(True)

    def _on_released(self) -> None:
        self._on_edge(False)

    def _on_edge(self, pressed: bool) -> None:
        with self._lock:
            if self._closing:
                return
            self._hand_over(self._recogniser.on_edge(pressed, time.monotonic()))
        self._wake.set()

    def _hand_over(self, gestures: tuple[Gesture, ...]) -> None:
        for gesture in gestures:
            try:
                self._loop.call_soon_threadsafe(self._on_gesture, gesture)
            except RuntimeError:  # the loop is closed: we are shutting down
                log.debug("loop closed; dropped %s", gesture.value)

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                deadline = self._recogniser.deadline
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._wake.wait(timeout):
                self._wake.clear()
                continue
            with self._lock:
                if self._closing:
                    return
                self._hand_over(self._recogniser.on_timer(time.monotonic()))

    def close(self) -> None:
        """Detach from the button and stop the deadline thread (bounded join)."""
        self._button.when_pressed = None
        self._button.when_released = None
        self._stop()
