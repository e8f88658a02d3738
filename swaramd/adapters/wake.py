"""The wake word detector: pymicro-wakeword fed the microphone's frames.

Thin: `core.wake` holds the rules (the words, the sensitivity scale), the
conversation decides what a detection means. Rules this adapter keeps:

- Fed 24 kHz PCM16 frames on the loop thread, never in the audio callback:
  the engine's `next_frame()` frames, every one of them, also those the
  uplink drops (the word must be heard while the microphone is held back).
- The models come inside the engine's wheel; nothing is fetched at run time.
  A missing engine is a config problem at `conversation.wake_word`, with how
  to install it.
- Frames are resampled to the detector's 16 kHz by a streaming soxr
  resampler, so frame edges leave no clicks.
- One utterance is one detection: after a detection the detector re-arms
  once its score has fallen below the cutoff and `core.wake.REARM_S` of audio
  has passed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import soxr

from swaramd.core import wake
from swaramd.core.config import Config
from swaramd.core.errors import ConfigError
from swaramd.core.protocol import WIRE_RATE

log = logging.getLogger(__name__)

DETECTOR_RATE = 16_000   # what the models were trained on
INSTALL_HINT = ("install it with: pip install 'swaramd[wakeword]' (into swaramd's virtualenv), "
                "or run install.sh again")


class WakeDetector:
    """One wake word model, fed frames; `feed` returns the score of a detection, or None."""

    def __init__(self, name: str, sensitivity: float = wake.DEFAULT_SENSITIVITY) -> None:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        self.name = name
        self._model: Any = MicroWakeWord.from_builtin(Model(name))
        self.cutoff = wake.cutoff(sensitivity, float(self._model.probability_cutoff))
        self._features: Any = MicroWakeWordFeatures()
        self._down: Any = soxr.ResampleStream(WIRE_RATE, DETECTOR_RATE, 1, dtype="int16")
        self._heard = 0          # 16 kHz samples fed so far
        self._rearm_at = 0       # no detection before this sample
        self._armed = True

    def feed(self, pcm: bytes) -> float | None:
        """One 24 kHz PCM16 frame; the score (0-1) if the word ended in it."""
        samples = self._down.resample_chunk(np.frombuffer(pcm, dtype="<i2"))
        self._heard += len(samples)
        score: float | None = None
        for features in self._features.process_streaming(samples.tobytes()):
            prob = self._model.process_streaming_prob(features)
            if prob is None:
                continue
            if prob <= self.cutoff:
                self._armed = self._armed or self._heard >= self._rearm_at
            elif self._armed:
                self._armed = False
                self._rearm_at = self._heard + int(wake.REARM_S * DETECTOR_RATE)
                score = max(score or 0.0, float(prob))
        return score

    def close(self) -> None:
        """Free the model's interpreter."""
        self._model.close()


def open_wake(cfg: Config) -> WakeDetector | None:
    """The detector `conversation.wake_word` names (None for none); a problem at that key
    if the engine is not installed or cannot load its model."""
    conv = cfg.conversation
    if conv.wake_word == "none":
        return None
    try:
        return WakeDetector(conv.wake_word, conv.wake_sensitivity)
    except ImportError:
        problem = f"{conv.wake_word} needs the wake word engine pymicro-wakeword, which is " \
                  f"not installed: {INSTALL_HINT}"
    except (OSError, ValueError) as exc:
        problem = f"the wake word engine cannot load {conv.wake_word}: " \
                  f"{' '.join(str(exc).split())[:160]}"
    raise ConfigError([cfg.problem("conversation.wake_word", problem)])


def check_wake(cfg: Config) -> None:
    """For check-config and run: the engine is installed and loads the named model."""
    detector = open_wake(cfg)
    if detector is not None:
        detector.close()
