"""The guard after the echo canceller, fed frame energies: the mic held while the
canceller learns, then the user's frames passed and the echo's attenuated."""

from __future__ import annotations

import numpy as np
import pytest

from swaramd.core.echo_guard import (
    CLIPPED_TARGET_DB,
    PATIENCE_S,
    TARGET_DB,
    EchoGuard,
    Guard,
)

R = 24_000
FRAME = 480
MIC = 10 ** (-20 / 10)          # a mic frame at -20 dBFS


def db(x: float) -> float:
    return float(10 ** (x / 10))


def converged_guard(erle_db: float = 30.0) -> EchoGuard:
    guard = EchoGuard(R, FRAME)
    for _ in range(2 * R // FRAME):
        guard.frame_gain(MIC, MIC / db(erle_db), False, True)
    assert guard.state is Guard.CONVERGED
    return guard


def test_learning_guard_holds_the_mic_while_the_speaker_plays_only():
    guard = EchoGuard(R, FRAME)
    assert guard.frame_gain(MIC, MIC, False, True) == 0.0
    assert guard.frame_gain(MIC, MIC, False, False) == 1.0
    assert guard.state is Guard.LEARNING and guard.held == FRAME


@pytest.mark.parametrize(("erle_db", "clipped", "after_db"), [
    (30.0, False, TARGET_DB),          # echo as usual: at least the target
    (26.0, False, TARGET_DB),          # echo a little worse than usual: down to the target
    (45.0, False, 45.0),               # already under the target: untouched
    (18.0, False, 18.0),               # well under the usual ERLE: the user, passed whole
    (3.0, False, 3.0),
    (-6.0, False, 0.0),                # louder than the mic: a filter gone wrong, capped
    (3.0, True, CLIPPED_TARGET_DB),    # the mic clipped: never taken for the user
])
def test_converged_guard_attenuates_echo_frames_to_the_target(erle_db, clipped, after_db):
    guard = converged_guard()
    out = MIC / db(erle_db)
    gain = guard.frame_gain(MIC, out, clipped, True)
    assert 10 * np.log10(MIC / (out * gain * gain)) == pytest.approx(after_db, abs=0.01)


def test_suppression_and_clipping_show_in_the_measures():
    guard = converged_guard()
    for _ in range(3 * R // FRAME):
        guard.frame_gain(MIC, MIC / db(20.0), True, True)
    assert guard.suppress_db() > 10
    assert guard.clipped == 3 * R // FRAME * FRAME
    erle = guard.erle_db()
    assert erle is not None and 19 < erle < 25


def test_a_poor_canceller_is_trusted_after_long_enough_playback():
    guard = EchoGuard(R, FRAME)
    frames = 0
    while guard.state is Guard.LEARNING and frames < 2 * PATIENCE_S * R / FRAME:
        guard.frame_gain(MIC, MIC / db(14.0), False, True)
        frames += 1
    assert guard.state is Guard.CONVERGED
    assert frames * FRAME >= PATIENCE_S * R


def test_gain_moves_across_a_frame_without_a_step():
    guard = converged_guard()
    out = np.full(FRAME, 10000, np.int16)
    first = guard.apply(out, 1.0)        # from 0 (held) to 1: a ramp
    assert first[0] < 100 and first[-1] == 10000 and np.all(np.diff(first) >= 0)
    assert np.array_equal(guard.apply(out, 1.0), out)
    assert guard.apply(out, 1.0) is not out
