"""Benchmark of the full-duplex audio path on jackd's dummy driver (not a test).

    .venv/bin/python bench/audio.py [--seconds 60] [--rate 24000] [--bare | --baseline] [--perf]
                                    [--calls]

Starts a private `jackd --no-realtime -d dummy -r RATE -p 480` (20 ms periods
at 24 kHz), opens the PyAudio engine on the ALSA `jack` PCM, and for the given
time runs both directions the way the daemon does:

- uplink:   capture -> ring -> frame -> base64 -> `input_audio_buffer.append` JSON
            (the daemon's own `protocol.audio_append_text`)
- downlink: `response.output_audio.delta` JSON every 20 ms -> `protocol.decode` (JSON,
            checked base64) -> resample (when the device is not at 24 kHz) -> ring -> device

The measured process is a child that imports only what the audio path needs; the
parent parses the arguments, compiles the bytecode, writes the ALSA config and runs
jackd, so none of that is counted. It prints CPU seconds per audio minute (all
threads of the measured process), the per-frame processing time on the loop
(p50/p99, each direction), the time spent in the device callbacks (p50/p99), and
peak private memory (RssAnon: RSS without file-backed and shared mappings such as
JACK's shared segment).
Method and recorded figures: docs/performance.md.
"""

from __future__ import annotations

# The measured process imports only what the audio path needs: argument parsing, jackd,
# the ALSA config and the bytecode compile live in the parent (see main()).
import asyncio
import base64
import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from swaramd.adapters.audio import open_audio  # noqa: E402
from swaramd.adapters.audio_backend import AudioHealth  # noqa: E402
from swaramd.core import protocol  # noqa: E402
from swaramd.core.config import AudioConfig  # noqa: E402
from swaramd.core.events import AudioDelta  # noqa: E402
from tests.support.procfs import memory_kb, peak_memory_kb, threads_cpu_s  # noqa: E402

FRAME_MS = 20


def cpu_line(times0: os.times_result, times1: os.times_result, wall: float) -> str:
    """CPU seconds over a window, as seconds per audio minute and share of one core."""
    user, system = times1.user - times0.user, times1.system - times0.system
    cpu = user + system
    return (f"{cpu:.3f} s over {wall:.1f} s = {cpu / wall * 60:.3f} s per audio minute "
            f"({cpu / wall * 100:.2f} % of one core; user {user / wall * 60:.3f}, "
            f"system {system / wall * 60:.3f})")


