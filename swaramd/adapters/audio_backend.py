"""The contract between the audio engine and its device backends.

A backend (`pyaudio_audio`, `wav_audio`) is only the device side: its
`run(host)` is the body of the engine's one device thread, and `DeviceHost`
is the whole of the engine it sees. The engine (`adapters.audio`) implements
`DeviceHost`; a backend never imports the engine.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol

from swaramd.core.config import AudioConfig
from swaramd.core.ring import Samples

# A device period never exceeds this, whatever `frame_ms`: a flush must silence the speaker
# within 100 ms, and the WAV backend must flush its file every 20 ms.
MAX_DEVICE_PERIOD_MS = 20


class AudioHealth(StrEnum):
    """Whether the devices are open and delivering; ERROR is the appliance's `audio_error`."""

    STARTING = "starting"
    OK = "ok"
    ERROR = "audio_error"
    STOPPED = "stopped"


HealthCallback = Callable[[AudioHealth, "str | None"], None]


@dataclass(frozen=True, slots=True)
class EngineTuning:
    """Sizes and timings that tests shorten; the defaults suit the appliance."""

    retry_delay_s: float = 3.0      # between attempts to reopen a missing or failed device
    stall_timeout_s: float = 1.0    # a stream silent this long has failed
    capture_s: float = 1.0          # capture ring: how long the loop may stall without loss
    backlog_s: float = 1.0          # uplink audio kept while the link lags, in whole frames
    playback_s: float = 30.0        # reply audio that may be queued ahead of the speaker
    start_timeout_s: float = 10.0   # how long start() waits for the first open attempt
    stuck_after_s: float = 10.0     # a device thread with no heartbeat this long is stuck
    error_grace_s: float = 120.0    # in audio_error this long: let systemd restart us afresh
    recovered_after_s: float = 5.0  # OK this long ends an audio_error period (no flapping)


class DeviceHost(Protocol):
    """All a backend sees of the engine. The device thread calls these; `capture` and
    `render` may also be called from the device library's own callback threads."""

    @property
    def cfg(self) -> AudioConfig: ...

    @property
    def tuning(self) -> EngineTuning: ...

    @property
    def stopping(self) -> threading.Event:
        """Set when the backend must close its devices and return from `run`."""

    @property
    def period_ms(self) -> int:
        """The device period: `frame_ms`, at most MAX_DEVICE_PERIOD_MS."""

    def prepare(self, in_rate: int, out_rate: int, out_period: int,
                out_latency_s: float) -> None:
        """Devices at these rates are about to start: size the rings, restart the clocks."""

    def capture(self, samples: Samples, adc_time: float | None = None) -> None:
        """One captured period (mono, device rate); `adc_time`: when its first sample
        left the ADC, on `time.monotonic()`'s clock, if the device says."""

    def render(self, out: Samples, latency_s: float) -> None:
        """Fill one period for the speaker (mono, device rate); it reaches the DAC
        `latency_s` from now."""

    def count_xrun(self, *, underflow: bool = False, overflow: bool = False) -> None:
        """The device reported a late period: an output underflow, an input overflow."""

    def report(self, health: AudioHealth, reason: str | None = None) -> None:
        """The devices opened (OK) or failed (ERROR, with why)."""

    def beat(self) -> None:
        """The device thread is making progress (for the watchdog, while nothing plays)."""

    def stalled(self) -> str | None:
        """Why the running devices count as failed (no period for `stall_timeout_s`), or None."""

    def wait_retry(self) -> None:
        """Wait `retry_delay_s` before reopening failed devices, beating; a stop or
        `retry_now()` cuts it short."""


class DeviceBackend(abc.ABC):
    """The device side of the engine: opens the devices and runs their periods."""

    thread_name: ClassVar[str] = "swaramd-audio"
    hears_speaker = True                   # the mic can hear the speaker: echo cancellation applies
    duplex = False                         # microphone and speaker run as one stream

    @abc.abstractmethod
    def run(self, host: DeviceHost) -> None:
        """The device thread's body: open the devices, `host.prepare`, run periods
        (`host.capture`, `host.render`) and `host.report` health until `host.stopping`;
        close every device before returning."""
