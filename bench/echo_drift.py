"""Benchmark: the canceller against clock drift between the mic and the speaker (not a test).

    .venv/bin/python bench/echo_drift.py [--jobs 2] [--seconds 120] [--ppm 0 2 5 20 50 150]
        [--delay-ms 60] [--echo-db 6] [--contents 1]

Separate capture and playback devices (a USB microphone and the Pi's headphone
jack) run on separate clocks, which differ by some parts per million: the echo
then comes a little later (or earlier) every second. The scene: a reply of
2.5 s every 5 s from 1 s on (espeak-ng speech when installed), heard by a bare
mic through a room with a 250 ms tail (60 ms late and the echo 6 dB over the
user's level of `bench/echo.py` unless `--delay-ms` and `--echo-db` list
others), a little room noise and no user. The mic's clock
runs `ppm` faster than the speaker's: the echo is resampled by that ratio
(soxr, very high quality), and comes later every second. Both devices
report the times of their nominal rates, as a shared clock would: the
canceller finds the drift from the echo alone. The speaker's period is handed
to the canceller a period before it plays, as the engine renders it: an echo
that comes earlier every second (a negative drift) is read from samples
already rendered, never from ones still to come.

`--contents K` runs every drift and room with K reply contents: the first is
the one above (`room.SENTENCES`, one English voice), each other one is
`bench/wake.py`'s English (even) or Malayalam (odd) sentences in its own
order, voice and speed, heard through a room response and noise of its own
(drawn from the content's number). Every echo bench and test speaks the
same four sentences: a filter that learnt them may still meet a sound it
has not learnt in other speech.

Each drift, in each room, runs twice through `core.echo` with Speex (20 ms
periods, as the engine's pump runs it): with the guard off, for Speex's own ERLE (median over
the replies from 30 s on, each measured over its first 2.4 s), and with the
guard on, as the daemon runs it, whose uplink the simulated service's turn
detector (`swaramd.demo.vad.EnergyVad`) hears: with no user in the scene, each
speech start would cancel a reply. It prints, per drift and room, those
starts, the ERLE, the drift the canceller found (status's `drift_ppm`), the
guard's state at the end and the seconds it held the mic; then the starts in
all and the mean seconds held.
Deterministic. Figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wake
from swaramd.adapters.speex import SpeexEchoKernel
from swaramd.core.echo import EchoCanceller
from swaramd.demo import room
from swaramd.demo.vad import EnergyVad

R = room.RATE
PERIOD = 480
USER_RMS = 0.05
ECHO_DB = 6.0
DELAY_MS = 60


def spoken(content: int) -> np.ndarray:
    """The replies' speech: content 0 is `room.SENTENCES`; the others `bench/wake.py`'s
    English (even) or Malayalam (odd) sentences, their order, voice and speed drawn from
    `content`."""
    if content == 0:
        return np.concatenate([room.speech(s, "en", seed=i)
                               for i, s in enumerate(room.SENTENCES)])
    rng = random.Random(content)
    malayalam = content % 2 == 1
    sentences = [s for s in (wake.MALAYALAM if malayalam else wake.ENGLISH).splitlines()
                 if s.strip()]
    rng.shuffle(sentences)
    voice = rng.choice(wake.OTHER_VOICES_ML if malayalam else wake.OTHER_VOICES_EN)
    speed = rng.choice(wake.OTHER_SPEEDS)
    return np.concatenate([room.speech(s, voice, speed, seed=i)
                           for i, s in enumerate(sentences)])


def replies(n: int, content: int = 0) -> np.ndarray:
    """2.5 s of reply every 5 s from 1 s on."""
    speech = spoken(content)
    speech = np.tile(speech, 1 + n // len(speech))
    ref = np.zeros(n, np.float32)
    for start in range(R, n - 3 * R, 5 * R):
        ref[start:start + int(2.5 * R)] = speech[start:start + int(2.5 * R)]
    return ref


def scene(seconds: int, ppm: float, delay_ms: float = DELAY_MS, echo_db: float = ECHO_DB,
          content: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The mic and the speaker (PCM16) of a room whose mic clock runs `ppm` fast."""
    n = seconds * R
    ref = replies(n, content)
    echo = room.scale_to(room.echo_of(ref, room.room_response(delay_ms, 250, seed=1 + content)),
                         USER_RMS * 10 ** (echo_db / 20))
    if ppm:
        echo = soxr.resample(echo, R, R * (1 + ppm * 1e-6), quality="VHQ")[:n]
        echo = np.pad(echo, (0, n - len(echo)))       # a slower mic: a few samples short
    noise = np.random.default_rng(5 + content).standard_normal(n).astype(np.float32) * \
        USER_RMS / 100
    return room.to_pcm(echo + noise), room.to_pcm(ref)


