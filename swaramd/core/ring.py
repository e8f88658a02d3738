"""A bounded ring of int16 samples between one producer and one consumer thread.

Rules this module keeps:

- The storage is allocated once, at construction; `write` and `read_into`
  only copy into and out of it, so PortAudio's callback thread never makes
  the allocator or the garbage collector work (STYLE: threads hand over and
  leave).
- The ring never grows. A write that does not fit drops the *oldest* samples
  (capture wants the newest audio, not a growing delay) and counts exactly how
  many were dropped and how often.
- One short lock guards the indices and the copy; nothing else happens under
  it, so neither side can hold the other up for longer than one memcpy.
- An emptied ring restarts at index 0, so resident memory follows the most it
  ever held, not its capacity.
- Positions are absolute sample counts since construction (`written`,
  `oldest`), so a caller can attribute samples to what they belong to.
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import NDArray

Samples = NDArray[np.int16]


class SampleRing:
    """Preallocated, bounded FIFO of int16 samples; overflow drops the oldest, counted."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive (got {capacity})")
        self._buf: Samples = np.zeros(capacity, dtype=np.int16)
        self._cap = capacity
        self._start = 0          # index in _buf of the oldest sample
        self._count = 0          # samples held
        self._written = 0        # absolute: samples ever written
        self._dropped = 0        # samples dropped by overflow (or clear)
        self._overflows = 0      # writes that had to drop something
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """How many samples the ring holds at most."""
        return self._cap

    @property
    def available(self) -> int:
        """Samples held now, ready to read."""
        return self._count

    @property
    def written(self) -> int:
        """Absolute position one past the newest sample ever written."""
        return self._written

    @property
    def oldest(self) -> int:
        """Absolute position of the oldest sample held (== `written` when empty)."""
        with self._lock:
            return self._written - self._count

    @property
    def dropped(self) -> int:
        """Samples lost to overflow since construction."""
        return self._dropped

    @property
    def overflows(self) -> int:
        """Writes that found the ring too full and dropped old samples."""
        return self._overflows

    def write(self, samples: Samples) -> int:
        """Append samples, dropping the oldest held ones if they do not fit; returns how many."""
        n = len(samples)
        if n == 0:
            return 0
        with self._lock:
            cap = self._cap
            if n >= cap:
                drop = self._count + n - cap
                self._buf[:] = samples[n - cap:]
                self._start = 0
                self._count = cap
            else:
                drop = max(0, self._count + n - cap)
                if drop:
                    self._start = (self._start + drop) % cap
                    self._count -= drop
                end = (self._start + self._count) % cap
                first = min(n, cap - end)
                self._buf[end:end + first] = samples[:first]
                if first < n:
                    self._buf[:n - first] = samples[first:]
                self._count += n
            self._written += n
            if drop:
                self._dropped += drop
                self._overflows += 1
            return drop

    def read_into(self, out: Samples) -> int:
        """Move up to `len(out)` of the oldest samples into `out`; returns how many."""
        with self._lock:
            n = min(len(out), self._count)
            if n == 0:
                return 0
            first = min(n, self._cap - self._start)
            out[:first] = self._buf[self._start:self._start + first]
            if first < n:
                out[first:n] = self._buf[:n - first]
            self._count -= n
            # Empty: start again at the front, so only the pages of the high-water mark are
            # ever touched (a ring sized for a long reply costs memory only when it is used).
            self._start = (self._start + n) % self._cap if self._count else 0
            return n

    def read(self, max_samples: int | None = None) -> Samples:
        """Take up to `max_samples` (default: all) as a new array; for the loop side only."""
        want = self._count if max_samples is None else min(max_samples, self._count)
        out = np.empty(want, dtype=np.int16)
        n = self.read_into(out)
        return out[:n]

    def clear(self) -> int:
        """Discard everything held (not counted as overflow); returns how many samples."""
        with self._lock:
            n = self._count
            self._start = 0
            self._count = 0
            return n
