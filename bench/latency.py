"""Latency, start-up and footprint of the real daemon on jackd's dummy driver (not a test).

    .venv/bin/python bench/latency.py [--latency-seconds 120] [--minutes 5] [--startups 5]
                                      [--delta-ms 20] [--frame-ms 40]

Everything runs through the real PyAudio -> PortAudio -> ALSA `jack` PCM stack on a
private `jackd --no-realtime -d dummy -r 24000 -p 480` (real-time paced, 20 ms periods),
against a loopback service the bench runs in a thread of its own (its own event loop,
like a network peer). The daemon runs `gpio none`, `always_on`, `gate open`,
`duplex full` (so the service's `speech_started` barges in while a reply plays).

1. Start-up: `swaramd run` as a child process, from just before the fork to the
   `READY=1` datagram on a NOTIFY_SOCKET the bench binds (`--startups` times).
2. Latency (`--latency-seconds`): the real `Daemon` in this process, instrumented:
   - mic-to-wire: every capture period is stamped in `AudioEngine.capture` (wrapped on the
     class) and its samples replaced by a tag naming it (a steady level, so the echo
     canceller rests and passes it bit for bit), so each append the service receives
     names the capture callback that completed it; from that callback to the
     append's arrival at the service;
   - wire-to-speaker: from the link receiving a reply's first delta to its first
     sample reaching the DAC (`engine.delivered_samples(rid) > 0`, which counts the
     device's output latency), polled every ~1 ms;
   - barge-in: from the link receiving `speech_started` while a reply plays to that
     reply's last sample leaving the DAC (`delivered_samples` stops growing),
     polled every ~1 ms.
3. Footprint (`--minutes`): `swaramd run` as a child process holds a duplex
   conversation (mic streaming throughout, a reply every few seconds, every other
   one barged in); its CPU seconds (all threads, /proc/PID/stat) per audio minute
   and its peak private memory (RssAnon, sampled every second). jackd is another
   process and is not counted. The child is not instrumented.

Method, figures and the machine: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import compileall
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Measure the daemon as installed: pip compiles its bytecode, but this checkout may have none
# (PYTHONDONTWRITEBYTECODE), and compiling at import costs about 1.2 MB of private memory.
compileall.compile_dir(ROOT / "swaramd", quiet=1)

from swaramd.adapters.audio import AudioEngine  # noqa: E402
from swaramd.core.config import AudioConfig, parse_config  # noqa: E402
from swaramd.core.events import AudioDelta, SpeechStarted  # noqa: E402
from swaramd.daemon import Daemon  # noqa: E402
from tests.adapters.alsa_rig import Jackd, jack_pcm, write_asoundrc  # noqa: E402
from tests.support.procfs import cpu_s, memory_kb, peak_memory_kb  # noqa: E402

RATE, PERIOD, PREBUFFER_MS = 24_000, 480, 80
FRAME_MS = AudioConfig().frame_ms     # the default uplink frame; --frame-ms changes it
KEY = "swaram_bench_key_0123456789"
TAG_MOD = 32_000        # capture tags 1..32000: unique for 640 s of 20 ms periods
TAG_LEVEL = 1000        # a tagged period's other samples: a steady level (see CaptureStamps)
APPEND_PREFIX = '{"type":"input_audio_buffer.append"'   # core.protocol.audio_append_text


# --- the loopback service (a thread with its own loop) ---------------------------------


@dataclass
class Scenario:
    """One conversation turn, repeated: listen, the user speaks, a reply (maybe cut short)."""

    listen_s: float = 0.6
    speech_s: float = 0.4
    reply_s: float = 1.2
    barge_at_s: float = 0.5      # every other reply: speech_started this far into it
    delta_ms: int = 20           # deltas of this size, sent in real time


@dataclass
class Service:
    """A minimal swaram: session set-up, then the scenario; it records what the bench needs."""

    scenario: Scenario
    record_appends: bool
    appends: list[tuple[float, int]] = field(default_factory=list)  # (arrival, tag)
    append_count: int = 0
    replies: int = 0
    barge_ins: int = 0
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main(ready)),
                                        name="bench-service", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the bench service did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self, ready: threading.Event) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._handle, "127.0.0.1", 0, compression=None,
                         ping_interval=None, max_size=2**20) as server:
            port = server.sockets[0].getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/v1/realtime?model=mal-realtime-simple"
            ready.set()
            await self._stop.wait()
            server.close()

    async def _handle(self, ws: ServerConnection) -> None:
        updated = asyncio.Event()
        reader = asyncio.create_task(self._read(ws, updated))
        try:
            await ws.send(json.dumps({"type": "session.created", "session": {"id": "s1"}}))
            async with asyncio.timeout(10):
                await updated.wait()
            await self._converse(ws)
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            reader.cancel()

    async def _read(self, ws: ServerConnection, updated: asyncio.Event) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                now = time.monotonic()
                if isinstance(text, str) and text.startswith(APPEND_PREFIX):
                    self.append_count += 1
                    if self.record_appends:
                        self.appends.append((now, read_tag(
                            base64.b64decode(json.loads(text)["audio"]))))
                    continue
                event = json.loads(text)
                if event.get("type") == "session.update":
                    await ws.send(json.dumps({"type": "session.updated",
                                              "session": event.get("session", {})}))
                    updated.set()

    async def _converse(self, ws: ServerConnection) -> None:
        sc = self.scenario
        pcm = reply_pcm(sc.reply_s)
        step = RATE * sc.delta_ms // 1000 * 2
        while True:
            await asyncio.sleep(sc.listen_s)
            await ws.send(json.dumps({"type": "input_audio_buffer.speech_started",
                                      "audio_start_ms": 0, "item_id": "u"}))
            await asyncio.sleep(sc.speech_s)
            await ws.send(json.dumps({"type": "input_audio_buffer.speech_stopped",
                                      "audio_end_ms": 0, "item_id": "u"}))
            self.replies += 1
            rid = f"resp_{self.replies}"
            barge = self.replies % 2 == 0
            await ws.send(json.dumps({"type": "response.created", "response": {"id": rid}}))
            start, status = time.monotonic(), "completed"
            for n, i in enumerate(range(0, len(pcm), step)):
                if barge and n * sc.delta_ms >= sc.barge_at_s * 1000:
                    self.barge_ins += 1
                    await ws.send(json.dumps({"type": "input_audio_buffer.speech_started",
                                              "audio_start_ms": 0, "item_id": "u2"}))
                    status = "cancelled"
                    break
                await ws.send(json.dumps({
                    "type": "response.output_audio.delta", "response_id": rid,
                    "item_id": "item", "output_index": 0, "content_index": 0,
                    "delta": base64.b64encode(pcm[i:i + step]).decode("ascii")}))
                await asyncio.sleep(max(0.0, start + (n + 1) * sc.delta_ms / 1000
                                        - time.monotonic()))
            await ws.send(json.dumps({"type": "response.done",
                                      "response": {"id": rid, "status": status}}))
            if barge:
                await asyncio.sleep(sc.speech_s)
                await ws.send(json.dumps({"type": "input_audio_buffer.speech_stopped",
                                          "audio_end_ms": 0, "item_id": "u2"}))
            else:
                await asyncio.sleep(sc.reply_s - (time.monotonic() - start) + 0.2)


def reply_pcm(seconds: float) -> bytes:
    """A voice-like reply with no digital silence in it."""
    t = np.arange(int(RATE * seconds)) / RATE
    audio = 6000 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 300
    return audio.astype("<i2").tobytes()


# --- figures ---------------------------------------------------------------------------------


def summary(name: str, values_s: list[float] | np.ndarray, target: str) -> str:
    v = np.asarray(values_s) * 1e3
    if not len(v):
        return f"{name}: no samples"
    return (f"{name}: p50 {np.percentile(v, 50):.1f} ms, p99 {np.percentile(v, 99):.1f} ms, "
            f"max {v.max():.1f} ms (n={len(v)})   target: {target}")


def config_text(tmp: Path, url: str) -> str:
    return f"""
