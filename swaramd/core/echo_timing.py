"""Where the echo sits in time: stream clocks from device times, and the echo's lag.

Two pure pieces of `core.echo`'s alignment, kept apart so each can be read and
tested on its own:

- `StreamClock` maps a stream's sample positions to time from the times its
  blocks were handed over (the devices' own ADC/DAC times).
- `find_lag` finds how far the microphone trails the reference by a
  generalised cross-correlation with the phase transform (GCC-PHAT) at the
  full rate, over the band up to `ESTIMATE_TOP_HZ`: every frequency in it
  weighs alike, so speech's loud low formants do not smear the peak. It
  answers only when the peak stands `ESTIMATE_Z` standard deviations over
  the mean of the lags searched.
- `DriftTracker` follows the drift between two devices' clocks (parts per
  million: the echo comes a little later, or earlier, every second) from
  how the filter's impulse response moves, a fraction of a sample at a
  time (`response_shift`): a response that keeps moving the same way is
  drift. A drift the filter cannot follow at all shows in the delay
  estimates instead (`observe_lag`): coarse, and taken only when they move
  steadily. A linear canceller follows a path that moves by even half a
  sample poorly, so the reference is read where the drift has taken it.
- `FractionalReader` reads the reference at a fractional position
  (a windowed sinc, `FRACTION_STEPS` fractions): the drift's sub-sample
  part.
"""

from __future__ import annotations

import bisect

import numpy as np

from swaramd.core.echo_guard import Samples
from swaramd.core.protocol import WIRE_RATE

CLOCK_LEAK = 250e-6        # s per s: how fast a stream's time base may drift later
DRIFT_WINDOW_S = 5.0       # readings of the response over this long make one drift update
DRIFT_MIN_POINTS = 4       # ... from at least this many readings
DRIFT_JUMP = 2.0           # a response that moved more than this (samples) learnt anew
DRIFT_SEARCH = 4           # shifts searched between two readings, samples either way
DRIFT_ALIKE = 0.5          # two readings less alike than this: the filter learnt anew
DRIFT_TAPS_S = 0.1         # the taps compared: the direct path and early reflections
DRIFT_MAX = 500e-6         # drift beyond this (a ratio) is not believed
DRIFT_LAG_WINDOW_S = 30.0  # delay estimates over this long give a coarse drift ...
DRIFT_LAG_POINTS = 6       # ... from at least this many
DRIFT_COARSE = 20e-6       # ... taken when this far from the fine one
DRIFT_LAG_SPREAD = 16      # ... from lags this close (samples) to their trend
STEADY_SLACK = 4           # ... moving steadily: quarter steps this alike (samples)
SINC_HALF = 16             # the fractional reader's taps on each side
FRACTION_STEPS = 256       # fractions of a sample it can read at
KAISER_BETA = 8.0          # its window
ESTIMATE_Z = 5.0           # correlation peak in standard deviations to believe it
ESTIMATE_TOP_HZ = 5000.0   # the band the correlation weighs (see find_lag)


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


def find_lag(ref: Samples, heard: Samples, max_lag: int, neg_lag: int,
             rate: int = WIRE_RATE) -> float | None:
    """How many samples `heard` trails its echo's source in `ref`, or None.

    `ref` holds `max_lag` samples before the window `heard` covers, the window, and
    `neg_lag` after it; the lag found is between -`neg_lag` and `max_lag`, to a
    fraction of a sample (a parabola through the peak and its two neighbours).

    A room's early reflections, a fraction of a millisecond after the direct path,
    make it a comb: at a coarser resolution (a decimated correlation) the direct
    path's peak smears into theirs, and a later reflection's wins. At the full rate
    it stands alone. The band above `ESTIMATE_TOP_HZ` is left out: there a little
    speaker plays little, and a speech synthesiser's stored consonants match
    across utterances that have nothing else in common."""
    x, y = ref.astype(np.float32), heard.astype(np.float32)
    n = 1 << (len(x) - 1).bit_length()      # the lags searched do not wrap around
    spec = np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n))
    spec /= np.abs(spec) + 1e-9
    spec[int(n * ESTIMATE_TOP_HZ / rate):] = 0
    corr = np.fft.irfft(spec, n)
    span = max_lag + neg_lag
    # y[i] ~ x[i + max_lag - lag]: the peak sits at circular index lag - max_lag,
    # for lag from -neg_lag (index n - span) to max_lag (index 0).
    lags = np.concatenate((corr[n - span:], corr[:1]))
    peak = int(np.argmax(lags))
    spread = float(np.std(lags))
    if spread <= 0 or (lags[peak] - float(np.mean(lags))) / spread < ESTIMATE_Z:
        return None
    if 0 < peak < len(lags) - 1:                # the peak between samples: a parabola
        a, b, c = (float(v) for v in lags[peak - 1:peak + 2])
        bend = a - 2 * b + c
        if bend < 0:
            return peak - neg_lag + 0.5 * (a - c) / bend
    return float(peak - neg_lag)


