"""The playback jitter buffer: reply audio in, one device period at a time out.

Rules this module keeps:

- Reply audio arrives in bursts from the network; the speaker takes it at a
  fixed pace. A response starts playing only once `prebuffer` samples are
  queued, or once the response is done (`end_response`) — a short reply must
  not wait for audio that will never come.
- When the queue runs dry in the middle of a response, the period is padded
  with silence, the underrun is counted (once per starvation, not per period),
  and playback waits for the prebuffer again instead of stuttering.
- `flush` (barge-in) empties the queue at once: the very next
  period rendered is silence. Which audio may still play at all (none of a
  flushed, finished or superseded reply) is the conversation's rule
  (`core.conversation`), kept there alone: this buffer plays what it is given.
- `render` fills the caller's preallocated array and allocates no audio
  buffers: it runs on PortAudio's callback thread. Every other method runs on
  the loop; one lock (the ring's plus ours) keeps the two consistent.
- Samples handed to the device are counted per response, with the device
  position of the last one, so the caller can work out how much the listener
  has actually heard once the output latency is accounted for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from swaramd.core.ring import SampleRing, Samples

_REMEMBERED_RESPONSES = 32


@dataclass(slots=True)
class _Segment:
    """A run of queued samples of one response; `end` is an absolute ring position."""

    response_id: str
    end: int
    ended: bool = False


@dataclass(slots=True)
class _Handed:
    """What the device has been given of one response."""

    samples: int = 0
    last_device_pos: int = 0


class PlaybackBuffer:
    """Per-response prebuffering, underrun counting and flush over a bounded sample ring."""

    def __init__(self, capacity: int, prebuffer: int) -> None:
        self._ring = SampleRing(capacity)
        self.prebuffer = max(0, min(prebuffer, capacity))
        self._segments: deque[_Segment] = deque()
        self._ended_upto = 0          # absolute ring position up to which responses are done
        self._started = False
        self._device_pos = 0          # samples rendered so far, silence included
        self._handed: OrderedDict[str, _Handed] = OrderedDict()
        self.underruns = 0
        self.last_audio = 0           # samples of reply audio (not silence) in the last period
        self._lock = threading.Lock()

    # --- loop side ---------------------------------------------------------

    def push(self, samples: Samples, response_id: str) -> None:
        """Queue reply audio."""
        with self._lock:
            if len(samples):
                self._ring.write(samples)
                end = self._ring.written
                last = self._segments[-1] if self._segments else None
                if last is not None and last.response_id == response_id:
                    last.end = end
                    if last.ended:
                        self._ended_upto = end
                else:
                    self._segments.append(_Segment(response_id, end))

    def end_response(self, response_id: str) -> bool:
        """Mark a response done so it plays out in full; True if playback is now idle."""
        with self._lock:
            for seg in self._segments:
                if seg.response_id == response_id:
                    seg.ended = True
                    self._ended_upto = max(self._ended_upto, seg.end)
            self._drop_finished(self._ring.oldest)
            return not self._segments

    def flush(self) -> list[str]:
        """Drop every queued sample now (barge-in); returns the responses that had audio queued."""
        with self._lock:
            dropped = list(dict.fromkeys(s.response_id for s in self._segments))
            self._ring.clear()
            self._segments.clear()
            self._ended_upto = self._ring.written
            self._started = False
            return dropped

    @property
    def active(self) -> bool:
        """True while a response is queued, playing, or waiting for more of its audio."""
        return bool(self._segments)

    @property
    def queued(self) -> int:
        """Samples waiting to be played."""
        return self._ring.available

    @property
    def overflows(self) -> int:
        """Pushes that found the buffer full and dropped its oldest samples."""
        return self._ring.overflows

    @property
    def dropped(self) -> int:
        """Samples lost because the buffer was full."""
        return self._ring.dropped

    @property
    def device_pos(self) -> int:
        """Samples rendered to the device so far, silence included."""
        return self._device_pos

    def handed(self, response_id: str) -> tuple[int, int]:
        """(samples of the response given to the device, device position after its last one)."""
        with self._lock:
            h = self._handed.get(response_id)
            return (h.samples, h.last_device_pos) if h is not None else (0, 0)

    # --- device side -------------------------------------------------------

    def render(self, out: Samples) -> bool:
        """Fill `out` with the next period (audio, then silence); True if playback just drained."""
        with self._lock:
            size = len(out)
            was_active = bool(self._segments)
            start = self._ring.oldest
            if not self._started:
                queued = self._ring.available
                self._started = queued > 0 and (
                    queued >= self.prebuffer or self._ended_upto > start)
            n = self._ring.read_into(out) if self._started else 0
            self.last_audio = n
            if n < size:
                out[n:] = 0
            if n:
                self._attribute(start, n)
            self._device_pos += size
            if self._started and n < size:
                # The queue ran dry inside this period: the end of a reply, or a starvation.
                self._started = False
                self._drop_finished(start + n)
                if self._segments:
                    self.underruns += 1
                    return False
            return was_active and not self._segments

    def _attribute(self, pos: int, n: int) -> None:
        device_pos = self._device_pos
        stop = pos + n
        for seg in self._segments:
            if pos >= stop:
                break
            take = min(stop, seg.end) - pos
            if take <= 0:
                continue
            h = self._handed.get(seg.response_id)
            if h is None:
                h = self._handed[seg.response_id] = _Handed()
                if len(self._handed) > _REMEMBERED_RESPONSES:
                    self._handed.popitem(last=False)
            pos += take
            h.samples += take
            h.last_device_pos = device_pos + (pos - (stop - n))
        self._drop_finished(stop)

    def _drop_finished(self, read_pos: int) -> None:
        """Forget segments wholly consumed, unless the last one may still grow."""
        segs = self._segments
        while segs and segs[0].end <= read_pos and (segs[0].ended or len(segs) > 1):
            segs.popleft()