server: {{url: "{url}", api_key_file: "{tmp / 'key'}"}}
audio: {{backend: pyaudio, input_device: swaram_jack, output_device: swaram_jack,
         frame_ms: {FRAME_MS}, prebuffer_ms: {PREBUFFER_MS}, gate: open, duplex: full}}
gpio: {{pin_factory: none}}
conversation: {{mode: always_on}}
control: {{socket: "{tmp / 'control.sock'}"}}
log: {{level: info}}
"""


# --- 1 and 3: the daemon as a child process ----------------------------------------------------


class Child:
    """`swaramd run` in a child process, READY=1 read from our own NOTIFY_SOCKET."""

    def __init__(self, tmp: Path, log_path: Path) -> None:
        self.tmp, self.log_path = tmp, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = self.ready_after = 0.0

    def start(self, ready_timeout_s: float = 30.0) -> None:
        path = self.tmp / "notify.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.settimeout(ready_timeout_s)
            env = {**os.environ, "NOTIFY_SOCKET": str(path)}
            with open(self.log_path, "ab") as log:
                self.started = time.monotonic()
                self.proc = subprocess.Popen(
                    [str(ROOT / ".venv/bin/swaramd"), "run", "-c", str(self.tmp / "config.yaml")],
                    env=env, stdout=subprocess.DEVNULL, stderr=log)
            deadline = self.started + ready_timeout_s
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                message = sock.recv(4096).decode()     # TimeoutError: no READY in time
                if message.startswith("READY=1"):
                    self.ready_after = time.monotonic() - self.started
                    return

    def stop(self) -> None:
        """SIGTERM, a bounded wait, then SIGKILL: only this pid."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def measure_startups(tmp: Path, count: int) -> list[float]:
    times = []
    for _ in range(count):
        child = Child(tmp, tmp / "child.log")
        try:
            child.start()
            times.append(child.ready_after)
            time.sleep(0.5)
        finally:
            child.stop()
        time.sleep(0.5)
    return times


