"""The PyAudio engine through the real PyAudio -> PortAudio -> ALSA stack, no sound card.

Byte-exact tests use `type file` PCMs (as fast as the CPU); real-time tests use
the ALSA `jack` PCM on a private jackd with the dummy driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soxr

from swaramd.adapters.audio import AudioEngine, open_audio
from swaramd.adapters.audio_backend import AudioHealth, EngineTuning
from swaramd.adapters.pyaudio_audio import PyAudioDevice
from swaramd.core.config import AudioConfig
from tests.adapters.alsa_rig import (
    Jackd,
    card_pcm,
    file_pcm,
    jack_pcm,
    stereo_only_file_pcm,
    write_asoundrc,
)

FAST = EngineTuning(retry_delay_s=0.2, stall_timeout_s=0.6, start_timeout_s=10.0)


def make_engine(cfg: AudioConfig, tmp_path: Path, tuning: EngineTuning = FAST,
                **options: object) -> tuple[AudioEngine, list[AudioHealth]]:
    seen: list[AudioHealth] = []
    engine = open_audio(cfg, asyncio.get_running_loop(), tmp_path, tuning=tuning,
                        on_health=lambda h, _reason: seen.append(h), **options)
    assert isinstance(engine.device, PyAudioDevice)
    return engine, seen


async def take_samples(engine: AudioEngine, n: int, timeout_s: float = 10.0) -> np.ndarray:
    frames: list[bytes] = []
    async with asyncio.timeout(timeout_s):
        while sum(map(len, frames)) < 2 * n:
            frames.append(await engine.next_frame())
    return np.frombuffer(b"".join(frames), dtype="<i2")[:n]


async def wait_for(predicate: object, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@pytest.fixture
async def fifo(tmp_path: Path) -> AsyncIterator[tuple[Path, int]]:
    """A named pipe as the capture `infile`: ALSA reads exactly what the test wrote, then waits."""
    path = tmp_path / "mic.fifo"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR)
    try:
        yield path, fd
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def end_of_input(fd: int) -> None:
    """Close the pipe: ALSA's read returns at once (EOF), so the stream can be closed."""
    os.close(fd)


def known_signal() -> np.ndarray:
    """0.52 s of 24 kHz capture (13 uplink frames of the default 40 ms) with no zero
    sample, so nothing in it passes for silence."""
    signal = ((np.arange(12_480) * 7) % 20_000 - 10_000).astype("<i2")
    signal[signal == 0] = 1
    return signal


def with_other_right(left: np.ndarray) -> np.ndarray:
    """Interleaved stereo whose right channel differs from `left`."""
    stereo = np.empty(2 * len(left), dtype="<i2")
    stereo[0::2], stereo[1::2] = left, -3
    return stereo


def known_deltas() -> np.ndarray:
    """0.4 s of reply audio that is never silent."""
    return ((np.arange(9_600) * 13) % 30_000 + 1).astype("<i2")


def assert_played_on_both_channels(out: Path, deltas: np.ndarray) -> None:
    """The stereo speaker file holds the voice on both channels, exactly, between silences."""
    played = np.fromfile(out, dtype="<i2").reshape(-1, 2)
    assert np.array_equal(played[:, 0], played[:, 1])
    left = played[:, 0]
    assert np.array_equal(left[left != 0], deltas)


# --- byte-exact, through type file PCMs ---------------------------------------------


