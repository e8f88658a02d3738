"""The wake word's rules: the sensitivity scale and the pre-roll."""

from __future__ import annotations

import pytest

from swaramd.core.wake import cutoff, preroll_frames


@pytest.mark.parametrize(("sensitivity", "model", "expected"), [
    (0.5, 0.85, 0.85),     # the model's own cutoff
    (0.5, 0.97, 0.97),
    (0.0, 0.85, 0.99),     # the strictest
    (1.0, 0.85, 0.5),      # the most eager
    (0.25, 0.85, 0.92),
    (0.75, 0.9, 0.7),
])
def test_sensitivity_maps_onto_the_cutoff(sensitivity, model, expected):
    assert cutoff(sensitivity, model) == pytest.approx(expected)


def test_more_sensitive_is_never_stricter():
    values = [cutoff(s / 20, 0.85) for s in range(21)]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize(("frame_ms", "held"), [(10, 7), (20, 3), (40, 1), (100, 0), (200, 0)])
def test_preroll_is_80_ms_with_the_detecting_frame(frame_ms, held):
    assert preroll_frames(frame_ms) == held