def measure_footprint(tmp: Path, minutes: float, service: Service) -> dict[str, float]:
    child = Child(tmp, tmp / "child.log")
    try:
        child.start()
        assert child.proc is not None
        pid = child.proc.pid
        time.sleep(2.0)                      # connected, session set up, first turn begun
        peak = memory_kb(pid)
        appends0, replies0 = service.append_count, service.replies
        cpu0, wall0 = cpu_s(pid), time.monotonic()
        end = wall0 + minutes * 60
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            if child.proc.poll() is not None:
                raise SystemExit(f"swaramd exited with {child.proc.returncode}; see "
                                 f"{child.log_path}")
            peak = peak_memory_kb(peak, pid)
        cpu, wall = cpu_s(pid) - cpu0, time.monotonic() - wall0
    finally:
        child.stop()
    return {"cpu_s": cpu, "wall_s": wall, "rss_anon_mb": peak["RssAnon"] / 1024,
            "rss_mb": peak["VmRSS"] / 1024, "shmem_mb": peak["RssShmem"] / 1024,
            "file_mb": peak["RssFile"] / 1024, "appends": service.append_count - appends0,
            "replies": service.replies - replies0, "ready_s": child.ready_after}


# --- 2: latency, the daemon in this process --------------------------------------------------


def tag_period(n: int, seq: int) -> np.ndarray:
    """A capture period of `n` samples that names capture `seq`: a steady level, its last
    two samples the tag's high and low bytes. The level is the same in every period, so
    the echo canceller's guard finds a mic that does not hear the speaker, rests its
    kernel and passes the period bit for bit (a mic level rising with the tag would look
    like an echo, and the kernel's output would lose the tag)."""
    tag = seq % TAG_MOD + 1
    period = np.full(n, TAG_LEVEL, dtype=np.int16)
    period[-2:] = (tag >> 8, tag & 0xFF)
    return period


def read_tag(pcm: bytes) -> int:
    """The tag of the period an append ends with (`tag_period`), or 0 where the period
    did not pass bit for bit."""
    samples = np.frombuffer(pcm, dtype="<i2")
    if len(samples) < 3 or samples[-3] != TAG_LEVEL:
        return 0
    return int(samples[-2]) << 8 | int(samples[-1])


