"""The wake word's rules: which words exist, how sensitive, how much audio before it is kept.

Pure: the adapter (`adapters.wake`) runs the detector; the conversation
decides what a detection means (`Conversation.on_wake`). Rules kept here:

- The words are the models shipped inside the engine's wheel; nothing is
  downloaded at run time.
- `conversation.wake_sensitivity` is a 0.0-1.0 scale: 0.5 is the model's own
  tuned cutoff, 0.0 the strictest (probability 0.99), 1.0 the most eager
  (0.5). Between those points the cutoff moves in a straight line.
- The detector fires 0.09-0.35 s after the word ends (bench/wake.py with
  espeak-ng voices, docs/performance.md), so the last `PREROLL_S` of audio before the
  detection is what the user said after the word, not the word: that much is
  sent ahead of the first live frame so the first syllable is not cut.
"""

from __future__ import annotations

WAKE_WORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
"""The models bundled with pymicro-wakeword."""

DEFAULT_SENSITIVITY = 0.5   # the model's own cutoff
STRICTEST_CUTOFF = 0.99     # sensitivity 0.0
EAGEREST_CUTOFF = 0.5       # sensitivity 1.0
PREROLL_S = 0.08            # audio up to the detection that is sent (shorter than its lag)
REARM_S = 1.0               # one utterance of the word is one detection


def cutoff(sensitivity: float, model_cutoff: float) -> float:
    """The probability a detection must exceed, for `sensitivity` on the 0.0-1.0 scale."""
    s = min(1.0, max(0.0, sensitivity))
    if s <= DEFAULT_SENSITIVITY:
        return STRICTEST_CUTOFF + (model_cutoff - STRICTEST_CUTOFF) * s / DEFAULT_SENSITIVITY
    return model_cutoff + (EAGEREST_CUTOFF - model_cutoff) * (s - DEFAULT_SENSITIVITY) \
        / (1.0 - DEFAULT_SENSITIVITY)


def preroll_frames(frame_ms: int) -> int:
    """How many frames before the one that carried the detection are sent with it."""
    return max(0, round(PREROLL_S * 1000 / frame_ms) - 1)
