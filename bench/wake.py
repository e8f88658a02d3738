"""The wake word detector on speech espeak-ng makes here: detections, false wakes, CPU (not a test).

    .venv/bin/python bench/wake.py [--word okay_nabu] [--minutes 30] [--sensitivity 0.5 ...]
        [--mode quiet|playback|all] [--echo-db 6 12] [--delay-ms 60] [--tail-ms 250]

Everything goes through `swaramd.adapters.wake.WakeDetector` as the daemon runs it:
24 kHz PCM16 in 20 ms frames, one detector for the whole stream. Each `--sensitivity`
gets its own detector on the same audio.

`--mode quiet` (the default):

1. Detection in quiet: the word spoken by espeak-ng voices x speeds x levels (peak
   -1, -12 and -24 dBFS), each with 1 s of faint noise (-70 dBFS) before and 2 s
   after, one after another in one stream. A clip counts as heard when a detection
   falls between its word's start and 1 s after its end; how long after the end
   the detection came is reported too (the daemon's pre-roll must be shorter).
2. False wakes: at least `--minutes` of other speech, espeak-ng reading English
   (the GPL-3 text on Debian, else a built-in paragraph) and Malayalam (`-v ml`)
   with several voices and speeds, 0.3 s between sentences. Every detection is a
   false wake.
3. CPU: process time spent in `feed` (soxr resampling, features, the model) per
   second of audio, over the whole false-wake stream.

`--mode playback`: the same words while a reply plays. The reply is the other
speech of 2. as the speaker plays it (the reference); the mic hears it through a
synthetic room (`swaramd.demo.room`: a delay of `--delay-ms`, a `--tail-ms` decaying
tail), its RMS `--echo-db` over the user's (the words at -12 dBFS peak), with -70 dBFS
noise and the word on top; the mic is clipped to 16 bits. The mic and the reference go
through `core.echo.EchoCanceller` + Speex as the engine's pump feeds them (20 ms
periods, aligned device times, the guard on: `bench/echo.py`'s `run`), and the
canceller's output into the detector; the bare mic goes into another detector for
comparison. A clip is heard as in 1.

4. Settled: one canceller for the whole stream, as in the daemon. The first reply
   plays `SETTLE_S` before its first word; then every reply carries `PER_REPLY`
   words, each `WORD_AT_S` into its slot, and the speaker rests `REST_S` between
   replies.
5. Early: each word in the first 3 s of the first reply a fresh canceller hears
   (the daemon's first reply after it starts), `EARLY_AT_S` into the reply; also
   with the guard off (what the canceller alone passes while it learns).
6. False wakes over playback: the replies alone (the whole stream of 2.) through
   the room and the canceller; every detection is a false wake.

Each line says how many of the clips it missed were heard in quiet (1., run here
as the baseline).

`--mode all` runs both.
Figures, the command, the commit and the machine: docs/performance.md, "Wake word".
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import echo as echo_bench
from swaramd.adapters.wake import WakeDetector
from swaramd.demo import room
from tests.support.speech import say

RATE = 24_000
FRAME = RATE * 20 // 1000

PHRASES = {"okay_nabu": "okay nabu", "alexa": "alexa", "hey_jarvis": "hey jarvis",
           "hey_mycroft": "hey mycroft"}
WORD_VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us+f3",
               "en-us+m3", "en-gb+f2", "en-us+f2", "en-gb-x-gbclan")
WORD_SPEEDS = (120, 140, 160, 180)
LEVELS_DB = (-1.0, -12.0, -24.0)
USER_DB = -12.0          # the level whose RMS the echo is set against
NOISE_DB = -70.0

SETTLE_S = 20.0          # the first reply plays this long before its first word (the
                         # guard holds the mic until the filter has played 18 s)
PER_REPLY = 4            # words over each reply
WORD_AT_S = 1.0          # into its slot
AFTER_S = 2.0            # from the word's end to the next slot
REST_S = 1.5             # the speaker silent between replies
LEAD_S = 0.5             # early: the speaker silent before the first reply
EARLY_AT_S = (0.3, 0.8, 1.3, 1.8)   # early: the word's start into the first reply

OTHER_VOICES_EN = ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-029")
OTHER_VOICES_ML = ("ml", "ml+f3", "ml+m3")
OTHER_SPEEDS = (130, 160, 190)

ENGLISH = """The weather today is clear in the morning with some clouds in the afternoon.
Please remember to switch off the lights before you leave the house.
My grandmother makes the best fish curry with coconut milk and tamarind.
The train to the city leaves at a quarter past nine every weekday.
Could you tell me how far it is from here to the nearest bus stop?
We planted banana trees and a small vegetable garden behind the kitchen.
The children are playing football in the field near the temple.
Do not forget to take your medicine after dinner tonight."""

MALAYALAM = """ഇന്ന് രാവിലെ നല്ല വെയിലുണ്ടായിരുന്നു, ഉച്ചയ്ക്ക് ശേഷം മഴ പെയ്യാൻ സാധ്യതയുണ്ട്.
എന്റെ അമ്മ നല്ല മീൻ കറി ഉണ്ടാക്കും.
നാളെ രാവിലെ ഒൻപത് മണിക്ക് ബസ് പുറപ്പെടും.
കുട്ടികൾ അമ്പലത്തിനടുത്തുള്ള മൈതാനത്ത് പന്ത് കളിക്കുന്നു.
ദയവായി വീട്ടിൽ നിന്ന് ഇറങ്ങുന്നതിന് മുമ്പ് ലൈറ്റ് ഓഫ് ചെയ്യുക.
ഈ വർഷം ഞങ്ങൾ വീടിന് പിന്നിൽ വാഴയും പച്ചക്കറികളും നട്ടു.
അടുത്തുള്ള ആശുപത്രി എവിടെയാണെന്ന് പറയാമോ?
അത്താഴത്തിന് ശേഷം മരുന്ന് കഴിക്കാൻ മറക്കരുത്.
കേരളത്തിൽ ഓണം വലിയ ആഘോഷമാണ്, എല്ലാവരും പൂക്കളം ഇടും.
സമയം എത്രയായി എന്ന് പറയാമോ?
പാട്ട് കുറച്ച് ഉറക്കെ വെക്കൂ.
നാളെ എന്റെ സുഹൃത്തിന്റെ കല്യാണമാണ്, ഞാൻ തൃശ്ശൂരിലേക്ക് പോകുന്നു."""


def at_level(x: np.ndarray, peak_db: float) -> np.ndarray:
    scale = 32767 * 10 ** (peak_db / 20) / max(1, int(np.max(np.abs(x))))
    return np.clip(np.round(x.astype(np.float64) * scale), -32768, 32767).astype("<i2")


def noise(samples: int, rng: np.random.Generator, db: float = -70.0) -> np.ndarray:
    return (rng.standard_normal(samples) * 32767 * 10 ** (db / 20)).astype("<i2")


def run(detector: WakeDetector, audio: np.ndarray) -> tuple[list[float], float]:
    """Detection times (s) over the stream, and the process seconds `feed` took."""
    found = []
    spent = 0.0
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        frame = audio[i:i + FRAME].tobytes()
        t0 = time.process_time()
        score = detector.feed(frame)
        spent += time.process_time() - t0
        if score is not None:
            found.append((i + FRAME) / RATE)
    return found, spent


Clips = list[tuple[str, np.ndarray]]
Windows = list[tuple[float, float]]


def word_clips(word: str) -> Clips:
    """The word, named, at every voice x speed x level (PCM16, no silence around it)."""
    clips = []
    for voice in WORD_VOICES:
        for speed in WORD_SPEEDS:
            spoken = say(PHRASES[word], voice, speed)
            clips += [(f"{voice} {speed} {level:g} dBFS", at_level(spoken, level))
                      for level in LEVELS_DB]
    return clips


def detect(word: str, sensitivities: list[float],
           audio: np.ndarray) -> dict[float, tuple[list[float], float]]:
    """`run` with a fresh detector per sensitivity."""
    results = {}
    for sensitivity in sensitivities:
        detector = WakeDetector(word, sensitivity)
        try:
            results[sensitivity] = run(detector, audio)
        finally:
            detector.close()
    return results


def heard(found: list[float], windows: Windows,
          names: list[str]) -> tuple[list[str], list[float]]:
    """The clips missed, and for those heard the lag from the word's end to the detection."""
    missed, lags = [], []
    for name, (start, stop) in zip(names, windows, strict=True):
        hits = [f for f in found if start <= f <= stop]
        if hits:
            lags.append(hits[0] - (stop - 1.0))
        else:
            missed.append(name)
    return missed, lags