class CaptureStamps:
    """Stamps each capture period and replaces its samples by a tag (`tag_period`)."""

    def __init__(self, capacity: int) -> None:
        self.times = np.zeros(capacity)
        self.n = 0

    def install(self) -> Callable[[], None]:
        original = AudioEngine.capture
        stamps = self

        def capture(engine: AudioEngine, samples: np.ndarray,
                    adc_time: float | None = None) -> None:
            i = stamps.n
            if i < len(stamps.times):
                stamps.times[i] = time.monotonic()
                stamps.n = i + 1
            original(engine, tag_period(len(samples), i), adc_time)

        AudioEngine.capture = capture  # type: ignore[method-assign,assignment]
        return lambda: setattr(AudioEngine, "capture", original)

    def mic_to_wire(self, appends: list[tuple[float, int]]) -> list[float]:
        """Each append paired with the capture callback its last sample came from."""
        out = []
        for arrived, tag in appends:
            seq = tag - 1
            if 0 <= seq < self.n and self.times[seq] <= arrived:
                out.append(arrived - self.times[seq])
        return out


class SpeakerWatch:
    """Wraps the daemon's `on_event` (link receive times) and polls the speaker."""

    POLL_S = 0.0005

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.wire_to_speaker: list[float] = []
        self.barge_in: list[float] = []
        self._seen: set[str] = set()
        self._playing: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        original = daemon.on_event

        def on_event(event: Any) -> None:
            now = time.monotonic()
            if isinstance(event, AudioDelta) and event.response_id not in self._seen:
                self._seen.add(event.response_id)
                self._playing = event.response_id
                self._spawn(self._first_heard(event.response_id, now))
            elif isinstance(event, SpeechStarted) and self._playing is not None:
                self._spawn(self._silent(self._playing, now))
                self._playing = None
            original(event)

        daemon.on_event = on_event  # type: ignore[method-assign]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _first_heard(self, rid: str, received: float) -> None:
        engine = self.daemon.engine
        assert engine is not None
        while time.monotonic() - received < 2.0:
            if engine.delivered_samples(rid) > 0:
                self.wire_to_speaker.append(time.monotonic() - received)
                return
            await asyncio.sleep(self.POLL_S)

    async def _silent(self, rid: str, received: float) -> None:
        engine = self.daemon.engine
        assert engine is not None
        polls: list[tuple[float, int]] = []
        while time.monotonic() - received < 0.5:
            polls.append((time.monotonic(), engine.delivered_samples(rid)))
            await asyncio.sleep(self.POLL_S)
        final = polls[-1][1]
        if polls[0][1] == final:        # nothing was sounding: not a barge-in over audio
            return
        silent_at = next(t for t, heard in polls if heard == final)
        self.barge_in.append(silent_at - received)


async def measure_latency(tmp: Path, seconds: float, service: Service
                          ) -> tuple[list[float], SpeakerWatch, dict[str, Any]]:
    stamps = CaptureStamps(int(seconds * RATE / PERIOD) + 2000)
    uninstall = stamps.install()
    try:
        cfg = parse_config(config_text(tmp, service.url), str(tmp / "config.yaml"))
        daemon = Daemon(cfg)
        watch = SpeakerWatch(daemon)
        run = asyncio.create_task(daemon.run())
        try:
            async with asyncio.timeout(30):
                while not daemon.link or not daemon.link.live:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)        # the start-up earcon and the first frames
            service.appends.clear()
            service.record_appends = True
            await asyncio.sleep(seconds)
            service.record_appends = False
            engine = daemon.engine
            assert engine is not None
            info = {"counters": dataclasses.asdict(engine.counters()),
                    "out_latency_ms": engine._out_latency_s * 1e3,
                    "rates": engine.device_rates}
        finally:
            daemon.request_stop()
            async with asyncio.timeout(10):
                code = await run
        if code != 0:
            raise SystemExit(f"the daemon exited with {code}")
    finally:
        uninstall()
    return stamps.mic_to_wire(list(service.appends)), watch, info


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    global FRAME_MS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-seconds", type=float, default=120.0)
    parser.add_argument("--minutes", type=float, default=5.0,
                        help="the duplex conversation for CPU and memory")
    parser.add_argument("--startups", type=int, default=5)
    parser.add_argument("--delta-ms", type=int, default=20,
                        help="reply audio per delta (sent in real time)")
    parser.add_argument("--frame-ms", type=int, default=FRAME_MS,
                        help="the daemon's uplink frame (audio.frame_ms)")
    args = parser.parse_args()
    FRAME_MS = args.frame_ms
    if args.latency_seconds * RATE / PERIOD >= TAG_MOD:
        parser.error("--latency-seconds must stay under 640")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    jack = Jackd(RATE, PERIOD)
    # A SIGTERM ends the run through the `finally` below, so jackd and the service stop too.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="swaramd-latency-") as name:
        tmp = Path(name)
        (tmp / "key").write_text(KEY + "\n")
        os.environ.update(jack.env)
        os.environ["ALSA_CONFIG_PATH"] = str(write_asoundrc(tmp / "asound.conf",
                                                            jack_pcm("swaram_jack")))
        jack.start()
        service = Service(Scenario(delta_ms=args.delta_ms), record_appends=False)
        service.start()
        try:
            (tmp / "config.yaml").write_text(config_text(tmp, service.url))
            report(args, tmp, service)
        finally:
            service.stop()
            jack.stop()
    return 0


