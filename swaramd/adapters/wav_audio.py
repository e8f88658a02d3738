"""The WAV backend: a microphone and a speaker made of files, paced by a clock.

Used by `swaramd demo` and by black-box tests: `audio.wav_input`
(24 kHz mono PCM16) is fed to the "microphone" at real-time pace, then
silence; `audio.wav_output` receives every sample the "speaker" plays,
silence included, so a sample's index in the file is its time since start.

Rules this module keeps:

- One device thread plays the part of PortAudio's callback thread: every
  period it hands one period of input to the engine and takes one period of
  output from it, exactly as the PyAudio backend does. The rest of the engine
  cannot tell the difference.
- The period is due by `time.monotonic()`, not by sleeping a period each
  time, so pacing does not drift; a late wake-up processes every period that
  fell due (the file stays sample-accurate in time).
- The output is written and flushed, with a valid header, at every wake-up:
  at least every 20 ms, so a reader may open the file while the daemon runs.
- The periods' times are the files' own: period k of both files sounds from
  `start + k * period`, and the engine is told so (`adc_time`, `latency_s`),
  so a sample's index is its time whatever the thread's wake-up.
- The two files hear nothing of each other unless a `room` is given (the
  demo's `swaramd.demo.room.EchoRoom`): then each period the speaker plays
  is carried into the microphone's, and echo cancellation applies.
"""

from __future__ import annotations

import logging
import os
import time
import wave
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from swaramd.adapters.audio_backend import AudioHealth, DeviceBackend, DeviceHost
from swaramd.core.config import AudioConfig, Config
from swaramd.core.errors import AudioDeviceError, ConfigError
from swaramd.core.protocol import WIRE_RATE

log = logging.getLogger(__name__)

_MAX_CATCH_UP_S = 10.0


class Room(Protocol):
    """The air between the WAV speaker and microphone."""

    def carry(self, speaker: np.ndarray[Any, Any], mic: np.ndarray[Any, Any]) -> None:
        """Add to `mic` (in place) what the mic hears of `speaker`, the same period."""


class WavDevice(DeviceBackend):
    """The engine's devices as WAV files, in real time."""

    thread_name = "swaramd-wav-audio"

    def __init__(self, cfg: AudioConfig, *, room: Room | None = None) -> None:
        if cfg.wav_input is not None:
            check_wav_input(cfg.wav_input)
        self.room = room
        self.hears_speaker = room is not None   # two bare files hear nothing of each other

    def run(self, host: DeviceHost) -> None:
        """Pace the files by the clock: one period in, one period out, until stopped."""
        cfg = host.cfg
        try:
            source = wave.open(str(cfg.wav_input), "rb") if cfg.wav_input else None
            sink = _open_sink(cfg.wav_output) if cfg.wav_output else None
        except (OSError, wave.Error, EOFError) as exc:
            host.report(AudioHealth.ERROR, f"cannot open the WAV files: {exc}")
            return
        try:
            period = WIRE_RATE * host.period_ms // 1000
            host.prepare(WIRE_RATE, WIRE_RATE, period, 0.0)
            host.report(AudioHealth.OK)
            self._pace(host, period, source, sink)
        except (OSError, wave.Error) as exc:
            log.error("wav audio failed: %s", exc)
            host.report(AudioHealth.ERROR, f"WAV audio failed: {exc}")
        finally:
            if source is not None:
                source.close()
            if sink is not None:
                sink[0].close()         # patches the header one last time
                sink[1].close()

    def _pace(self, host: DeviceHost, period: int, source: wave.Wave_read | None,
              sink: tuple[wave.Wave_write, Any] | None) -> None:
        mic = np.zeros(period, dtype=np.int16)
        speaker = np.zeros(period, dtype=np.int16)
        start = time.monotonic()
        done = 0                              # periods processed since `start`
        while True:
            due = start + (done + 1) * period / WIRE_RATE
            if host.stopping.wait(max(0.0, due - time.monotonic())):
                return
            behind = int((time.monotonic() - start) * WIRE_RATE / period) - done
            if behind * period > _MAX_CATCH_UP_S * WIRE_RATE:
                log.warning("wav audio fell %.1f s behind; skipping ahead",
                            behind * period / WIRE_RATE)
                start, done, behind = time.monotonic() - period / WIRE_RATE, 0, 1
            host.beat()
            played = []
            now = time.monotonic()
            for k in range(done, done + behind):
                sounds = start + k * period / WIRE_RATE     # when period k sounds, both files
                _read_period(source, mic)
                host.render(speaker, sounds - now)
                if self.room is not None:
                    self.room.carry(speaker, mic)
                host.capture(mic, sounds)
                played.append(speaker.astype("<i2", copy=False).tobytes())
            done += behind
            if sink is not None:
                sink[0].writeframes(b"".join(played))   # also rewrites the header's sizes
                sink[1].flush()