def quiet_stream(clips: Clips) -> tuple[np.ndarray, Windows]:
    """The clips one after another in faint noise, and where each may be heard (s)."""
    rng = np.random.default_rng(1)
    parts, windows = [], []
    t = 0
    for _, clip in clips:
        before, after = noise(RATE, rng), noise(2 * RATE, rng)
        start = t + len(before)
        windows.append((start / RATE, (start + len(clip)) / RATE + 1.0))
        parts += [before, clip + noise(len(clip), rng), after]
        t += len(before) + len(clip) + len(after)
    return np.concatenate(parts), windows


# --- over playback --------------------------------------------------------------


def settled_scene(clips: Clips, replies: np.ndarray) -> tuple[np.ndarray, np.ndarray, Windows]:
    """The speaker's reference and the user (float, 24 kHz) for one canceller's life:
    1 s of silence, a first reply of `SETTLE_S` and then `PER_REPLY` words, then
    replies of `PER_REPLY` words `REST_S` apart."""
    spans, words = [], []
    t = RATE
    for g in range(0, len(clips), PER_REPLY):
        start = t
        t += int(SETTLE_S * RATE) if g == 0 else 0
        for _, clip in clips[g:g + PER_REPLY]:
            words.append((t + int(WORD_AT_S * RATE), clip))
            t += int(WORD_AT_S * RATE) + len(clip) + int(AFTER_S * RATE)
        spans.append((start, t))
        t += int(REST_S * RATE)
    ref, user = np.zeros(t, np.float32), np.zeros(t, np.float32)
    k = 0
    for a, b in spans:
        ref[a:b] = reply_part(replies, k, b - a)
        k += b - a
    for a, clip in words:
        user[a:a + len(clip)] += clip.astype(np.float32) / 32768
    return ref, user, [(a / RATE, (a + len(c)) / RATE + 1.0) for a, c in words]


