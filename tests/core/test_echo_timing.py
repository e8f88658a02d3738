"""The echo's place in time: a stream's clock from device times, and the lag search."""

from __future__ import annotations

import numpy as np
import pytest

from swaramd.core.echo_timing import (
    CLOCK_LEAK,
    DRIFT_SEARCH,
    DriftTracker,
    FractionalReader,
    StreamClock,
    energy_centre,
    find_lag,
    response_shift,
)
from swaramd.demo import room

RATE = 24_000
W = 2 * RATE                 # the window the microphone covers
MAX_LAG = 6_000
NEG_LAG = 1_440


def _reference(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(W + MAX_LAG + NEG_LAG) * 3000).astype(np.int16)


def _heard(ref: np.ndarray, lag: int, seed: int = 1) -> np.ndarray:
    """The window as the mic hears it: the reference `lag` samples late, halved, and
    a little noise of the room."""
    start = MAX_LAG - lag
    echo = ref[start:start + W].astype(np.float32) * 0.5
    noise = np.random.default_rng(seed).standard_normal(W) * 100
    return (echo + noise).astype(np.int16)


@pytest.mark.parametrize("lag", [0, 960, 3_600, MAX_LAG, -480, -NEG_LAG])
def test_the_lag_of_an_echo_is_found_across_the_range(lag: int) -> None:
    ref = _reference(seed=lag & 0xffff)
    found = find_lag(ref, _heard(ref, lag), MAX_LAG, NEG_LAG)
    assert found is not None and abs(found - lag) < 0.5


def test_a_mic_that_hears_something_else_gives_no_lag() -> None:
    ref = _reference(seed=3)
    other = (np.random.default_rng(4).standard_normal(W) * 3000).astype(np.int16)
    assert find_lag(ref, other, MAX_LAG, NEG_LAG) is None


def test_a_clock_takes_the_earliest_time_and_drifts_only_slowly_later() -> None:
    clock = StreamClock(RATE)
    clock.update(0, 10.000, 480)
    clock.update(480, 10.030, 480)           # a callback 10 ms late
    assert clock.offset == pytest.approx(10.000 + CLOCK_LEAK * 480 / RATE, abs=1e-9)
    clock.update(960, 10.045, 480)           # 5 ms late: still only the leak
    assert clock.offset == pytest.approx(10.000 + 2 * CLOCK_LEAK * 480 / RATE, abs=1e-9)
    clock.update(1440, 10.055, 480)          # 5 ms earlier than any before: the new base
    assert clock.offset == pytest.approx(10.055 - 1440 / RATE, abs=1e-9)


# --- clock drift ---------------------------------------------------------------


def _tones(positions: np.ndarray) -> np.ndarray:
    """A band-limited signal (tones up to 9 kHz) at any, fractional, positions."""
    return sum(3000 * np.sin(2 * np.pi * hz / RATE * positions + hz)
               for hz in (200, 1000, 3000, 6000, 9000))


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.75, 0.999])
def test_the_fractional_reader_reads_between_samples(fraction):
    reader = FractionalReader(480)
    pos = 600
    source = _tones(np.arange(pos - reader.before, pos - reader.before + reader.span))
    out = np.zeros(480, np.int16)
    reader.read(source.astype(np.int16), fraction, out)
    want = _tones(np.arange(pos, pos + 480) - fraction)
    assert np.abs(out - want).max() < 0.005 * 15_000 + 1      # 0.5 % of the peak


def _response(shift: float) -> np.ndarray:
    """A room's impulse response (a direct path and reflections) `shift` samples late."""
    taps = np.arange(2400, dtype=np.float64)
    h = np.zeros(2400)
    for at, gain in ((700, 1.0), (760, -0.5), (900, 0.3), (1300, 0.2)):
        h += gain * np.sinc(taps - at - shift) * np.hanning(2400)
    return (h * 1e6).astype(np.int32)


@pytest.mark.parametrize("shift", [0.0, 0.3, -0.45, 1.7])
def test_a_response_shift_is_found_to_a_fraction_of_a_sample(shift):
    before, after = _response(0.0).astype(np.float32), _response(shift).astype(np.float32)
    found = response_shift(before, after, DRIFT_SEARCH)
    assert found == pytest.approx(shift, abs=0.05)


def test_a_response_that_changed_shape_gives_no_shift():
    rng = np.random.default_rng(3)
    other = (rng.standard_normal(2400) * 1e5).astype(np.float32)
    assert response_shift(_response(0.0).astype(np.float32), other, DRIFT_SEARCH) is None


