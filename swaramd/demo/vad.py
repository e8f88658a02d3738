"""The simulated service's turn detection: a plain energy VAD over the audio it receives.

It is the *service's* ear, kept apart from the daemon's own mic gate
(`swaramd.core.gate`) on purpose: the demo must not check the daemon with
the daemon's code. Frames are 20 ms of 24 kHz PCM16. A frame is speech when
its level stands 12 dB above a tracked noise floor (and above -50 dBFS);
three speech frames in a row start an utterance, half a second without
speech ends it. The times are in milliseconds of audio received, as the
service's `audio_start_ms` / `audio_end_ms` are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME = 480                 # samples: 20 ms at 24 kHz
ONSET_DB = 12.0
ABSOLUTE_DB = -50.0
ONSET_FRAMES = 3            # 60 ms of speech starts an utterance
HANGOVER_FRAMES = 25        # 500 ms of quiet ends it


@dataclass(frozen=True, slots=True)
class VadChange:
    """Speech started (`started` True) or stopped, at `audio_ms` into the received audio."""

    started: bool
    audio_ms: int


class EnergyVad:
    """Fed PCM16 samples as they arrive; returns the start and stop of each utterance."""

    def __init__(self) -> None:
        self.floor_db = -60.0
        self.loudest_db = -120.0
        self.in_speech = False
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames = 0
        self._run = 0
        self._run_start = 0

    @property
    def audio_ms(self) -> int:
        """Milliseconds of audio judged so far."""
        return self._frames * FRAME * 1000 // 24_000

    def feed(self, samples: np.ndarray) -> list[VadChange]:
        """Judge the new samples, whole frames at a time; returns the changes, in order."""
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        whole = len(data) // FRAME * FRAME
        self._pending = data[whole:].copy()
        changes = []
        for i in range(0, whole, FRAME):
            change = self._frame(data[i:i + FRAME])
            if change is not None:
                changes.append(change)
        return changes

    def _frame(self, frame: np.ndarray) -> VadChange | None:
        x = frame.astype(np.float32)
        level = 20 * float(np.log10(max(float(np.sqrt(np.mean(x * x))) / 32768, 1e-6)))
        self.loudest_db = max(self.loudest_db, level)
        speech = level > max(self.floor_db + ONSET_DB, ABSOLUTE_DB)
        # The floor falls fast and rises slowly, so a steady hum becomes "quiet".
        self.floor_db += (level - self.floor_db) * (0.3 if level < self.floor_db else 0.005)
        index = self._frames
        self._frames += 1
        if speech != self.in_speech:
            if self._run == 0:
                self._run_start = index
            self._run += 1
        else:
            self._run = 0
        if not self.in_speech and self._run >= ONSET_FRAMES:
            self.in_speech, self._run = True, 0
            return VadChange(True, self._run_start * 20)
        if self.in_speech and self._run >= HANGOVER_FRAMES:
            self.in_speech, self._run = False, 0
            return VadChange(False, self._run_start * 20)
        return None


class AudioMemory:
    """The last `keep` samples received, addressed by sample index since the session began
    (so an utterance the VAD found can be cut out and echoed)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._audio = np.zeros(0, dtype=np.int16)
        self._base = 0                      # the index of _audio[0]

    def add(self, samples: np.ndarray) -> None:
        """Remember newly received samples, forgetting the oldest beyond `keep`."""
        self._audio = np.concatenate([self._audio, samples])
        extra = len(self._audio) - self.keep
        if extra > 0:
            self._audio = self._audio[extra:]
            self._base += extra

    def clear(self) -> None:
        """Forget everything received so far (`input_audio_buffer.clear`)."""
        self._base += len(self._audio)
        self._audio = self._audio[:0]

    def cut(self, start: int, end: int) -> bytes:
        """Samples `start` to `end` as PCM16 bytes (what is still remembered of them)."""
        lo = max(0, start - self._base)
        return self._audio[lo:max(lo, end - self._base)].tobytes()