def early_scenes(clips: Clips, replies: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per clip, a fresh canceller's start: `LEAD_S` of silence, then the first reply
    with the word `EARLY_AT_S` into it, and 1.5 s after the word."""
    scenes = []
    k = 0
    for i, (_, clip) in enumerate(clips):
        lead = int(LEAD_S * RATE)
        a = lead + int(EARLY_AT_S[i % len(EARLY_AT_S)] * RATE)
        n = a + len(clip) + int(1.5 * RATE)
        ref, user = np.zeros(n, np.float32), np.zeros(n, np.float32)
        ref[lead:] = reply_part(replies, k, n - lead)
        k += n - lead
        user[a:a + len(clip)] = clip.astype(np.float32) / 32768
        scenes.append((ref, user))
    return scenes


def reply_part(replies: np.ndarray, start: int, n: int) -> np.ndarray:
    """`n` samples of the replies from `start` (wrapping), as float."""
    idx = (start + np.arange(n)) % len(replies)
    return replies[idx].astype(np.float32) / 32768


def through_room(ref: np.ndarray, user: np.ndarray, h: np.ndarray, echo_rms: float,
                 seed: int) -> np.ndarray:
    """What the mic hears: the reference's echo at `echo_rms`, the user, faint noise."""
    echo = room.scale_to(room.echo_of(ref, h), echo_rms)
    hiss = np.random.default_rng(seed).standard_normal(len(ref)) * 10 ** (NOISE_DB / 20)
    mic: np.ndarray = (echo + user + hiss).astype(np.float32)
    return mic


def cancelled(ref: np.ndarray, mic: np.ndarray, guarded: bool = True) -> np.ndarray:
    """The mic after a fresh canceller, the guard on (as the daemon runs it) or off, as
    the detector gets it (PCM16)."""
    out, _, _ = echo_bench.run({"mic": mic, "ref": ref}, guarded=guarded)
    return room.to_pcm(out)


def playback(word: str, sensitivities: list[float], clips: Clips, replies: np.ndarray,
             echo_db: float, h: np.ndarray, user_rms: float,
             quiet_missed: dict[float, list[str]]) -> None:
    """Print detection over playback (settled, early) and false wakes over the replies
    alone, with the canceller and with the bare mic."""
    names = [name for name, _ in clips]
    echo_rms = user_rms * 10 ** (echo_db / 20)
    t0 = time.monotonic()
    ref, user, windows = settled_scene(clips, replies)
    mic = through_room(ref, user, h, echo_rms, seed=2)
    streams = [("settled", "cancelled", cancelled(ref, mic), windows),
               ("settled", "bare mic", room.to_pcm(mic), windows)]
    outs: dict[str, list[np.ndarray]] = {"cancelled": [], "no guard": [], "bare mic": []}
    windows = []
    t = 0
    for ref, user in early_scenes(clips, replies):
        mic = through_room(ref, user, h, echo_rms, seed=3)
        outs["cancelled"].append(cancelled(ref, mic))
        outs["no guard"].append(cancelled(ref, mic, guarded=False))
        outs["bare mic"].append(room.to_pcm(mic))
        said = np.nonzero(user)[0]
        windows.append(((t + said[0]) / RATE, (t + said[-1] + 1) / RATE + 1.0))
        t += len(mic)
    streams += [("early", how, np.concatenate(parts), windows) for how, parts in outs.items()]
    ref = replies.astype(np.float32) / 32768
    mic = through_room(ref, np.zeros_like(ref), h, echo_rms, seed=4)
    alone = [("cancelled", cancelled(ref, mic)), ("bare mic", room.to_pcm(mic))]
    print(f"echo {echo_db:+g} dB over the user (RMS {20 * np.log10(echo_rms):.1f} dBFS; "
          f"made and cancelled in {time.monotonic() - t0:.0f} s)")
    for sensitivity in sensitivities:
        print(f" sensitivity {sensitivity:g} (heard in quiet: "
              f"{len(names) - len(quiet_missed[sensitivity])}/{len(names)}):")
        for label, how, audio, wins in streams:
            found, _ = detect(word, [sensitivity], audio)[sensitivity]
            missed, lags = heard(found, wins, names)
            n = len(names) - len(missed)
            by_level = ", ".join(
                f"{level:g} dBFS {sum(1 for m in missed if m.endswith(f' {level:g} dBFS'))}"
                for level in LEVELS_DB)
            extra = [m for m in missed if m not in quiet_missed[sensitivity]]
            print(f"  {label:7s} {how:9s} {n:3d}/{len(names)} = {100 * n / len(names):5.1f} %"
                  f"  missed by level: {by_level}; heard in quiet: {len(extra)}"
                  + (f"; lag median {float(np.median(lags)):.2f} s" if lags else ""))
            if label == "settled" and how == "cancelled" and extra:
                print("    missed, heard in quiet: " + "; ".join(extra))
        for how, audio in alone:
            found, _ = detect(word, [sensitivity], audio)[sensitivity]
            print(f"  replies alone, {how}: {len(found)} false wakes in "
                  f"{len(audio) / RATE / 60:.1f} min"
                  + (f" at {', '.join(f'{f:.1f}' for f in found[:10])} s" if found else ""))


def sentences() -> tuple[list[str], list[str]]:
    gpl = Path("/usr/share/common-licenses/GPL-3")
    text = gpl.read_text() if gpl.exists() else ENGLISH
    english = [s.strip() for s in re.split(r"(?<=[.;:?!])\s+", " ".join(text.split()))
               if len(s.split()) >= 3]
    return english, [s for s in MALAYALAM.splitlines() if s.strip()]


def other_speech(minutes: float) -> np.ndarray:
    english, malayalam = sentences()
    gap = np.zeros(int(0.3 * RATE), dtype="<i2")
    parts: list[np.ndarray] = []
    total = 0
    i = 0
    want = minutes * 60 * RATE
    while total < want:
        if i % 2 == 0:   # English a sentence at a time, through the text
            text = english[(i // 2) % len(english)]
            voice = OTHER_VOICES_EN[(i // 2) % len(OTHER_VOICES_EN)]
        else:            # Malayalam, the sentences over and over in other voices and speeds
            text = malayalam[(i // 2) % len(malayalam)]
            voice = OTHER_VOICES_ML[(i // 2 // len(malayalam)) % len(OTHER_VOICES_ML)]
        speed = OTHER_SPEEDS[(i // 3) % len(OTHER_SPEEDS)]
        spoken = say(text, voice, speed)
        parts += [at_level(spoken, -6.0), gap]
        total += len(spoken) + len(gap)
        i += 1
    return np.concatenate(parts)


def machine() -> str:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return f"{platform.machine()}, {os.cpu_count()} CPUs ({model}), load {load}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--word", default="okay_nabu", choices=sorted(PHRASES))
    parser.add_argument("--minutes", type=float, default=30.0, help="other speech (min 30)")
    parser.add_argument("--sensitivity", type=float, nargs="+", default=[0.5])
    parser.add_argument("--mode", choices=("quiet", "playback", "all"), default="quiet")
    parser.add_argument("--echo-db", type=float, nargs="+", default=[6.0, 12.0])
    parser.add_argument("--delay-ms", type=float, default=60.0)
    parser.add_argument("--tail-ms", type=float, default=250.0)
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("bench/wake.py needs espeak-ng (tools/system-packages.sh)", file=sys.stderr)
        return 1
    print(f"machine: {machine()}")
    clips = word_clips(args.word)
    names = [name for name, _ in clips]
    t0 = time.monotonic()
    other = other_speech(args.minutes)
    made = time.monotonic() - t0
    seconds = len(other) / RATE
    audio, windows = quiet_stream(clips)
    quiet = detect(args.word, args.sensitivity, audio)
    quiet_missed = {}
    for sensitivity in args.sensitivity:
        missed, lags = heard(quiet[sensitivity][0], windows, names)
        quiet_missed[sensitivity] = missed
        if args.mode == "playback":
            continue
        n = len(names) - len(missed)
        print(f"sensitivity {sensitivity:g}:")
        print(f"detection in quiet: {n}/{len(names)} = {100 * n / len(names):.1f} % "
              f"({len(WORD_VOICES)} voices x {len(WORD_SPEEDS)} speeds x "
              f"{len(LEVELS_DB)} levels)")
        if lags:
            print(f"  detection after the word's end: min {min(lags):.2f} s, median "
                  f"{float(np.median(lags)):.2f} s, max {max(lags):.2f} s (20 ms frames)")
        if missed:
            print("  missed: " + "; ".join(missed))
    if args.mode in ("quiet", "all"):
        false = detect(args.word, args.sensitivity, other)
        for sensitivity in args.sensitivity:
            found, spent = false[sensitivity]
            print(f"sensitivity {sensitivity:g}: false wakes: {len(found)} in "
                  f"{seconds / 60:.1f} min of other speech (English and Malayalam; made in "
                  f"{made:.0f} s)"
                  + (f" at {', '.join(f'{f:.1f}' for f in found[:10])} s" if found else ""))
            print(f"  CPU: {1000 * spent / seconds:.2f} ms per audio second (feed: resample, "
                  f"features, model)")
    if args.mode in ("playback", "all"):
        middle = [clip for name, clip in clips if name.endswith(f" {USER_DB:g} dBFS")]
        user_rms = float(np.mean([room.rms((c / 32768).astype(np.float32)) for c in middle]))
        h = room.room_response(args.delay_ms, args.tail_ms)
        print(f"over playback: room delay {args.delay_ms:g} ms, tail {args.tail_ms:g} ms; "
              f"the user (words at {USER_DB:g} dBFS peak) RMS "
              f"{20 * np.log10(user_rms):.1f} dBFS; replies: the other speech")
        for echo_db in args.echo_db:
            playback(args.word, args.sensitivity, clips, other, echo_db, h, user_rms,
                     quiet_missed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
