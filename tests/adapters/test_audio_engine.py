"""The engine's pump against a backend the test drives period by period."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from swaramd.adapters.audio import AudioEngine
from swaramd.adapters.audio_backend import AudioHealth, DeviceBackend, DeviceHost
from swaramd.adapters.volume import Volume
from swaramd.core.config import AudioConfig
from swaramd.core.protocol import WIRE_RATE

PERIOD = WIRE_RATE // 50                                  # 20 ms device periods


class HandFed(DeviceBackend):
    """Devices that open at 24 kHz and then wait: the test calls `capture` itself."""

    hears_speaker = False

    def run(self, host: DeviceHost) -> None:
        host.prepare(WIRE_RATE, WIRE_RATE, PERIOD, 0.0)
        host.report(AudioHealth.OK)
        while not host.stopping.wait(0.05):
            host.beat()


class CapturesMidPump:
    """A mic step during which the device thread captures one more period, as it may
    while the loop is busy with the pump."""

    def __init__(self, engine: AudioEngine, period: np.ndarray) -> None:
        self.engine, self.period = engine, period
        self.calls = 0

    def process(self, samples: np.ndarray, t: float) -> np.ndarray:
        self.calls += 1
        if self.calls == 1:
            self.engine.capture(self.period)
        return samples


async def test_a_period_captured_during_the_pump_is_not_left_waiting(tmp_path: Path) -> None:
    cfg = AudioConfig(frame_ms=40, echo_cancel="off")       # two periods per uplink frame
    engine = AudioEngine(cfg, asyncio.get_running_loop(), Volume(tmp_path, 100), HandFed())
    periods = [np.full(PERIOD, k + 1, dtype=np.int16) for k in range(4)]
    engine.add_mic_step(CapturesMidPump(engine, periods[3]))
    assert await engine.start() is AudioHealth.OK
    try:
        for period in periods[:3]:      # a late loop: three periods wait for one pump
            engine.capture(period)
        # The pump frames four periods into two frames; the fourth arrives while it runs,
        # and no fifth period ever comes (the input has ended).
        async with asyncio.timeout(5):
            frames = [await engine.next_frame(), await engine.next_frame()]
    finally:
        engine.stop()
    got = np.frombuffer(b"".join(frames), dtype="<i2")
    assert np.array_equal(got, np.concatenate(periods))
