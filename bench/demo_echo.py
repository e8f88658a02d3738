"""`swaramd demo` as a test of echo cancellation: record its runs, replay them (not a test).

    .venv/bin/python bench/demo_echo.py record DIR [--runs 8] [--wake-word] [--echo-db 3]
    .venv/bin/python bench/demo_echo.py replay DIR

`record` runs the file demo (`swaramd demo`, its simulated room and service)
`--runs` times in this process and keeps every call into the echo canceller
of each run: the mic blocks and the reference blocks, with their device
times, and the user's utterances, in `DIR/run-K.npz`. `--echo-db` sets the room's echo over the user
(the demo's own is `runner.ROOM_ECHO_DB`). It prints each run's verdict.

`replay` feeds every recording in DIR, call by call, to a fresh canceller
and guard of this tree, and runs the simulated service's turn detector
(`swaramd.demo.vad.EnergyVad`) on what comes out. It prints, per run, the
speech starts outside the user's utterances (each one a reply the service
would cancel), how many utterances a start falls in, and whether the
output is identical to what the live run sent (it is when this tree
recorded it). To judge another commit's guard on the same runs, copy this
file into a worktree of that commit and replay there. docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swaramd.adapters.audio import ECHO_FILTER_MS, ECHO_FRAME_MS
from swaramd.adapters.speex import SpeexEchoKernel
from swaramd.core import echo
from swaramd.demo import runner
from swaramd.demo.recording import RATE, UTTERANCES, WAKE_AT_S, WAKE_SHIFT_S
from swaramd.demo.vad import EnergyVad

LEAD_S = 0.3        # a start this early in an utterance is the user's (the VAD's onset)


def record(out: Path, runs: int, wake_word: bool, echo_db: float | None) -> None:
    """Run the demo `runs` times, keeping the canceller's calls of each run."""
    out.mkdir(parents=True, exist_ok=True)
    if echo_db is not None:
        runner.ROOM_ECHO_DB = echo_db
    calls: list[tuple[int, np.ndarray[Any, Any], float, np.ndarray[Any, Any] | None]] = []
    process, push = echo.EchoCanceller.process, echo.EchoCanceller.push_reference

    def kept_process(self: echo.EchoCanceller, samples: Any, t: float) -> Any:
        result = process(self, samples, t)
        calls.append((0, samples.copy(), t, result.copy()))
        return result

    def kept_push(self: echo.EchoCanceller, samples: Any, t: float) -> None:
        calls.append((1, samples.copy(), t, None))
        push(self, samples, t)

    echo.EchoCanceller.process = kept_process              # type: ignore[method-assign]
    echo.EchoCanceller.push_reference = kept_push          # type: ignore[method-assign]
    args = ["--out", str(out / "speaker.wav")] + (["--wake-word"] if wake_word else [])
    for k in range(runs):
        calls.clear()
        code = runner.run_demo(args)
        sent = [c[3] for c in calls if c[3] is not None]
        shift = WAKE_SHIFT_S if wake_word else 0.0
        spans = [(u.start_s + shift, u.end_s + shift) for u in UTTERANCES]
        if wake_word:
            spans.append((WAKE_AT_S, WAKE_AT_S + 1.0))
        np.savez_compressed(
            out / f"run-{k}.npz", kind=np.array([c[0] for c in calls], np.int8),
            samples=np.concatenate([c[1] for c in calls]),
            lengths=np.array([len(c[1]) for c in calls]), times=np.array([c[2] for c in calls]),
            sent=np.concatenate(sent) if sent else np.zeros(0, np.int16),
            spans=np.array(spans))
        print(f"run {k}: exit {code}", flush=True)


def replay(path: Path) -> tuple[list[float], int, int, bool]:
    """The false speech starts (s) of one recorded run through this tree's canceller, how
    many of the user's utterances (the wake word included) a start falls in, of how
    many, and whether its output is what the live run sent."""
    rec = np.load(path)
    canceller = echo.EchoCanceller(SpeexEchoKernel(RATE * ECHO_FRAME_MS // 1000,
                                                   RATE * ECHO_FILTER_MS // 1000, RATE), RATE)
    outs, pos = [], 0
    for kind, n, t in zip(rec["kind"], rec["lengths"], rec["times"], strict=True):
        block = rec["samples"][pos:pos + n]
        pos += n
        if kind:
            canceller.push_reference(block, float(t))
        else:
            outs.append(canceller.process(block, float(t)))
    out = np.concatenate(outs)
    spans = [(float(a), float(b)) for a, b in rec["spans"]]   # the user's, as recorded
    starts = [c.audio_ms / 1000 for c in EnergyVad().feed(out) if c.started]
    false = [s for s in starts if not any(a - LEAD_S <= s <= b for a, b in spans)]
    heard = sum(any(a - LEAD_S <= s <= b for s in starts) for a, b in spans)
    return false, heard, len(spans), bool(np.array_equal(out, rec["sent"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("dir", type=Path)
    rec.add_argument("--runs", type=int, default=8)
    rec.add_argument("--wake-word", action="store_true")
    rec.add_argument("--echo-db", type=float)
    rep = sub.add_parser("replay")
    rep.add_argument("dir", type=Path)
    args = ap.parse_args()
    if args.command == "record":
        record(args.dir, args.runs, args.wake_word, args.echo_db)
        return
    runs = sorted(args.dir.glob("run-*.npz"))
    bad = heard_all = said_all = 0
    for path in runs:
        false, heard, said, same = replay(path)
        bad += bool(false)
        heard_all += heard
        said_all += said
        print(f"{path.name}: {len(false)} false speech starts "
              f"{[round(s, 2) for s in false]}; {heard} of {said} utterances heard; "
              f"output {'as' if same else 'unlike'} the live run")
    print(f"{bad} of {len(runs)} runs would have cancelled a reply; "
          f"{heard_all} of {said_all} utterances heard")


if __name__ == "__main__":
    main()
