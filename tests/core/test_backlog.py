"""Framer and FrameBacklog: exact frames, bounded backlog, drops counted."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from swaramd.core.backlog import FrameBacklog, Framer


@given(frame=st.integers(1, 50), chunks=st.lists(st.integers(0, 200), max_size=30))
def test_framer_cuts_the_stream_into_whole_frames(frame: int, chunks: list[int]) -> None:
    framer = Framer(frame)
    total = sum(chunks)
    data = (np.arange(total) % 30000 - 15000).astype(np.int16)
    frames: list[bytes] = []
    pos = 0
    for n in chunks:
        frames.extend(framer.feed(data[pos:pos + n]))
        pos += n
    assert all(len(f) == frame * 2 for f in frames)
    joined = np.frombuffer(b"".join(frames), dtype="<i2")
    assert len(joined) == total - total % frame
    assert np.array_equal(joined, data[:len(joined)])
    assert framer.pending == total % frame


@given(limit=st.integers(1, 10), script=st.lists(st.booleans(), max_size=80))
def test_backlog_drops_the_oldest_and_counts_exactly(limit: int, script: list[bool]) -> None:
    backlog = FrameBacklog(limit)
    model: list[bytes] = []
    dropped = 0
    n = 0
    for push in script:
        if push:
            frame = n.to_bytes(4, "little")
            n += 1
            model.append(frame)
            over = len(model) > limit
            if over:
                model.pop(0)
                dropped += 1
            assert backlog.push(frame) is over
        else:
            assert backlog.pop() == (model.pop(0) if model else None)
        assert len(backlog) == len(model) <= limit
        assert backlog.dropped == dropped


def test_clear_is_not_counted_as_dropped() -> None:
    backlog = FrameBacklog(3)
    for i in range(3):
        backlog.push(bytes([i]))
    assert backlog.clear() == 3
    assert backlog.dropped == 0 and backlog.pop() is None
