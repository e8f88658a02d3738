"""Earcons: PCM16 of the stated length, no clicks at the ends."""

from __future__ import annotations

import numpy as np
import pytest

from swaramd.core.earcons import EARCONS, durations, render


@pytest.mark.parametrize("name", sorted(EARCONS))
def test_render(name):
    pcm = np.frombuffer(render(name), dtype="<i2")
    assert abs(len(pcm) / 24000 - durations()[name]) < 0.01
    assert 0 < np.abs(pcm).max() < 32767 * 0.3
    assert abs(int(pcm[0])) < 200 and abs(int(pcm[-1])) < 200
