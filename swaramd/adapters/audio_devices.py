"""Finding audio devices through PortAudio, without ALSA's noise on stderr.

`swaramd devices` prints `format_devices(list_devices())`. The
engine uses `find_device` to turn `audio.input_device` / `output_device` (a
name substring, an index, or `default`) into a device, and gets an error that
lists what there is when nothing matches.

Probing makes ALSA, PortAudio and libjack print warnings for every plugin PCM
they try, and libjack repeats its own at every retry when no JACK server runs;
none of it helps a user. `new_pyaudio` (the one way swaramd makes a PyAudio)
first calls `silence_audio_libraries`, which swaps alsa-lib's error handler
and libjack's error and info callbacks for no-ops for good, so `swaramd run`'s
stderr (the journal) holds swaramd's own lines only. `swaramd devices` also
points file descriptor 2 at /dev/null for its probe (`quiet_stderr`: the CLI is
single threaded then), for what PortAudio prints itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from swaramd.core.errors import AudioDeviceError

Direction = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class AudioDevice:
    """One PortAudio device as `swaramd devices` shows it."""

    index: int
    name: str
    host_api: str
    input_channels: int
    output_channels: int
    default_rate: int

    def channels(self, direction: Direction) -> int:
        """Channels the device offers in one direction (0: it has none)."""
        return self.input_channels if direction == "input" else self.output_channels

    def describe(self) -> str:
        """One line: index, name, host API, channels, default rate."""
        return (f"{self.index:3d}  {self.name}  [{self.host_api}]  "
                f"in {self.input_channels}, out {self.output_channels}, {self.default_rate} Hz")


def devices_of(pa: Any) -> list[AudioDevice]:
    """Every device an initialised `pyaudio.PyAudio` knows."""
    apis = {i: pa.get_host_api_info_by_index(i)["name"] for i in range(pa.get_host_api_count())}
    out = []
    for i in range(pa.get_device_count()):
        d = pa.get_device_info_by_index(i)
        out.append(AudioDevice(i, str(d["name"]), str(apis.get(d["hostApi"], "?")),
                               int(d["maxInputChannels"]), int(d["maxOutputChannels"]),
                               round(d["defaultSampleRate"])))
    return out


def list_devices() -> list[AudioDevice]:
    """Probe PortAudio once, with stderr silenced, and return every device."""
    with quiet_stderr():
        pa = new_pyaudio()
        try:
            return devices_of(pa)
        finally:
            pa.terminate()


NO_SOUND_CARD = ("no sound card found: PortAudio sees no audio device (is one plugged in? "
                 "`aplay -l` lists what ALSA sees)\n")


def format_devices(devices: Sequence[AudioDevice]) -> str:
    """The text of `swaramd devices`: inputs, then outputs."""
    if not devices:
        return NO_SOUND_CARD
    lines: list[str] = []
    for title, direction in (("Inputs", "input"), ("Outputs", "output")):
        lines.append(f"{title}:")
        chosen = [d for d in devices if d.channels(direction) > 0]  # type: ignore[arg-type]
        lines.extend("  " + d.describe() for d in chosen)
        if not chosen:
            lines.append("  (none)")
    return "\n".join(lines) + "\n"


def find_device(devices: Sequence[AudioDevice], spec: str | int, direction: Direction,
                default_index: int | None) -> AudioDevice:
    """The device `spec` names (index, `default`, or name substring) for one direction."""
    usable = [d for d in devices if d.channels(direction) > 0]
    found: AudioDevice | None = None
    if isinstance(spec, int):
        found = next((d for d in usable if d.index == spec), None)
    elif spec == "default":
        found = next((d for d in usable if d.index == default_index), None)
        if found is None:
            found = next((d for d in usable if d.name == "default"), None)
    else:
        want = spec.casefold()
        exact = [d for d in usable if d.name.casefold() == want]
        found = next(iter(exact or [d for d in usable if want in d.name.casefold()]), None)
    if found is None:
        listing = "; ".join(f"{d.index}: {d.name}" for d in usable) or "none at all"
        raise AudioDeviceError(f"no {direction} device matches {spec!r}; {direction}s: {listing}")
    return found


def new_pyaudio() -> Any:
    """A `pyaudio.PyAudio` that will not start a JACK server nor write to stderr."""
    import pyaudio

    silence_audio_libraries()
    return pyaudio.PyAudio()


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Point fd 2 at /dev/null for the block (single-threaded callers only)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# The C callbacks live as long as the process: the libraries keep pointers to them.
_ALSA_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_char_p)
_JACK_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_ignore_alsa_error = _ALSA_HANDLER(lambda *_: None)
_ignore_jack_message = _JACK_HANDLER(lambda _: None)
_silenced: list[bool] = []


def silence_audio_libraries() -> None:
    """Once per process: libjack never starts a JACK server (a daemon must not spawn one),
    and alsa-lib's errors and libjack's errors and info go nowhere instead of stderr.

    Thread-safe afterwards (one global handler each, never swapped back); a library that
    is not installed is skipped.
    """
    if _silenced:
        return
    _silenced.append(True)
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    alsa = _load_library("asound")
    if alsa is not None:
        alsa.snd_lib_error_set_handler(_ignore_alsa_error)
    jack = _load_library("jack")
    if jack is not None:
        for setter in ("jack_set_error_function", "jack_set_info_function"):
            if hasattr(jack, setter):
                getattr(jack, setter)(_ignore_jack_message)


def _load_library(name: str) -> Any:
    """The shared library `name` (the same copy PortAudio uses), or None."""
    path = ctypes.util.find_library(name)
    try:
        return ctypes.CDLL(path) if path else None
    except OSError:
        return None
