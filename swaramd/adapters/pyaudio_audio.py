"""The PyAudio backend: PortAudio callback streams, supervised by one thread.

Rules this module keeps:

- Callback streams only. PortAudio's blocking read on plug-over-jack devices
  was seen spinning at 100 % CPU; a callback that is not called is
  a stall we can see and act on.
- Every PortAudio call other than the callbacks happens on one supervisor
  thread owned by the engine: opening (which probes every ALSA PCM and can take
  hundreds of milliseconds), watching, closing and reopening. The asyncio loop
  never waits on PortAudio except in `stop()`, which is bounded.
- Streams open at the wire rate (24 kHz) when the device takes it, else at a
  rate it does take, and the engine resamples with soxr.
- A microphone and speaker on one card at one rate (a USB speakerphone, a
  codec HAT) run as one duplex stream: one clock, one PortAudio thread and
  one callback per period, where two streams cost twice the wake-ups. Two
  cards have two clocks and get two streams, so neither drifts against the
  other inside one callback.
- Channels: the microphone opens in mono. On a stereo-only microphone
  PortAudio's ALSA host opens both channels and hands us the first; a host
  API that refuses mono gets a stereo stream and the engine keeps the first
  channel itself. The speaker opens in stereo whenever the device has two
  channels and the engine writes the voice to both: many DACs (I2S HATs, USB
  codecs) take stereo only, and a mono stream on them relies on whatever
  the host API does with the channel it adds (it need not copy the voice).
- PortAudio's callback threads keep their Python thread state from the first
  callback until their stream closes (`_ThreadStates`). PyAudio enters Python
  with `PyGILState_Ensure` and leaves with `PyGILState_Release`; on a thread
  Python did not start, that pair makes and frees a thread state every
  period (with an `mmap`, `munmap` and page fault for its frame stack).
- A device that is missing, fails to open, stops calling back, or reports its
  stream inactive puts the engine in `audio_error`; the supervisor closes
  everything, waits `retry_delay_s`, and rescans (a fresh `Pa_Initialize`,
  because PortAudio only enumerates devices there) until the device is back.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from typing import Any

import numpy as np
import pyaudio

from swaramd.adapters.audio_backend import AudioHealth, DeviceBackend, DeviceHost
from swaramd.adapters.audio_devices import (
    AudioDevice,
    Direction,
    devices_of,
    find_device,
    new_pyaudio,
)
from swaramd.core.errors import AudioDeviceError
from swaramd.core.protocol import WIRE_RATE

log = logging.getLogger(__name__)

_FALLBACK_RATES = (48_000, 44_100, 32_000, 16_000, 96_000)


class _ThreadStates:
    """Keeps each PortAudio callback thread's Python thread state between callbacks.

    The first callback on a thread takes one more `PyGILState_Ensure` than PyAudio's,
    so PyAudio's `PyGILState_Release` no longer frees the state. The matching release
    runs on the same thread: before the streams close, `give_back` asks for it and the
    next callback gives it (within a period). Which threads hold one is marked in a
    `threading.local`, which lives in the thread state itself: a new thread that gets
    an old one's id never looks like it holds one. A stream whose callbacks have stopped
    (a hung device) cannot give its state back, and it stays allocated (about 20 kB);
    after `MAX_LEFT` such, states are no longer kept, so a device that keeps hanging
    costs CPU, never unbounded memory. Callback threads and the supervisor call these
    with the GIL held."""

    MAX_LEFT = 4

    def __init__(self) -> None:
        api = getattr(ctypes, "pythonapi", None)     # CPython only
        self._ensure = self._release = None
        if api is not None:
            self._ensure = api.PyGILState_Ensure
            self._ensure.argtypes, self._ensure.restype = [], ctypes.c_int
            self._release = api.PyGILState_Release
            self._release.argtypes, self._release.restype = [ctypes.c_int], None
        self._mine = threading.local()     # .held: what our Ensure returned on this thread
        self._giving_back = False
        self.kept = 0                      # callback threads whose state is kept now
        self.left = 0                      # states left behind by hung streams

    def enter(self) -> None:
        """First thing in every callback."""
        mine = self._mine
        held = getattr(mine, "held", None)
        if held is not None:
            if self._giving_back and self._release is not None:
                mine.held = None
                self.kept -= 1
                self._release(held)        # PyAudio's own release then frees the state
            return
        if self._ensure is not None and not self._giving_back and self.left < self.MAX_LEFT:
            mine.held = self._ensure()
            self.kept += 1

    def give_back(self, timeout_s: float) -> None:
        """The streams are about to close: have each callback thread release its state,
        waiting at most `timeout_s` for their next callbacks."""
        self._giving_back = True
        deadline = time.monotonic() + timeout_s
        while self.kept > 0 and time.monotonic() < deadline:
            time.sleep(0.005)

    def closed(self) -> None:
        """The streams are closed (their threads joined): count what was left behind."""
        if self.kept > 0:
            self.left += self.kept
            log.info("%d callback thread state(s) left behind by a stream that stopped "
                     "calling back (%d in all%s)", self.kept, self.left,
                     "; no longer keeping them" if self.left >= self.MAX_LEFT else "")
        self.kept = 0
        self._giving_back = False


class PyAudioDevice(DeviceBackend):
    """The engine's devices on PortAudio (through PyAudio)."""

    thread_name = "swaramd-audio"

    def __init__(self, prefer_rate: int | None = None) -> None:
        self.prefer_rate = prefer_rate      # force a device rate (tests of the soxr path)
        self._host: DeviceHost | None = None
        self._pa: Any = None
        self._streams: list[Any] = []
        self._in_channels = 1
        self._out_channels = 1
        self._out_buf = np.zeros(0, dtype=np.int16)
        self._out_mono = self._out_buf
        self._out_frames = self._out_buf.reshape(0, 1)
        self._out_latency_s = 0.0          # the stream's own figure, when a callback has none
        self._period_s = 0.02
        self.thread_states = _ThreadStates()

    # --- supervisor thread ---------------------------------------------------

    def run(self, host: DeviceHost) -> None:
        """Supervise the streams: open, watch, close, and retry after `retry_delay_s`."""
        self._host = host
        try:
            while not host.stopping.is_set():
                host.beat()
                try:
                    self._open(host)
                except (AudioDeviceError, OSError, ValueError) as exc:
                    self._close()
                    host.report(AudioHealth.ERROR, _reason(exc))
                    host.wait_retry()
                    continue
                host.report(AudioHealth.OK)
                problem = self._watch(host)
                if problem is not None:     # report first: closing a hung device may block
                    host.report(AudioHealth.ERROR, problem)
                self._close()
                if problem is None:
                    break
                host.wait_retry()
        finally:
            self._close()

    def _open(self, host: DeviceHost) -> None:
        cfg = host.cfg
        self._pa = pa = new_pyaudio()
        devices = devices_of(pa)
        dev_in = find_device(devices, cfg.input_device, "input", _default(pa, "input"))
        dev_out = find_device(devices, cfg.output_device, "output", _default(pa, "output"))
        in_rate, self._in_channels = self._choose_format(pa, dev_in, "input")
        out_rate, self._out_channels = self._choose_format(pa, dev_out, "output")
        duplex = dev_in.index == dev_out.index and in_rate == out_rate and (
            self._in_channels == self._out_channels
            or _supported(pa, out_rate, dev_in, self._out_channels, ("input", "output")))
        if duplex:
            self._in_channels = self._out_channels
        self.duplex = duplex
        period_ms = host.period_ms
        self._period_s = period_ms / 1000
        in_period = in_rate * period_ms // 1000
        out_period = out_rate * period_ms // 1000
        ch = self._out_channels
        self._out_buf = np.zeros(out_period * ch, dtype=np.int16)
        self._out_frames = self._out_buf.reshape(out_period, ch)
        self._out_mono = self._out_buf if ch == 1 else np.zeros(out_period, dtype=np.int16)
        if duplex:
            # One device both ways (a USB speakerphone, a codec HAT): one duplex stream,
            # one clock, one callback and one PortAudio thread per period instead of two.
            out_stream = pa.open(
                rate=out_rate, channels=ch, format=pyaudio.paInt16, input=True,
                output=True, input_device_index=dev_in.index,
                output_device_index=dev_out.index, frames_per_buffer=out_period,
                start=False, stream_callback=self._duplex_callback)
            self._streams.append(out_stream)
        else:
            out_stream = pa.open(rate=out_rate, channels=ch, format=pyaudio.paInt16,
                                 output=True, output_device_index=dev_out.index,
                                 frames_per_buffer=out_period, start=False,
                                 stream_callback=self._output_callback)
            self._streams.append(out_stream)
            in_stream = pa.open(rate=in_rate, channels=self._in_channels,
                                format=pyaudio.paInt16, input=True,
                                input_device_index=dev_in.index,
                                frames_per_buffer=in_period, start=False,
                                stream_callback=self._input_callback)
            self._streams.append(in_stream)
        self._out_latency_s = out_stream.get_output_latency()
        host.prepare(in_rate, out_rate, out_period, self._out_latency_s)
        for stream in self._streams:
            stream.start_stream()
        log.info("audio open: in %r at %d Hz x%d, out %r at %d Hz x%d%s", dev_in.name, in_rate,
                 self._in_channels, dev_out.name, out_rate, ch,
                 " (one duplex stream)" if duplex else "")

    def _choose_format(self, pa: Any, dev: AudioDevice, direction: Direction) -> tuple[int, int]:
        """The first (rate, channels) the device takes: 24 kHz if it can; mono in, stereo out."""
        rates = [self.prefer_rate] if self.prefer_rate else [WIRE_RATE, dev.default_rate,
                                                             *_FALLBACK_RATES]
        max_ch = dev.channels(direction)
        channels = (1, 2, max_ch) if direction == "input" else (2, 1, max_ch)
        for rate in dict.fromkeys(rates):
            for ch in dict.fromkeys(channels):
                if ch > max_ch:
                    continue
                if _supported(pa, rate, dev, ch, (direction,)):
                    return rate, ch
        raise AudioDeviceError(f"{direction} device {dev.name!r} takes none of the rates "
                               f"{', '.join(map(str, dict.fromkeys(rates)))} in 16-bit")

    def _watch(self, host: DeviceHost) -> str | None:
        """Wait while the streams run; the reason they failed, or None when asked to stop."""
        while not host.stopping.wait(min(0.25, host.tuning.stall_timeout_s / 4)):
            host.beat()
            if not all(s.is_active() for s in self._streams):
                return "an audio stream stopped"
            if (problem := host.stalled()) is not None:
                return problem
        return None

    def _close(self) -> None:
        streams, self._streams = self._streams, []
        if streams:
            self.thread_states.give_back(max(0.1, 5 * self._period_s))
        for stream in streams:
            try:
                stream.close()          # Pa_CloseStream aborts an active stream at once
            except Exception as exc:    # a vanished device may fail to close; go on
                log.debug("closing an audio stream failed: %s", exc)
        self.thread_states.closed()
        pa, self._pa = self._pa, None
        if pa is not None:
            try:
                pa.terminate()
            except Exception as exc:
                log.debug("terminating PortAudio failed: %s", exc)

    # --- PortAudio's callback threads ------------------------------------------

    def _input_callback(self, in_data: bytes | None, frame_count: int, time_info: Any,
                        status: int) -> tuple[None, int]:
        self.thread_states.enter()
        self._capture(in_data, time_info, status)
        return None, pyaudio.paContinue

    def _output_callback(self, in_data: bytes | None, frame_count: int, time_info: Any,
                         status: int) -> tuple[Any, int]:
        self.thread_states.enter()
        return self._render(frame_count, time_info, status), pyaudio.paContinue

    def _duplex_callback(self, in_data: bytes | None, frame_count: int, time_info: Any,
                         status: int) -> tuple[Any, int]:
        self.thread_states.enter()
        self._capture(in_data, time_info, status)
        return self._render(frame_count, time_info, status), pyaudio.paContinue

    def _capture(self, in_data: bytes | None, time_info: Any, status: int) -> None:
        host = self._host
        assert host is not None
        if status & pyaudio.paInputOverflow:
            host.count_xrun(overflow=True)
        if in_data:
            samples = np.frombuffer(in_data, dtype=np.int16)
            ch = self._in_channels
            # When the first sample left the ADC, on our clock (the echo canceller's alignment).
            ago = time_info["current_time"] - time_info["input_buffer_adc_time"]
            adc = time.monotonic() - ago if 0.0 <= ago < 1.0 else None
            host.capture(samples if ch == 1 else samples[::ch], adc)

    def _render(self, frame_count: int, time_info: Any, status: int) -> Any:
        host = self._host
        assert host is not None
        if status & pyaudio.paOutputUnderflow:
            host.count_xrun(underflow=True)
        latency = time_info["output_buffer_dac_time"] - time_info["current_time"]
        if not 0.0 < latency < 1.0:
            latency = self._out_latency_s
        mono = self._out_mono
        if frame_count != len(mono):    # PortAudio keeps frames_per_buffer; be safe anyway
            mono = np.zeros(frame_count, dtype=np.int16)
            host.render(mono, latency)
            return np.repeat(mono, self._out_channels)
        host.render(mono, latency)
        if self._out_channels > 1:
            np.copyto(self._out_frames, mono[:, None])
        return self._out_buf


def _supported(pa: Any, rate: int, dev: AudioDevice, channels: int,
               directions: tuple[Direction, ...]) -> bool:
    """Whether the device takes 16-bit `channels` at `rate` in every one of `directions`
    at once (both: one duplex stream)."""
    kw: dict[str, int] = {}
    for d in directions:
        kw |= {f"{d}_device": dev.index, f"{d}_channels": channels,
               f"{d}_format": pyaudio.paInt16}
    try:
        return bool(pa.is_format_supported(rate, **kw))
    except ValueError:
        return False


def _default(pa: Any, direction: Direction) -> int | None:
    try:
        info = (pa.get_default_input_device_info() if direction == "input"
                else pa.get_default_output_device_info())
        return int(info["index"])
    except OSError:
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, AudioDeviceError):
        return str(exc)
    return f"cannot open the audio devices: {exc}"
