"""A rig for end-to-end tests: the real daemon, the WAV backend, mock pins, a loopback service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from gpiozero import Device

from swaramd.adapters.audio_backend import EngineTuning
from swaramd.adapters.link import LinkTimings
from swaramd.core.config import parse_config
from swaramd.daemon import Daemon
from tests.support.service import FakeService, Peer
from tests.support.wavfiles import write_wav

RATE = 24_000
KEY = "swaram_test_key_0123456789"
LINK = LinkTimings(open_timeout=2, session_timeout=2, ping_interval=1, ping_timeout=1,
                   close_timeout=0.5)
TUNING = EngineTuning(retry_delay_s=0.3, start_timeout_s=3)


def tone(seconds: float, freq: float = 440.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")


def config_text(tmp: Path, url: str, **sections: dict[str, Any]) -> str:
    base: dict[str, dict[str, Any]] = {
        "server": {"url": url, "api_key_file": str(tmp / "key")},
        "audio": {"backend": "wav", "wav_input": str(tmp / "in.wav"),
                  "wav_output": str(tmp / "out.wav"), "gate": "open"},
        "gpio": {"pin_factory": "mock"},
        "conversation": {"mode": "always_on"},
        "control": {"socket": str(tmp / "control.sock")},
        "log": {"level": "debug"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = []
    for name, values in base.items():
        lines.append(f"{name}:")
        lines += [f"  {k}: {v!r}" if isinstance(v, str) else f"  {k}: {v}"
                  for k, v in values.items()]
    return "\n".join(lines).replace("'", '"') + "\n"


@asynccontextmanager
async def daemon_running(tmp: Path, service: FakeService, *, mic: np.ndarray | None = None,
                         state_dir: Path | None = None,
                         **sections: dict[str, Any]) -> AsyncIterator[Daemon]:
    """Run the real daemon until the block ends; asserts it then stops cleanly with 0."""
    (tmp / "key").write_text(KEY + "\n")
    write_wav(tmp / "in.wav", mic if mic is not None else np.zeros(RATE, dtype="<i2"))
    text = config_text(tmp, service.url, **sections)
    (tmp / "config.yaml").write_text(text)
    cfg = parse_config(text, str(tmp / "config.yaml"))
    daemon = Daemon(cfg, state_dir=state_dir, link_timings=LINK, engine_tuning=TUNING)
    try:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(daemon.run())
            try:
                await wait_until(lambda: daemon.engine is not None and daemon.link is not None)
                yield daemon
            finally:
                daemon.request_stop()
                async with asyncio.timeout(5):
                    code = await task
        assert code == 0
    finally:
        if Device.pin_factory is not None:  # the daemon installed a MockFactory: a fresh one next
            Device.pin_factory.reset()
            Device.pin_factory.close()
        Device.pin_factory = None
    assert not service.invalid, service.invalid


async def wait_until(predicate: Any, timeout: float = 10.0, step: float = 0.01) -> None:
    """Poll a condition with a bound (tests only)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


async def reply(peer: Peer, pcm: bytes, response_id: str, *, chunk: int = 2400,
                done: bool = True, transcript: str = "") -> None:
    """A whole reply: created, audio deltas (and transcript), done."""
    from tests.support.service import audio_delta

    await peer.send({"type": "response.created", "response": {"id": response_id}})
    for i in range(0, len(pcm), chunk * 2):
        await peer.send(audio_delta(pcm[i:i + chunk * 2], response_id))
    if transcript:
        await peer.send({"type": "response.output_audio_transcript.delta",
                         "response_id": response_id, "delta": transcript})
    if done:
        await peer.send({"type": "response.done",
                         "response": {"id": response_id, "status": "completed"}})


def appends(service: FakeService) -> list[dict[str, Any]]:
    return [e for e in service.received if e["type"] == "input_audio_buffer.append"]


def non_audio(service: FakeService) -> list[str]:
    return [e["type"] for e in service.received if e["type"] != "input_audio_buffer.append"]


def rendered(daemon: Daemon) -> int:
    """Samples written to the speaker so far: with the WAV backend, the output's sample index."""
    assert daemon.engine is not None
    return daemon.engine.rendered_samples


def press(pin: int = 17) -> None:
    Device.pin_factory.pin(pin).drive_low()


def release(pin: int = 17) -> None:
    Device.pin_factory.pin(pin).drive_high()
