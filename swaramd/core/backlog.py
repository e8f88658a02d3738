"""The uplink between the capture ring and the socket: frames and a bounded backlog.

Rules this module keeps:

- Captured audio is cut into fixed frames (`frame_ms` of 24 kHz PCM16, the
  unit of one `input_audio_buffer.append`) by `Framer`, which
  keeps the partial tail for the next call.
- The backlog is bounded in frames. When the link lags and the socket does not
  take frames, the *oldest* frames are dropped and counted, so memory never
  grows during an outage and what is sent when the link recovers is recent.
- Both live on the asyncio loop's thread only; no lock.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.typing import NDArray

Samples = NDArray[np.int16]


class Framer:
    """Cuts a stream of int16 samples into whole little-endian PCM16 frames of fixed size."""

    def __init__(self, frame_samples: int) -> None:
        if frame_samples <= 0:
            raise ValueError(f"frame size must be positive (got {frame_samples})")
        self.frame_samples = frame_samples
        self._partial: Samples = np.zeros(frame_samples, dtype="<i2")
        self._fill = 0

    @property
    def pending(self) -> int:
        """Samples held that do not yet make a whole frame (for tests and debugging)."""
        return self._fill

    def feed(self, samples: Samples) -> list[bytes]:
        """Add samples; returns every frame they complete, oldest first."""
        size = self.frame_samples
        n = len(samples)
        if n == size and not self._fill:    # one period, one frame: the usual case
            return [samples.astype("<i2", copy=False).tobytes()]
        frames: list[bytes] = []
        i = 0
        if self._fill:
            take = min(size - self._fill, n)
            self._partial[self._fill:self._fill + take] = samples[:take]
            self._fill += take
            i = take
            if self._fill < size:
                return frames
            frames.append(self._partial.tobytes())
            self._fill = 0
        whole = (n - i) // size
        if whole:
            block = np.ascontiguousarray(samples[i:i + whole * size], dtype="<i2").tobytes()
            step = size * 2
            frames.extend(block[k:k + step] for k in range(0, len(block), step))
            i += whole * size
        rest = n - i
        if rest:
            self._partial[:rest] = samples[i:]
            self._fill = rest
        return frames

    def reset(self) -> None:
        """Forget the partial frame (for example after the device was reopened)."""
        self._fill = 0


class FrameBacklog:
    """A bounded FIFO of uplink frames that drops the oldest when full, and counts them."""

    def __init__(self, max_frames: int) -> None:
        if max_frames <= 0:
            raise ValueError(f"backlog size must be positive (got {max_frames})")
        self.max_frames = max_frames
        self._frames: deque[bytes] = deque()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frame: bytes) -> bool:
        """Queue a frame; returns True when the oldest frame had to be dropped for it."""
        self._frames.append(frame)
        if len(self._frames) > self.max_frames:
            self._frames.popleft()
            self.dropped += 1
            return True
        return False

    def pop(self) -> bytes | None:
        """The oldest queued frame, or None when the backlog is empty."""
        return self._frames.popleft() if self._frames else None

    def clear(self) -> int:
        """Discard every queued frame (not counted as dropped); returns how many."""
        n = len(self._frames)
        self._frames.clear()
        return n