async def capture_from(alsa_env: pytest.MonkeyPatch, tmp_path: Path, fd: int,
                       data: np.ndarray, mic: str, mic_pcm: str, n: int, *,
                       rate: int = 24_000) -> tuple[AudioEngine, np.ndarray]:
    """Write `data` into the capture pipe, open the microphone `mic` (defined by `mic_pcm`)
    with a file speaker at `rate`, and take `n` uplink samples; the engine comes back
    stopped."""
    os.write(fd, data.tobytes())
    conf = write_asoundrc(tmp_path / "asound.conf", mic_pcm, file_pcm("swaram_spk"))
    alsa_env.setenv("ALSA_CONFIG_PATH", str(conf))
    cfg = AudioConfig(input_device=mic, output_device="swaram_spk", volume=100)
    engine, _ = make_engine(cfg, tmp_path, EngineTuning(stall_timeout_s=30.0),
                            prefer_rate=None if rate == 24_000 else rate)
    try:
        assert await engine.start() is AudioHealth.OK
        assert engine.device_rates == (rate, rate)
        got = await take_samples(engine, n)
    finally:
        end_of_input(fd)
        engine.stop()
    return engine, got


async def test_capture_is_byte_exact_at_24k(alsa_env: pytest.MonkeyPatch, tmp_path: Path,
                                            fifo: tuple[Path, int]) -> None:
    path, fd = fifo
    signal = known_signal()
    engine, got = await capture_from(alsa_env, tmp_path, fd, signal, "swaram_mic",
                                     file_pcm("swaram_mic", infile=path), len(signal))
    assert not engine.duplex                         # two devices: two streams
    assert np.array_equal(got, signal)
    assert engine.counters().dropped_frames == 0


async def test_capture_through_soxr_at_48k(alsa_env: pytest.MonkeyPatch, tmp_path: Path,
                                           fifo: tuple[Path, int]) -> None:
    path, fd = fifo
    # 0.6 s at 48 kHz, of which 11,000 samples at 24 kHz (0.46 s) are compared: the
    # resampler and the canceller hold a little back, and once the pipe runs dry the
    # last period may wait in the ring for one that never comes, as it would on a
    # live device for 20 ms.
    t = np.arange(28_800) / 48_000
    signal = (8000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 3000 * t))
    signal = signal.astype("<i2")
    _, got = await capture_from(alsa_env, tmp_path, fd, signal, "swaram_mic",
                                file_pcm("swaram_mic", infile=path), 11_000, rate=48_000)
    want = soxr.resample(signal, 48_000, 24_000, quality="HQ")[:11_000]
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 2      # resampling tolerance