def test_the_tracker_takes_the_drift_from_a_response_that_keeps_moving():
    # 5 ppm: the response moves 0.12 samples per second, read once a second.
    tracker = DriftTracker(RATE)
    updated = [tracker.observe(s * RATE, _response(5e-6 * RATE * s)) for s in range(12)]
    assert any(updated) and tracker.updates == 1
    assert tracker.ratio * 1e6 == pytest.approx(5.0, abs=0.3)


def test_the_tracker_starts_again_when_the_response_jumps():
    tracker = DriftTracker(RATE)
    for s in range(12):
        jump = 40.0 if s == 6 else 0.0          # a reflection took over, once
        tracker.observe(s * RATE, _response(5e-6 * RATE * s + jump))
    assert tracker.updates == 0


def test_delay_estimates_give_a_coarse_drift_past_wild_ones():
    # 150 ppm: the lag grows 3.6 samples a second, estimated every half second to a
    # sample; now and then a reflection's peak wins.
    tracker = DriftTracker(RATE)
    updated = False
    for i in range(60):
        k = i * RATE // 2
        lag = 1440 + round(150e-6 * k)
        if i % 7 == 3:
            lag += 400
        updated = tracker.observe_lag(k, lag) or updated
    assert updated
    assert tracker.ratio * 1e6 == pytest.approx(150, abs=10)


def test_delay_estimates_without_a_trend_leave_the_drift_alone():
    tracker = DriftTracker(RATE)
    rng = np.random.default_rng(4)
    for i in range(80):
        lag = 1440 + int(rng.integers(-8, 9))
        assert not tracker.observe_lag(i * RATE // 2, lag)
    assert tracker.ratio == 0.0


@pytest.mark.parametrize("step", [8, 24, 100])
@pytest.mark.parametrize("at_s", [5.0, 15.0, 25.0])
def test_a_step_in_the_delay_estimates_is_not_drift(step, at_s):
    # Another peak wins, or the echo moved once: the lags jump and stay. A line through
    # a step has a slope, but the lags do not move steadily.
    tracker = DriftTracker(RATE)
    for i in range(80):
        k = i * RATE // 2
        assert not tracker.observe_lag(k, 1440 + (step if k >= at_s * RATE else 0))
    assert tracker.ratio == 0.0


@pytest.mark.parametrize("extra", [0, 1, 2, 3, 7])
def test_the_direct_path_is_found_past_early_reflections(extra: int) -> None:
    # The demo's room: a reflection 0.6 ms after the direct path with 0.6 of its
    # amplitude, others up to 20 ms later. Speech through it, at a delay a few samples
    # off a round number (the device times are never exact): the lag found is the
    # direct path's, to a sample, wherever the window falls in the reply.
    reply = np.concatenate([room.speech(s, "en", seed=i) for i, s in enumerate(room.SENTENCES)])
    lag = 1_440 + extra
    response = np.concatenate([np.zeros(extra, np.float32), room.room_response(60, 250)])
    echo = room.to_pcm(room.echo_of(reply, response) * 0.8)
    ref = room.to_pcm(reply)
    for end in range(W + MAX_LAG, len(reply) - NEG_LAG, RATE):
        found = find_lag(ref[end - W - MAX_LAG:end + NEG_LAG], echo[end - W:end],
                         MAX_LAG, NEG_LAG)
        assert found is not None and abs(found - lag) <= 1, (end / RATE, found)


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_a_lag_between_samples_is_found_to_a_fraction(fraction: float) -> None:
    reply = np.concatenate([room.speech(s, "en", seed=i) for i, s in enumerate(room.SENTENCES)])
    lag = 1_440 + fraction
    spectrum = np.fft.rfft(reply) * np.exp(-2j * np.pi * np.fft.rfftfreq(len(reply)) * lag)
    echo = room.to_pcm((np.fft.irfft(spectrum, len(reply)) * 0.5).astype(np.float32))
    ref = room.to_pcm(reply)
    end = W + MAX_LAG + RATE
    found = find_lag(ref[end - W - MAX_LAG:end + NEG_LAG], echo[end - W:end], MAX_LAG, NEG_LAG)
    assert found is not None and abs(found - lag) < 0.1


def test_the_energy_centre_is_where_the_sound_is() -> None:
    x = np.zeros(48_000, np.int16)
    x[30_000:36_000] = 1000                      # a burst from 30 000 to 36 000
    assert energy_centre(x) == pytest.approx(33_000, abs=240)
    x[:6_000] = 1000                             # and an equal one at the start
    assert energy_centre(x) == pytest.approx(18_000, abs=240)
    assert energy_centre(np.zeros(48_000, np.int16)) == 24_000