class PerfCounters:
    """`perf stat` attached to this process for the measured window (`--perf`)."""

    EVENTS = "instructions:u,cycles:u,context-switches,cpu-migrations"

    def __init__(self, seconds: float) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", self.EVENTS, "-p", str(os.getpid()),
             "--", "sleep", str(seconds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def result(self, wall: float) -> str:
        try:
            _, err = self.proc.communicate(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait(5)
            return "perf: no result"
        counts = {}
        for line in err.splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[0].isdigit():
                counts[fields[2]] = int(fields[0])
        return ", ".join(
            f"{name} {value / wall * 60 / 1e9:.3f} G" if name.endswith(":u")
            else f"{name} {value / wall * 60:.0f}" for name, value in counts.items()
        ) + " per audio minute" if counts else f"perf: {err.strip()[:200]}"


class CallCounts:
    """Python and C calls made on the loop thread while counting (`--calls`).

    `sys.setprofile` sees only the thread that sets it, so this counts the loop's work
    (asyncio's machinery and the engine's loop side), not the device callbacks.
    """

    def __init__(self) -> None:
        import collections
        import selectors

        # asyncio's own code, by path: a basename such as `events.py` is ours too.
        self.asyncio_files = (os.path.dirname(asyncio.__file__) + os.sep, selectors.__file__)
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()

    def profile(self, frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call":
            code = frame.f_code
            self.calls[(code.co_filename, code.co_name)] += 1
        elif event == "c_call":
            self.calls[("C", getattr(arg, "__qualname__", repr(arg)))] += 1

    def report(self, periods: float) -> str:
        total = sum(self.calls.values())
        python = {k: v for k, v in self.calls.items() if k[0] != "C"}
        machinery = sum(v for k, v in python.items() if k[0].startswith(self.asyncio_files))
        run_once = sum(v for (f, n), v in python.items()
                       if n == "_run_once" and f.startswith(self.asyncio_files))
        top = ", ".join(f"{os.path.basename(f)}:{n} {v / periods:.1f}" for (f, n), v in
                        sorted(python.items(), key=lambda kv: -kv[1])[:12])
        return (f"loop thread per 20 ms period: {total / periods:.0f} calls "
                f"({sum(python.values()) / periods:.0f} Python functions, of which "
                f"{machinery / periods:.0f} in asyncio's own modules), "
                f"{run_once / periods:.2f} loop iterations; most called: {top}")


class Timings:
    """Preallocated per-event durations (no allocation while measuring)."""

    def __init__(self, capacity: int) -> None:
        self.values = np.zeros(capacity)
        self.n = 0

    def add(self, seconds: float) -> None:
        if self.n < len(self.values):
            self.values[self.n] = seconds
            self.n += 1

    def summary(self) -> str:
        v = self.values[:self.n] * 1e3
        if not len(v):
            return "no samples"
        return (f"p50 {np.percentile(v, 50):.3f} ms, p99 {np.percentile(v, 99):.3f} ms, "
                f"max {v.max():.3f} ms (n={len(v)})")


def timed(fn, timings: Timings):  # type: ignore[no-untyped-def]
    clock = time.perf_counter

    def wrapper(*args):  # type: ignore[no-untyped-def]
        t = clock()
        fn(*args)
        timings.add(clock() - t)
    return wrapper


def delta_messages() -> list[str]:
    """Simulated server events: one second of 24 kHz speech-like audio in 20 ms deltas.

    Kept small on purpose (50 texts, ~70 kB): the simulator's memory is not the engine's.
    """
    n = 24_000 * FRAME_MS // 1000
    t = np.arange(24_000, dtype=np.float32) / 24_000
    audio = 6000 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    pcm = audio.astype("<i2")
    return [json.dumps({"type": "response.output_audio.delta", "response_id": "resp",
                        "item_id": "item", "output_index": 0, "content_index": 0,
                        "delta": base64.b64encode(pcm[i:i + n].tobytes()).decode("ascii")})
            for i in range(0, len(pcm) - n + 1, n)]


async def run(seconds: float, rate: int, period: int, state_dir: Path, bare: bool,
              perf: bool, calls: bool) -> None:
    loop = asyncio.get_running_loop()
    cfg = AudioConfig(input_device="swaram_jack", output_device="swaram_jack",
                      frame_ms=FRAME_MS, volume=80)
    engine = open_audio(cfg, loop, state_dir)
    frames = int(seconds * 1000 / FRAME_MS) + 100
    up_t, down_t, cap_t, ren_t, pump_t = (Timings(frames) for _ in range(5))
    if not bare:        # the callback and pump timers cost CPU themselves
        engine._pump = timed(engine._pump, pump_t)  # type: ignore[method-assign]
        engine.capture = timed(engine.capture, cap_t)  # type: ignore[method-assign]
        engine.render = timed(engine.render, ren_t)  # type: ignore[method-assign]
    if await engine.start() is not AudioHealth.OK:
        raise SystemExit(f"audio did not open: {engine.health_reason}")
    supervisor_tid = engine._thread.native_id if engine._thread else None
    messages = delta_messages() * 5         # a 5 s reply, repeated with 1 s pauses
    sent = [0]
    peak = memory_kb()

    clock = (lambda: 0.0) if bare else time.perf_counter

    async def uplink() -> None:
        while True:
            frame = await engine.next_frame()
            t = clock()
            text = protocol.audio_append_text(frame)
            if not bare:
                up_t.add(clock() - t)
            sent[0] += len(text) > 0

    async def downlink() -> None:
        period = FRAME_MS / 1000
        due = time.monotonic()
        reply = 0
        while True:
            reply += 1
            rid = f"resp_{reply}"
            for text in messages:
                due += period
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                t = clock()
                event = protocol.decode(text)
                assert isinstance(event, AudioDelta)
                engine.play(event.pcm, rid)
                if not bare:
                    down_t.add(clock() - t)
            engine.end_response(rid)
            due += 1.0
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def sample_memory() -> None:
        while True:
            await asyncio.sleep(1.0)
            peak.update(peak_memory_kb(peak))

    # Let start-up settle, then measure a clean window.
    await asyncio.sleep(1.0)
    counters_ = PerfCounters(seconds) if perf else None
    cpu0, wall0 = os.times(), time.monotonic()
    threads0 = threads_cpu_s()
    for t in (up_t, down_t, cap_t, ren_t, pump_t):
        t.n = 0
    tasks = [asyncio.create_task(c()) for c in (uplink, downlink, sample_memory)]
    counted = CallCounts() if calls else None
    try:
        if counted is None:
            await asyncio.sleep(seconds)
        else:           # count 2 s in the middle of a reply (profiling slows what it sees)
            await asyncio.sleep(1.5)
            sys.setprofile(counted.profile)
            try:
                await asyncio.sleep(2.0)
            finally:
                sys.setprofile(None)
            await asyncio.sleep(max(0.0, seconds - 3.5))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    cpu1, wall = os.times(), time.monotonic() - wall0
    threads1 = threads_cpu_s()
    counters = engine.counters()
    engine.stop()

    print(f"device: jackd dummy {rate} Hz, {period}-frame periods; engine at "
          f"{engine.device_rates[0]}/{engine.device_rates[1]} Hz; measured {wall:.1f} s")
    print(f"CPU: {cpu_line(cpu0, cpu1, wall)}")
    print(f"uplink pump per wake (ring -> resample -> frame -> backlog): {pump_t.summary()}")
    print(f"uplink per frame (backlog -> base64 -> JSON text): {up_t.summary()}")
    print(f"downlink per frame (JSON -> base64 -> resample -> ring): {down_t.summary()}")
    print(f"capture callback: {cap_t.summary()}")
    print(f"render callback:  {ren_t.summary()}")
    print(f"peak private memory (RssAnon): {peak['RssAnon'] / 1024:.1f} MB; "
          f"peak RSS {peak['VmRSS'] / 1024:.1f} MB of which shared memory "
          f"{peak['RssShmem'] / 1024:.1f} MB and file-backed {peak['RssFile'] / 1024:.1f} MB")
    print(f"frames sent: {sent[0]}; counters: {dataclasses.asdict(counters)}")
    if counters_ is not None:
        print(f"perf: {counters_.result(wall)}")
    if counted is not None:
        print(counted.report(2.0 * 1000 / FRAME_MS))
    known = {f"[{threading.main_thread().native_id}]": "loop",
             f"[{supervisor_tid}]": "audio supervisor"}
    shares = sorted(((threads1[k] - threads0.get(k, 0.0), k) for k in threads1), reverse=True)
    print("CPU by thread, s per audio minute (10 ms ticks; unnamed ones are PortAudio's and "
          "JACK's): " + ", ".join(f"{known.get(name[name.index('['):], name)} "
                                  f"{used / wall * 60:.2f}" for used, name in shares if used > 0))


def baseline(seconds: float, perf: bool) -> None:
    """PyAudio alone on the same PCM, opened as the engine opens it (one duplex stream, as
    for any card that does both ways at one rate), with a callback that does nothing."""
    import pyaudio

    pa = pyaudio.PyAudio()
    index = next(i for i in range(pa.get_device_count())
                 if pa.get_device_info_by_index(i)["name"] == "swaram_jack")
    silence = bytes(2 * 480)

    def callback(_in, _n, _t, _s):  # type: ignore[no-untyped-def]
        return silence, pyaudio.paContinue

    streams = [pa.open(rate=24_000, channels=1, format=pyaudio.paInt16, input=True,
                       output=True, input_device_index=index, output_device_index=index,
                       frames_per_buffer=480, stream_callback=callback)]
    try:
        time.sleep(1.0)
        counters = PerfCounters(seconds) if perf else None
        cpu0, wall0, peak = os.times(), time.monotonic(), memory_kb()
        while time.monotonic() - wall0 < seconds:
            time.sleep(1.0)
            peak = peak_memory_kb(peak)
        cpu1, wall = os.times(), time.monotonic() - wall0
    finally:
        for stream in streams:
            stream.close()
        pa.terminate()
    print(f"baseline, PyAudio duplex stream alone: CPU {cpu_line(cpu0, cpu1, wall)}; "
          f"peak private memory (RssAnon) {peak['RssAnon'] / 1024:.1f} MB")
    if counters is not None:
        print(f"perf: {counters.result(wall)}")


def child(argv: list[str]) -> int:
    """The measured process: `--child MODE SECONDS RATE PERIOD STATE_DIR BARE PERF CALLS`."""
    mode, seconds, rate, period, state_dir, bare, perf, calls = argv
    if mode == "baseline":
        baseline(float(seconds), perf == "1")
    else:
        asyncio.run(run(float(seconds), int(rate), int(period), Path(state_dir), bare == "1",
                        perf == "1", calls == "1"))
    return 0


def main() -> int:
    """Run the benchmark in a child process on a private jackd, both stopped by pid."""
    import argparse
    import compileall
    import signal
    import subprocess
    import tempfile

    from tests.adapters.alsa_rig import Jackd, jack_pcm, write_asoundrc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=24_000, help="jackd's (the device's) rate")
    parser.add_argument("--bare", action="store_true",
                        help="no timers at all, in the callbacks, the pump or per frame (a "
                             "cleaner CPU figure)")
    parser.add_argument("--baseline", action="store_true",
                        help="PyAudio alone (one duplex stream, a callback that does nothing) "
                             "on the same rig, 24 kHz")
    parser.add_argument("--perf", action="store_true",
                        help="also count user-space instructions and cycles (perf stat) over "
                             "the window: unlike CPU seconds, instructions do not vary with "
                             "the machine's speed")
    parser.add_argument("--calls", action="store_true",
                        help="also count the calls made on the loop thread for 2 s of a reply "
                             "(sys.setprofile; it slows that run, so take no CPU figure from it)")
    args = parser.parse_args()
    if args.calls and (args.baseline or args.seconds < 4):
        parser.error("--calls needs the engine and --seconds of at least 4")
    # Measure the daemon as installed: pip compiles its bytecode, but this checkout may have
    # none (PYTHONDONTWRITEBYTECODE), and compiling at import costs about 1.2 MB.
    compileall.compile_dir(ROOT / "swaramd", quiet=1)
    # 480 frames: 20 ms at 24 kHz. At 48 kHz the jack PCM refuses 960-frame periods, so
    # jackd runs 10 ms periods there and PortAudio adapts them to the engine's 20 ms.
    jack = Jackd(args.rate, 480)
    # A SIGTERM ends the run through the `finally` below, so jackd and the child stop too.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="swaramd-bench-") as tmp:
        env = {**os.environ, **jack.env, "ALSA_CONFIG_PATH": str(write_asoundrc(
            Path(tmp) / "asound.conf", jack_pcm("swaram_jack")))}
        jack.start()
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child",
                 "baseline" if args.baseline else "engine", str(args.seconds), str(args.rate),
                 str(jack.period), tmp, str(int(args.bare)), str(int(args.perf)),
                 str(int(args.calls))], env=env)
            return proc.wait(timeout=args.seconds + 120)
        finally:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            jack.stop()


if __name__ == "__main__":
    sys.exit(child(sys.argv[2:]) if sys.argv[1:2] == ["--child"] else main())
