"""Shared fixtures for the real-audio tests: private ALSA configs and private jackd servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adapters.alsa_rig import Jackd


@pytest.fixture
def alsa_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment where libjack never starts a server and ALSA reads only our config."""
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "swaramd-test-none")
    return monkeypatch


@pytest.fixture(scope="module")
def jackd24() -> Iterator[Jackd]:
    """jackd on the dummy driver at 24 kHz, 20 ms periods (the appliance's own timing)."""
    server = Jackd(24_000, 480)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def jackd48() -> Iterator[Jackd]:
    """jackd at 48 kHz: a device that will not take 24 kHz, for the soxr path."""
    server = Jackd(48_000, 480)          # 10 ms: the jack PCM refuses 960-frame periods at 48 kHz
    server.start()
    try:
        yield server
    finally:
        server.stop()
