"""Latencies measured on the speaker's output (the WAV backend's output file).

With the WAV backend, sample `i` of `audio.wav_output` is the `i`-th sample
the speaker played. `SpeakerClock` ties sample indexes to
`time.monotonic()` by reading the engine's public `rendered_samples` while the
demo runs; the simulated service stamps what it sends with the same clock.
The demo's replies never hold digital silence (see `recording.py`), so a reply
starts at the first non-zero sample and is cut at the last one.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from swaramd.demo.recording import RATE

Samples = np.ndarray[Any, np.dtype[np.int16]]


class SpeakerClock:
    """When each sample of the speaker's output was handed to the speaker, in wall time.

    It keeps readings of the engine's public `rendered_samples` (taken every few
    milliseconds while the demo runs) with their `time.monotonic()`. Readings,
    not the nominal `index / 24000`, because a busy machine makes the WAV
    thread render late and then catch up: the readings show what really
    happened, to within one reading interval.
    """

    def __init__(self, period: int = 480) -> None:
        self.period = period                # samples the WAV backend hands over at once
        self._times: list[float] = []
        self._counts: list[int] = []

    def observe(self, now: float, rendered: int) -> None:
        """One reading of `engine.rendered_samples` taken at `now`."""
        if not self._counts or rendered > self._counts[-1]:
            self._times.append(now)
            self._counts.append(rendered)

    @property
    def ready(self) -> bool:
        """Whether any sample was seen rendered."""
        return bool(self._counts)

    def rendered_by(self, t: float) -> int:
        """How many samples had surely been handed to the speaker at `time.monotonic()` `t`."""
        i = bisect.bisect_right(self._times, t)
        return self._counts[i - 1] if i else 0

    def handed_at(self, index: int) -> float | None:
        """When sample `index` had been handed to the speaker (None: it never was)."""
        i = bisect.bisect_right(self._counts, index)
        return self._times[i] if i < len(self._times) else None

    def sounds_at(self, index: int) -> float | None:
        """When sample `index` sounds: its period is handed over, then played in real time
        (as on a sound card with no latency of its own)."""
        handed = self.handed_at(index)
        return None if handed is None else handed + (index % self.period) / RATE

    async def follow(self, rendered: Callable[[], int | None], interval_s: float = 0.002
                     ) -> None:
        """Read `rendered()` every few milliseconds until cancelled."""
        while True:
            value = rendered()
            if value is not None:
                self.observe(time.monotonic(), value)
            await asyncio.sleep(interval_s)


@dataclass(frozen=True, slots=True)
class ReplyHeard:
    """Where one reply sounded in the output: first and one-past-last non-zero sample."""

    start: int
    end: int

    @property
    def seconds(self) -> float:
        """How long the reply was heard."""
        return (self.end - self.start) / RATE


def reply_after(out: Samples, begin: int, limit: int) -> ReplyHeard | None:
    """The sound that starts at or after `begin` and before `limit`, up to its last sample
    before `limit`; None when the speaker stayed silent."""
    window = out[begin:limit]
    loud = np.flatnonzero(window)
    if not len(loud):
        return None
    return ReplyHeard(begin + int(loud[0]), begin + int(loud[-1]) + 1)
