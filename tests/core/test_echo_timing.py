"""The echo's place in time: a stream's clock from device times, and the lag search."""

from __future__ import annotations

import numpy as np
import pytest

from swaramd.core.echo_timing import CLOCK_LEAK, DECIMATE, StreamClock, find_lag

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
    assert found is not None and abs(found - lag) < DECIMATE


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
