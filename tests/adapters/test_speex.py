"""The libspeexdsp binding: it cancels, and a missing library is one clear line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from swaramd.adapters.speex import SpeexEchoKernel

PROBE = """
from swaramd.adapters.speex import SpeexEchoKernel, SpeexUnavailable
try:
    SpeexEchoKernel(480, 7200, 24000)
except SpeexUnavailable as exc:
    print("unavailable:", exc)
"""


def test_missing_library_is_one_line_naming_the_package(tmp_path):
    env = dict(os.environ, SWARAMD_SPEEXDSP=str(tmp_path / "libspeexdsp.so.1"))
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("unavailable: cannot load ")
    assert "install the libspeexdsp1 package" in lines[0]


def test_kernel_cancels_a_pure_delay_and_closes():
    rng = np.random.default_rng(1)
    ref = (rng.standard_normal(24_000 * 4) * 3000).astype(np.int16)
    mic = np.zeros_like(ref)
    mic[100:] = ref[:-100] // 2                 # the speaker, 4 ms later, at half level
    kernel = SpeexEchoKernel(480, 2400, 24_000)
    out = np.zeros(480, np.int16)
    energies = []
    for i in range(0, len(ref), 480):
        kernel.process(mic[i:i + 480], ref[i:i + 480], out)
        energies.append(float(np.mean(out.astype(np.float64) ** 2)))
    mic_e = float(np.mean(mic.astype(np.float64) ** 2))
    assert 10 * np.log10(mic_e / np.mean(energies[-50:])) > 20
    response = kernel.impulse_response()
    assert response is not None and len(response) == 2400
    assert int(np.argmax(np.abs(response))) == 100      # the learnt path: 100 samples late
    kernel.close()
    kernel.close()                              # twice is harmless
    assert kernel.impulse_response() is None
