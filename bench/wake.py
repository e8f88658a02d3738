"""The wake word detector on speech espeak-ng makes here: detections, false wakes, CPU (not a test).

    .venv/bin/python bench/wake.py [--word okay_nabu] [--minutes 30] [--sensitivity 0.5]

Everything goes through `swaramd.adapters.wake.WakeDetector` as the daemon runs it:
24 kHz PCM16 in 20 ms frames, one detector for the whole stream.

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

Over-playback detection (the word spoken while a reply plays) is not measured: it
needs the audio engine's echo cancellation, and a bare microphone hears the reply.
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

from swaramd.adapters.wake import WakeDetector
from tests.support.speech import say

RATE = 24_000
FRAME = RATE * 20 // 1000

PHRASES = {"okay_nabu": "okay nabu", "alexa": "alexa", "hey_jarvis": "hey jarvis",
           "hey_mycroft": "hey mycroft"}
WORD_VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us+f3",
               "en-us+m3", "en-gb+f2", "en-us+f2", "en-gb-x-gbclan")
WORD_SPEEDS = (120, 140, 160, 180)
LEVELS_DB = (-1.0, -12.0, -24.0)

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


def detection_rate(word: str, sensitivity: float) -> tuple[int, int, list[str], list[float]]:
    rng = np.random.default_rng(1)
    parts, windows, names = [], [], []
    t = 0
    for voice in WORD_VOICES:
        for speed in WORD_SPEEDS:
            spoken = say(PHRASES[word], voice, speed)
            for level in LEVELS_DB:
                clip = at_level(spoken, level)
                before, after = noise(RATE, rng), noise(2 * RATE, rng)
                start = t + len(before)
                windows.append((start / RATE, (start + len(clip)) / RATE + 1.0))
                names.append(f"{voice} {speed} {level:g} dBFS")
                parts += [before, clip + noise(len(clip), rng), after]
                t += len(before) + len(clip) + len(after)
    detector = WakeDetector(word, sensitivity)
    try:
        found, _ = run(detector, np.concatenate(parts))
    finally:
        detector.close()
    missed, lags = [], []
    for name, (start, stop) in zip(names, windows, strict=True):
        hits = [f for f in found if start <= f <= stop]
        if hits:
            lags.append(hits[0] - (stop - 1.0))   # from the word's end to its detection
        else:
            missed.append(name)
    return len(names) - len(missed), len(names), missed, lags


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
    parser.add_argument("--sensitivity", type=float, default=0.5)
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("bench/wake.py needs espeak-ng (tools/system-packages.sh)", file=sys.stderr)
        return 1
    print(f"machine: {machine()}")
    heard, total, missed, lags = detection_rate(args.word, args.sensitivity)
    print(f"detection in quiet: {heard}/{total} = {100 * heard / total:.1f} % "
          f"({len(WORD_VOICES)} voices x {len(WORD_SPEEDS)} speeds x {len(LEVELS_DB)} levels)")
    if lags:
        print(f"  detection after the word's end: min {min(lags):.2f} s, median "
              f"{float(np.median(lags)):.2f} s, max {max(lags):.2f} s (20 ms frames)")
    if missed:
        print("  missed: " + "; ".join(missed))
    t0 = time.monotonic()
    other = other_speech(args.minutes)
    made = time.monotonic() - t0
    seconds = len(other) / RATE
    detector = WakeDetector(args.word, args.sensitivity)
    try:
        found, spent = run(detector, other)
    finally:
        detector.close()
    print(f"false wakes: {len(found)} in {seconds / 60:.1f} min of other speech "
          f"(English and Malayalam; made in {made:.0f} s)"
          + (f" at {', '.join(f'{f:.1f}' for f in found[:10])} s" if found else ""))
    print(f"CPU: {1000 * spent / seconds:.2f} ms per audio second (feed: resample, features, "
          f"model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
