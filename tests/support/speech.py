"""Speech for tests, spoken by espeak-ng at test time: 24 kHz mono PCM16 samples."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np
import pytest
import soxr

RATE = 24_000
QUIET = 300     # below this a sample is the synthesiser's silence


def say(text: str, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    """`text` as espeak-ng speaks it, resampled to 24 kHz, without leading or trailing silence."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is not installed: run tools/system-packages.sh as root")
    wav = subprocess.run([exe, "-v", voice, "-s", str(speed), "--stdout", text],
                         capture_output=True, check=True, timeout=60).stdout
    with wave.open(io.BytesIO(wav)) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    out = soxr.resample(samples, rate, RATE)
    loud = np.nonzero(np.abs(out) > QUIET)[0]
    return np.ascontiguousarray(out[loud[0]:loud[-1] + 1], dtype="<i2")


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype="<i2")
