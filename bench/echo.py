"""Benchmark of the echo canceller on a synthetic room (not a test).

    .venv/bin/python bench/echo.py [--delay-ms 40] [--echo-db 6] [--tail-ms 250]
                                   [--frame-ms 20] [--clipping]

A 46 s scene at 24 kHz, as a bare mic beside the speaker hears it: the reply
(espeak-ng speech when installed) alone 0-20 s, the user talking over it
20-28 s, the user alone 29-36 s, the reply alone again 36-46 s (the guard holds
the mic until the filter has played 18 s: the double talk comes after that); the
echo comes through a delay, a decaying tail and a gain (`--echo-db` over the
user's voice), with a little room noise. The user speaks at -26 dBFS unless
the mic would then clip: as a mic's gain is set for the loudest sound it
hears, the whole mic (user, echo, noise) is then turned down until its peak is
1 dB under full scale. `--clipping` keeps the user at -26 dBFS and lets the
echo clip the mic, which no linear canceller models (the guard never passes a
clipped frame). The mic and the speaker are fed through
`core.echo.EchoCanceller` + Speex in 20 ms periods, as the engine's pump does;
the kernel's frame is 20 ms (the engine's `ECHO_FRAME_MS`) unless `--frame-ms`
says otherwise.

It prints:
- ERLE (echo removed, dB) while only the reply plays: its first 3 s, 3-20 s,
  and 37-46 s (after the double talk), for the canceller's own output and for
  what leaves the guard (`core.echo_guard`: the mic held while the canceller
  learns, the residual echo attenuated once it has);
- the normalised correlation of the output with the clean user (best lag
  0-100 ms), while both talk and while the user is alone;
- an energy-VAD stand-in for the service's detector (a 100 ms chunk "is
  speech" when its level is within 12 dB of the user's speech level): how many
  reply-only chunks fire it, and the share of the user's chunks it finds;
- a stricter judge: the turn detector of `swaramd demo`'s simulated service
  (`swaramd.demo.vad.EnergyVad`: 20 ms frames 12 dB over a tracked floor and
  over -50 dBFS, three in a row start speech), fed the uplink as the service
  would be: each speech start in reply-only audio would cancel the reply;
- CPU ms per audio second of the canceller (kernel + alignment + estimate),
  over the whole scene and in its last 9 s (settled, the reply playing).
Method and recorded figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
import time
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
MIC_PEAK = 10 ** (-1 / 20)   # the mic's gain leaves its peak 1 dB under full scale
CHUNK = R // 10
KERNEL: dict[str, int] = {}


def scene(delay_ms: float, echo_db: float, tail_ms: float,
          clipping: bool = False) -> dict[str, np.ndarray]:
    """The reply, the user and the mic on a 46 s time line; "gain" is the mic's gain
    (1, or less where the mic would clip, unless `clipping`)."""
    n = 46 * R
    reply = np.concatenate([room.speech(s, "en", seed=i) for i, s in enumerate(room.SENTENCES)])
    reply = np.tile(reply, int(np.ceil(n / len(reply))))[:n]
    ref = np.zeros(n, np.float32)
    ref[:28 * R] = reply[:28 * R]
    ref[36 * R:] = reply[36 * R:]
    said = room.speech("Stop please. I want to ask something else: the train to Kochi, "
                       "when does it leave, and is there a seat by the window?",
                       "en-us+f3", seed=9)
    user = np.zeros(n, np.float32)
    for start, end in ((20, 28), (29, 36)):
        part = said[:(end - start) * R]
        user[start * R:start * R + len(part)] = part
    user = room.scale_to(user, USER_RMS)
    echo = room.echo_of(ref, room.room_response(delay_ms, tail_ms))
    echo = room.scale_to(echo, USER_RMS * 10 ** (echo_db / 20))
    noise = np.random.default_rng(5).standard_normal(n).astype(np.float32) * USER_RMS / 100
    mic = echo + user + noise
    gain = 1.0 if clipping else min(1.0, MIC_PEAK / float(np.max(np.abs(mic))))
    return {"ref": ref, "user": user * gain, "mic": mic * gain, "gain": np.float32(gain)}


def run(sc: dict[str, np.ndarray], guarded: bool,
        frame: int = PERIOD) -> tuple[np.ndarray, float, float]:
    """The canceller's output (float), its CPU seconds, and those of 37-46 s."""
    kernel = SpeexEchoKernel(frame, int(R * 0.3), R, **KERNEL)
    ec = EchoCanceller(kernel, R, guarded=guarded)
    mic, ref = room.to_pcm(sc["mic"]), room.to_pcm(sc["ref"])
    outs = []
    cpu = late = 0.0
    for i in range(0, len(mic) - PERIOD + 1, PERIOD):
        t = 100.0 + i / R
        c0 = time.process_time()
        ec.push_reference(ref[i:i + PERIOD], t)
        out = ec.process(mic[i:i + PERIOD], t)
        spent = time.process_time() - c0
        cpu += spent
        late += spent if i >= 37 * R else 0.0
        outs.append(out)
    out = np.concatenate(outs).astype(np.float32) / 32767
    # The output keeps the mic's positions; while the speaker plays its last kernel
    # frame is still inside the canceller.
    full = np.zeros(len(mic), np.float32)
    full[:len(out)] = out
    return full, cpu, late


