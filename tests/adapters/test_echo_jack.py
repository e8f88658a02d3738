"""Echo cancellation through the real stack: PyAudio -> PortAudio -> ALSA jack PCM ->
jackd (dummy driver, 24 kHz, 20 ms periods) -> a room client that echoes the speaker
into the mic with a delay, a decaying tail and gain, and adds a user's voice."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from swaramd.adapters import speex
from swaramd.adapters.audio import open_audio
from swaramd.adapters.audio_backend import AudioHealth, EngineTuning
from swaramd.adapters.control import query
from swaramd.core.config import AudioConfig
from swaramd.core.echo import Guard
from swaramd.demo import room
from tests.adapters.alsa_rig import Jackd, jack_pcm, write_asoundrc
from tests.daemon_rig import daemon_running, wait_until
from tests.support.jack_room import JackRoom, room_pcm
from tests.support.service import FakeService, Peer

R = 24_000
USER_RMS = 0.05
TUNING = EngineTuning(retry_delay_s=0.2, stall_timeout_s=3.0, start_timeout_s=10.0)


def use_room(env: pytest.MonkeyPatch, server: Jackd, tmp_path: Path) -> AudioConfig:
    for key, value in server.env.items():
        env.setenv(key, value)
    conf = write_asoundrc(tmp_path / "asound.conf", room_pcm("swaram_room"))
    env.setenv("ALSA_CONFIG_PATH", str(conf))
    return AudioConfig(input_device="swaram_room", output_device="swaram_room", volume=100)


def aligned(uplink: np.ndarray, mic: np.ndarray, start: int, length: int) -> np.ndarray:
    """The uplink placed on the room's time line: found where the room's mic segment
    [start, start+length) (the user alone: passed untouched) occurs in it."""
    seg = mic[start:start + length]
    n = 1 << (len(uplink) + length).bit_length()
    c = np.fft.irfft(np.fft.rfft(uplink, n) * np.conj(np.fft.rfft(seg, n)), n)[:len(uplink)]
    d = start - int(np.argmax(c))             # uplink[r - d] is the room's sample r
    out = np.zeros(len(mic), np.float32)
    lo, hi = max(0, d), min(len(mic), len(uplink) + d)
    out[lo:hi] = uplink[lo - d:hi - d]
    return out


def best_correlation(x: np.ndarray, y: np.ndarray, max_lag: int) -> float:
    best = 0.0
    for lag in range(-max_lag, max_lag + 1, 8):
        a = x[max(0, lag):len(x) + min(0, lag)]
        b = y[max(0, -lag):len(y) + min(0, -lag)]
        best = max(best, float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b) + 1e-12)))
    return best


async def test_echo_is_cancelled_and_the_user_heard_over_the_reply(
        alsa_env: pytest.MonkeyPatch, jackd24: Jackd, tmp_path: Path) -> None:
    cfg = use_room(alsa_env, jackd24, tmp_path)
    reply = np.concatenate([room.speech(s, "en", seed=i) for i, s in
                            enumerate(room.SENTENCES + room.SENTENCES[:2])])
    user = room.scale_to(room.speech("Stop please, I want to ask about the train to Kochi.",
                                     "en-us+f3", seed=9), USER_RMS)
    # Other words over the reply than alone after it: the uplink is placed on the
    # room's time line by finding the words said alone.
    over = room.scale_to(room.speech("Wait, tell me about the bus to Alappuzha instead.",
                                     "en-us+f3", seed=8), USER_RMS)
    response = room.room_response(60, 250)
    gain = USER_RMS * 2 / room.rms(room.echo_of(reply, response))       # echo +6 dB
    reply_s = len(reply) / R
    rm = JackRoom(response, gain, user, [reply_s + 1.5], seconds=reply_s + 10)  # alone after
    rm.start()
    engine = open_audio(cfg, asyncio.get_running_loop(), tmp_path, tuning=TUNING)
    frames: list[bytes] = []

    async def collect() -> None:
        while True:
            frames.append(await engine.next_frame())

    try:
        assert await engine.start() is AudioHealth.OK
        assert engine.echo is not None
        collector = asyncio.create_task(collect())
        pcm = room.to_pcm(reply).tobytes()
        for i in range(0, len(pcm), 2 * R):
            engine.play(pcm[i:i + 2 * R], "r1")
        engine.end_response("r1")
        # Once the canceller says it has converged: 3 s of reply alone, then the user
        # talks over the reply.
        async with asyncio.timeout(reply_s):
            while engine.echo.guard is not Guard.CONVERGED:
                await asyncio.sleep(0.05)
        converged = rm.pos
        async with asyncio.timeout(10):
            while rm.pos < converged + 3 * R:
                await asyncio.sleep(0.05)
        talk = rm.pos + R // 5
        rm.speak_at(talk, over)
        assert rm.first_audio is not None and talk + len(over) < rm.first_audio + len(reply), \
            "the canceller converged too late in the reply to test double talk"
        async with asyncio.timeout(reply_s + 60):
            while rm.pos < len(rm.mic):
                await asyncio.sleep(0.2)
        status = engine.echo_status()
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    finally:
        engine.stop()
        rm.stop()
    assert rm.first_audio is not None
    uplink = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float32) / 32768
    # The uplink trails the room by the devices' buffering and by when the engine
    # started: place it where the user speaks alone (the canceller rests there).
    alone = rm.user_starts()[0]
    up = aligned(uplink, rm.mic, alone, len(user))
    # ERLE once converged, while only the reply plays: the median of 1 s figures.
    erle = float(np.median([10 * np.log10(np.sum(rm.mic[i:i + R] ** 2) /
                                          max(float(np.sum(up[i:i + R] ** 2)), 1e-12))
                            for i in range(converged, talk - R + 1, R)]))
    assert erle > 15, erle
    # The user reaches the uplink while both talk. (The raw mic, echo and all, is ~0.45.)
    track = rm.user_track[talk:talk + len(over)]
    heard = best_correlation(up[talk:talk + len(over)], track, R // 10)
    raw = best_correlation(rm.mic[talk:talk + len(over)], track, R // 10)
    assert heard > 0.7 and heard > raw + 0.2, (heard, raw, status)
    assert status["active"] is True and status["guard"] == "converged"
    assert status["erle_db"] is not None and status["erle_db"] > 10   # its last second
    assert status["delay_ms"] is not None and 0 <= status["delay_ms"] < 250


async def idle_script(peer: Peer) -> None:
    await peer.setup()
    await peer.hold(30)


@pytest.mark.parametrize(("audio", "missing_library", "duplex", "reason"), [
    ({}, False, "full", None),
    ({"echo_cancel": "off"}, False, "half", "audio.echo_cancel is off"),
    ({}, True, "half", "install the libspeexdsp1 package"),
    ({"echo_cancel": "off", "duplex": "full"}, False, "full", None),   # a speakerphone
])
async def test_duplex_auto_follows_echo_cancellation(
        alsa_env: pytest.MonkeyPatch, jackd24: Jackd, tmp_path: Path,
        caplog: pytest.LogCaptureFixture, audio, missing_library, duplex, reason) -> None:
    for key, value in jackd24.env.items():
        alsa_env.setenv(key, value)
    conf = write_asoundrc(tmp_path / "asound.conf", jack_pcm("swaram_jack"))
    alsa_env.setenv("ALSA_CONFIG_PATH", str(conf))
    if missing_library:         # a Pi without libspeexdsp1
        alsa_env.setenv("SWARAMD_SPEEXDSP", str(tmp_path / "libspeexdsp.so.1"))
        alsa_env.setattr(speex, "_lib", None)
    caplog.set_level(logging.INFO)
    settings = {"backend": "pyaudio", "input_device": "swaram_jack",
                "output_device": "swaram_jack", **audio}
    async with FakeService([idle_script]) as svc, \
            daemon_running(tmp_path, svc, audio=settings) as daemon:
        await wait_until(lambda: daemon.link is not None and daemon.status.connected)
        assert daemon.conversation.duplex == duplex
        status = (await asyncio.to_thread(query, tmp_path / "control.sock"))["audio"]
    echo = status["echo_cancel"]
    assert echo["active"] is (reason is None and "echo_cancel" not in audio)
    assert {"active", "erle_db", "delay_ms"} <= set(echo)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "half duplex" in r.getMessage()]
    if reason is None:
        assert not warnings
    else:
        assert len(warnings) == 1 and reason in warnings[0], warnings
        assert echo["reason"] is not None and reason in echo["reason"]


async def test_a_mic_that_hears_a_hum_not_the_speaker_passes_the_user_over_replies(
        alsa_env: pytest.MonkeyPatch, jackd24: Jackd, tmp_path: Path) -> None:
    # Headphones in a room with a steady hum, on a device that hands over zeros for its
    # first second. The hum, not the zeros, is the room at rest: once it is known (after
    # the first reply, which plays at once), the mic is known not to hear the speaker,
    # the guard converges and the mic is not held through the later replies (so the
    # user can talk over them).
    cfg = use_room(alsa_env, jackd24, tmp_path)
    seconds = 40.0
    t = np.arange(int(seconds * R)) / R
    hum = (0.01 * np.sin(2 * np.pi * 100 * t)).astype(np.float32)
    hum += np.random.default_rng(3).standard_normal(len(t)).astype(np.float32) * 3e-4
    rm = JackRoom(room.room_response(60, 250), 0.0, np.zeros(1, np.float32), [],
                  seconds=seconds + 1)
    rm.speak_at(R, hum[R:])                      # zeros for the first second
    rm.start()
    engine = open_audio(cfg, asyncio.get_running_loop(), tmp_path, tuning=TUNING)
    reply = room.to_pcm(room.speech(room.SENTENCES[0], "en", seed=0))
    try:
        assert await engine.start() is AudioHealth.OK
        assert engine.echo is not None
        async with asyncio.timeout(seconds + 30):
            for n in range(4):                   # four replies, 1.5 s apart
                rid = f"r{n}"
                engine.play(reply.tobytes(), rid)
                engine.end_response(rid)
                while engine.delivered_samples(rid) < len(reply):
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.5)
        status = engine.echo_status()
    finally:
        engine.stop()
        rm.stop()
    assert status["guard"] == "converged", status
    assert status["delay_ms"] is None, status
    assert status["held_s"] < len(reply) / R + 1.5, status     # the first reply at most