async def test_playback_lands_byte_exact_in_the_file(alsa_env: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "spk.raw"
    conf = write_asoundrc(tmp_path / "asound.conf", file_pcm("swaram_mic"),
                          file_pcm("swaram_spk", outfile=out))
    alsa_env.setenv("ALSA_CONFIG_PATH", str(conf))
    cfg = AudioConfig(input_device="swaram_mic", output_device="swaram_spk", volume=100)
    engine, _ = make_engine(cfg, tmp_path)
    deltas = known_deltas()
    try:
        assert await engine.start() is AudioHealth.OK
        for chunk in np.split(deltas, 20):
            engine.play(chunk.tobytes(), "resp_1")
        engine.end_response("resp_1")
        async with asyncio.timeout(10):
            await engine.wait_drained()
        assert engine.delivered_samples("resp_1") == len(deltas)
    finally:
        engine.stop()
    assert_played_on_both_channels(out, deltas)      # a stereo speaker opens in stereo


async def test_one_card_both_ways_is_one_duplex_stream_byte_exact(
        alsa_env: pytest.MonkeyPatch, tmp_path: Path, fifo: tuple[Path, int]) -> None:
    """Microphone and speaker on one card: one duplex stream, in stereo (the speaker
    prefers it), so the capture side keeps the first channel; both ways byte-exact."""
    path, fd = fifo
    out = tmp_path / "card.raw"
    left = known_signal()
    stereo = with_other_right(left)
    conf = write_asoundrc(tmp_path / "asound.conf",
                          card_pcm("swaram_card", infile=path, outfile=out))
    alsa_env.setenv("ALSA_CONFIG_PATH", str(conf))
    cfg = AudioConfig(input_device="swaram_card", output_device="swaram_card", volume=100,
                      echo_cancel="off")   # byte-exact: nothing may change the mic
    engine, _ = make_engine(cfg, tmp_path, EngineTuning(stall_timeout_s=30.0))
    deltas = known_deltas()
    # The reply is queued first: a duplex stream on a file PCM runs only while the
    # capture infile has data, as fast as the CPU, so both directions move together.
    for chunk in np.split(deltas, 20):
        engine.play(chunk.tobytes(), "resp_1")
    engine.end_response("resp_1")
    os.write(fd, stereo.tobytes())
    try:
        assert await engine.start() is AudioHealth.OK
        assert engine.duplex
        assert engine.device_rates == (24_000, 24_000)
        got = await take_samples(engine, len(left))
        async with asyncio.timeout(10):
            await engine.wait_drained()
        assert engine.delivered_samples("resp_1") == len(deltas)
    finally:
        end_of_input(fd)
        engine.stop()
    assert np.array_equal(got, left)
    assert_played_on_both_channels(out, deltas)


async def test_a_stereo_only_microphone_gives_its_first_channel(
        alsa_env: pytest.MonkeyPatch, tmp_path: Path, fifo: tuple[Path, int]) -> None:
    path, fd = fifo
    left = known_signal()
    _, got = await capture_from(alsa_env, tmp_path, fd, with_other_right(left), "usb_mic",
                                stereo_only_file_pcm("usb_mic", infile=path), len(left))
    assert np.array_equal(got, left)


async def test_a_missing_device_is_an_error_that_lists_devices_and_heals(
        alsa_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = write_asoundrc(tmp_path / "asound.conf", file_pcm("swaram_spk"))
    alsa_env.setenv("ALSA_CONFIG_PATH", str(conf))
    cfg = AudioConfig(input_device="usb_mic", output_device="swaram_spk")
    engine, seen = make_engine(cfg, tmp_path)
    try:
        assert await engine.start() is AudioHealth.ERROR
        reason = engine.health_reason or ""
        assert "usb_mic" in reason and "swaram_spk" in reason    # names what there is
        assert engine.alive()                                    # retrying is alive
        # The microphone is "plugged in": the next retry finds it.
        write_asoundrc(conf, file_pcm("swaram_spk"), file_pcm("usb_mic"))
        await wait_for(lambda: engine.health is AudioHealth.OK, 10)
    finally:
        engine.stop()
    assert seen[:1] == [AudioHealth.ERROR] and seen[-1] is AudioHealth.OK
    assert engine.health is AudioHealth.STOPPED and not engine.alive()


async def test_retry_now_cuts_the_wait_for_the_next_attempt_short(
        alsa_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = write_asoundrc(tmp_path / "asound.conf", file_pcm("swaram_spk"))
    alsa_env.setenv("ALSA_CONFIG_PATH", str(conf))
    cfg = AudioConfig(input_device="usb_mic", output_device="swaram_spk")
    slow = EngineTuning(retry_delay_s=60.0, stall_timeout_s=0.6, start_timeout_s=10.0)
    engine, _seen = make_engine(cfg, tmp_path, slow)
    try:
        assert await engine.start() is AudioHealth.ERROR
        write_asoundrc(conf, file_pcm("swaram_spk"), file_pcm("usb_mic"))
        await asyncio.sleep(0.5)
        assert engine.health is AudioHealth.ERROR        # still waiting out the 60 s
        engine.retry_now()                               # the button, in audio_error
        await wait_for(lambda: engine.health is AudioHealth.OK, 10)
    finally:
        t0 = time.monotonic()
        engine.stop()
    assert time.monotonic() - t0 < 3


async def test_stop_ends_a_long_retry_wait_at_once(alsa_env: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    conf = write_asoundrc(tmp_path / "asound.conf", file_pcm("swaram_spk"))
    alsa_env.setenv("ALSA_CONFIG_PATH", str(conf))
    cfg = AudioConfig(input_device="usb_mic", output_device="swaram_spk")
    slow = EngineTuning(retry_delay_s=60.0, stall_timeout_s=0.6, start_timeout_s=10.0)
    engine, _seen = make_engine(cfg, tmp_path, slow)
    assert await engine.start() is AudioHealth.ERROR
    t0 = time.monotonic()
    engine.stop()
    assert time.monotonic() - t0 < 3 and not engine.alive()


# --- real time, through jackd's dummy driver ----------------------------------------


def use_jack(env: pytest.MonkeyPatch, server: Jackd, tmp_path: Path, *, stereo: bool = False
             ) -> AudioConfig:
    for key, value in server.env.items():
        env.setenv(key, value)
    conf = write_asoundrc(tmp_path / "asound.conf", jack_pcm("swaram_jack", stereo=stereo))
    env.setenv("ALSA_CONFIG_PATH", str(conf))
    return AudioConfig(input_device="swaram_jack", output_device="swaram_jack", volume=100)


async def check_realtime(engine: AudioEngine) -> None:
    await engine.next_frame()
    engine.clear_uplink()
    frame_ms = engine.cfg.frame_ms
    start, frames = time.monotonic(), 0
    async with asyncio.timeout(10):
        while frames < 2000 // frame_ms:             # 2 s of uplink frames
            assert len(await engine.next_frame()) == 48 * frame_ms      # 24 kHz PCM16
            frames += 1
    elapsed = time.monotonic() - start
    # Paced by the device: 2 s, give or take what a loaded machine adds to when the loop
    # reads the first and the last frame (a CPU-paced device would take milliseconds).
    assert abs(elapsed - 2.0) / 2.0 < 0.15, elapsed
    pcm = (np.full(12_000, 1000)).astype("<i2").tobytes()    # 0.5 s
    start = time.monotonic()
    engine.play(pcm, "r1")
    engine.end_response("r1")
    assert engine.playing
    async with asyncio.timeout(5):
        await engine.wait_drained()
    assert 0.45 < time.monotonic() - start < 1.5
    # The whole reply reached the device: within one device period (jackd's dummy driver
    # skips a period when its thread is starved, which a busy 2-core machine can cause).
    assert abs(engine.delivered_samples("r1") - 12_000) <= 480           # 20 ms at 24 kHz
    assert engine.counters().underruns <= 2


async def test_realtime_at_24k(alsa_env: pytest.MonkeyPatch, jackd24: Jackd,
                               tmp_path: Path) -> None:
    engine, _ = make_engine(use_jack(alsa_env, jackd24, tmp_path), tmp_path)
    try:
        assert await engine.start() is AudioHealth.OK
        assert engine.device_rates == (24_000, 24_000)
        assert engine.duplex                         # one card both ways: one stream
        await check_realtime(engine)
    finally:
        engine.stop()


async def test_realtime_48k_device_through_soxr(alsa_env: pytest.MonkeyPatch, jackd48: Jackd,
                                                tmp_path: Path) -> None:
    engine, _ = make_engine(use_jack(alsa_env, jackd48, tmp_path), tmp_path)
    try:
        assert await engine.start() is AudioHealth.OK
        assert engine.device_rates == (48_000, 48_000)
        assert engine.duplex
        await check_realtime(engine)
    finally:
        engine.stop()


async def test_a_stalled_device_is_detected_and_recovers(alsa_env: pytest.MonkeyPatch,
                                                         jackd24: Jackd, tmp_path: Path) -> None:
    engine, seen = make_engine(use_jack(alsa_env, jackd24, tmp_path), tmp_path)
    device = engine.device
    assert isinstance(device, PyAudioDevice)
    tokens, _ = watch_callback_thread(engine)
    try:
        assert await engine.start() is AudioHealth.OK
        await wait_for(lambda: tokens, 5)
        jackd24.pause()                       # the device stops calling back
        try:
            await wait_for(lambda: engine.health is AudioHealth.ERROR, 5)
            assert not engine.playing
        finally:
            jackd24.resume()
        await wait_for(lambda: engine.health is AudioHealth.OK, 15)
        await wait_for(lambda: device.thread_states.kept == 1, 5)
        engine.clear_uplink()
        await take_samples(engine, 2_400)          # periods of the new stream only
        assert engine.alive()
        last = tokens[-1]
        assert last() is not None
    finally:
        engine.stop()
    assert seen == [AudioHealth.OK, AudioHealth.ERROR, AudioHealth.OK]
    # The hung stream's callback thread gave its Python state back if PortAudio still
    # called it while the device was closing, and is counted as having left it behind
    # if not. The stream after it gave its own back on close.
    assert device.thread_states.left == (tokens[0]() is not None)
    assert last() is None


class Token:
    """Something for a callback thread to keep in its thread-local storage."""


def watch_callback_thread(engine: AudioEngine) -> tuple[list[weakref.ref[Token]], list[int]]:
    """Have every capture callback count itself in its thread's local storage, which
    lives in the thread's Python thread state: a state made afresh each callback
    starts again at 1 with a new token."""
    local = threading.local()
    tokens: list[weakref.ref[Token]] = []
    counts: list[int] = []
    capture = engine.capture

    def counted(samples: np.ndarray, adc_time: float | None = None) -> None:
        if not hasattr(local, "token"):
            local.token = Token()
            tokens.append(weakref.ref(local.token))
        local.n = getattr(local, "n", 0) + 1
        counts.append(local.n)
        capture(samples, adc_time)

    engine.capture = counted      # type: ignore[method-assign]
    return tokens, counts


async def test_the_callback_thread_keeps_its_python_state_until_the_stream_closes(
        alsa_env: pytest.MonkeyPatch, jackd24: Jackd, tmp_path: Path) -> None:
    engine, _ = make_engine(use_jack(alsa_env, jackd24, tmp_path), tmp_path)
    tokens, counts = watch_callback_thread(engine)
    try:
        assert await engine.start() is AudioHealth.OK
        await take_samples(engine, 24_000)                   # 1 s of periods
        assert len(tokens) == 1 and tokens[0]() is not None
        assert counts[-1] == len(counts) >= 25
    finally:
        engine.stop()
    assert tokens[0]() is None                # given back on close: nothing left behind
    assert isinstance(engine.device, PyAudioDevice)
    assert engine.device.thread_states.left == 0 == engine.device.thread_states.kept


async def test_long_uplink_frames_keep_short_device_periods_so_a_flush_is_prompt(
        alsa_env: pytest.MonkeyPatch, jackd24: Jackd, tmp_path: Path) -> None:
    """frame_ms 200 makes 200 ms uplink frames, but the device still runs 20 ms periods: a
    barge-in silences the speaker well within 100 ms (with 200 ms periods the
    audio already handed to the device alone would play on for 200 ms or more)."""
    cfg = dataclasses.replace(use_jack(alsa_env, jackd24, tmp_path), frame_ms=200)
    engine, _ = make_engine(cfg, tmp_path)
    try:
        assert await engine.start() is AudioHealth.OK
        async with asyncio.timeout(5):
            assert len(await engine.next_frame()) == 9600      # 200 ms at 24 kHz, 16-bit
        silences = []
        for n in range(3):
            rid = f"r{n}"
            engine.play(np.full(48_000, 1000).astype("<i2").tobytes(), rid)      # 2 s
            await wait_for(lambda r=rid: engine.delivered_samples(r) > 4_800, 5)  # sounding
            flushed = time.monotonic()
            engine.flush()
            polls = []
            while time.monotonic() - flushed < 0.5:
                polls.append((time.monotonic(), engine.delivered_samples(rid)))
                await asyncio.sleep(0.005)
            final = polls[-1][1]
            assert final < 48_000                              # it was cut short
            silences.append(next(t for t, heard in polls if heard == final) - flushed)
        silences.sort()
        assert silences[1] < 0.1, silences                     # generous: 20-40 ms expected
        assert silences[2] < 0.2, silences
    finally:
        engine.stop()
