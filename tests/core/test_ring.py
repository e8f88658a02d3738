"""SampleRing: nothing lost or duplicated without overflow; drops exact with it."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swaramd.core.ring import SampleRing

# An op is ("w", n): write the next n counter values, or ("r", n): read up to n.
ops = st.lists(st.tuples(st.sampled_from("wr"), st.integers(0, 40)), max_size=60)


@given(capacity=st.integers(1, 32), script=ops)
def test_ring_matches_a_drop_oldest_queue(capacity: int, script: list[tuple[str, int]]) -> None:
    ring = SampleRing(capacity)
    model: deque[int] = deque()
    counter = 0
    dropped = overflows = 0
    for op, n in script:
        if op == "w":
            values = (np.arange(counter, counter + n) % 30000).astype(np.int16)
            counter += n
            model.extend(int(v) for v in values)
            excess = max(0, len(model) - capacity)
            for _ in range(excess):
                model.popleft()
            dropped += excess
            overflows += excess > 0
            assert ring.write(values) == excess
        else:
            out = np.full(n, -1, dtype=np.int16)
            got = ring.read_into(out)
            want = [model.popleft() for _ in range(min(n, len(model)))]
            assert got == len(want)
            assert out[:got].tolist() == want
            assert (out[got:] == -1).all()     # nothing written past what was read
        assert ring.available == len(model)
        assert ring.dropped == dropped
        assert ring.overflows == overflows
        assert ring.oldest == ring.written - len(model)
    assert ring.read().tolist() == list(model)


@given(st.lists(st.integers(0, 50), max_size=30))
def test_without_overflow_the_stream_comes_out_whole(chunks: list[int]) -> None:
    total = sum(chunks)
    ring = SampleRing(max(1, total))
    data = (np.arange(total) % 32000).astype(np.int16)
    out: list[np.ndarray] = []
    pos = 0
    for i, n in enumerate(chunks):
        ring.write(data[pos:pos + n])
        pos += n
        if i % 2:
            out.append(ring.read(n // 2 + 1))
    out.append(ring.read())
    assert np.array_equal(np.concatenate(out) if out else data[:0], data)
    assert ring.dropped == 0


def test_clear_is_not_an_overflow() -> None:
    ring = SampleRing(8)
    ring.write(np.ones(5, dtype=np.int16))
    assert ring.clear() == 5
    assert ring.available == 0 and ring.dropped == 0 and ring.written == 5


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SampleRing(0)
