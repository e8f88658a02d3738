"""What both demos share: the run's config, driving the daemon, the mock button.

`drive()` runs the real daemon and a "director" (the part of the demo that
plays the user) side by side in one task group, then stops the daemon with
`request_stop()`, as SIGTERM would, bounded. Neither task's failure can tear
the other down mid-way: each records what happened in the result instead.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from swaramd.adapters.audio import AudioEngine
from swaramd.adapters.audio_backend import AudioHealth
from swaramd.core.config import Config, load_config
from swaramd.core.errors import SwaramdError
from swaramd.daemon import Daemon
from swaramd.demo.analysis import SpeakerClock
from swaramd.demo.timeline import Timeline

DEMO_KEY = "swaram_demo_not_a_real_key"
STOP_S = 5.0            # the daemon stops within 2 s by design


class DemoFailed(Exception):
    """The conversation did not complete; the message is the one line to print."""


def write_config(tmp: Path, url: str, **sections: dict[str, Any]) -> Config:
    """Write the run's key and config.yaml into `tmp` and load it as `swaramd run` would."""
    (tmp / "api_key").write_text(DEMO_KEY + "\n", encoding="ascii")
    base: dict[str, dict[str, Any]] = {
        "server": {"url": url, "api_key_file": str(tmp / "api_key")},
        **sections,
        "control": {"socket": str(tmp / "control.sock")},
        "log": {"level": "info"},
    }
    lines = ["# written by swaramd demo for one run"]
    for name, values in base.items():
        lines.append(f"{name}:")
        lines += [f"  {key}: {json.dumps(value)}" for key, value in values.items()]
    path = tmp / "config.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


async def drive(daemon: Daemon, director: Coroutine[Any, Any, None], tl: Timeline,
                expected_s: float, deadline_s: float, clock: SpeakerClock | None = None
                ) -> dict[str, Any]:
    """Run the daemon and the director side by side, then stop the daemon, bounded.

    Returns what happened: `code` (the daemon's exit code), `error` (it could not
    start), `failure` (the director's complaint), `stopped_early` (the daemon
    stopped first: Ctrl-C, or a crash with a non-zero code).
    """
    result: dict[str, Any] = {}

    async def run_daemon() -> None:
        try:
            result["code"] = await daemon.run()
        except SwaramdError as exc:     # no GPIO, no audio backend, a bad key file...
            result["error"] = str(exc).splitlines()[0]

    async def run_director() -> None:
        try:
            async with asyncio.timeout(deadline_s):
                await director
        except DemoFailed as exc:
            result["failure"] = str(exc)
        except TimeoutError:
            result["failure"] = f"the demo did not finish within {deadline_s:.0f} s"

    try:
        async with asyncio.TaskGroup() as tg:
            running = tg.create_task(run_daemon(), name="daemon")
            directing = tg.create_task(run_director(), name="director")
            helpers = [tg.create_task(show_progress(daemon, tl, expected_s), name="progress")]
            if clock is not None:
                helpers.append(tg.create_task(clock.follow(lambda: rendered(daemon))))
            await asyncio.wait({running, directing}, return_when=asyncio.FIRST_COMPLETED)
            if not directing.done():
                directing.cancel()
                result["stopped_early"] = True
            daemon.request_stop()
            await asyncio.wait({running}, timeout=STOP_S)
            if not running.done():
                running.cancel()
                result.setdefault("failure", f"the daemon did not stop within {STOP_S:.0f} s")
            for helper in helpers:
                helper.cancel()
    finally:
        tl.end_progress()
        release_mock_pins()
    return result


def rendered(daemon: Daemon) -> int | None:
    """The speaker's sample count so far (the output file's length), once there is one."""
    return daemon.engine.rendered_samples if daemon.engine is not None else None


async def show_progress(daemon: Daemon, tl: Timeline, expected_s: float) -> None:
    """Keep the progress indicator current (drawn only on a terminal)."""
    while True:
        tl.progress(f"{time.monotonic() - tl.t0:4.1f} s of about {expected_s:.0f}  "
                    f"state {daemon.status.state.value}")
        await asyncio.sleep(0.1)


async def wait_until(predicate: Callable[[], bool], timeout: float, failure: str) -> None:
    """Poll `predicate` until it holds; DemoFailed(failure) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():     # daemon state has no event to wait on: poll, bounded
        if time.monotonic() > deadline:
            raise DemoFailed(failure)
        await asyncio.sleep(0.01)


async def wait_audio_open(daemon: Daemon, timeout: float, what: str) -> AudioEngine:
    """The daemon's engine once its devices opened; DemoFailed when they would not."""
    await wait_until(lambda: daemon.engine is not None
                     and daemon.engine.health is not AudioHealth.STARTING, timeout,
                     f"the audio devices did not open in {timeout:g} s")
    engine = daemon.engine
    assert engine is not None
    if engine.health is AudioHealth.ERROR:
        raise DemoFailed(f"{what}: {engine.health_reason}")
    return engine


async def press(pin: int, tl: Timeline, why: str) -> None:
    """A short press of the mock button (gpiozero MockFactory)."""
    from gpiozero import Device  # type: ignore[import-untyped]

    tl.line("button", f"short press (mock GPIO{pin}): {why}")
    Device.pin_factory.pin(pin).drive_low()
    await asyncio.sleep(0.12)
    Device.pin_factory.pin(pin).drive_high()


def release_mock_pins() -> None:
    """Close the MockFactory the daemon installed, so the next user starts clean."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory  # type: ignore[import-untyped]

    if isinstance(Device.pin_factory, MockFactory):
        Device.pin_factory.reset()
        Device.pin_factory.close()
        Device.pin_factory = None


async def ask_status(daemon: Daemon) -> dict[str, Any] | None:
    """What `swaramd status` would print, through the daemon's control socket."""
    from swaramd.adapters.control import ControlError, query

    try:
        return await asyncio.to_thread(query, daemon.cfg.control.socket)
    except ControlError:
        return None
