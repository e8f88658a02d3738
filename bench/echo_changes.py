"""Benchmark: the echo changes in a room the canceller has learnt (not a test).

    .venv/bin/python bench/echo_changes.py [--jobs 2] [--verbose] [--at-s 36 37 38 39.5]

A scene at 24 kHz, running 20 s past the last change: a reply of 2.5 s
every 5 s from 1 s on (espeak-ng speech when installed), heard by a bare mic
through a room (a delay, a 250 ms tail), with a little room noise and no
user. The canceller (`core.echo` with Speex, 20 ms periods, as the engine's
pump runs it) learns the room, and then the echo changes:

- `appears`: there was no echo at all (a speaker switched off, headphones),
  and from the change on there is;
- `louder`: the echo is 10 dB louder from the change on (the speaker's
  amplifier or the mic's gain turned up);
- `moved`: the echo comes 40 ms later from the change on (two periods
  slipped between the directions).

Each kind runs over a grid: the change at 36.0 s, 37.0 s (inside a reply),
38.0 s (near its end) or 39.5 s (between replies), after the guard has
converged and its filter has settled (about 32 s here; `--at-s` sets other
times), a room of 30, 60 or 120 ms, and the echo at the user's level or 6 dB
over it (the user's level as in `bench/echo.py`: -26 dBFS). The uplink is fed
to the simulated service's turn detector (`swaramd.demo.vad.EnergyVad`); with
no user in the scene, each speech start would cancel a reply. It prints, per
kind, the starts before the change, the runs with a start within 0.3 s of it,
and the starts after that. The scene is deterministic. Figures:
docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swaramd.adapters.speex import SpeexEchoKernel
from swaramd.core.echo import EchoCanceller
from swaramd.demo import room
from swaramd.demo.vad import EnergyVad

R = room.RATE
PERIOD = 480
USER_RMS = 0.05
AFTER_S = 20                    # the scene goes on this long after the last change
KINDS = ("appears", "louder", "moved")
AT_S = (36.0, 37.0, 38.0, 39.5)
DELAYS_MS = (30, 60, 120)
LEVELS_DB = (0.0, 6.0)          # the echo over the user
LOUDER_DB = 10.0
MOVED_MS = 40
ONSET_S = 0.3


def replies(n: int) -> np.ndarray:
    """2.5 s of reply every 5 s from 1 s on."""
    speech = np.concatenate([room.speech(s, "en", seed=i) for i, s in enumerate(room.SENTENCES)])
    speech = np.tile(speech, 2)
    ref = np.zeros(n, np.float32)
    for start in range(R, n - 3 * R, 5 * R):
        at = start % (len(speech) - 3 * R)
        ref[start:start + int(2.5 * R)] = speech[at:at + int(2.5 * R)]
    return ref


def run(job: tuple[str, float, int, float, int]
        ) -> tuple[str, list[float], list[float], list[float]]:
    """One scene of `seconds`: the speech starts before the change, at it, and after it."""
    kind, at_s, delay_ms, level_db, seconds = job
    n = seconds * R
    ref = replies(n)
    level = USER_RMS * 10 ** (level_db / 20)
    echo = room.scale_to(room.echo_of(ref, room.room_response(delay_ms, 250)), level)
    k = int(at_s * R)
    if kind == "appears":
        echo[:k] = 0
    elif kind == "louder":
        echo[:k] *= 10 ** (-LOUDER_DB / 20)
    else:
        later = room.echo_of(ref, room.room_response(delay_ms + MOVED_MS, 250))
        echo[k:] = room.scale_to(later, level)[k:]
    noise = np.random.default_rng(5).standard_normal(n).astype(np.float32) * USER_RMS / 100
    mic, speaker = room.to_pcm(echo + noise), room.to_pcm(ref)
    ec = EchoCanceller(SpeexEchoKernel(PERIOD, int(R * 0.3), R), R)
    outs = []
    for i in range(0, n - PERIOD + 1, PERIOD):
        ec.push_reference(speaker[i:i + PERIOD], 100.0 + i / R)
        outs.append(ec.process(mic[i:i + PERIOD], 100.0 + i / R))
    starts = [c.audio_ms / 1000 for c in EnergyVad().feed(np.concatenate(outs)) if c.started]
    return (kind, [t for t in starts if t < at_s],
            [t for t in starts if at_s <= t < at_s + ONSET_S],
            [t for t in starts if t >= at_s + ONSET_S])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="print every run's starts")
    ap.add_argument("--at-s", type=float, nargs="+", default=list(AT_S),
                    help="when the echo changes (s)")
    args = ap.parse_args()
    seconds = int(max(args.at_s)) + 1 + AFTER_S
    jobs = [(kind, at, d, lv, seconds) for kind in KINDS for at in args.at_s
            for d in DELAYS_MS for lv in LEVELS_DB]
    totals = {kind: [0, 0, 0, 0, 0] for kind in KINDS}
    with ProcessPoolExecutor(args.jobs) as pool:
        for job, (kind, before, onset, after) in zip(jobs, pool.map(run, jobs), strict=True):
            t = totals[kind]
            t[0] += len(before)
            t[1] += bool(onset)
            t[2] += len(after)
            t[3] += bool(after)
            t[4] += 1
            if args.verbose:
                print(job, [round(s, 2) for s in before], [round(s, 2) for s in onset],
                      [round(s, 2) for s in after])
    print(f"the change at {', '.join(f'{a:g}' for a in args.at_s)} s; {seconds} s scenes")
    for kind, (before, onset, after, runs_after, runs) in totals.items():
        print(f"{kind:8s} {runs} runs: {before} starts before the change; {onset} runs with "
              f"a start at it; {after} starts after it, in {runs_after} runs")


if __name__ == "__main__":
    main()
