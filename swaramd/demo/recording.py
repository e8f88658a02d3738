"""Speech-like test signals and the demo's input recording, generated with numpy.

Nothing here is real speech and nothing binary is committed: the signals are
made at run time, deterministically (a fixed seed), as 24 kHz mono PCM16.

`speechlike()` imitates the rhythm and spectrum of a voice well enough for an
energy VAD and a listener's ear: syllables of 120-280 ms under a smooth
envelope, short gaps between them, a pitch that wanders and falls over the
phrase, harmonics shaped by vowel formants that change per syllable, and a
puff of noise where a consonant would be. A faint hum between syllables
keeps a reply continuous (no digital silence inside it), so the speaker's
output is exactly zero only when nothing is playing: that is how the demo
measures latencies on the speaker's own sample clock.

`demo_recording()` lays out the user's side of the demo conversation: three
utterances separated by pauses, timed so that the third one falls while the
second reply is still playing (the barge-in). `wake_recording()` puts the
wake word in front of them, spoken by espeak-ng (a wake-word model does not
answer to a speech-like signal): the one part made by a speech synthesiser.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from swaramd.core.protocol import WIRE_RATE

RATE = WIRE_RATE

# Formants (F1, F2, F3) of five vowels, roughly a, e, i, o, u.
_VOWELS = ((730.0, 1090.0, 2440.0), (530.0, 1840.0, 2480.0), (270.0, 2290.0, 3010.0),
           (570.0, 840.0, 2410.0), (300.0, 870.0, 2240.0))
_FORMANT_WIDTH_HZ = (90.0, 110.0, 170.0)
_FORMANT_GAIN = (1.0, 0.6, 0.25)


Samples = np.ndarray[Any, np.dtype[np.int16]]


def speechlike(seconds: float, *, f0: float = 200.0, seed: int = 0, level: float = 0.5,
               hum: float = 0.0) -> Samples:
    """A voice-like phrase of `seconds`, peaking near `level` of full scale.

    `f0` is the speaker's mean pitch (about 120 Hz for a low voice, 210 Hz for
    a high one); `hum` is the level, relative to `level`, of a faint tone kept
    between syllables (0: true silence there).
    """
    rng = np.random.default_rng(seed)
    n = int(RATE * seconds)
    t = np.arange(n) / RATE
    envelope, formants, onsets = _syllables(n, rng)
    # Pitch: a slow wander, a fall over the phrase (declination), a little jitter per syllable.
    pitch = f0 * (1.0 + 0.08 * np.sin(2 * np.pi * 0.9 * t + rng.uniform(0, 2 * np.pi)))
    pitch *= np.linspace(1.08, 0.9, n) if n else pitch
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voiced = np.zeros(n)
    for k in range(1, int(3800 // f0) + 1):
        freq = k * pitch
        gain = np.zeros(n)
        for i in range(3):
            gain += _FORMANT_GAIN[i] * np.exp(-0.5 * ((freq - formants[:, i])
                                                      / _FORMANT_WIDTH_HZ[i]) ** 2)
        voiced += (gain + 0.02) / k ** 0.5 * np.sin(k * phase)
    signal = voiced * envelope
    signal += _consonants(n, onsets, rng)
    peak = float(np.max(np.abs(signal))) or 1.0
    signal *= level / peak
    if hum > 0.0:
        floor = hum * level * np.sin(2 * np.pi * f0 * t)
        quiet = np.clip(1.0 - envelope * 4.0, 0.0, 1.0)
        signal += floor * quiet
    out: Samples = (np.clip(signal, -1.0, 1.0) * 32767).astype("<i2")
    return out


def _syllables(n: int, rng: np.random.Generator
               ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], list[int]]:
    """Per-sample amplitude envelope and formants, and where each syllable starts."""
    envelope = np.zeros(n)
    formants = np.tile(np.array(_VOWELS[0]), (n, 1))
    onsets: list[int] = []
    pos, count = int(RATE * 0.02), 0
    while pos < n - int(RATE * 0.08):
        length = min(int(RATE * rng.uniform(0.12, 0.28)), n - pos)
        window = np.sin(np.linspace(0, np.pi, length)) ** 0.7
        envelope[pos:pos + length] = window * rng.uniform(0.65, 1.0)
        formants[pos:pos + length] = _VOWELS[int(rng.integers(len(_VOWELS)))]
        onsets.append(pos)
        count += 1
        gap = rng.uniform(0.15, 0.25) if count % 4 == 0 else rng.uniform(0.03, 0.09)
        pos += length + int(RATE * gap)
    return envelope, formants, onsets


def _consonants(n: int, onsets: list[int], rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """Short noise bursts (a crude fricative or plosive) at about half the syllable onsets."""
    out = np.zeros(n)
    for pos in onsets:
        if rng.random() < 0.5:
            length = min(int(RATE * rng.uniform(0.02, 0.045)), n - pos)
            noise = rng.standard_normal(length)
            noise = np.diff(noise, prepend=0.0)  # tilt towards high frequencies, like /s/
            out[pos:pos + length] += 0.12 * noise * np.hanning(length)
    return out


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of the user's speech in the demo recording."""

    start_s: float
    end_s: float
    transcript: str      # what the simulated service "recognises" (it hears only energy)
    meaning: str         # the English gloss the timeline prints