def run(job: tuple[int, float, float, float, int]) -> tuple[list[float], float | None, str,
                                                           float, float | None, float | None]:
    """One drift in one room: the guarded run's speech starts, the unguarded median ERLE,
    the guard's state at the end, the seconds it held the mic, the drift it found and
    when it first found one (s, to a second)."""
    seconds, ppm, delay_ms, echo_db, content = job
    mic, speaker = scene(seconds, ppm, delay_ms, echo_db, content)
    erles: list[float] = []
    outs: list[np.ndarray] = []
    guarded_ec = EchoCanceller(SpeexEchoKernel(PERIOD, int(R * 0.3), R), R)
    bare_ec = EchoCanceller(SpeexEchoKernel(PERIOD, int(R * 0.3), R), R, guarded=False)
    probe = int(3.4 * R) // PERIOD * PERIOD        # 2.4 s into each reply
    first: float | None = None
    for ec in (guarded_ec, bare_ec):
        ec.push_reference(speaker[:PERIOD], 100.0)
    for i in range(0, len(mic) - PERIOD + 1, PERIOD):
        t = 100.0 + i / R
        ahead = speaker[i + PERIOD:i + 2 * PERIOD]     # rendered a period before it plays
        for ec in (guarded_ec, bare_ec):
            ec.push_reference(ahead, t + PERIOD / R)
        outs.append(guarded_ec.process(mic[i:i + PERIOD], t))
        if first is None and i % R == 0 and guarded_ec.stats().drift_ppm is not None:
            first = i / R
        bare_ec.process(mic[i:i + PERIOD], t)
        if i >= 30 * R and i % (5 * R) == probe:
            erle = bare_ec.stats().erle_db
            if erle is not None:
                erles.append(erle)
    starts = [c.audio_ms / 1000 for c in EnergyVad().feed(np.concatenate(outs)) if c.started]
    stats = guarded_ec.stats()
    return (starts, float(np.median(erles)) if erles else None, stats.guard.value,
            stats.held_s, stats.drift_ppm, first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--ppm", type=float, nargs="+", default=[0, 2, 5, 20, 50, 150])
    ap.add_argument("--delay-ms", type=float, nargs="+", default=[DELAY_MS])
    ap.add_argument("--echo-db", type=float, nargs="+", default=[ECHO_DB])
    ap.add_argument("--contents", type=int, default=1)
    args = ap.parse_args()
    print(f"{args.seconds} s, a reply of 2.5 s every 5 s; tail 250 ms")
    jobs = [(args.seconds, ppm, d, db, c) for ppm in args.ppm for d in args.delay_ms
            for db in args.echo_db for c in range(args.contents)]
    total, starting, held_s = 0, 0, 0.0
    with ProcessPoolExecutor(args.jobs) as pool:
        for (_, ppm, d, db, c), (starts, erle, guard, held, found, first) in zip(
                jobs, pool.map(run, jobs), strict=True):
            total += len(starts)
            starting += bool(starts)
            held_s += held
            shown = ", ".join(f"{s:.1f}" for s in starts[:8]) + (" ..." if len(starts) > 8 else "")
            said = f", content {c}" if args.contents > 1 else ""
            print(f"drift {ppm:5g} ppm, room {d:g} ms {db:+g} dB{said}: Speex ERLE "
                  f"{'-' if erle is None else f'{erle:4.1f}'} dB (median, replies from 30 s); "
                  f"drift found {'-' if found is None else f'{found:6.1f}'} ppm "
                  f"(first at {'-' if first is None else f'{first:.0f}'} s); guard {guard}, "
                  f"held {held:5.1f} s; "
                  f"{len(starts)} speech starts" + (f" at {shown} s" if starts else ""))
    print(f"in all: {total} speech starts ({starting} runs) in {len(jobs)} runs; the mic held "
          f"{held_s / len(jobs):.1f} s per run on average")


if __name__ == "__main__":
    main()