def report(args: argparse.Namespace, tmp: Path, service: Service) -> None:
    period_ms = PERIOD / RATE * 1e3
    print(f"rig: jackd dummy {RATE} Hz, {PERIOD}-frame periods ({period_ms:.0f} ms); "
          f"frame {FRAME_MS} ms, prebuffer {PREBUFFER_MS} ms, replies in {args.delta_ms} ms "
          f"deltas at real-time pace; duplex full, gate open", flush=True)

    startups = measure_startups(tmp, args.startups)
    print(summary("start-up, fork -> READY=1", startups, "(none)"), flush=True)

    mic, watch, info = asyncio.run(measure_latency(tmp, args.latency_seconds, service))
    print(f"latency window {args.latency_seconds:.0f} s, in-process daemon; device output "
          f"latency {info['out_latency_ms']:.1f} ms; counters {info['counters']}")
    print(summary("mic-to-wire, capture callback -> append at the service", mic,
                  f"p99 <= {FRAME_MS + 2} ms (frame + 2 ms)"))
    print(summary("  the same from the frame's first sample (+ one frame)",
                  [m + FRAME_MS / 1000 for m in mic], f"p99 <= {FRAME_MS + 2} ms"))
    untagged = sum(1 for _, tag in service.appends if tag == 0)
    print(f"  {untagged} of {len(service.appends)} appends did not pass bit for bit (the echo "
          "canceller ran on them, learning the mic at first) and are not counted")
    print(summary("wire-to-speaker, first delta received -> first sample at the DAC",
                  watch.wire_to_speaker,
                  f"p99 <= {PREBUFFER_MS + 2 * period_ms:.0f} ms (prebuffer + two periods)"))
    print(summary("barge-in, speech_started received -> speaker silent", watch.barge_in,
                  f"p99 <= {2 * period_ms:.0f} ms (two device periods)"), flush=True)

    service.scenario = Scenario(listen_s=3.0, speech_s=1.0, reply_s=4.0, barge_at_s=1.5,
                                delta_ms=args.delta_ms)
    fp = measure_footprint(tmp, args.minutes, service)
    per_min = fp["cpu_s"] / fp["wall_s"] * 60
    print(f"duplex conversation, `swaramd run` child, {fp['wall_s'] / 60:.1f} min: "
          f"{fp['appends']} appends received, {fp['replies']} replies (every other one "
          f"barged in); READY after {fp['ready_s']:.2f} s")
    print(f"CPU: {fp['cpu_s']:.2f} s = {per_min:.3f} s per audio minute "
          f"({per_min / 60 * 100:.2f} % of one core)   target: judged in the peers rig, "
          "as a ratio to the naive client (docs/performance.md)")
    print(f"peak private memory (RssAnon): {fp['rss_anon_mb']:.1f} MB   target: <= 26 MB; "
          f"peak RSS {fp['rss_mb']:.1f} MB of which shared {fp['shmem_mb']:.1f} MB, "
          f"file-backed {fp['file_mb']:.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
