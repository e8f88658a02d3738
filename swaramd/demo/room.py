"""A synthetic room for echo cancellation: speech, a speaker-to-mic response, the mix.

Used by the echo canceller's tests, by bench/echo.py and by the demo's
simulated room. Everything is 24 kHz mono; numbers are float32 in [-1, 1]
until `to_pcm`.

- `speech(text, voice)` speaks with espeak-ng when it is installed, else
  makes a voice-like stand-in (noise shaped by syllable and formant-ish
  envelopes): good enough for an adaptive filter, not for a listener.
- `room_response(delay_ms, tail_ms)` is a direct path after `delay_ms`,
  a few early reflections, and a decaying diffuse tail (-60 dB at `tail_ms`).
- `mix(...)` puts the echo at a level relative to the user's voice.
- `EchoRoom` is the same room streamed period by period, for the WAV
  backend: what the speaker plays comes back into the microphone.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from swaramd.core.protocol import WIRE_RATE

RATE = WIRE_RATE
Signal = NDArray[np.float32]

SENTENCES = (
    "The quick brown fox jumps over the lazy dog while the radio plays softly.",
    "Today the weather is fine and we are going to the market to buy apples.",
    "Please tell me the time in Kochi and switch off the kitchen light now.",
    "A long reply keeps talking about rivers, boats, rain and the green hills.",
)


def speech(text: str, voice: str = "en", speed: int = 160, seed: int = 0) -> Signal:
    """`text` spoken at 24 kHz, peak normalised to 0.5."""
    try:
        return _normalise(espeak(text, voice, speed))
    except OSError:
        return _normalise(_voice_like(len(text) * 0.065, seed))


def espeak(text: str, voice: str = "en", speed: int = 160) -> Signal:
    """`text` as espeak-ng says it, at 24 kHz; OSError when it is missing or fails."""
    tts = shutil.which("espeak-ng")
    if tts is None:
        raise OSError("espeak-ng is not installed (apt install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "say.wav"
        done = subprocess.run([tts, "-v", voice, "-s", str(speed), "-w", str(path), text],
                              capture_output=True, timeout=60, check=False)
        if done.returncode != 0 or not path.exists():
            raise OSError(f"espeak-ng failed: {done.stderr.decode(errors='replace').strip()}")
        return _read_wav(path)


def _read_wav(path: Path) -> Signal:
    with wave.open(str(path), "rb") as w:
        rate, n = w.getframerate(), w.getnframes()
        data = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float32) / 32768
        if w.getnchannels() > 1:
            data = data[::w.getnchannels()]
    if rate != RATE:
        import soxr
        data = soxr.resample(data, rate, RATE).astype(np.float32)
    return data


def _voice_like(seconds: float, seed: int) -> Signal:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = np.cumsum(pitch / RATE)
    buzz = (np.mod(phase, 1.0) - 0.5).astype(np.float32)
    noise = rng.standard_normal(n).astype(np.float32) * 0.3
    src = buzz + noise
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    words = (np.sin(2 * np.pi * 0.5 * t) > -0.6).astype(np.float32)
    spec = np.fft.rfft(src)
    f = np.fft.rfftfreq(n, 1 / RATE)
    shape = (np.exp(-((f - 500) / 300) ** 2) + 0.6 * np.exp(-((f - 1500) / 500) ** 2)
             + 0.3 * np.exp(-((f - 2800) / 700) ** 2))
    voiced = np.fft.irfft(spec * shape, n).astype(np.float32)
    return voiced * syllables.astype(np.float32) * words


def _normalise(x: Signal, peak: float = 0.5) -> Signal:
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


def room_response(delay_ms: float, tail_ms: float = 250.0, seed: int = 1) -> Signal:
    """Speaker-to-mic impulse response: direct path, early reflections, decaying tail."""
    rng = np.random.default_rng(seed)
    d = int(RATE * delay_ms / 1000)
    tail = int(RATE * tail_ms / 1000)
    h = np.zeros(d + tail, dtype=np.float32)
    h[d] = 1.0
    for _ in range(6):
        h[d + int(rng.integers(RATE // 1000, RATE * 20 // 1000))] += float(rng.uniform(-0.5, 0.5))
    k = np.arange(tail)
    decay = np.exp(-6.9 * k / tail)                      # -60 dB at the end of the tail
    h[d:] += (rng.standard_normal(tail) * 0.25 * decay).astype(np.float32)
    return h / float(np.sqrt(np.sum(h * h)))


def echo_of(reference: Signal, response: Signal) -> Signal:
    """The reference as the mic hears it through the room (same length as the reference)."""
    n = len(reference) + len(response) - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(reference, size) * np.fft.rfft(response, size), size)
    return out[:len(reference)].astype(np.float32)


def rms(x: Signal) -> float:
    """Root mean square, over the samples that are not silence."""
    v = x[np.abs(x) > 1e-4]
    return float(np.sqrt(np.mean(v * v))) if len(v) else 0.0


def scale_to(x: Signal, target_rms: float) -> Signal:
    """`x` scaled so its (non-silent) RMS is `target_rms`."""
    r = rms(x)
    return (x * (target_rms / r)).astype(np.float32) if r > 0 else x


def to_pcm(x: Signal) -> NDArray[np.int16]:
    """Float samples to int16, clipped."""
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


class EchoRoom:
    """A room shared by a WAV "speaker" and "microphone", streamed a period at a time.

    `carry(speaker, mic)` adds to `mic` (PCM16, in place, clipped) the echo of
    everything the speaker has played up to and including `speaker`, the
    period that plays while `mic` is captured: `response` scaled by `gain`,
    convolved by FFT, plus a faint noise floor as a real microphone has. It
    keeps the levels it mixed, so a run can say how loud the echo was against
    the voice already in the recording.
    """

    def __init__(self, response: Signal, gain: float, *, noise_rms: float = 3e-4,
                 seed: int = 5) -> None:
        self.response = response.astype(np.float32)
        self.gain = gain
        self._rng = np.random.default_rng(seed)
        self._noise_rms = noise_rms
        self._pending = np.zeros(0, np.float32)    # echo still to reach the mic
        self._spectrum: tuple[int, NDArray[np.complex128]] | None = None
        self._echo = [0.0, 0]                       # sum of squares, samples: while it echoes
        self._voice = [0.0, 0]                      # the same for the recording's own sound

    @property
    def echo_db(self) -> float | None:
        """The echo's level at the mic against the recording's own voice (dB), or None
        before both have been heard."""
        if not self._echo[1] or not self._voice[1] or not self._voice[0]:
            return None
        return 10 * float(np.log10((self._echo[0] / self._echo[1]) /
                                   (self._voice[0] / self._voice[1])))

    def carry(self, speaker: NDArray[np.int16], mic: NDArray[np.int16]) -> None:
        """Mix the echo of `speaker` (and of what played before it) into `mic`."""
        n, taps = len(speaker), len(self.response)
        span = n + taps - 1
        size = 1 << (span - 1).bit_length()
        if self._spectrum is None or self._spectrum[0] != size:
            self._spectrum = (size, np.fft.rfft(self.response * self.gain, size))
        if len(self._pending) < span:
            self._pending = np.concatenate([self._pending,
                                            np.zeros(span - len(self._pending), np.float32)])
        if speaker.any():
            x = speaker.astype(np.float32) / 32768
            self._pending[:span] += np.fft.irfft(np.fft.rfft(x, size) * self._spectrum[1],
                                                 size)[:span].astype(np.float32)
        echo = self._pending[:n].copy()
        self._pending = np.concatenate([self._pending[n:], np.zeros(n, np.float32)])
        voice = mic.astype(np.float32) / 32768
        self._count(self._echo, echo)
        self._count(self._voice, voice)
        heard = voice + echo + self._rng.standard_normal(n).astype(np.float32) * self._noise_rms
        mic[:] = to_pcm(heard)

    @staticmethod
    def _count(total: list[float], x: Signal) -> None:
        energy = float(np.dot(x, x))
        if energy > len(x) * 1e-6:                  # over -60 dBFS: it is sounding
            total[0] += energy
            total[1] += len(x)
