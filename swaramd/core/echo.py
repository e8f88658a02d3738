"""Echo cancellation around a linear canceller: the reference, alignment and the guard.

A bare microphone beside the speaker hears the reply. The canceller takes
what the speaker played (the reference) out of what the microphone heard, so
the service's voice detector hears the user and not the reply, and the user
can talk over a reply. The adaptive filter itself is an `EchoKernel`
(Speex's, in `adapters.speex`); this module owns everything around it, fed
samples and their device times:

    speaker samples + DAC time --push_reference--> reference history
    mic samples + ADC time -----process----------> aligned reference -> kernel -> guard -> out

Rules this module keeps:

- The reference is what the speaker played: after volume, earcons and
  silence included, one sample for every sample rendered. The kernel is fed
  the reference sample that reached the speaker when the mic sample was
  captured, shifted by the estimated acoustic delay less a small guard, so
  the filter's tail covers the room whatever the delay (0 to `max_delay_ms`).
- Device times map positions to time (`offset`: time of sample 0). They are
  taken at their earliest (a callback may be late, never early), and the
  alignment they give is kept (callback times jitter by
  milliseconds); it moves only when they jump (a device reopened) or when the
  delay estimate moves (the echo moved). Moves are counted.
- Two devices on two clocks drift apart by some parts per million, and a
  linear filter follows an echo that moves by even half a sample poorly.
  `core.echo_timing.DriftTracker` finds the drift, from how the filter's
  impulse response moves (read once a second while it cancels: fine) and
  from the trend of the delay estimates (coarse, for a drift the filter
  cannot follow); the reference is then read where the drift has taken it,
  whole samples through the alignment (not counted as moves) and the
  fraction through a windowed sinc. Status shows the drift (`drift_ppm`).
  Until a drift is found the filter learns an echo that moves under it, and
  learns it smeared; when the drift found (or a correction of it by
  `SMEARED_MIN_DRIFT` or more) moved the echo more than `SMEARED_SAMPLES`
  under the filter meanwhile, the filter starts again from zero and the
  guard holds the mic while it learns, and settles (`Guard.SETTLING`).
- The acoustic delay is estimated now and then by a cross-correlation
  (phase transform, on two seconds of audio at the full rate;
  `core.echo_timing`) while the speaker plays; two agreeing estimates move
  the alignment. Cheap and rare. Once the filter works, a move needs the
  guard to have seen the echo change (it learns again), ERLE down and the
  echo still in the kernel's output (the same correlation, run on the
  output): the user talking over the reply also brings ERLE down, and a
  user much louder than the echo leaves the echo's residual in the output
  and skews the estimates, but the guard sees no change there.
  While ERLE holds (`DRIFT_CHECK_DB`), or while the mic does not hear the
  speaker at all, no correlation runs; converged under it, one runs every
  `CHECK_EVERY_S`, for the drift's trend.
- One canceller for the daemon's life: nothing here resets the filter per
  reply. It learns the room during the first seconds of playback. The
  kernel's output passes through `core.echo_guard.EchoGuard`: the mic is
  held while the speaker plays until the canceller has converged, and once
  it has, the residual echo is attenuated and the user's voice passes.
- A guard that converged while the mic did not hear the speaker (on a quiet
  output, not on ERLE) knows no echo, and no delay was found. When the
  kernel wakes there while the speaker plays, an echo that has just
  appeared (a speaker switched on, headphones unplugged) and the user's
  voice look alike: the mic is held until a delay estimate finds the echo
  (the guard then learns it) or finds none in this reply, once it has played
  `NO_ECHO_AFTER_S` (the user: the mic passes, within about a second).
  Estimates run while the speaker plays and no delay is known.
- The kernel runs only while it has an echo to remove: it rests (the mic
  passes as it is) while the speaker has been silent longer than the echo
  lasts, and while the speaker plays but the mic does not hear it
  (`EchoGuard.unheard`: headphones, a speakerphone cancelling in hardware).
  A frame louder than the mic at rest wakes it at once.
- The kernel's output lags its input by one frame: the guard weighs an
  output frame against the mic frame before it, by their energies, plain
  and after a pre-emphasis (`PRE_EMPHASIS`) that weighs the voice's band,
  and tells it when that frame's reference was silent (the echo's tail) and
  how closely the filter's own output for that frame (before the kernel's
  suppression stage) follows the filter's echo estimate, and how much of the
  mic the estimate explains (their coherence per frequency, smoothed over
  `COHERENCE_S`).
- `MicStep` is the small interface the engine runs on every captured block
  after the canceller (a wake-word detector hangs here): it sees the
  cancelled mic at 24 kHz and may pass it on changed or unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from swaramd.core.echo_guard import CLIP, EchoGuard, Guard, Samples, level
from swaramd.core.echo_timing import (
    DriftTracker,
    FractionalReader,
    StreamClock,
    energy_centre,
    find_lag,
)
from swaramd.core.protocol import WIRE_RATE

__all__ = ["EchoCanceller", "EchoKernel", "EchoStats", "Guard", "MicStep", "Samples"]

FILTER_MS = 300            # the kernel's tail: the room's reverberation it can cancel
GUARD_MS = 30              # the reference leads the estimated delay by this much
PRE_EMPHASIS = 0.95        # the guard weighs each frame's energy after x[i] - 0.95 x[i-1]
COHERENCE_S = 0.029        # the mic's coherence with the echo estimate: smoothed over this
                           # (a frame's spectra weigh half at 20 ms frames)
COHERENCE_BAND_HZ = (300, 8500)    # ... and weighed over this band
MAX_DELAY_MS = 250         # acoustic + unreported device delay the estimate searches
NEGATIVE_DELAY_MS = 60     # the estimate also looks this far before the device times
SLIPPED_DB = 3.0           # ERLE this low once converged: the echo has moved
ACTIVE_DBFS = -60.0        # reference level above which the speaker "plays"
ESTIMATE_EVERY_S = 0.5     # while the speaker plays and the guard is learning
CHECK_EVERY_S = 2.0        # once converged: watch for drift and slipped periods
ESTIMATE_WINDOW_S = 2.0
AGREE_MS = 2.0
NO_ECHO_AFTER_S = 0.5      # an estimate finding no echo counts once the speaker played this long
DRIFT_CHECK_DB = 25.0      # converged under this ERLE, delay estimates still run (drift)
RESPONSE_EVERY_S = 1.0     # the filter's impulse response is read this often while it plays
RESPONSE_ERLE_DB = 6.0     # ... when ERLE is at least this
SMEARED_SAMPLES = 0.5      # a drift found moved the echo this far under the filter: reset
SMEARED_MIN_DRIFT = 1e-6   # ... when it differs from the one followed by this much
WARM_UP_S = 4.0            # audio replayed through the filter once the delay is known
WARM_UP_PASSES = 3
WARM_UP_FRAMES = 8         # replayed kernel frames per captured frame (spreads the cost)
REFERENCE_S = max(WARM_UP_S, ESTIMATE_WINDOW_S) + 1.0   # the speaker's samples held: what
                           # a warm-up replays or an estimate reads, and a second of delay
_FULL = 32768.0


class EchoKernel(Protocol):
    """A linear echo canceller working on fixed frames (Speex's, in adapters.speex)."""

    frame: int

    def process(self, mic: Samples, ref: Samples, out: Samples,
                linear: Samples | None = None) -> None:
        """Cancel one frame of `mic` given the aligned `ref`; write the result to `out`."""

    def impulse_response(self) -> NDArray[Any] | None:
        """The filter's impulse response as learnt (one tap per reference sample, from
        the aligned reference on), or None where the kernel cannot tell."""

    def reset(self) -> None:
        """Forget the learnt echo path: the filter starts again from zero."""


class MicStep(Protocol):
    """A step the engine runs on every captured block, after the echo canceller.

    `samples` is 24 kHz mono int16 (echo-cancelled when cancellation runs); `t` is the
    `time.monotonic()` at which its first sample was captured. Return the block to pass
    on (the same array for a step that only listens). Runs on the asyncio loop; must
    take well under a period (20 ms) and never block."""

    def process(self, samples: Samples, t: float) -> Samples:
        """Look at (or change) one captured block."""


@dataclass(frozen=True, slots=True)
class EchoStats:
    """The `audio.echo_cancel` object of `swaramd status`."""

    active: bool
    erle_db: float | None
    delay_ms: float | None
    guard: Guard
    held_s: float
    suppress_db: float
    clipped_s: float
    realigns: int
    drift_ppm: float | None

    def as_dict(self) -> dict[str, Any]:
        """The stats as the status JSON wants them."""
        return {"active": self.active,
                "erle_db": None if self.erle_db is None else round(self.erle_db, 1),
                "delay_ms": None if self.delay_ms is None else round(self.delay_ms, 1),
                "guard": self.guard.value, "held_s": round(self.held_s, 2),
                "suppress_db": round(self.suppress_db, 1),
                "clipped_s": round(self.clipped_s, 2),
                "realigns": self.realigns,
                "drift_ppm": None if self.drift_ppm is None else round(self.drift_ppm, 1)}


class EchoCanceller:
    """The mic's echo canceller: see the module doc. Loop thread only."""

    def __init__(self, kernel: EchoKernel, rate: int = WIRE_RATE, *,
                 max_delay_ms: float = MAX_DELAY_MS, guarded: bool = True) -> None:
        self.kernel = kernel
        self.rate = rate
        self.frame = kernel.frame
        self._max_lag = int(rate * max_delay_ms / 1000)
        self._neg_lag = int(rate * NEGATIVE_DELAY_MS / 1000) if \
            max_delay_ms > 0 else 0
        self._lead = int(rate * GUARD_MS / 1000)
        n = self.frame
        self._ref_hist: Samples = np.zeros(int(rate * REFERENCE_S), dtype=np.int16)
        self._ref_written = 0
        self._ref_clock = StreamClock(rate)
        est = int(rate * ESTIMATE_WINDOW_S)
        self._est_len = est
        warm = int(rate * WARM_UP_S) // n * n
        ring = -(-max(est, warm) // n) * n
        self._mic_hist: Samples = np.zeros(ring, dtype=np.int16)    # a ring of whole frames
        self._out_hist: Samples = np.zeros(ring, dtype=np.int16)    # what left, alike
        self._warm_len = warm
        self._warm: list[int] = []       # mic positions still to replay, newest last
        self._scratch: Samples = np.zeros(n, dtype=np.int16)
        self._warm_mic: Samples = np.zeros(n, dtype=np.int16)
        self._warm_ref: Samples = np.zeros(n, dtype=np.int16)
        self._fbuf = np.zeros(n, dtype=np.float32)
        self._dbuf = np.zeros(n - 1, dtype=np.float32)
        self._escale = 1.0 / (32768.0 * 32768.0 * n)
        self._vscale = 1.0 / (32768.0 * 32768.0 * (n - 1))
        self._clip_e = 0.999 * CLIP * CLIP * self._escale   # float32 sums round
        self._mic_clock = StreamClock(rate)
        self._mic_count = 0              # mic samples ever processed (kernel frames)
        self._pending: Samples = np.zeros(n, dtype=np.int16)
        self._fill = 0
        self._pending_t = 0.0
        self._ref: Samples = np.zeros(n, dtype=np.int16)
        self._out: Samples = np.zeros(n, dtype=np.int16)
        self._lin: Samples = np.zeros(n, dtype=np.int16)   # the filter's output alone
        self._pair = np.zeros((2, n - 1), dtype=np.float32)   # the mic and the estimate,
        # pre-emphasised (see `_coherence`)
        self._cbufs = (np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32),
                       np.zeros(n - 1, dtype=np.float32), self._pair[1])
        self._read_pos: int | None = None
        self._shift = 0                  # reference samples the read lags the device time
        self._delay: int | None = None   # estimated echo delay, samples
        self._recent_lags: list[float] = []
        self._next_estimate = 0
        self._active_until = -1          # mic index until which the speaker counts as playing
        self._active_e = level(ACTIVE_DBFS)
        self._playing_span = self._lead + int(rate * FILTER_MS / 1000)
        self._guardian = EchoGuard(rate, n, guarded=guarded)
        self._last_mic = (0.0, 0.0)      # energies (plain, voice) of the mic frame the
        # kernel's next output holds
        self._last_clipped = False
        self._last_tail = False
        self._last_follows = 0.0
        self._last_coherent = 0.0
        lo, hi = (round(hz * n / rate) for hz in COHERENCE_BAND_HZ)
        self._band = slice(max(lo, 1), min(hi, n // 2 + 1))
        bins = self._band.stop - self._band.start
        self._powers = np.zeros((2, bins))               # the mic's and the estimate's
        self._cross = np.zeros(bins, dtype=np.complex128)
        self._coherence_keep = math.exp(-n / (rate * COHERENCE_S))
        self._coherence_new = math.sqrt(1.0 - self._coherence_keep)
        self._found_none = False         # an estimate found no echo in this reply's mic
        self._playing_from = 0           # mic index from which the speaker plays
        self.realigns = 0
        self._bypassing = True           # the kernel rests while the speaker is silent
        self._base: int | None = None
        self._drift = DriftTracker(rate)
        self._reader = FractionalReader(n)
        self._ref_span: Samples = np.zeros(self._reader.span, dtype=np.int16)
        self._phase = 0.0                # the drift's sub-sample part: the read is this early
        self._drift_steps = 0            # ... and its whole samples since the alignment
        self._next_response = 0
        self._followed = 0.0             # the drift the reading follows ...
        self._followed_from = 0          # ... since this mic sample

    # --- inputs --------------------------------------------------------------

    def push_reference(self, samples: Samples, t: float) -> None:
        """What the speaker played (after volume, silence included), and the
        `time.monotonic()` at which its first sample reached the DAC."""
        n = len(samples)
        if n == 0:
            return
        self._ref_clock.update(self._ref_written, t, n)
        hist = self._ref_hist
        size = len(hist)
        if n >= size:
            samples, self._ref_written = samples[n - size:], self._ref_written + n - size
            n = size
        start = self._ref_written % size
        first = min(n, size - start)
        hist[start:start + first] = samples[:first]
        hist[:n - first] = samples[first:]
        self._ref_written += n

    def process(self, samples: Samples, t: float) -> Samples:
        """Cancel the echo in a captured block (its first sample captured at `t`);
        returns the cleaned samples that complete kernel frames (any remainder waits)."""
        n, frame = len(samples), self.frame
        if n == 0:
            return samples
        if n == frame and self._fill == 0:              # the usual case: one whole frame
            self._pending[:] = samples
            return self._process_frame(self._pending, t)
        if self._fill == 0:
            self._pending_t = t
        outs: list[Samples] = []
        i = 0
        while i < n:
            take = min(frame - self._fill, n - i)
            self._pending[self._fill:self._fill + take] = samples[i:i + take]
            self._fill += take
            i += take
            if self._fill == frame:
                outs.append(self._process_frame(self._pending, self._pending_t))
                self._fill = 0
                self._pending_t = t + i / self.rate
        if not outs:
            return np.zeros(0, dtype=np.int16)
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def devices_restarted(self) -> None:
        """The devices were reopened: their positions and times no longer relate as
        before. The alignment is taken afresh; what the filter learnt is kept."""
        self._ref_clock = StreamClock(self.rate)
        self._mic_clock = StreamClock(self.rate)
        self._base = None
        self._delay, self._shift = None, 0
        self._drift_steps, self._phase = 0, 0.0      # the drift itself is the clocks'
        self._followed_from = self._mic_count
        self._drift.restart()
        self._recent_lags.clear()
        self._relearn()

    @property
    def guard(self) -> Guard:
        """What the guard does with the mic while the speaker plays."""
        return self._guardian.state

    def stats(self) -> EchoStats:
        """ERLE, the delay estimate and the guard, for status."""
        g, rate = self._guardian, self.rate
        delay = None if self._delay is None else 1000 * self._delay / rate
        drift = self._drift.ratio * 1e6 if self._drift.updates else None
        return EchoStats(True, g.erle_db(), delay, g.state, g.held / rate, g.suppress_db(),
                         g.clipped / rate, self.realigns, drift)

    # --- one kernel frame ----------------------------------------------------

    def _process_frame(self, mic: Samples, t: float) -> Samples:
        frame, k = self.frame, self._mic_count
        self._mic_clock.update(k, t, frame)
        if self._drift.ratio:
            self._follow_drift()
        target = self._target(k)
        pos = self._read_pos
        if pos != target:
            if pos is not None:
                self.realigns += 1
            pos = target
        ref = self._ref
        self._read_aligned(pos, ref)
        self._read_pos = pos + frame
        self._remember_mic(mic, k)
        self._mic_count = k + frame
        sounding = self._frame_energy(ref) > self._active_e
        if sounding:
            self._active_until = k + frame + self._playing_span
        energies = self._energies(mic)
        if k >= self._active_until:
            self._found_none, self._playing_from = False, k + frame
            return self._bypass_frame(mic, energies, playing=False)
        if self._guardian.unheard(energies[0]):
            return self._bypass_frame(mic, energies, playing=True)
        if self._bypassing:
            # The kernel's output lags its input by one frame: its first output after a
            # rest is a frame already passed on as it was. It takes this frame in, and
            # its output is dropped before the guard or the history see it.
            self._bypassing = False
            self.kernel.process(mic, self._ref, self._out, self._lin)
            self._remember_input(mic, energies, not sounding)
            result = mic[:0]
        else:
            result = self._cancel(mic, energies, tail=not sounding)
        if self._mic_count >= self._next_estimate:
            self._maybe_estimate()
        if sounding and self._mic_count >= self._next_response:
            self._observe_response()
        if self._warm:
            self._warm_up_some()
        return result

    def _cancel(self, mic: Samples, energies: tuple[float, float], *,
                tail: bool = False) -> Samples:
        """Run the kernel on `mic` (of `energies`: plain and voice-weighted; `tail`: its
        reference frame was silent) and the guard on its output (the previous
        frame's)."""
        self.kernel.process(mic, self._ref, self._out, self._lin)
        k = self._mic_count - 2 * self.frame    # the output is the previous frame's
        if k >= 0:
            a = k % len(self._out_hist)
            self._out_hist[a:a + self.frame] = self._out
        (mic_e, mic_v), (out_e, out_v) = self._last_mic, self._energies(self._out)
        g = self._guardian
        # Where the guard converged while the mic did not hear the speaker, the kernel
        # running means the mic hears something now. An echo that appeared (a speaker
        # turned on, headphones unplugged) and the user's voice look alike there, so
        # the mic is held until an estimate finds the echo (then the guard learns it)
        # or finds none in this reply (the user: the mic passes).
        unknown = not g.knows_echo and self._delay is None and not self._found_none
        gain = g.frame_gain(mic_e, out_e, self._last_clipped, True, (mic_v, out_v),
                            self._last_tail, self._last_follows, hold=unknown,
                            coherent=self._last_coherent)
        self._remember_input(mic, energies, tail)
        return g.apply(self._out, gain)

    def _remember_input(self, mic: Samples, energies: tuple[float, float], tail: bool) -> None:
        """What the guard will need to know of the mic frame the kernel just took in,
        when its output comes out with the next frame."""
        self._last_mic, self._last_tail = energies, tail
        self._last_clipped = self._clipped(mic, energies[0])
        self._last_follows = self._follows(mic)
        # Only a young filter's guard weighs it (and the smoothing needs every frame).
        self._last_coherent = 0.0 if self._guardian.grown else self._coherence()

    def _frame_energy(self, x: Samples) -> float:
        """Mean square of one kernel frame, full scale 1.0 (no allocation)."""
        buf = self._fbuf
        np.copyto(buf, x)
        return float(np.dot(buf, buf)) * self._escale

    def _energies(self, x: Samples) -> tuple[float, float]:
        """Mean squares of one kernel frame, full scale 1.0: plain, and after a
        pre-emphasis (`x[i] - PRE_EMPHASIS * x[i-1]`), as the guard weighs every frame
        (no allocation). The second weighs the voice's band over the low rumble: a
        linear canceller leaves most of its residual below about 600 Hz, where a voice
        has little to tell."""
        buf, d = self._fbuf, self._dbuf
        np.copyto(buf, x)
        np.multiply(buf[:-1], -PRE_EMPHASIS, out=d)
        d += buf[1:]
        return float(np.dot(buf, buf)) * self._escale, float(np.dot(d, d)) * self._vscale

    def _follows(self, mic: Samples) -> float:
        """How closely the filter's output for `mic` follows its own echo estimate (`mic`
        less that output): their normalised correlation after the pre-emphasis, -1 to 1
        (no allocation). An echo louder than the filter expects (a speaker or a mic
        turned up, the room's tail) leaves an output that follows the estimate, one
        quieter or moved its negative; the user's voice follows neither."""
        lin, est, d_lin, d_est = self._cbufs
        np.copyto(lin, self._lin)
        np.copyto(est, mic)
        est -= lin
        np.multiply(lin[:-1], -PRE_EMPHASIS, out=d_lin)
        d_lin += lin[1:]
        np.multiply(est[:-1], -PRE_EMPHASIS, out=d_est)
        d_est += est[1:]
        power = float(np.dot(d_lin, d_lin)) * float(np.dot(d_est, d_est))
        return float(np.dot(d_lin, d_est)) / power ** 0.5 if power > 0.0 else 0.0

    def _coherence(self) -> float:
        """How much of the mic frame just given to `_follows` the filter's echo estimate
        explains: the magnitude-squared coherence of the mic and the estimate, both
        pre-emphasised, per frequency over `COHERENCE_BAND_HZ`, their spectra smoothed
        over about `COHERENCE_S` of frames, averaged weighted by the mic's power; 0 to 1.
        Echo alone is a linear function of the reference, and so of the estimate even
        where the filter has learnt it only in part (a young filter scales it wrong):
        near 1. The user's voice is no function of it and lowers it where it speaks.
        (One FFT of the pair, while the kernel runs and the guard is not `grown`.)"""
        pair = self._pair
        _, _, d_out, _ = self._cbufs
        np.add(d_out, pair[1], out=pair[0])          # the mic: output plus estimate
        spectra = np.fft.rfft(pair, n=self.frame)[:, self._band]
        spectra *= self._coherence_new               # this frame's weight in the smoothing
        powers, cross = self._powers, self._cross
        powers *= self._coherence_keep
        powers += np.abs(spectra) ** 2
        cross *= self._coherence_keep
        cross += spectra[0] * spectra[1].conj()
        total = float(powers[0].sum())
        if total <= 0.0:
            return 0.0
        # Σ_k P_k·C_k / Σ_k P_k with C_k = |cross_k|² / (P_k·E_k): P_k cancels.
        return float((np.abs(cross) ** 2 / np.maximum(powers[1], 1e-30)).sum()) / total

    def _clipped(self, mic: Samples, mic_e: float) -> bool:
        """Whether the mic frame (of plain energy `mic_e`) holds a clipped sample; one
        with a sample at CLIP has at least CLIP**2 in its sum of squares, so quieter
        frames are not searched."""
        return mic_e >= self._clip_e and bool(mic.max() >= CLIP or mic.min() <= -CLIP)

    def _bypass_frame(self, mic: Samples, energies: tuple[float, float], *,
                      playing: bool) -> Samples:
        """The mic passes as it is and the kernel rests: the speaker has been silent
        longer than the echo lasts (no CPU while nobody speaks), or it plays and the mic
        does not hear it (headphones, a speakerphone cancelling in hardware)."""
        # Leaving the kernel: it still holds the previous frame, heard while the speaker
        # played; that frame leaves through the guard first, then this one as it is.
        flush = None if self._bypassing else self._cancel(mic, energies)
        self._bypassing = True
        g = self._guardian
        if playing:
            a = (self._mic_count - self.frame) % len(self._out_hist)
            self._out_hist[a:a + self.frame] = mic       # what passes is the output
            mic_e, mic_v = energies
            out = g.apply(mic, g.frame_gain(mic_e, mic_e, False, True, (mic_v, mic_v)))
        else:
            g.rest(*energies)
            out = mic.copy()
        return out if flush is None else np.concatenate((flush, out))

    def _base_delay(self) -> int:
        """Reference samples between a mic sample's capture and the sample the speaker
        played at that moment, by the device times (0 before both have spoken).

        Taken once and kept: callback times jitter by milliseconds (by tens on a loaded
        machine), which would move the alignment back and forth. Only reopened devices
        take a new one; drift between two devices' clocks is followed apart
        (`_follow_drift`)."""
        mo, ro = self._mic_clock.offset, self._ref_clock.offset
        if mo is None or ro is None:
            return 0
        if self._base is None:
            self._base = round((mo - ro) * self.rate)
        return self._base

    def _target(self, k: int) -> int:
        """The reference position to feed with mic sample `k` (less `_phase`)."""
        return k + self._base_delay() - self._shift - self._drift_steps

    def _read_aligned(self, pos: int, out: Samples) -> None:
        """The kernel's reference frame from `pos`, `_phase` of a sample earlier."""
        if self._phase == 0.0:
            self._read_ref(pos, out)
            return
        span = self._ref_span
        self._read_ref(pos - self._reader.before, span)
        self._reader.read(span, self._phase, out)

    # --- clock drift -----------------------------------------------------------

    def _follow_drift(self) -> None:
        """Move the read by the drift over one frame: its whole samples into the
        alignment (not counted as a move), the rest into `_phase`."""
        phase = self._phase + self._drift.ratio * self.frame
        whole = math.floor(phase)
        if whole:
            self._drift_steps += whole
            if self._read_pos is not None:
                self._read_pos -= whole
        self._phase = phase - whole

    def _observe_response(self) -> None:
        """Show the drift tracker the filter's impulse response (while it cancels): from
        ERLE `RESPONSE_ERLE_DB` on until a drift is found (the later it is found, the more
        the filter smears), then only once the guard has converged (a filter that
        learns again moves its response as it learns, which is not drift)."""
        self._next_response = self._mic_count + int(self.rate * RESPONSE_EVERY_S)
        if (self._drift.updates and self.guard is Guard.LEARNING) or \
                self._guardian.erle_below(RESPONSE_ERLE_DB):
            return
        h = self.kernel.impulse_response()
        if h is not None and self._drift.observe(self._mic_count, h):
            self._drift_found()

    def _drift_found(self) -> None:
        """The tracker has updated the drift: learn again (the module doc) if, by the
        difference between the drift the reading followed and the new one, the echo
        moved more than `SMEARED_SAMPLES` under the filter since it started, the last
        update or the last alignment; unless that difference is under
        `SMEARED_MIN_DRIFT`: a correction the filter follows (with no drift at all,
        the estimate moves by hundredths of a ppm, which over hours of a quiet
        speaker adds up to samples)."""
        change = abs(self._drift.ratio - self._followed)
        moved = change * (self._mic_count - self._followed_from)
        self._followed, self._followed_from = self._drift.ratio, self._mic_count
        if change < SMEARED_MIN_DRIFT or moved <= SMEARED_SAMPLES:
            return
        self.kernel.reset()
        self._drift.forget_response()
        self._relearn(restarted=True)

    def _read_ref(self, pos: int, out: Samples) -> None:
        """Copy reference samples [pos, pos+len(out)) into `out`; zeros where not held."""
        hist, size, n = self._ref_hist, len(self._ref_hist), len(out)
        a = pos % size
        if self._ref_written - size <= pos and pos + n <= self._ref_written and a + n <= size:
            out[:] = hist[a:a + n]                       # the usual case: held, unwrapped
            return
        lo, hi = max(pos, self._ref_written - size), min(pos + n, self._ref_written)
        if lo >= hi:
            out[:] = 0
            return
        out[:lo - pos] = 0
        out[hi - pos:] = 0
        a = lo % size
        m = hi - lo
        first = min(m, size - a)
        out[lo - pos:lo - pos + first] = hist[a:a + first]
        out[lo - pos + first:hi - pos] = hist[:m - first]

    def _remember_mic(self, mic: Samples, k: int) -> None:
        """Keep mic sample `k` and on in the ring (its length a multiple of the frame)."""
        a = k % len(self._mic_hist)
        self._mic_hist[a:a + len(mic)] = mic

    def _recent_mic(self, n: int) -> Samples:
        """The last `n` mic samples, oldest first (a copy)."""
        return _last(self._mic_hist, self._mic_count, n)

    def _recent_out(self, n: int) -> Samples:
        """The last `n` samples that left while the speaker played (the kernel's output,
        or the mic where the kernel rested), up to the previous frame, oldest first."""
        return _last(self._out_hist, self._mic_count - self.frame, n)

    # --- relearning --------------------------------------------------------

    def _relearn(self, restarted: bool = False) -> None:
        """The echo moved in time: trust the filter again only once it has re-converged
        (and settled, if it `restarted` from zero), and help it there by replaying the
        last seconds through it (with the new alignment), a few frames at a time."""
        self._guardian.relearn(restarted)
        frame = self.frame
        held = min(self._warm_len, self._mic_count) // frame * frame
        first = self._mic_count - held
        self._warm = [k for _ in range(WARM_UP_PASSES)
                      for k in range(first, self._mic_count, frame)][::-1]

    def _warm_up_some(self) -> None:
        """Replay a few remembered frames through the kernel; their output is dropped."""
        frame, hist, mic, ref = self.frame, self._mic_hist, self._warm_mic, self._warm_ref
        for _ in range(min(WARM_UP_FRAMES, len(self._warm))):
            k = self._warm.pop()
            if self._mic_count - k > len(hist):
                continue
            a = k % len(hist)
            mic[:] = hist[a:a + frame]
            self._read_ref(self._target(k), ref)
            self.kernel.process(mic, ref, self._scratch)

    # --- delay estimate ------------------------------------------------------

    def _maybe_estimate(self) -> None:
        guardian = self._guardian
        # Converged with ERLE up (a delay known): nothing would move the alignment (that
        # takes the guard learning again), and no drift is left. No echo heard
        # (headphones, a speakerphone cancelling in hardware): a lag found there is
        # chance, and moving to it would hold the mic to learn again. Either way the
        # correlation is skipped, and a slip is judged on two estimates after it.
        # Converged with ERLE down (double talk, a drift not yet followed), it runs
        # every CHECK_EVERY_S, for the drift's trend.
        converged = self.guard is not Guard.LEARNING and self._delay is not None
        idle = (converged and not guardian.erle_below(DRIFT_CHECK_DB)) or \
            not guardian.hears_echo()
        # A mic that does not hear the speaker is asked again soon (no correlation runs
        # then): an echo that appears is found, and the user passes, the sooner. Once
        # converged, estimates (for the drift's trend) are rare.
        settled = converged and guardian.hears_echo()
        self._next_estimate = self._mic_count + int(self.rate * (
            CHECK_EVERY_S if settled else ESTIMATE_EVERY_S))
        if idle:
            self._recent_lags.clear()
            return
        if self._mic_count < self._est_len or self._mic_count > self._active_until:
            return
        found = self._estimate_lag()
        if found is None:
            self._found_none = self._delay is None and \
                self._mic_count - self._playing_from >= self.rate * NO_ECHO_AFTER_S
            return
        lag, at = found
        if self._drift.observe_lag(at, lag):
            self._drift_found()
        recent = self._recent_lags
        recent.append(lag)
        del recent[:-2]
        # Speech has echoes of its own (a pitch period, a repeated syllable): believe a
        # delay on two agreeing estimates. Once the filter works (ERLE good), leave the
        # alignment alone: the filter is the better judge, and moving the reference
        # under it would undo what it learnt. A slip (a period lost between the two
        # directions, clock drift) shows as ERLE falling: then re-align.
        if len(recent) == 2 and abs(recent[0] - recent[1]) <= self.rate * AGREE_MS / 1000 \
                and (self._delay is None or self._slipped()):
            self._set_delay(lag)

    def _slipped(self) -> bool:
        """Whether the echo has moved under the filter: the guard has seen it change (and
        learns again), ERLE is down and the echo is still in the kernel's output. The user
        talking over the reply also brings ERLE down (and a loud word skews the estimate),
        but leaves the guard converged, and the output is the user, not the echo."""
        if self.guard is not Guard.LEARNING or not self._guardian.erle_below(SLIPPED_DB):
            return False
        end = self._mic_count - self.frame
        return self._estimate_lag(self._recent_out(self._est_len), end) is not None

    def _estimate_lag(self, heard: Samples | None = None,
                      end: int | None = None) -> tuple[float, float] | None:
        """The echo's delay behind the device-time alignment, in samples, and the mic
        position it stands for (where the echo in the window is, weighed by energy: a
        reply that starts or ends inside it puts it off the window's middle); or None.
        In the last `_est_len` mic samples, or in `heard`, the samples up to `end`."""
        w, neg = self._est_len, self._neg_lag
        k0 = (self._mic_count if end is None else end) - w
        start = k0 + self._base_delay() - self._max_lag
        ref = np.zeros(w + self._max_lag + neg, dtype=np.int16)
        self._read_ref(start, ref)
        if _energy(ref) < level(ACTIVE_DBFS):
            return None
        heard = self._recent_mic(w) if heard is None else heard
        lag = find_lag(ref, heard, self._max_lag, neg, self.rate)
        if lag is None:
            return None
        a = self._max_lag - round(lag)
        return lag, k0 + energy_centre(ref[a:a + w])

    def _set_delay(self, found: float) -> None:
        # The filter starts `guard` before the echo, never later than the device times
        # say (a delay under the guard), nor later than the echo (a negative delay).
        lag = round(found)
        shift = lag - self._lead if lag >= self._lead else min(0, lag)
        first = self._delay is None
        self._delay = lag
        if first or abs(shift - self._shift - self._drift_steps) > self.rate * AGREE_MS / 1000:
            # The lag found holds the drift so far: the alignment starts from it.
            self._shift, self._drift_steps, self._phase = shift, 0, 0.0
            self._drift.restart()
            self._followed_from = self._mic_count
            if first:
                # The filter learnt under a guessed alignment: learn again, helped by
                # the last seconds. Later moves (a period slipped between the
                # directions) re-align the reference under a filter that stays valid.
                self._relearn()


def _last(hist: Samples, count: int, n: int) -> Samples:
    """The `n` samples of the ring `hist` before position `count`, oldest first (a copy)."""
    end = count % len(hist)
    if n <= end:
        return hist[end - n:end].copy()
    return np.concatenate((hist[len(hist) - (n - end):], hist[:end]))


def _energy(x: Samples) -> float:
    """Mean square of int16 samples, full scale 1.0."""
    v = x.astype(np.float32) / _FULL
    return float(np.dot(v, v)) / max(1, len(v))