def check_wav_files(cfg: Config) -> None:
    """Raise `ConfigError` (file, line, key) unless the WAV backend's files are usable:
    `audio.wav_input` a readable 24 kHz mono PCM16 WAV, `audio.wav_output` writable.

    `check-config` and `run` call this before anything is opened, so a bad path exits 78
    with the key's line, not 1 once the daemon is up."""
    audio, problems = cfg.audio, []
    if audio.wav_input is not None and (problem := wav_input_problem(audio.wav_input)):
        problems.append(cfg.problem("audio.wav_input", problem))
    if audio.wav_output is not None and (problem := _wav_output_problem(audio.wav_output)):
        problems.append(cfg.problem("audio.wav_output", problem))
    if problems:
        raise ConfigError(problems)


def check_wav_input(path: Path) -> None:
    """Raise AudioDeviceError unless `path` is a readable 24 kHz mono PCM16 WAV."""
    problem = wav_input_problem(path)
    if problem is not None:
        raise AudioDeviceError(f"audio.wav_input {problem}")


def wav_input_problem(path: Path) -> str | None:
    """Why `path` is not a readable 24 kHz mono PCM16 WAV, or None."""
    if path.exists() and not path.is_file() and not path.is_dir():   # a FIFO would block
        return f"{path} is not a regular file"
    try:
        with wave.open(str(path), "rb") as w:
            shape = (w.getframerate(), w.getnchannels(), w.getsampwidth())
    except FileNotFoundError:
        return f"{path} does not exist"
    except PermissionError:
        return f"{path} is not readable by this user"
    except IsADirectoryError:
        return f"{path} is a directory"
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror}"
    except (wave.Error, EOFError) as exc:
        return f"{path} is not a PCM WAV file: {exc or 'empty'}"
    if shape != (WIRE_RATE, 1, 2):
        return (f"{path} must be 24000 Hz mono 16-bit, is {shape[0]} Hz, {shape[1]} "
                f"channel(s), {shape[2] * 8}-bit")
    return None


def _wav_output_problem(out: Path) -> str | None:
    """Why the WAV output cannot be written at `out`, or None."""
    if out.is_dir():
        return f"{out} is a directory"
    if out.exists():
        if not out.is_file():
            return f"{out} is not a regular file (the WAV header is rewritten in place)"
        return None if os.access(out, os.W_OK) else f"{out} is not writable by this user"
    if not out.parent.is_dir():
        return f"{out}: its directory does not exist"
    if not os.access(out.parent, os.W_OK | os.X_OK):
        return f"{out}: its directory is not writable by this user"
    return None


def _open_sink(path: Path) -> tuple[wave.Wave_write, Any]:
    f = open(path, "wb")  # closed by the caller, after the writer
    w = wave.open(f, "wb")
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(WIRE_RATE)
    w.writeframes(b"")                          # the header, at once
    f.flush()
    return w, f


def _read_period(source: wave.Wave_read | None, out: np.ndarray[Any, Any]) -> None:
    data = source.readframes(len(out)) if source is not None else b""
    n = len(data) // 2
    if n:
        out[:n] = np.frombuffer(data, dtype="<i2", count=n)
    out[n:] = 0
