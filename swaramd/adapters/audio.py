"""The audio engine: what the daemon sees of the microphone and the speaker.

One engine holds the logic (rings, resampling, echo cancellation, framing,
backlog, health, watchdog, counters); a `DeviceBackend` is only the device
side: PyAudio callback streams (`pyaudio_audio`) or WAV files paced by a
clock (`wav_audio`). The backend's `run(host)` is the body of the engine's one
device thread: it opens the devices, then calls `host.capture` and
`host.render` once per period (from PortAudio's threads, or its own), and
reports health, all through `DeviceHost` (`audio_backend`), the whole
interface a backend sees; everything else runs on the asyncio loop. The two
halves meet only in lock-guarded rings (`core.ring`, `core.jitter`), in an
eventfd the loop watches (the capture wake, 50 times a second) and in
`loop.call_soon_threadsafe` for the rare events:

    device thread                        asyncio loop
    capture period -> SampleRing  ---wake--> pump: resample, cancel echo, mic steps,
                                                   frame, backlog -> next_frame()
    render period  <- PlaybackBuffer <------ play(): decode, resample
    render period  -> reference SampleRing --> pump: the canceller's reference
    open / fail / recover --------------wake--> health callback (state audio_error)

Rules this module keeps:

- The device thread never blocks on the loop and allocates no audio buffers;
  it wakes the loop at most once per capture period, and only when no wake is
  already pending. That wake is one `eventfd_write`: `call_soon_threadsafe`
  also allocates a handle and copies a context in the device thread, and the
  loop's self-pipe drain raises and builds an exception on every wake.
- Audio on the wire is 24 kHz mono PCM16 (`core.protocol.WIRE_RATE`); the
  device may run at another rate, and the resampling happens here, on the
  loop, never in the device thread.
- The uplink backlog is bounded: when the link lags, the oldest frames go and
  are counted, so an outage never grows memory.
- Echo cancellation (`audio.echo_cancel`, `core.echo`) runs in the pump, on
  the loop, before framing: the uplink, the mic gate and every `MicStep`
  hear the cancelled mic. The render period copies what it wrote (after
  volume, silence included) into a preallocated reference ring, with the
  time it reaches the DAC; the capture period notes when it left the ADC.
  That copy is all the device thread does for it. The canceller lives as
  long as the engine: never reset per reply or per device reopen.
- Device trouble is a state (`AudioHealth.ERROR`, the appliance's
  `audio_error`), reported on the loop, never an exception into the daemon;
  the backend retries by itself, with a delay, never in a tight loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soxr

from swaramd.adapters.audio_backend import (
    MAX_DEVICE_PERIOD_MS,
    AudioHealth,
    DeviceBackend,
    EngineTuning,
    HealthCallback,
)
from swaramd.adapters.volume import Volume
from swaramd.core.backlog import FrameBacklog, Framer
from swaramd.core.config import AudioConfig, Backend
from swaramd.core.echo import EchoCanceller, MicStep
from swaramd.core.errors import AudioDeviceError
from swaramd.core.jitter import PlaybackBuffer
from swaramd.core.protocol import WIRE_RATE
from swaramd.core.ring import SampleRing, Samples
from swaramd.core.status import AudioCounters

log = logging.getLogger(__name__)

_UNITY_Q15 = 1 << 15
ECHO_FRAME_MS = 20       # the canceller's frame: one device period
ECHO_FILTER_MS = 300     # the echo tail it cancels, from the estimated delay on


class Mark(NamedTuple):
    """A ring position and the `time.monotonic()` at which its sample met the air."""

    position: int
    time: float


class AudioEngine:
    """Microphone frames out, reply audio in, with health and counters; see the module doc."""

    def __init__(self, cfg: AudioConfig, loop: asyncio.AbstractEventLoop, volume: Volume,
                 device: DeviceBackend, *, on_health: HealthCallback | None = None,
                 tuning: EngineTuning | None = None) -> None:
        self._cfg = cfg
        self._tuning = tuning or EngineTuning()
        self.volume = volume
        self.device = device
        self.on_health = on_health
        self._loop = loop
        self._frame_samples = WIRE_RATE * cfg.frame_ms // 1000
        self._framer = Framer(self._frame_samples)
        self._backlog = FrameBacklog(max(1, round(self._tuning.backlog_s * 1000
                                                  / cfg.frame_ms)))
        self._frame_ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._drain_check: asyncio.TimerHandle | None = None
        self.uplink_enabled = True
        self._gain_q15 = volume.gain_q15
        self._health = AudioHealth.STARTING
        self._health_reason: str | None = None
        self._first_report: asyncio.Future[None] = loop.create_future()
        self._in_rate = 0
        self._out_rate = 0
        self._out_latency_s = 0.0
        self._drain_delay_s = 0.0
        self._retired_underruns = 0         # counts of rings already replaced
        self._retired_overruns = 0
        self._device_underflows = 0         # late periods the device itself reported
        self._device_overflows = 0
        self._capture: SampleRing | None = None
        self._playback: PlaybackBuffer | None = None
        self._scratch = np.zeros(0, dtype=np.int32)
        self._up: Any = None                # soxr.ResampleStream device rate -> 24 kHz
        self._down: Any = None              # soxr.ResampleStream 24 kHz -> device rate
        self._resampler_rates = (0, 0)
        self._pump_pending = False
        self._wake_fd = -1                  # eventfd: the device thread's wake for the pump
        self._wake_samples = 1              # captured samples that make the pump worth a wake
        self._last_capture = 0.0
        self._last_render = 0.0
        self._heartbeat = 0.0               # the device thread's last sign of progress
        self._stopping = threading.Event()
        self._retry_event = threading.Event()   # set: stop waiting for the next retry
        self._thread: threading.Thread | None = None
        self._error_since: float | None = None  # when the current audio_error period began
        self._ok_since = 0.0
        self._render_mark = Mark(0, 0.0)    # playback device position, when it reaches the DAC
        self._mic_steps: list[MicStep] = []
        self._reference: SampleRing | None = None   # what the speaker played, for the canceller
        self._reference_mark = Mark(0, 0.0)  # reference ring position, when it reached the DAC
        self._capture_mark = Mark(0, 0.0)    # capture ring position, when it left the ADC
        self._ref_up: Any = None            # soxr.ResampleStream output rate -> 24 kHz
        self.echo: EchoCanceller | None = None
        self.echo_problem: str | None = None    # why echo cancellation does not run
        self._start_echo_canceller()
        self._size_rings(WIRE_RATE, WIRE_RATE, self._frame_samples, 0.0)

    # --- what backends see (DeviceHost) ------------------------------------

    @property
    def cfg(self) -> AudioConfig:
        """The `audio` section the engine runs."""
        return self._cfg

    @property
    def tuning(self) -> EngineTuning:
        """Sizes and timings (tests shorten them)."""
        return self._tuning

    @property
    def stopping(self) -> threading.Event:
        """Set when the device thread must close its devices and return."""
        return self._stopping

    @property
    def period_ms(self) -> int:
        """The device period: `frame_ms`, at most MAX_DEVICE_PERIOD_MS."""
        return min(self._cfg.frame_ms, MAX_DEVICE_PERIOD_MS)

    @property
    def duplex(self) -> bool:
        """Whether microphone and speaker run as one stream (one card both ways)."""
        return self.device.duplex

    @property
    def hears_speaker(self) -> bool:
        """Whether the microphone can hear the speaker (two WAV files cannot)."""
        return self.device.hears_speaker

    def _start_echo_canceller(self) -> None:
        """Make the one canceller of the engine's life, or note why there is none."""
        if self.cfg.echo_cancel != "on":
            self.echo_problem = "audio.echo_cancel is off"
        elif not self.device.hears_speaker:
            self.echo_problem = f"the {self.cfg.backend} backend's microphone hears no speaker"
        else:
            from swaramd.adapters.speex import SpeexEchoKernel, SpeexUnavailable
            try:
                kernel = SpeexEchoKernel(WIRE_RATE * ECHO_FRAME_MS // 1000,
                                         WIRE_RATE * ECHO_FILTER_MS // 1000, WIRE_RATE)
            except SpeexUnavailable as exc:
                self.echo_problem = str(exc)
            else:
                self.echo = EchoCanceller(kernel, WIRE_RATE)

    # --- life cycle --------------------------------------------------------

    async def start(self) -> AudioHealth:
        """Open the devices (in the background) and wait, bounded, for the first outcome."""
        if self._wake_fd < 0:
            self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._loop.add_reader(self._wake_fd, self._on_wake)
        self._start_device()
        try:
            await asyncio.wait_for(asyncio.shield(self._first_report), self.tuning.start_timeout_s)
        except TimeoutError:
            log.warning("audio devices have not opened after %.0f s; still trying",
                        self.tuning.start_timeout_s)
        return self._health

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the device thread and close every stream it opened; waits at most `timeout_s`."""
        if self._drain_check is not None:
            self._drain_check.cancel()
        self._stop_device(timeout_s)
        self._health = AudioHealth.STOPPED
        fd = self._wake_fd
        # A device thread that would not stop may still write to the fd: leave it open
        # rather than have that write land in whatever file reuses the number.
        if fd >= 0 and not self._device_thread_alive():
            self._wake_fd = -1
            self._loop.remove_reader(fd)
            os.close(fd)

    def _start_device(self) -> None:
        """Start the one device thread, which runs the backend; it reports through `report`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._retry_event.clear()
        self._thread = threading.Thread(target=self._device_main, name=self.device.thread_name,
                                        daemon=True)
        self._thread.start()

    def _device_main(self) -> None:
        try:
            self.device.run(self)
        except Exception:
            log.exception("audio device thread crashed")
            self.report(AudioHealth.ERROR, "audio device thread crashed")
            raise

    def _stop_device(self, timeout_s: float) -> None:
        """Ask the device thread to stop (it closes its devices) and join it, bounded."""
        self._stopping.set()
        self._retry_event.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("%s did not stop within %.1f s", thread.name, timeout_s)
            else:
                self._thread = None

    def retry_now(self) -> None:
        """Cut the wait before the next attempt to reopen a failed device short (a button
        press in `audio_error`). Once per call: it never makes the retries a tight loop."""
        self._retry_event.set()

    def _device_thread_alive(self) -> bool:
        """Whether the backend's device thread is running."""
        return self._thread is not None and self._thread.is_alive()

    # --- uplink ------------------------------------------------------------

    async def next_frame(self) -> bytes:
        """The next uplink frame: `frame_ms` of 24 kHz mono PCM16 little-endian."""
        while True:
            frame = self._backlog.pop()
            if frame is not None:
                return frame
            self._frame_ready.clear()
            await self._frame_ready.wait()

    def clear_uplink(self) -> int:
        """Drop every frame waiting for the link (e.g. audio from before `session.updated`)."""
        self._framer.reset()
        return self._backlog.clear()

    # --- downlink ----------------------------------------------------------

    def play(self, pcm: bytes, response_id: str) -> None:
        """Queue 24 kHz mono PCM16 reply audio (whether it may still play at all is the
        conversation's rule: late audio never reaches this)."""
        playback = self._playback
        assert playback is not None
        samples: Samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
        down = self._downsampler()
        if down is not None:
            samples = down.resample_chunk(samples)
        playback.push(samples, response_id)
        if playback.active:
            self._drained.clear()

    def end_response(self, response_id: str) -> None:
        """The response is done (`response.done`): play what is queued even below the prebuffer."""
        playback = self._playback
        assert playback is not None
        down = self._downsampler()
        if down is not None:
            tail = down.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
            playback.push(tail, response_id)
            self._down = None               # a fresh stream for the next response
        if playback.end_response(response_id):
            self._schedule_drained_check()

    def flush(self) -> list[str]:
        """Barge-in: silence the speaker from the next period on and drop all queued audio;
        returns the responses that had audio queued."""
        assert self._playback is not None
        dropped = self._playback.flush()
        self._down = None
        self._drained.set()
        return dropped

    @property
    def playing(self) -> bool:
        """True while reply audio is queued, playing, or still in the device's buffer."""
        assert self._playback is not None
        return self._playback.active or not self._drained.is_set()

    async def wait_drained(self) -> None:
        """Wait until the last queued reply sample has left the speaker."""
        await self._drained.wait()

    def delivered_samples(self, response_id: str) -> int:
        """24 kHz samples of a response the listener has heard so far (output latency counted)."""
        assert self._playback is not None
        handed, last_pos = self._playback.handed(response_id)
        if handed == 0:
            return 0
        mark = self._render_mark
        played = mark.position + (time.monotonic() - mark.time) * self._out_rate
        played = min(played, self._playback.device_pos)
        heard = handed - max(0.0, last_pos - played)
        return max(0, round(min(heard, handed) * WIRE_RATE / self._out_rate))

    def add_mic_step(self, step: MicStep) -> None:
        """Run `step` on every captured block, after the echo canceller, in the order
        added (see `core.echo.MicStep`). It sees the mic even while the uplink is off."""
        self._mic_steps.append(step)

    def echo_status(self) -> dict[str, Any]:
        """The `audio.echo_cancel` object of `swaramd status`."""
        if self.echo is None:
            return {"active": False, "erle_db": None, "delay_ms": None,
                    "reason": self.echo_problem}
        return self.echo.stats().as_dict()

    def set_volume(self, level: int) -> int:
        """Set the speaker level (0-100), applied from the next period and persisted."""
        level = self.volume.set(level)
        self._gain_q15 = self.volume.gain_q15
        return level

    # --- health and counters -----------------------------------------------

    @property
    def health(self) -> AudioHealth:
        """Whether the devices are open and delivering."""
        return self._health

    @property
    def health_reason(self) -> str | None:
        """Why the devices are not OK (for logs and status), or None."""
        return self._health_reason

    @property
    def device_rates(self) -> tuple[int, int]:
        """(input, output) device rates: 24000 unless a device would not take it."""
        return self._in_rate, self._out_rate

    @property
    def rendered_samples(self) -> int:
        """Device-rate samples rendered to the speaker so far, silence included.

        With the WAV backend this is the output file's sample index, i.e. time.
        """
        assert self._playback is not None
        return self._playback.device_pos

    @property
    def last_callback(self) -> float | None:
        """`time.monotonic()` of the older of the last capture and last render periods."""
        last = min(self._last_capture, self._last_render)
        return last or None

    def alive(self, now: float | None = None) -> bool:
        """For the systemd watchdog: callbacks are recent, or the engine is making progress
        recovering (its device thread beats). A thread stuck in a hung device (blocked in a
        close, an open or a read) stops beating: then this is False and systemd restarts us.
        A device that is merely missing keeps the watchdog fed while it is retried, for
        `error_grace_s`: long enough that systemd's restarts (which may clear a wedged
        driver) come minutes apart and never reach the unit's start limit."""
        now = time.monotonic() if now is None else now
        if self._error_since is not None:
            # A device that reopens and fails again at once is still failing: the period
            # ends only once it has stayed OK for `recovered_after_s`.
            if (self._health is AudioHealth.OK
                    and now - self._ok_since >= self.tuning.recovered_after_s):
                self._error_since = None
            elif now - self._error_since > self.tuning.error_grace_s:
                return False
        if self._health is AudioHealth.OK:
            last = self.last_callback
            return last is not None and now - last < self.tuning.stall_timeout_s
        return (self._health is not AudioHealth.STOPPED and self._device_thread_alive()
                and now - self._heartbeat < self.tuning.stuck_after_s)

    def counters(self) -> AudioCounters:
        """Underruns, overruns and dropped uplink frames since the engine was made."""
        cap, pb = self._capture, self._playback
        assert cap is not None and pb is not None
        return AudioCounters(
            underruns=self._retired_underruns + pb.underruns + self._device_underflows,
            overruns=(self._retired_overruns + cap.overflows + pb.overflows
                      + self._device_overflows),
            dropped_frames=self._backlog.dropped)

    # --- for backends: the device thread -----------------------------------

    def prepare(self, in_rate: int, out_rate: int, out_period: int,
                out_latency_s: float) -> None:
        """Size the rings for devices about to start; call before their first period."""
        self._size_rings(in_rate, out_rate, out_period, out_latency_s)
        self._last_capture = self._last_render = time.monotonic()

    def _size_rings(self, in_rate: int, out_rate: int, out_period: int,
                    out_latency_s: float) -> None:
        self._out_latency_s = out_latency_s
        # The period that drained plays out from `latency` to `latency + period` later.
        self._drain_delay_s = out_latency_s + out_period / out_rate
        if out_period > len(self._scratch):
            self._scratch = np.zeros(out_period, dtype=np.int32)
        t = self._tuning
        cap, pb = self._capture, self._playback
        if in_rate != self._in_rate:
            if cap is not None:
                self._retired_overruns += cap.overflows
            self._capture = SampleRing(max(in_rate // 10, int(in_rate * t.capture_s)))
            self._in_rate = in_rate
        self._set_next_wake()
        if out_rate != self._out_rate:
            if pb is not None:
                self._retired_underruns += pb.underruns
                self._retired_overruns += pb.overflows
            self._playback = PlaybackBuffer(max(out_rate, int(out_rate * t.playback_s)),
                                            out_rate * self.cfg.prebuffer_ms // 1000)
            self._out_rate = out_rate
            if self.echo is not None:
                self._reference = SampleRing(out_rate)
                self._ref_up = None

    def report(self, health: AudioHealth, reason: str | None = None) -> None:
        """Tell the loop the devices opened, failed or recovered (thread-safe)."""
        if health is AudioHealth.OK:
            self._retry_event.clear()       # a press while they were reopening is answered
        try:
            self._loop.call_soon_threadsafe(self._set_health, health, reason)
        except RuntimeError:                 # the loop is closed: nobody left to tell
            pass

    def beat(self) -> None:
        """The device thread is making progress."""
        self._heartbeat = time.monotonic()

    def stalled(self) -> str | None:
        """Why running devices count as failed, or None while both deliver periods."""
        now, stall = time.monotonic(), self._tuning.stall_timeout_s
        if now - self._last_capture > stall:
            return f"the microphone stopped delivering audio ({stall:g} s)"
        if now - self._last_render > stall:
            return f"the speaker stopped taking audio ({stall:g} s)"
        return None

    def wait_retry(self) -> None:
        """Wait `retry_delay_s` before the next attempt to open the devices, beating
        meanwhile; a stop or `retry_now()` ends the wait early."""
        deadline = time.monotonic() + self._tuning.retry_delay_s
        while (left := deadline - time.monotonic()) > 0 and not self._stopping.is_set():
            self.beat()
            if self._retry_event.wait(min(left, 0.5)):
                break
        self._retry_event.clear()

    # --- for backends: once per period, device or callback thread ----------

    def capture(self, samples: Samples, adc_time: float | None = None) -> None:
        """Hand one captured period (mono, device rate) to the loop; `adc_time` is the
        `time.monotonic()` at which its first sample was captured."""
        now = self._last_capture = time.monotonic()
        cap = self._capture
        assert cap is not None
        when = now - len(samples) / self._in_rate if adc_time is None else adc_time
        self._capture_mark = Mark(cap.written, when)
        cap.write(samples)
        if not self._pump_pending and cap.available >= self._wake_samples:
            self._pump_pending = True
            try:
                os.eventfd_write(self._wake_fd, 1)
            except OSError:                 # not started, or stopped: nobody to wake
                self._pump_pending = False

    def render(self, out: Samples, latency_s: float) -> None:
        """Fill one period for the speaker (mono, device rate), volume applied."""
        now = time.monotonic()
        self._last_render = now
        pb = self._playback
        assert pb is not None
        self._render_mark = Mark(pb.device_pos, now + latency_s)
        drained = pb.render(out)
        gain = self._gain_q15
        if gain != _UNITY_Q15 and pb.last_audio:   # silence needs no scaling
            n = len(out)
            scratch = self._scratch[:n] if n <= len(self._scratch) else np.empty(n, np.int32)
            np.multiply(out, gain, out=scratch, dtype=np.int32)
            np.right_shift(scratch, 15, out=scratch)
            np.copyto(out, scratch, casting="unsafe")
        ref = self._reference
        if ref is not None:                 # the canceller's reference: exactly what played
            self._reference_mark = Mark(ref.written, now + latency_s)
            ref.write(out)
        if drained:
            try:
                self._loop.call_soon_threadsafe(self._schedule_drained_check)
            except RuntimeError:
                pass

    def count_xrun(self, *, underflow: bool = False, overflow: bool = False) -> None:
        """Count glitches the device itself reported (late callbacks)."""
        self._device_underflows += underflow
        self._device_overflows += overflow

    # --- loop side internals -----------------------------------------------

    def _on_wake(self) -> None:
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass
        self._pump()

    def _pump(self) -> None:
        self._pump_pending = False
        cap = self._capture
        assert cap is not None
        first = cap.oldest
        samples = cap.read()
        if not len(samples):
            return
        mark = self._capture_mark
        t = mark.time + (first - mark.position) / self._in_rate
        up = self._upsampler()
        if up is not None:
            samples = up.resample_chunk(samples)
        if self.echo is not None:
            self._feed_reference(self.echo)
            samples = self.echo.process(samples, t)
        for step in self._mic_steps:
            samples = step.process(samples, t)
        if not self.uplink_enabled:
            return
        for frame in self._framer.feed(samples):
            self._backlog.push(frame)
        self._set_next_wake()
        if len(self._backlog):
            self._frame_ready.set()
        # A period captured while this pump ran was weighed against the old threshold;
        # if it already completes the next frame, no later period may come to wake us
        # (the input ended), so pump it now.
        if not self._pump_pending and cap.available >= self._wake_samples:
            self._pump_pending = True
            self._loop.call_soon(self._pump)

    def _set_next_wake(self) -> None:
        """Wake the loop once the ring holds what completes the framer's next frame.

        One wake per uplink frame, not per device period: a 40 ms frame on 20 ms periods
        wakes it every other period, and a frame leaves as soon as its last period is
        captured either way. The framer's partial frame counts (a late loop may have read
        an odd number of periods)."""
        framer = self._framer
        self._wake_samples = max(1, (framer.frame_samples - framer.pending)
                                 * self._in_rate // WIRE_RATE)

    def _feed_reference(self, echo: EchoCanceller) -> None:
        """Hand the canceller what the speaker played since the last pump, at 24 kHz."""
        ref = self._reference
        if ref is None:
            return
        first = ref.oldest
        samples = ref.read()
        if not len(samples):
            return
        mark = self._reference_mark
        t = mark.time + (first - mark.position) / self._out_rate
        if self._out_rate != WIRE_RATE:
            if self._ref_up is None:
                self._ref_up = soxr.ResampleStream(self._out_rate, WIRE_RATE, 1, dtype="int16",
                                                   quality="HQ")
            samples = self._ref_up.resample_chunk(samples)
        echo.push_reference(samples, t)

    def _upsampler(self) -> Any:
        self._check_resampler_rate()
        if self._up is None and self._in_rate != WIRE_RATE:
            self._up = soxr.ResampleStream(self._in_rate, WIRE_RATE, 1, dtype="int16",
                                           quality="HQ")
        return self._up

    def _downsampler(self) -> Any:
        self._check_resampler_rate()
        if self._down is None and self._out_rate != WIRE_RATE:
            self._down = soxr.ResampleStream(WIRE_RATE, self._out_rate, 1, dtype="int16",
                                             quality="HQ")
        return self._down

    def _check_resampler_rate(self) -> None:
        rates = (self._in_rate, self._out_rate)
        if self._resampler_rates != rates:
            self._up = self._down = None
            self._resampler_rates = rates

    def _schedule_drained_check(self) -> None:
        if self._drain_check is not None:
            self._drain_check.cancel()
        self._drain_check = self._loop.call_later(self._drain_delay_s, self._check_drained)

    def _check_drained(self) -> None:
        self._drain_check = None
        assert self._playback is not None
        if not self._playback.active:
            self._drained.set()

    def _set_health(self, health: AudioHealth, reason: str | None) -> None:
        if not self._first_report.done():
            self._first_report.set_result(None)
        if self._health is AudioHealth.STOPPED:
            return
        if (health, reason) == (self._health, self._health_reason):
            return
        previous, self._health, self._health_reason = self._health, health, reason
        if health is AudioHealth.OK:
            self._ok_since = time.monotonic()
        elif health is AudioHealth.ERROR and self._error_since is None:
            self._error_since = time.monotonic()
        if health is AudioHealth.ERROR:
            log.warning("audio device problem: %s", reason)
            self.flush()
            self._framer.reset()
            self._up = None
        elif health is AudioHealth.OK and previous is AudioHealth.ERROR:
            log.info("audio devices recovered (in %d Hz, out %d Hz)", *self.device_rates)
            if self.echo is not None:
                self.echo.devices_restarted()
        if self.on_health is not None:
            self.on_health(health, reason)


def open_audio(cfg: AudioConfig, loop: asyncio.AbstractEventLoop, state_dir: Path | None,
               *, on_health: HealthCallback | None = None,
               tuning: EngineTuning | None = None, **backend_options: Any) -> AudioEngine:
    """Make the engine the config names (`audio.backend`); call `await engine.start()` next."""
    device: DeviceBackend
    if cfg.backend == Backend.WAV:
        from swaramd.adapters.wav_audio import WavDevice
        device = WavDevice(cfg, **backend_options)
    elif cfg.backend == Backend.PYAUDIO:
        from swaramd.adapters.pyaudio_audio import PyAudioDevice
        device = PyAudioDevice(**backend_options)
    else:
        raise AudioDeviceError(f"unknown audio backend {cfg.backend!r}")
    return AudioEngine(cfg, loop, Volume(state_dir, cfg.volume), device, on_health=on_health,
                       tuning=tuning)
