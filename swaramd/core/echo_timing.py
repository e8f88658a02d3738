"""Where the echo sits in time: stream clocks from device times, and the echo's lag.

Two pure pieces of `core.echo`'s alignment, kept apart so each can be read and
tested on its own:

- `StreamClock` maps a stream's sample positions to time from the times its
  blocks were handed over (the devices' own ADC/DAC times).
- `find_lag` finds how far the microphone trails the reference by a
  generalised cross-correlation with the phase transform (GCC-PHAT) on a
  decimated window: every frequency weighs alike, so speech's loud low
  formants do not smear the peak. It answers only when the peak stands
  `ESTIMATE_Z` standard deviations over the mean of the lags searched.
"""

from __future__ import annotations

import numpy as np

from swaramd.core.echo_guard import Samples

CLOCK_LEAK = 250e-6        # s per s: how fast a stream's time base may drift later
DECIMATE = 4               # the correlation runs at a quarter of the rate
ESTIMATE_Z = 5.0           # correlation peak in standard deviations to believe it


class StreamClock:
    """The time of sample 0 of a stream, from the times its blocks were handed over.

    A callback can only be late, never early: the earliest times are the true ones.
    So the estimate follows the minimum, rising slowly (`CLOCK_LEAK`) to follow a
    device clock slower than ours. A reopened device starts a new time base: its
    owner makes a new clock."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.offset: float | None = None

    def update(self, index: int, t: float, n: int) -> None:
        """Block of `n` samples starting at position `index` was handed over at `t`."""
        raw = t - index / self.rate
        if self.offset is None or raw < self.offset:
            self.offset = raw
        else:
            self.offset = min(raw, self.offset + CLOCK_LEAK * n / self.rate)


def find_lag(ref: Samples, heard: Samples, max_lag: int, neg_lag: int) -> int | None:
    """How many samples `heard` trails its echo's source in `ref`, or None.

    `ref` holds `max_lag` samples before the window `heard` covers, the window, and
    `neg_lag` after it; the lag found is between -`neg_lag` and `max_lag`. Both lags
    are multiples of `DECIMATE`."""
    d = DECIMATE
    x = ref[:len(ref) // d * d].astype(np.float32).reshape(-1, d).mean(axis=1)
    y = heard[:len(heard) // d * d].astype(np.float32).reshape(-1, d).mean(axis=1)
    n = 1 << int(len(x) + len(y)).bit_length()
    spec = np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n))
    spec /= np.abs(spec) + 1e-9
    corr = np.fft.irfft(spec, n)
    span = (max_lag + neg_lag) // d
    # y[i] ~ x[i + max_lag - lag]: the peak sits at circular index lag - max_lag,
    # for lag from -neg_lag (index n - span) to max_lag (index 0).
    lags = np.concatenate((corr[n - span:], corr[:1]))
    peak = int(np.argmax(lags))
    spread = float(np.std(lags))
    if spread <= 0 or (lags[peak] - float(np.mean(lags))) / spread < ESTIMATE_Z:
        return None
    return peak * d - neg_lag
