"""A small ctypes binding to libspeexdsp's echo canceller and its echo-suppression stage.

Debian and Raspberry Pi OS ship the library as `libspeexdsp1` (PulseAudio
depends on it); no compiler and no wheel are needed. The binding is the
`EchoKernel` that `core.echo.EchoCanceller` drives:

    mic frame, speaker frame --speex_echo_cancellation--> linear estimate removed
                             --speex_preprocess_run-----> residual echo suppressed

Rules this module keeps:

- The library is found by its soname (`libspeexdsp.so.1`), or at the path in
  `SWARAMD_SPEEXDSP` (tests point it at a missing file to stand for a Pi
  without the package). A missing library is `SpeexUnavailable` with one
  line that says what to install; never a traceback.
- The two C states are made once and freed once (`close`); `process` only
  passes pointers to arrays the caller owns: nothing is allocated per frame.
  The pointers of the last few arrays seen are kept (the canceller passes
  the same buffers every frame), with the arrays, so an id is never reused.
- Denoise (noise attenuation), AGC and dereverb stay off unless asked: the
  service does its own, and they would change the user's voice. (Speex only
  suppresses echo on its denoiser's path, so that path runs with a noise
  attenuation of 0 dB.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

import numpy as np

from swaramd.core.errors import SwaramdError

SONAME = "libspeexdsp.so.1"
LIBRARY_ENV = "SWARAMD_SPEEXDSP"

# speex/speex_echo.h and speex/speex_preprocess.h
_ECHO_SET_SAMPLING_RATE = 24
_ECHO_GET_IMPULSE_RESPONSE_SIZE = 27
_ECHO_GET_IMPULSE_RESPONSE = 29
_PP_SET_DENOISE = 0
_PP_SET_AGC = 2
_PP_SET_DEREVERB = 8
_PP_SET_NOISE_SUPPRESS = 18
_PP_SET_ECHO_SUPPRESS = 20
_PP_SET_ECHO_SUPPRESS_ACTIVE = 22
_PP_SET_ECHO_STATE = 24

_I16P = ctypes.POINTER(ctypes.c_int16)


class SpeexUnavailable(SwaramdError):
    """libspeexdsp cannot be loaded (not installed, or not the expected library)."""


_lib: Any = None


def load_speexdsp() -> Any:
    """The library, loaded once; raises `SpeexUnavailable` with what to install."""
    global _lib
    if _lib is not None:
        return _lib
    path = os.environ.get(LIBRARY_ENV) or SONAME
    try:
        lib = ctypes.CDLL(path)
        _declare(lib)
    except (OSError, AttributeError) as exc:
        raise SpeexUnavailable(
            f"cannot load {path} ({_short(exc)}): install the libspeexdsp1 package") from None
    _lib = lib
    return lib


def _declare(lib: Any) -> None:
    vp = ctypes.c_void_p
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_state_init.restype = vp
    lib.speex_echo_state_destroy.argtypes = [vp]
    lib.speex_echo_state_destroy.restype = None
    lib.speex_echo_cancellation.argtypes = [vp, _I16P, _I16P, _I16P]
    lib.speex_echo_cancellation.restype = None
    lib.speex_echo_state_reset.argtypes = [vp]
    lib.speex_echo_state_reset.restype = None
    lib.speex_echo_ctl.argtypes = [vp, ctypes.c_int, vp]
    lib.speex_echo_ctl.restype = ctypes.c_int
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_state_init.restype = vp
    lib.speex_preprocess_state_destroy.argtypes = [vp]
    lib.speex_preprocess_state_destroy.restype = None
    lib.speex_preprocess_run.argtypes = [vp, _I16P]
    lib.speex_preprocess_run.restype = ctypes.c_int
    lib.speex_preprocess_ctl.argtypes = [vp, ctypes.c_int, vp]
    lib.speex_preprocess_ctl.restype = ctypes.c_int


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


class SpeexEchoKernel:
    """Speex's echo canceller followed by its echo-suppression preprocess stage.

    `frame` samples per call at `rate`; `tail_samples` is the adaptive filter's length
    (the longest echo it can cancel, counted from the reference it is given)."""

    def __init__(self, frame: int, tail_samples: int, rate: int, *,
                 echo_suppress_db: int = -40, echo_suppress_active_db: int = -15,
                 denoise: bool = False) -> None:
        self._echo: Any = None
        self._pre: Any = None
        lib = load_speexdsp()
        self._lib = lib
        self._cancel = lib.speex_echo_cancellation
        self._suppress = lib.speex_preprocess_run
        self._pointers: dict[int, tuple[np.ndarray[Any, Any], Any]] = {}
        self._taps: np.ndarray[Any, Any] | None = None
        self.frame = frame
        self.rate = rate
        self._echo = lib.speex_echo_state_init(frame, tail_samples)
        self._pre = lib.speex_preprocess_state_init(frame, rate)
        if not self._echo or not self._pre:
            self.close()
            raise SpeexUnavailable("libspeexdsp could not make its echo state")
        self._ctl_echo(_ECHO_SET_SAMPLING_RATE, rate)
        # Speex applies its echo suppression only on the denoiser's path: the path runs,
        # and "denoise off" is a noise attenuation of 0 dB (the room's noise stays).
        self._ctl_pre(_PP_SET_DENOISE, 1)
        self._ctl_pre(_PP_SET_NOISE_SUPPRESS, -15 if denoise else 0)
        self._ctl_pre(_PP_SET_AGC, 0)
        self._ctl_pre(_PP_SET_DEREVERB, 0)
        self._ctl_pre(_PP_SET_ECHO_SUPPRESS, echo_suppress_db)
        self._ctl_pre(_PP_SET_ECHO_SUPPRESS_ACTIVE, echo_suppress_active_db)
        lib.speex_preprocess_ctl(self._pre, _PP_SET_ECHO_STATE, self._echo)

    def _ctl_echo(self, request: int, value: int) -> None:
        v = ctypes.c_int32(value)
        self._lib.speex_echo_ctl(self._echo, request, ctypes.byref(v))

    def _ctl_pre(self, request: int, value: int) -> None:
        v = ctypes.c_int32(value)
        self._lib.speex_preprocess_ctl(self._pre, request, ctypes.byref(v))

    def process(self, mic: np.ndarray[Any, Any], ref: np.ndarray[Any, Any],
                out: np.ndarray[Any, Any], linear: np.ndarray[Any, Any] | None = None) -> None:
        """Cancel one frame: `mic` and `ref` in, the cleaned frame written into `out`.

        All are contiguous int16 arrays of `frame` samples. `linear`, if given, receives
        the output of the linear canceller before the echo suppression."""
        if self._echo is None:
            raise SpeexUnavailable("the speex echo state is closed")
        out_p = self._pointer(out)
        self._cancel(self._echo, self._pointer(mic), self._pointer(ref), out_p)
        if linear is not None:
            linear[:] = out
        self._suppress(self._pre, out_p)

    def _pointer(self, a: np.ndarray[Any, Any]) -> Any:
        """`a`'s data as an int16 pointer, from the cache when `a` was seen lately."""
        known = self._pointers.get(id(a))
        if known is not None and known[0] is a:
            return known[1]
        if len(self._pointers) >= 16:
            self._pointers.clear()
        p = a.ctypes.data_as(_I16P)
        self._pointers[id(a)] = (a, p)
        return p

    def impulse_response(self) -> np.ndarray[Any, Any] | None:
        """The filter's impulse response (Speex's `SPEEX_ECHO_GET_IMPULSE_RESPONSE`: its
        blocks back in time, one tap per sample), or None once closed."""
        if self._echo is None:
            return None
        if self._taps is None:
            size = ctypes.c_int32(0)
            self._lib.speex_echo_ctl(self._echo, _ECHO_GET_IMPULSE_RESPONSE_SIZE,
                                     ctypes.byref(size))
            self._taps = np.zeros(max(0, size.value), dtype=np.int32)
        if not len(self._taps):
            return None
        self._lib.speex_echo_ctl(self._echo, _ECHO_GET_IMPULSE_RESPONSE,
                                 self._taps.ctypes.data_as(ctypes.c_void_p))
        return self._taps

    def reset(self) -> None:
        """Forget the learnt echo path (the filter starts again from zero)."""
        if self._echo is not None:
            self._lib.speex_echo_state_reset(self._echo)

    def close(self) -> None:
        """Free the C states; `process` may not be called after."""
        pre, echo, self._pre, self._echo = self._pre, self._echo, None, None
        if pre:
            self._lib.speex_preprocess_state_destroy(pre)
        if echo:
            self._lib.speex_echo_state_destroy(echo)

    def __del__(self) -> None:
        self.close()
