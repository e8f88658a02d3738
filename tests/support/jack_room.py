"""A room made of a JACK client: the speaker's output goes through a delay, a decaying
response and a gain, the user's voice is added at known times, and the sum is the mic.

A small ctypes client of libjack (no extra package). Its process callback runs on
JACK's thread: it takes one period from `room:speaker`, convolves it with the
room's response (overlap-add, state kept between periods), adds the user's voice
where the script puts it, writes `room:mic`, and records all three, preallocated.
An ALSA `type jack` PCM wired to these ports is the device swaramd opens.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np

_lib: Any = None
_PROCESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)
_AUDIO = b"32 bit float mono audio"
_IS_INPUT, _IS_OUTPUT = 0x1, 0x2


def _jack() -> Any:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libjack.so.0")
        vp = ctypes.c_void_p
        lib.jack_client_open.restype = vp
        lib.jack_port_register.restype = vp
        lib.jack_port_register.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p,
                                           ctypes.c_ulong, ctypes.c_ulong]
        lib.jack_port_get_buffer.restype = ctypes.POINTER(ctypes.c_float)
        lib.jack_port_get_buffer.argtypes = [vp, ctypes.c_uint32]
        lib.jack_set_process_callback.argtypes = [vp, _PROCESS, vp]
        lib.jack_activate.argtypes = [vp]
        lib.jack_deactivate.argtypes = [vp]
        lib.jack_client_close.argtypes = [vp]
        lib.jack_get_sample_rate.argtypes = [vp]
        lib.jack_get_sample_rate.restype = ctypes.c_uint32
        _lib = lib
    return _lib


def room_pcm(name: str) -> str:
    """An ALSA PCM whose playback feeds the room's speaker and whose capture is its mic."""
    return (f"pcm.{name} {{ type jack playback_ports {{ 0 room:speaker }} "
            f"capture_ports {{ 0 room:mic }} }}")


class JackRoom:
    """The room client; `start()` before swaramd opens the PCM, `stop()` after."""

    def __init__(self, response: np.ndarray, gain: float, user: np.ndarray,
                 talk_at_s: list[float], seconds: float, rate: int = 24_000) -> None:
        """`talk_at_s`: when the user speaks, in seconds after the speaker's first sound."""
        self.rate = rate
        self.response = response.astype(np.float32) * gain
        self.user = user.astype(np.float32)
        self.talk_at = [int(t * rate) for t in talk_at_s]
        n = int(seconds * rate)
        self.speaker = np.zeros(n, np.float32)      # what swaramd played
        self.mic = np.zeros(n, np.float32)          # what the room's mic heard
        self.user_track = np.zeros(n, np.float32)   # the user's part of it
        self.pos = 0                                # samples processed so far
        self.started = threading.Event()            # set when swaramd's first audio came
        self._first_audio: int | None = None
        self._tail = np.zeros(len(self.response) + 4096, np.float32)
        # Overlap-add by FFT (the response's spectrum once): a period costs well under a
        # millisecond in JACK's thread, so the room itself does not make the rig late.
        self._fft_n = 1 << (len(self.response) + 4096).bit_length()
        self._spectrum = np.fft.rfft(self.response, self._fft_n)
        self._client: Any = None
        self._cb = _PROCESS(self._process)

    @property
    def first_audio(self) -> int | None:
        """The room sample at which the speaker first played something non-silent."""
        return self._first_audio

    def start(self) -> None:
        """Open the client, register `room:speaker` (in) and `room:mic` (out), activate."""
        lib = _jack()
        status = ctypes.c_int(0)
        client = lib.jack_client_open(b"room", 0x01, ctypes.byref(status))   # JackNoStartServer
        if not client:
            raise RuntimeError(f"jack_client_open failed (status {status.value:#x})")
        self._client = client
        self._in = lib.jack_port_register(client, b"speaker", _AUDIO, _IS_INPUT, 0)
        self._out = lib.jack_port_register(client, b"mic", _AUDIO, _IS_OUTPUT, 0)
        lib.jack_set_process_callback(client, self._cb, None)
        if lib.jack_activate(client) != 0:
            raise RuntimeError("jack_activate failed")

    def stop(self) -> None:
        """Deactivate and close the client (only ours)."""
        client, self._client = self._client, None
        if client:
            lib = _jack()
            lib.jack_deactivate(client)
            lib.jack_client_close(client)

    def _place_user(self, first: int) -> None:
        n = len(self.user_track)
        for t in self.talk_at:
            start = first + t
            m = min(len(self.user), n - start)
            if m > 0:
                self.user_track[start:start + m] = self.user[:m]

    def speak_at(self, start: int, words: np.ndarray) -> None:
        """The user says `words` from room sample `start` on (call it ahead of `pos`)."""
        m = min(len(words), len(self.user_track) - start)
        if m > 0:
            self.user_track[start:start + m] = words[:m]

    def user_starts(self) -> list[int]:
        """Room samples at which the user starts speaking (once the speaker has sounded)."""
        assert self._first_audio is not None
        return [self._first_audio + t for t in self.talk_at]

    def _process(self, nframes: int, _arg: Any) -> int:
        lib = _jack()
        src = np.ctypeslib.as_array(lib.jack_port_get_buffer(self._in, nframes), (nframes,))
        dst = np.ctypeslib.as_array(lib.jack_port_get_buffer(self._out, nframes), (nframes,))
        pos = self.pos
        end = min(pos + nframes, len(self.mic))
        n = end - pos
        if n <= 0:
            dst[:] = 0
            return 0
        played = src[:n].copy()
        if self._first_audio is None and np.any(np.abs(played) > 1e-4):
            self._first_audio = pos
            self._place_user(pos)
            self.started.set()
        echo = np.fft.irfft(np.fft.rfft(played, self._fft_n) * self._spectrum,
                            self._fft_n)[:n + len(self.response) - 1].astype(np.float32)
        tail = self._tail
        tail[:len(echo)] += echo
        out = tail[:n] + self.user_track[pos:end]
        tail[:-n] = tail[n:].copy()
        tail[-n:] = 0
        dst[:n] = out
        dst[n:] = 0
        self.speaker[pos:end] = played
        self.mic[pos:end] = out
        self.pos = end
        return 0
