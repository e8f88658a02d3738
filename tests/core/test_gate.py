"""The mic gate: silence stays home, speech goes out with pre-roll and hangover."""

from __future__ import annotations

import numpy as np

from swaramd.core.gate import SpeechGate, frame_dbfs

FRAME = 480  # 20 ms at 24 kHz
rng = np.random.default_rng(3)


def noise(db: float) -> bytes:
    amp = 32768 * 10 ** (db / 20)
    return (rng.normal(0, amp, FRAME)).clip(-32768, 32767).astype("<i2").tobytes()


def tone(db: float) -> bytes:
    amp = 32768 * 10 ** (db / 20) * np.sqrt(2)
    t = np.arange(FRAME) / 24000
    return (amp * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def test_level_measure():
    assert abs(frame_dbfs(tone(-20)) + 20) < 0.5
    assert frame_dbfs(b"\0\0" * FRAME) < -100


def test_silence_and_steady_hum_are_not_sent():
    gate = SpeechGate(20)
    assert all(gate.process(noise(-65)) == [] for _ in range(100))
    # A steady hum well above the absolute floor becomes the noise floor.
    hum = [gate.process(noise(-40)) for _ in range(1500)]
    assert sum(len(h) for h in hum[-500:]) == 0


def test_speech_opens_with_preroll_and_closes_after_hangover():
    gate = SpeechGate(20, preroll_ms=300, hangover_ms=800)
    quiet = [noise(-65) for _ in range(50)]
    for f in quiet:
        gate.process(f)
    speech = [tone(-20) for _ in range(20)]
    out = [gate.process(f) for f in speech]
    assert out[0] == []  # one loud frame is not enough (a click)
    opened = out[1]
    assert len(opened) == 15 + 1 and opened[-1] == speech[1] and opened[-2] == speech[0]
    assert all(o == [f] for o, f in zip(out[2:], speech[2:], strict=True))
    tail = [gate.process(noise(-65)) for _ in range(60)]
    sent = sum(len(t) for t in tail)
    assert sent == 40  # 800 ms of hangover, then shut
    assert not gate.open


def test_every_frame_sent_once_in_order():
    gate = SpeechGate(20)
    frames = [noise(-65) for _ in range(30)] + [tone(-15) for _ in range(10)] + \
        [noise(-65) for _ in range(80)]
    sent = [f for fr in frames for f in gate.process(fr)]
    where = {id(f): i for i, f in enumerate(frames)}
    positions = [where[id(f)] for f in sent]
    assert positions == sorted(set(positions))


def test_the_floor_follows_the_room_at_the_same_speed_whatever_the_frame():
    def floor_after(frame_ms: int, seconds: float) -> float:
        gate = SpeechGate(frame_ms)
        n = FRAME * frame_ms // 20
        quiet = (rng.normal(0, 32768 * 10 ** (-65 / 20), n)).astype("<i2").tobytes()
        hum = (rng.normal(0, 32768 * 10 ** (-40 / 20), n)).astype("<i2").tobytes()
        for _ in range(1000 // frame_ms):
            gate.process(quiet)
        for _ in range(int(seconds * 1000) // frame_ms):
            gate.process(hum)
        return gate.floor_db

    for seconds in (1.0, 4.0):
        assert abs(floor_after(20, seconds) - floor_after(40, seconds)) < 1.0
