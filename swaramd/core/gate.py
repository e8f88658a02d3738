"""The mic gate: a light voice-activity detector so only the user's voice is streamed.

The service bills by minutes processed and asks clients to send only speech
(the service's docs advise sending only the user's voice). This gate
tracks an adaptive noise floor of frame energy (quick to fall, slow to rise,
so a steady hum becomes "silence") and opens when a frame stands well above
it. On opening it releases ~300 ms of pre-roll so the first syllable is not
clipped; it stays open ~800 ms after the last speech frame (hangover) so
pauses between words do not chop the turn.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

ONSET_DB = 9.0          # above the noise floor
ABSOLUTE_FLOOR_DB = -50.0  # below this a frame is silence however quiet the room is
ONSET_FRAMES = 2        # consecutive loud frames to open (ignores single clicks)
FLOOR_FALL = 0.3        # per 20 ms, towards a quieter frame
FLOOR_RISE = 0.005      # per 20 ms, towards a louder one (~4 s to adapt)


_SILENT = 1e-12 * 32768.0 * 32768.0     # -120 dBFS as a mean square of int16 samples


def frame_dbfs(frame: bytes) -> float:
    """RMS level of a PCM16 frame in dB relative to full scale."""
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    if samples.size == 0:
        return -120.0
    # One dot product: np.mean's Python-level checks cost more than the sum itself.
    mean_square = float(np.dot(samples, samples)) / samples.size
    return 10.0 * math.log10(max(mean_square, _SILENT) / (32768.0 * 32768.0))


class SpeechGate:
    """Fed every captured frame; returns the frames to send (none, one, or the pre-roll)."""

    def __init__(self, frame_ms: int, preroll_ms: int = 300, hangover_ms: int = 800) -> None:
        self._preroll: deque[bytes] = deque(maxlen=max(1, preroll_ms // frame_ms))
        self._hangover_frames = max(1, hangover_ms // frame_ms)
        # The floor follows the room at the same speed in seconds whatever the frame.
        steps = frame_ms / 20
        self._fall = 1 - (1 - FLOOR_FALL) ** steps
        self._rise = 1 - (1 - FLOOR_RISE) ** steps
        self.floor_db = -60.0
        self.open = False
        self._loud_run = 0
        self._quiet_run = 0

    def process(self, frame: bytes) -> list[bytes]:
        """Decide on one frame; the result is what goes to the uplink, in order."""
        level = frame_dbfs(frame)
        loud = level > max(self.floor_db + ONSET_DB, ABSOLUTE_FLOOR_DB)
        self._track_floor(level)
        if self.open:
            self._quiet_run = 0 if loud else self._quiet_run + 1
            if self._quiet_run >= self._hangover_frames:
                self.open = False
                self._loud_run = 0
            return [frame]
        self._loud_run = self._loud_run + 1 if loud else 0
        if self._loud_run >= ONSET_FRAMES:
            self.open, self._quiet_run = True, 0
            out = [*self._preroll, frame]
            self._preroll.clear()
            return out
        self._preroll.append(frame)
        return []

    def reset(self) -> None:
        """Forget the pre-roll and close (a new session starts clean); keeps the noise floor."""
        self._preroll.clear()
        self.open = False
        self._loud_run = self._quiet_run = 0

    def _track_floor(self, level: float) -> None:
        # Always rising, even while open: a fan switched on becomes the floor within
        # seconds instead of holding the gate open (and the bill running) for ever.
        # Speech is not steady; its pauses pull the floor straight back down.
        rate = self._fall if level < self.floor_db else self._rise
        self.floor_db += (level - self.floor_db) * rate
