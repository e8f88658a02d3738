"""PlaybackBuffer against a plain-Python model of the jitter-buffer rules.

The model keeps one list of (response, sample) and applies the rules of
`core/jitter.py`'s module doc literally; the property tests drive both with
the same random script and demand identical periods, counts and flags.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from swaramd.core.jitter import PlaybackBuffer

PERIOD = 8


class Model:
    """The rules, written the obvious way."""

    def __init__(self, capacity: int, prebuffer: int) -> None:
        self.cap, self.prebuffer = capacity, min(prebuffer, capacity)
        self.q: list[tuple[str, int]] = []
        self.ended: set[str] = set()
        self.open_rid: str | None = None     # a response that got audio and is not yet done
        self.started = False
        self.underruns = self.dropped = 0
        self.handed: Counter[str] = Counter()
        self.last_audio = 0

    def active(self) -> bool:
        return bool(self.q) or self.open_rid is not None

    def push(self, rid: str, values: list[int]) -> None:
        if values:
            self.q.extend((rid, v) for v in values)
            if rid not in self.ended:
                self.open_rid = rid
            excess = max(0, len(self.q) - self.cap)
            del self.q[:excess]
            self.dropped += excess

    def end(self, rid: str) -> bool:
        self.ended.add(rid)
        if self.open_rid == rid:
            self.open_rid = None
        return not self.active()

    def flush(self) -> None:
        self.q.clear()
        self.open_rid = None
        self.started = False

    def render(self) -> tuple[list[int], bool]:
        """The period's samples and whether playback drained; `last_audio` is how many
        of them are reply audio (the engine scales only periods with some)."""
        was_active = self.active()
        if not self.started:
            self.started = bool(self.q) and (
                len(self.q) >= self.prebuffer or any(r in self.ended for r, _ in self.q))
        taken = self.q[:PERIOD] if self.started else []
        del self.q[:len(taken)]
        self.last_audio = len(taken)
        for rid, _ in taken:
            self.handed[rid] += 1
        out = [v for _, v in taken] + [0] * (PERIOD - len(taken))
        if self.started and len(taken) < PERIOD:
            self.started = False
            if self.active():
                self.underruns += 1
                return out, False
        return out, was_active and not self.active()


# A script over sequential responses: push to the current one, end it, render, or flush.
# Late audio of an ended or flushed reply never comes here: the conversation drops it.
step = st.one_of(
    st.tuples(st.just("push"), st.integers(0, 3 * PERIOD)),
    st.tuples(st.just("end"), st.just(0)),
    st.tuples(st.just("render"), st.integers(1, 4)),
    st.tuples(st.just("flush"), st.just(0)),
)


def run(capacity: int, prebuffer: int, script: list[tuple[str, int]]) -> tuple[
        PlaybackBuffer, Model, list[int]]:
    buf, model = PlaybackBuffer(capacity, prebuffer), Model(capacity, prebuffer)
    rid_no, counter = 0, 1
    played: list[int] = []
    periods = 0
    for op, n in script:
        rid = f"r{rid_no}"
        if op == "push":
            values = list(range(counter, counter + n))
            counter += n
            buf.push(np.array(values, dtype=np.int16), rid)
            model.push(rid, values)
        elif op == "end":
            assert buf.end_response(rid) == model.end(rid)
            rid_no += 1
        elif op == "flush":
            buf.flush()
            model.flush()
            rid_no += 1
        else:
            for _ in range(n):
                out = np.full(PERIOD, -1, dtype=np.int16)
                drained = buf.render(out)
                periods += 1
                want, want_drained = model.render()
                assert out.tolist() == want
                assert drained == want_drained
                assert buf.last_audio == model.last_audio
                played.extend(v for v in want if v)
        assert buf.active == model.active()
        assert buf.underruns == model.underruns
        assert buf.dropped == model.dropped
        assert buf.queued == len(model.q)
    for i in range(rid_no + 1):
        assert buf.handed(f"r{i}")[0] == model.handed[f"r{i}"]
    assert buf.device_pos == periods * PERIOD
    return buf, model, played


@settings(max_examples=300)
@given(prebuffer=st.integers(0, 3 * PERIOD), script=st.lists(step, max_size=60))
def test_without_overflow_no_sample_is_lost_or_duplicated(
        prebuffer: int, script: list[tuple[str, int]]) -> None:
    buf, _model, played = run(10_000, prebuffer, script)
    assert buf.dropped == 0
    # Everything played is a prefix of everything pushed and not flushed, in order.
    assert played == sorted(played) and len(set(played)) == len(played)


@settings(max_examples=300)
@given(capacity=st.integers(1, 3 * PERIOD), prebuffer=st.integers(0, 3 * PERIOD),
       script=st.lists(step, max_size=60))
def test_with_overflow_drops_and_underruns_are_counted_exactly(
        capacity: int, prebuffer: int, script: list[tuple[str, int]]) -> None:
    run(capacity, prebuffer, script)


def test_a_reply_starts_after_the_prebuffer_or_when_done() -> None:
    buf = PlaybackBuffer(1000, prebuffer=20)
    out = np.zeros(PERIOD, dtype=np.int16)
    buf.push(np.ones(10, dtype=np.int16), "a")
    buf.render(out)
    assert not out.any()                       # 10 < 20 queued: still waiting
    buf.push(np.ones(10, dtype=np.int16), "a")
    buf.render(out)
    assert out.all()                           # 20 queued: playing
    buf.flush()
    buf.push(np.ones(3, dtype=np.int16), "b")
    assert not buf.end_response("b")           # done: plays below the prebuffer
    assert buf.render(out)                     # ...and drains in this very period
    assert out[:3].all() and not out[3:].any()
    assert not buf.active


def test_flush_silences_the_next_period() -> None:
    buf = PlaybackBuffer(1000, prebuffer=0)
    out = np.zeros(PERIOD, dtype=np.int16)
    buf.push(np.ones(100, dtype=np.int16), "a")
    buf.render(out)
    assert out.all()
    assert buf.flush() == ["a"]
    buf.render(out)
    assert not out.any()
    assert not buf.active


def test_underrun_is_counted_once_per_starvation() -> None:
    buf = PlaybackBuffer(1000, prebuffer=0)
    out = np.zeros(PERIOD, dtype=np.int16)
    buf.push(np.ones(PERIOD + 2, dtype=np.int16), "a")
    for _ in range(5):
        buf.render(out)
    assert buf.underruns == 1
    assert buf.end_response("a")               # nothing left: playback is idle now
