"""The WAV engine: real-time pace by the clock, every speaker sample in the file, volume."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from swaramd.adapters.audio import open_audio
from swaramd.adapters.audio_backend import AudioHealth
from swaramd.adapters.volume import Volume, gain_q15
from swaramd.core.config import AudioConfig
from swaramd.core.errors import AudioDeviceError
from swaramd.demo import room
from swaramd.demo.recording import speechlike
from tests.support.wavfiles import read_wav, write_wav


async def test_input_is_fed_at_real_time_pace_then_silence(tmp_path: Path) -> None:
    signal = (np.arange(12_000) % 5000 + 1).astype(np.int16)          # 0.5 s
    cfg = AudioConfig(backend="wav", wav_input=write_wav(tmp_path / "in.wav", signal))
    engine = open_audio(cfg, asyncio.get_running_loop(), tmp_path)
    assert await engine.start() is AudioHealth.OK
    frames = []
    try:
        start = time.monotonic()
        async with asyncio.timeout(5):
            while len(frames) < 30:                                      # 0.6 s
                frames.append(await engine.next_frame())
        elapsed = time.monotonic() - start
    finally:
        engine.stop()
    got = np.frombuffer(b"".join(frames), dtype="<i2")
    assert np.array_equal(got[:12_000], signal)
    assert not got[12_000:].any()
    assert 0.45 < elapsed < 1.5


async def test_output_holds_every_sample_in_time_and_is_readable_while_running(
        tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    cfg = AudioConfig(backend="wav", wav_output=out, volume=100, prebuffer_ms=0)
    engine = open_audio(cfg, asyncio.get_running_loop(), tmp_path)
    start = time.monotonic()
    assert await engine.start() is AudioHealth.OK
    reply = (np.arange(4_800) % 700 + 1).astype("<i2")                 # 0.2 s, never silent
    try:
        await asyncio.sleep(0.3)
        assert len(read_wav(out)) > 0                    # flushed, with a valid header, live
        played_at = time.monotonic() - start
        engine.play(reply.tobytes(), "r1")
        engine.end_response("r1")
        async with asyncio.timeout(5):
            await engine.wait_drained()
        assert engine.delivered_samples("r1") == len(reply)
    finally:
        engine.stop()
    elapsed = time.monotonic() - start
    speaker = read_wav(out)
    assert np.array_equal(speaker[speaker != 0], reply)
    first = int(np.flatnonzero(speaker)[0])
    assert abs(first / 24_000 - played_at) < 0.1            # sample index = time
    assert abs(len(speaker) / 24_000 - elapsed) < 0.25


async def test_volume_scales_playback_and_persists(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    cfg = AudioConfig(backend="wav", wav_output=out, volume=100, prebuffer_ms=0)
    engine = open_audio(cfg, asyncio.get_running_loop(), tmp_path)
    assert engine.set_volume(50) == 50
    assert Volume(tmp_path, default=80).level == 50              # survives a restart
    with pytest.raises(ValueError):
        engine.set_volume(101)
    reply = np.full(2_400, 20_000, dtype="<i2")
    await engine.start()
    try:
        engine.play(reply.tobytes(), "r1")
        engine.end_response("r1")
        async with asyncio.timeout(5):
            await engine.wait_drained()
    finally:
        engine.stop()
    speaker = read_wav(out)
    assert set(speaker[speaker != 0].tolist()) == {(20_000 * gain_q15(50)) >> 15}


def test_gain_is_unity_at_100_and_silence_at_0() -> None:
    assert gain_q15(100) == 1 << 15 and gain_q15(0) == 0
    assert 0 < gain_q15(30) < gain_q15(60) < gain_q15(90) < 1 << 15


def test_a_wav_input_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    bad = write_wav(tmp_path / "in.wav", np.zeros(100, dtype=np.int16), rate=48_000)
    cfg = AudioConfig(backend="wav", wav_input=bad)
    with pytest.raises(AudioDeviceError, match="24000 Hz mono"):
        open_audio(cfg, asyncio.new_event_loop(), tmp_path)


class Halver:
    """A mic step that listens (records what it hears, with times) and halves the level."""

    def __init__(self) -> None:
        self.heard: list[np.ndarray] = []
        self.times: list[float] = []

    def process(self, samples: np.ndarray, t: float) -> np.ndarray:
        self.heard.append(samples.copy())
        self.times.append(t)
        return samples // 2


async def test_mic_steps_hear_every_block_in_order_and_feed_the_uplink(tmp_path: Path) -> None:
    signal = (np.arange(12_000) % 5000 + 2).astype(np.int16)          # 0.5 s
    cfg = AudioConfig(backend="wav", wav_input=write_wav(tmp_path / "in.wav", signal))
    engine = open_audio(cfg, asyncio.get_running_loop(), tmp_path)
    first, second = Halver(), Halver()
    engine.add_mic_step(first)
    engine.add_mic_step(second)
    assert engine.echo is None and engine.echo_status()["active"] is False
    before = time.monotonic()
    assert await engine.start() is AudioHealth.OK
    frames = []
    try:
        async with asyncio.timeout(5):
            while len(frames) < 25:
                frames.append(await engine.next_frame())
    finally:
        engine.stop()
    got = np.frombuffer(b"".join(frames), dtype="<i2")
    assert np.array_equal(np.concatenate(first.heard)[:12_000], signal)
    assert np.array_equal(np.concatenate(second.heard)[:12_000], signal // 2)
    assert np.array_equal(got[:12_000], signal // 4)
    assert before - 0.1 < first.times[0] < time.monotonic()
    assert all(b > a for a, b in zip(first.times, first.times[1:], strict=False))


def test_the_echo_room_streams_the_rooms_convolution_into_the_mic() -> None:
    rng = np.random.default_rng(3)
    response = room.room_response(60, 250)
    echo_room = room.EchoRoom(response, 0.5, noise_rms=0.0)
    played = (rng.standard_normal(48_000) * 3000).astype(np.int16)
    voice = (rng.standard_normal(48_000) * 1000).astype(np.int16)
    heard = voice.copy()
    for i in range(0, len(played), 480):                # the WAV backend's 20 ms periods
        echo_room.carry(played[i:i + 480], heard[i:i + 480])
    want = voice / 32768 + 0.5 * room.echo_of(played / 32768, response)
    assert np.max(np.abs(heard / 32768 - want)) < 2 / 32768
    assert echo_room.echo_db == pytest.approx(
        20 * np.log10(0.5 * room.rms(room.echo_of(played / 32768, response))
                      / room.rms(voice / 32768)), abs=0.5)


async def test_a_wav_room_turns_echo_cancellation_on_and_times_the_files_truly(
        tmp_path: Path) -> None:
    # A room that is a pure 60 ms delay: the canceller must find it by the device times
    # the backend reports (a period's error would read 40 or 80 ms).
    delay = np.zeros(24 * 60 + 1, np.float32)
    delay[-1] = 1.0
    cfg = AudioConfig(backend="wav", volume=100, prebuffer_ms=0)
    engine = open_audio(cfg, asyncio.get_running_loop(), tmp_path,
                        room=room.EchoRoom(delay, 0.5))
    assert engine.hears_speaker and engine.echo is not None
    reply = speechlike(5.0, seed=4, level=0.5, hum=0.06)
    assert await engine.start() is AudioHealth.OK
    try:
        engine.play(reply.tobytes(), "r1")
        engine.end_response("r1")
        async with asyncio.timeout(20):
            while engine.echo_status()["delay_ms"] is None:
                await asyncio.sleep(0.1)
    finally:
        engine.stop()
    assert engine.echo_status()["delay_ms"] == pytest.approx(60.0, abs=2.0)