# The user's side of the demo. The timing leaves room for each reply: reply 1
# (after the get_time call) ends near 6 s; the third utterance starts about
# 19.5 s into reply 2 (29.3 s long), so it barges in. By then the speaker has
# played about 22 s: the echo canceller converges in the first reply, and
# holds the mic until it has played 18 s (a young filter's residual bursts
# would pass for the user).
UTTERANCES = (
    Utterance(1.0, 2.5, "ഇപ്പോൾ സമയം എത്രയായി?", "what time is it now?"),
    Utterance(7.0, 8.5, "ഒരു കഥ പറയാമോ?", "can you tell me a story?"),
    Utterance(28.5, 29.5, "മതി, നന്ദി!", "that's enough, thanks!"),
)
RECORDING_S = 30.5
USER_F0 = 125.0
USER_LEVEL = 0.2        # the user's peak, of full scale: about -26 dBFS RMS


def demo_recording(utterances: tuple[Utterance, ...] = UTTERANCES,
                   seconds: float = RECORDING_S) -> Samples:
    """The microphone's side of the demo: speech-like bursts at the utterances' times."""
    out = np.zeros(int(RATE * seconds), dtype="<i2")
    for i, u in enumerate(utterances):
        burst = speechlike(u.end_s - u.start_s, f0=USER_F0, seed=100 + i, level=USER_LEVEL)
        start = int(RATE * u.start_s)
        out[start:start + len(burst)] = burst[: len(out) - start]
    return out


WAKE_WORD = "okay_nabu"     # conversation.wake_word for `swaramd demo --wake-word`
WAKE_PHRASE = "okay nabu"   # what espeak-ng says for it
WAKE_AT_S = 1.0             # when the word starts in the recording
WAKE_SHIFT_S = 2.0          # the utterances come this much later than without the word


def spoken(text: str, voice: str = "en-us", speed: int = 150) -> Samples:
    """`text` as espeak-ng says it: 24 kHz, trimmed, peaking at `USER_LEVEL`.
    Raises OSError when espeak-ng is not installed or fails."""
    from swaramd.demo.room import espeak
    audio = espeak(text, voice, speed)
    loud = np.nonzero(np.abs(audio) > 0.01)[0]
    if not len(loud):
        raise OSError("espeak-ng produced silence")
    audio = audio[loud[0]:loud[-1] + 1]
    out: Samples = (audio * (USER_LEVEL / float(np.max(np.abs(audio)))) * 32767).astype("<i2")
    return out


def wake_recording() -> tuple[Samples, tuple[Utterance, ...]]:
    """The wake word at `WAKE_AT_S`, then the demo's utterances `WAKE_SHIFT_S` later."""
    utterances = tuple(replace(u, start_s=u.start_s + WAKE_SHIFT_S, end_s=u.end_s + WAKE_SHIFT_S)
                       for u in UTTERANCES)
    out = demo_recording(utterances, RECORDING_S + WAKE_SHIFT_S)
    word = spoken(WAKE_PHRASE)
    start = int(RATE * WAKE_AT_S)
    out[start:start + len(word)] = word
    return out, utterances


def write_wav(path: Path, samples: Samples) -> Path:
    """Write 24 kHz mono PCM16 samples as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return path


def read_wav(path: Path) -> Samples:
    """The samples of a 24 kHz mono PCM16 WAV file."""
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