def energy_centre(x: Samples, block: int = 480) -> float:
    """Where in `x` its energy sits: the energy-weighted mean of its blocks' middles
    (the middle of `x` when it is silent)."""
    n = len(x) // block
    if n == 0:
        return len(x) / 2
    e = np.square(x[:n * block].astype(np.float32)).reshape(n, block).sum(axis=1)
    total = float(e.sum())
    if total <= 0:
        return len(x) / 2
    return float(np.dot(e, np.arange(n) + 0.5)) * block / total


def response_shift(before: np.ndarray, after: np.ndarray, most: int) -> float | None:
    """How many samples (to a fraction) the impulse response `after` sits later than
    `before` (float arrays of one length), up to `most` either way; None when they are
    too unlike (correlation under `DRIFT_ALIKE` at the best whole shift): the filter
    learnt something else meanwhile. The whole shift is their cross-correlation's
    peak; the fraction, the slope of their cross-spectrum's phase over the lower
    third of the band (a weighted line through it)."""
    n = len(before)
    core = before[most:n - most]
    corr = np.array([float(np.dot(core, after[most + lag:n - most + lag]))
                     for lag in range(-most, most + 1)])
    peak = int(np.argmax(corr))
    power = float(np.dot(core, core)) * float(np.dot(after, after))
    if power <= 0 or corr[peak] < DRIFT_ALIKE * power ** 0.5 or peak in (0, 2 * most):
        return None
    whole = peak - most
    cross = np.conj(np.fft.rfft(core)) * np.fft.rfft(after[most + whole:n - most + whole])
    k = np.arange(len(cross) // 3, dtype=np.float64)
    cross = cross[:len(k)]
    w = np.abs(cross)
    bend = float(np.sum(w * k * k))
    if bend <= 0:
        return float(whole)
    return whole - len(core) / (2 * np.pi) * float(np.sum(w * k * np.angle(cross))) / bend


class DriftTracker:
    """The drift between the mic's and the speaker's clocks, from how the filter's impulse
    response moves over time.

    `ratio` is the reference samples the echo moves later per mic sample. The caller
    reads the reference that much earlier as time goes on, so the response stops
    moving once `ratio` is right; what it still moves over `DRIFT_WINDOW_S` (a line
    through its summed shifts) is added to it. Each reading is compared with the last
    (`response_shift`, the first `DRIFT_TAPS_S` of taps: the direct path and the early
    reflections, which move together); a response that changed shape or jumped starts
    the window again."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.ratio = 0.0
        self.updates = 0
        self._taps = int(rate * DRIFT_TAPS_S)
        self._last: np.ndarray | None = None
        self._moved = 0.0                # summed shifts of the response
        self._points: list[tuple[int, float]] = []
        self._lags: list[tuple[float, float]] = []

    def observe(self, k: int, response: np.ndarray) -> bool:
        """The filter's impulse response when the mic reached sample `k`; True when that
        updated `ratio`."""
        now = response[:self._taps].astype(np.float32)
        last, self._last = self._last, now
        if last is None or len(last) != len(now):
            return False
        shift = response_shift(last, now, DRIFT_SEARCH)
        points = self._points
        if shift is None or abs(shift) > DRIFT_JUMP:
            points.clear()
            return False
        self._moved += shift
        points.append((k, self._moved))
        if k - points[0][0] < self.rate * DRIFT_WINDOW_S or len(points) < DRIFT_MIN_POINTS:
            return False
        ks = np.array([p[0] for p in points], dtype=np.float64)
        moved = np.array([p[1] for p in points], dtype=np.float64)
        slope = float(np.polyfit(ks - ks[0], moved, 1)[0])
        points.clear()
        ratio = self.ratio + slope
        if abs(ratio) > DRIFT_MAX:
            return False
        self.ratio = ratio
        self.updates += 1
        return True

    def observe_lag(self, k: float, lag: float) -> bool:
        """A delay estimate (`find_lag`, against the device times, so unmoved by the
        reading) `lag`, standing for mic sample `k` (the middle of the echo it heard).
        Coarser than the filter's response, but it sees a drift the filter cannot
        follow: when the lags of the last `DRIFT_LAG_WINDOW_S`
        trend away from `ratio` by more than `DRIFT_COARSE`, steadily (`_steady`),
        `ratio` takes their trend (the median of their pairwise slopes); True when it
        did."""
        lags = self._lags
        bisect.insort(lags, (k, lag))           # an estimate stands for its echo's middle
        while lags[-1][0] - lags[0][0] > self.rate * DRIFT_LAG_WINDOW_S:
            del lags[0]
        # Speech has echoes of its own, and a reflection can outweigh the direct path:
        # lags far from the trend of all are another peak, not the drift.
        trend = _trend(lags, self.rate * DRIFT_LAG_WINDOW_S / 4)
        if trend is None:
            return False
        at = float(np.median([p[1] - trend * p[0] for p in lags]))
        near = [p for p in lags if abs(p[1] - trend * p[0] - at) <= DRIFT_LAG_SPREAD]
        if len(near) < DRIFT_LAG_POINTS or \
                near[-1][0] - near[0][0] < self.rate * DRIFT_LAG_WINDOW_S * 0.75:
            return False
        trend = _trend(near, self.rate * DRIFT_LAG_WINDOW_S / 4)
        if trend is None or abs(trend - self.ratio) <= DRIFT_COARSE or \
                abs(trend) > DRIFT_MAX or not _steady(near):
            return False
        self.ratio = trend
        self.updates += 1
        self.forget_response()
        lags.clear()
        return True

    def restart(self) -> None:
        """The reference moved under the filter (a new alignment), or the devices were
        reopened (a new time base for the delay estimates): start again."""
        self.forget_response()
        self._lags.clear()

    def forget_response(self) -> None:
        """Start the response readings again: the filter starts again from zero (its
        response moves while it learns), or the reading changed speed (a coarse update).
        The delay estimates, against the device times, stand."""
        self._points.clear()
        self._last = None


def _steady(points: list[tuple[float, float]]) -> bool:
    """Whether lags move steadily (drift), not in a step (another peak won, the echo
    moved): the medians of four quarters of them move the same way from each quarter
    to the next, by about as much each time (none more than twice the mean, plus
    `STEADY_SLACK`)."""
    quarter = len(points) / 4
    medians = [float(np.median([lag for _, lag in points[round(i * quarter):
                                                         round((i + 1) * quarter)]]))
               for i in range(4)]
    steps = np.diff(medians)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        return False
    size = np.abs(steps)
    return bool(size.max() <= 2 * size.mean() + STEADY_SLACK)


def _trend(points: list[tuple[float, float]], apart: float) -> float | None:
    """The median slope over pairs of `points` at least `apart` from each other (a line
    that a few wild points do not move), or None with fewer than `DRIFT_LAG_POINTS`."""
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for i, a in enumerate(points)
              for b in points[i + 1:] if b[0] - a[0] >= apart]
    return float(np.median(slopes)) if len(slopes) >= DRIFT_LAG_POINTS else None


class FractionalReader:
    """Reads a frame of a signal `fraction` of a sample before an integer position: a
    windowed sinc of 2 x `SINC_HALF` taps, at `FRACTION_STEPS` fractions."""

    def __init__(self, frame: int) -> None:
        self.frame = frame
        m = np.arange(-SINC_HALF + 1, SINC_HALF + 1, dtype=np.float64)
        x = m[None, :] - np.arange(FRACTION_STEPS)[:, None] / FRACTION_STEPS
        window = np.i0(KAISER_BETA * np.sqrt(np.clip(1 - (x / SINC_HALF) ** 2, 0, 1)))
        self._table = (np.sinc(x) * window / np.i0(KAISER_BETA)).astype(np.float32)
        self.span = frame + 2 * SINC_HALF - 1       # input samples one frame needs
        self.before = SINC_HALF                      # ... of which before the position
        self._buf = np.zeros(self.span, dtype=np.float32)

    def read(self, source: np.ndarray, fraction: float, out: np.ndarray) -> None:
        """`out` (int16, `frame` long) = `source` (int16, `span` long, from `before`
        samples before the position) delayed by `fraction` of a sample (0 to 1)."""
        step = round(fraction * FRACTION_STEPS)
        if step >= FRACTION_STEPS:                   # rounds to a whole sample
            out[:] = source[self.before - 1:self.before - 1 + self.frame]
            return
        if step == 0:
            out[:] = source[self.before:self.before + self.frame]
            return
        np.copyto(self._buf, source)
        y = np.convolve(self._buf, self._table[step], mode="valid")
        np.clip(y, -32768, 32767, out=y)
        np.copyto(out, y, casting="unsafe")