def erle(mic: np.ndarray, out: np.ndarray, a: int, b: int) -> float:
    e_out = float(np.dot(out[a:b], out[a:b]))
    return float("inf") if e_out == 0 else 10 * np.log10(float(np.dot(mic[a:b], mic[a:b])) / e_out)


def correlation(out: np.ndarray, user: np.ndarray, a: int, b: int) -> float:
    best = 0.0
    x = out[a:b]
    for lag in range(0, R // 10, 8):
        y = user[a - lag:b - lag]
        best = max(best, float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y) + 1e-12)))
    return best


def chunk_db(x: np.ndarray) -> np.ndarray:
    c = x[:len(x) // CHUNK * CHUNK].reshape(-1, CHUNK)
    return 10 * np.log10(np.mean(c * c, axis=1) + 1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay-ms", type=float, default=40.0)
    ap.add_argument("--echo-db", type=float, default=6.0)
    ap.add_argument("--tail-ms", type=float, default=250.0)
    ap.add_argument("--frame-ms", type=int, default=20, help="the kernel's frame")
    ap.add_argument("--clipping", action="store_true",
                    help="keep the user at -26 dBFS even where the echo clips the mic")
    args = ap.parse_args()
    sc = scene(args.delay_ms, args.echo_db, args.tail_ms, args.clipping)
    frame = R * args.frame_ms // 1000
    raw, _, _ = run(sc, guarded=False, frame=frame)
    out, cpu, late = run(sc, guarded=True, frame=frame)
    mic, user, ref = sc["mic"], sc["user"], sc["ref"]
    seconds = len(mic) / R
    user_level = 20 * np.log10(USER_RMS * float(sc["gain"]))
    clipped = int(np.sum(np.abs(mic) * 32767 >= 32767))
    print(f"room: delay {args.delay_ms:g} ms, tail {args.tail_ms:g} ms, echo "
          f"{args.echo_db:+g} dB over the user; {seconds:.0f} s; kernel frame "
          f"{args.frame_ms} ms")
    print(f"mic: the user at {user_level:.1f} dBFS, peak "
          f"{20 * np.log10(np.max(np.abs(mic))):+.1f} dBFS, {clipped} samples clipped")
    for name, sig in (("canceller", raw), ("after guard", out)):
        print(f"ERLE {name:11s}  0-3 s {erle(mic, sig, 0, 3 * R):5.1f} dB   3-20 s "
              f"{erle(mic, sig, 3 * R, 20 * R):5.1f} dB   37-46 s "
              f"{erle(mic, sig, 37 * R, 46 * R):5.1f} dB")
    print(f"correlation with the user: both talking {correlation(out, user, 21 * R, 28 * R):.3f}"
          f"   user alone {correlation(out, user, 29 * R, 36 * R):.3f}")
    fires = chunk_db(out) > user_level - 12
    ref_db, user_db = chunk_db(ref), chunk_db(user)
    reply_only = (ref_db > -50) & (user_db < -80)
    user_chunks = user_db > user_level - 12
    print(f"VAD stand-in: fires on {int(np.sum(fires & reply_only))} of "
          f"{int(np.sum(reply_only))} reply-only chunks (first 3 s: "
          f"{int(np.sum((fires & reply_only)[:30]))}); finds "
          f"{100 * np.mean(fires[user_chunks]):.0f} % of {int(np.sum(user_chunks))} user chunks "
          f"({100 * np.mean(fires[user_chunks & (ref_db > -50)]):.0f} % while both talk)")
    starts = [c.audio_ms / 1000 for c in EnergyVad().feed(room.to_pcm(out)) if c.started]
    false = [t for t in starts if reply_only[min(int(t * R) // CHUNK, len(reply_only) - 1)]]
    print(f"simulated service's VAD: {len(false)} speech starts in reply-only audio"
          f"{' (at ' + ', '.join(f'{t:.2f}' for t in false) + ' s)' if false else ''}; "
          f"{len(starts)} in all")
    print(f"CPU: {1000 * cpu / seconds:.1f} ms per audio second over the scene (the "
          f"first seconds' replay included); {1000 * late / 9:.1f} while the reply plays "
          f"at 37-46 s")


if __name__ == "__main__":
    main()
