"""Short tones the appliance plays on its own (ready, listening, goodbye, error, halted).

Generated once at start with numpy as 24 kHz mono PCM16, with a raised-cosine
envelope so they never click. The uplink is gated while one plays.
"""

from __future__ import annotations

import numpy as np

from swaramd.core.protocol import WIRE_RATE

# name: ((frequency Hz, seconds), ...) — rising for ready/listening, falling for goodbye.
EARCONS: dict[str, tuple[tuple[float, float], ...]] = {
    "ready": ((660.0, 0.08), (880.0, 0.10)),
    "listening": ((880.0, 0.07),),
    "goodbye": ((880.0, 0.08), (587.0, 0.12)),
    "error": ((330.0, 0.15), (262.0, 0.20)),
    "halted": ((262.0, 0.12), (0.0, 0.06), (262.0, 0.12), (0.0, 0.06), (196.0, 0.25)),
}
LEVEL = 0.25  # of full scale: audible, not startling


def render(name: str) -> bytes:
    """The earcon `name` as PCM16 LE mono 24 kHz bytes."""
    parts = []
    for freq, seconds in EARCONS[name]:
        n = int(WIRE_RATE * seconds)
        t = np.arange(n) / WIRE_RATE
        tone = np.sin(2 * np.pi * freq * t) if freq > 0 else np.zeros(n)
        ramp = min(n // 4, int(WIRE_RATE * 0.01))
        env = np.ones(n)
        if ramp:
            edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
            env[:ramp], env[-ramp:] = edge, edge[::-1]
        parts.append(tone * env)
    samples = np.concatenate(parts) * LEVEL * 32767
    return samples.astype("<i2").tobytes()


def durations() -> dict[str, float]:
    """Each earcon's length in seconds (the conversation gates the mic this long)."""
    return {name: sum(s for _, s in steps) for name, steps in EARCONS.items()}
