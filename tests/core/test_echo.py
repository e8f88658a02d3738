"""The echo canceller on a synthetic room: echo removed, the user kept, the mic held
while the canceller is still learning, the delay found without configuration."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
import soxr

from swaramd.adapters.speex import SpeexEchoKernel
from swaramd.core import echo as echo_module
from swaramd.core.echo import EchoCanceller, Guard, Samples
from swaramd.core.echo_guard import FIRST_S, FOLLOWS_MAX
from swaramd.demo import room
from swaramd.demo.vad import EnergyVad

R = room.RATE
PERIOD = 480
USER_RMS = 0.05


@cache
def voices() -> tuple[np.ndarray, np.ndarray]:
    reply = np.concatenate([room.speech(s, "en", seed=i) for i, s in enumerate(room.SENTENCES)])
    user = room.speech("Stop please, I want to ask about the train to Kochi instead.",
                       "en-us+f3", seed=9)
    return np.concatenate([reply, reply]), user


@dataclass
class Run:
    mic: np.ndarray          # float, what the mic heard
    user: np.ndarray         # float, the user alone
    out: np.ndarray          # float, the canceller's output
    reply_end: int
    talk: list[int]          # where the user starts
    canceller: EchoCanceller
    guards: list[Guard]


def simulate(delay_ms: float, echo_db: float, talk_s: tuple[float, ...] = (24.0,),
             clock_offset_s: float = 0.0) -> Run:
    reply, user = voices()
    n_reply = len(reply)
    total = n_reply + len(user) + 2 * R
    ref = np.zeros(total, np.float32)
    ref[:n_reply] = reply
    talk = [int(s * R) for s in talk_s] + [n_reply + R]       # the last: after the reply
    usr = np.zeros(total, np.float32)
    for t in talk:
        usr[t:t + len(user)] = user
    usr = room.scale_to(usr, USER_RMS)
    echo = room.scale_to(room.echo_of(ref, room.room_response(delay_ms, 250)),
                         USER_RMS * 10 ** (echo_db / 20))
    noise = np.random.default_rng(5).standard_normal(total).astype(np.float32) * USER_RMS / 100
    mic = echo + usr + noise
    mic_pcm, ref_pcm = room.to_pcm(mic), room.to_pcm(ref)
    ec = EchoCanceller(SpeexEchoKernel(480, int(R * 0.3), R), R)
    outs: list[Samples] = []
    guards = []
    for i in range(0, total - PERIOD + 1, PERIOD):
        ec.push_reference(ref_pcm[i:i + PERIOD], 100.0 + i / R + clock_offset_s)
        outs.append(ec.process(mic_pcm[i:i + PERIOD], 100.0 + i / R))
        guards.append(ec.guard)
    out = np.concatenate(outs).astype(np.float32) / 32767
    return Run(mic[:len(out)], usr[:len(out)], out, n_reply, talk, ec, guards)


def erle_db(run: Run, a: int, b: int) -> float:
    m, o = run.mic[a:b], run.out[a:b]
    return float(10 * np.log10(np.dot(m, m) / max(float(np.dot(o, o)), 1e-12)))


def best_correlation(run: Run, start: int, length: int) -> float:
    """Normalised correlation of the output with the clean user, at the best lag (0-100 ms)."""
    best = 0.0
    x = run.out[start:start + length]
    for lag in range(0, R // 10, 16):
        y = run.user[start - lag:start + length - lag]
        best = max(best, float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y) + 1e-12)))
    return best


@pytest.mark.parametrize(("delay_ms", "echo_db"), [(20, 6), (80, 12), (150, 6), (150, 12)])
def test_echo_removed_and_user_kept_in_double_talk(delay_ms, echo_db):
    run = simulate(delay_ms, echo_db)
    _, user = voices()
    after_talk = run.talk[0] + len(user) + R // 2
    assert erle_db(run, after_talk, run.reply_end) > 15
    assert best_correlation(run, run.talk[0], len(user)) > 0.9
    assert best_correlation(run, run.talk[1], len(user)) > 0.95
    stats = run.canceller.stats()
    assert stats.guard is Guard.CONVERGED
    assert stats.delay_ms is not None and abs(stats.delay_ms - delay_ms) < 3
    assert stats.erle_db is not None and stats.erle_db > 15


def test_a_canceller_that_learnt_the_echo_without_a_delay_still_lets_the_user_through(
        monkeypatch):
    # The device times align the echo well enough (20 ms) and the delay estimate never
    # finds it: the guard converges on the ERLE, knows the echo, and passes the user
    # talking over the reply without waiting for a delay.
    monkeypatch.setattr(echo_module, "find_lag", lambda *a: None)
    run = simulate(20, 6)
    _, user = voices()
    assert best_correlation(run, run.talk[0], len(user)) > 0.9
    stats = run.canceller.stats()
    assert stats.guard is Guard.CONVERGED and stats.delay_ms is None


def test_unconverged_canceller_holds_the_mic_while_the_speaker_plays():
    run = simulate(60, 12, talk_s=())
    # While it plays, the output lags the mic by a kernel frame (one period here).
    first = int((run.guards.index(Guard.CONVERGED) - 1) * PERIOD)
    assert first > R                      # it takes the first second(s) of the reply
    # No echo gets through while it learns (the echo is 0.2 RMS; the room's noise 0.0005).
    assert float(np.max(np.abs(run.out[:first]))) < 0.005
    assert run.canceller.stats().held_s >= first / R - 0.1
    # Once the reply is over, the user is heard again.
    _, user = voices()
    assert best_correlation(run, run.talk[-1], len(user)) > 0.95


def test_device_time_offset_is_taken_into_account():
    """The speaker's samples reach the DAC 70 ms after they were rendered (device
    latency, reported in the times): of the 110 ms the echo lags the rendered
    stream, the delay reported is the acoustic 40 ms; cancellation is unaffected."""
    run = simulate(110, 6, clock_offset_s=0.07)
    stats = run.canceller.stats()
    assert stats.delay_ms is not None and abs(stats.delay_ms - 40) < 3
    _, user = voices()
    assert erle_db(run, run.talk[0] + len(user) + R // 2, run.reply_end) > 15


class RecordingKernel:
    """Passes the mic through and remembers which reference it was handed with which mic."""

    frame = 240

    def __init__(self) -> None:
        self.pairs: list[tuple[int, int]] = []

    def process(self, mic, ref, out, linear=None):
        out[:] = mic
        self.pairs.append((int(mic[0]), int(ref[0])))

    def impulse_response(self):
        return None

    def reset(self):
        pass


def test_reference_alignment_follows_device_times_and_counts_realigns():
    kernel = RecordingKernel()
    ec = EchoCanceller(kernel, R, max_delay_ms=0)                  # device times only
    ramp = (np.arange(5 * R) % 30000).astype(np.int16)
    # The speaker's sample i reaches the DAC at 5.0 + i/R (rendered well ahead); the
    # mic's sample j is captured at 5.010 + j/R: it hears the reference sample j + 240.
    ec.push_reference(ramp[:3 * R + R // 2], 5.0)
    for i in range(0, 2 * R, PERIOD):
        ec.process(ramp[i:i + PERIOD], 5.010 + i / R)
    assert {(r - m) % 30000 for m, r in kernel.pairs} == {240}
    assert ec.realigns == 0
    # Late callbacks (a loaded machine: up to 200 ms late, for seconds) move nothing.
    for i in range(2 * R, 3 * R, PERIOD):
        late = 0.2 * ((i // PERIOD) % 3 != 0)
        ec.process(ramp[i:i + PERIOD], 5.010 + i / R + late)
    assert ec.realigns == 0
    assert {(r - m) % 30000 for m, r in kernel.pairs} == {240}
    # The devices reopen; the mic now runs 50 ms later: one realignment.
    ec.devices_restarted()
    ec.push_reference(ramp[3 * R + R // 2:], 5.0 + 3.5)
    for i in range(3 * R, 4 * R - 2 * PERIOD, PERIOD):
        ec.process(ramp[i:i + PERIOD], 5.060 + i / R)
    assert ec.realigns == 1
    m, r = kernel.pairs[-1]
    assert (r - m) % 30000 == 1440


def test_a_warm_up_replays_the_mic_against_what_the_speaker_played_then():
    # When the canceller learns again (the delay found, the echo moved, a drift reset),
    # it replays its last seconds of mic through the filter. The speaker played all
    # along: every replayed frame meets that speaker's samples, never zeros for want
    # of a reference held that long.
    class ReplayKernel(RecordingKernel):
        def __init__(self) -> None:
            super().__init__()
            self.replayed: list[bool] = []           # whether each replay's reference sounds

        def process(self, mic, ref, out, linear=None):
            super().process(mic, ref, out, linear)
            if linear is None:                        # a warm-up frame: its output is dropped
                self.replayed.append(bool(np.any(ref)))

    kernel = ReplayKernel()
    ec = EchoCanceller(kernel, R)
    n = 10 * R
    ref = (np.random.default_rng(3).standard_normal(n) * 3000).astype(np.int16)
    mic = np.zeros(n, np.int16)
    mic[960:] = ref[:-960]                            # its echo, 40 ms late
    for i in range(0, n - PERIOD + 1, PERIOD):
        if i == 7 * R:                                # long after the first warm-up
            kernel.replayed.clear()
            ec._relearn()
        ec.push_reference(ref[i:i + PERIOD], 100.0 + i / R)
        ec.process(mic[i:i + PERIOD], 100.0 + i / R)
    assert len(kernel.replayed) >= echo_module.WARM_UP_S * R // kernel.frame   # a pass at least
    assert all(kernel.replayed)


def test_stats_before_playback_have_no_erle_or_delay():
    ec = EchoCanceller(RecordingKernel(), R)
    for i in range(50):
        ec.push_reference(np.zeros(PERIOD, np.int16), i * 0.02)
        ec.process(np.zeros(PERIOD, np.int16), i * 0.02)
    d = ec.stats().as_dict()
    assert d["erle_db"] is None and d["delay_ms"] is None and d["guard"] == "learning"


def test_silent_speaker_passes_the_mic_untouched_and_the_stream_stays_whole():
    """No reply: the mic passes bit for bit (and the kernel rests). A reply starts
    and ends: afterwards the mic is again bit for bit, at the same positions."""
    rng = np.random.default_rng(2)
    mic = (rng.standard_normal(8 * R) * 1000).astype(np.int16)
    ref = np.zeros(8 * R, np.int16)
    ref[2 * R:4 * R] = (rng.standard_normal(2 * R) * 3000).astype(np.int16)
    kernel = SpeexEchoKernel(480, int(R * 0.3), R)
    ec = EchoCanceller(kernel, R)
    outs = []
    for i in range(0, 8 * R, PERIOD):
        ec.push_reference(ref[i:i + PERIOD], i / R)
        outs.append(ec.process(mic[i:i + PERIOD], i / R))
    out = np.concatenate(outs)
    assert len(out) == len(mic)
    assert np.array_equal(out[:2 * R], mic[:2 * R])
    assert np.array_equal(out[5 * R:], mic[5 * R:])


def chunk_db(x: np.ndarray) -> np.ndarray:
    c = x[:len(x) // (R // 10) * (R // 10)].reshape(-1, R // 10)
    return 10 * np.log10(np.mean(c * c, axis=1) + 1e-12)


@pytest.mark.parametrize("delay_ms", [40, 80])
def test_converged_residual_stays_under_the_user_who_still_gets_through(delay_ms):
    """An energy detector (a 100 ms chunk is speech within 12 dB of the user's level)
    stands in for the service's: it hardly ever takes the residual for the user, also
    when the echo is 12 dB over the user and the mic clips, and still hears the user
    over the reply. (Without the guard's attenuation 12-15 chunks here are "speech".)"""
    run = simulate(delay_ms, 12)
    speech = 20 * np.log10(USER_RMS) - 12
    out, usr = chunk_db(run.out), chunk_db(run.user)
    start = (run.guards.index(Guard.CONVERGED) * PERIOD) // (R // 10) + 1
    end = run.reply_end // (R // 10) - 1
    reply_only = np.zeros(len(out), bool)
    reply_only[start:end] = True
    reply_only &= usr < -80
    assert reply_only.sum() > 50
    assert np.sum(out[reply_only] > speech) <= 2, np.nonzero(reply_only & (out > speech))
    both = usr > speech
    both[run.reply_end // (R // 10):] = False
    assert np.mean(out[both] > speech) > 0.8
    assert run.canceller.stats().clipped_s > 1      # the echo at +12 dB clips the mic


@pytest.mark.parametrize(("delay_ms", "echo_db"), [(60, -6), (40, -12), (100, -18)])
def test_a_user_talking_over_the_reply_does_not_move_the_alignment(delay_ms, echo_db):
    # The user, louder than the echo (up to 18 dB), in phrases 0.7 s apart: ERLE stays
    # down for seconds, the echo is still in the output under the user, and the delay
    # estimates over the words are skewed; the filter is fine, and the guard saw no
    # change of the echo.
    run = simulate(delay_ms, echo_db, talk_s=(9.0, 14.0, 19.0, 24.0))
    assert run.canceller.realigns == 1        # the first alignment only
    assert run.canceller.stats().delay_ms == pytest.approx(delay_ms, abs=3)


def test_an_echo_that_moves_under_the_filter_is_realigned():
    # The echo comes 40 ms earlier from 16 s on (a period lost between the directions):
    # before the filter's start, so only a new alignment brings the echo back under it.
    reply, _ = voices()
    ref = reply.astype(np.float32)
    before, after = (room.scale_to(room.echo_of(ref, room.room_response(ms, 250)), 2 * USER_RMS)
                     for ms in (60, 20))
    cut = 16 * R
    noise = np.random.default_rng(5).standard_normal(len(ref)).astype(np.float32) * 5e-4
    mic = np.concatenate([before[:cut], after[cut:]]) + noise
    mic_pcm, ref_pcm = room.to_pcm(mic), room.to_pcm(ref)
    ec = EchoCanceller(SpeexEchoKernel(480, int(R * 0.3), R), R)
    outs = []
    for i in range(0, len(ref) - PERIOD + 1, PERIOD):
        ec.push_reference(ref_pcm[i:i + PERIOD], 100.0 + i / R)
        outs.append(ec.process(mic_pcm[i:i + PERIOD], 100.0 + i / R))
    out = np.concatenate(outs).astype(np.float32) / 32767
    assert ec.realigns == 2
    assert ec.stats().delay_ms == pytest.approx(20, abs=3)
    tail_mic, tail_out = mic[len(out) - 6 * R:len(out)], out[-6 * R:]
    assert 10 * np.log10(np.dot(tail_mic, tail_mic) / np.dot(tail_out, tail_out)) > 15


def test_a_mic_that_does_not_hear_the_speaker_is_never_realigned(monkeypatch):
    # Headphones, or a speakerphone that cancels in hardware: the mic carries a steady
    # tone and the room's noise, never the reply. A delay search finds nothing real
    # there: once the mic is known at rest, none runs, and nothing moves the alignment
    # (a move would hold the mic again to relearn).
    reply, _ = voices()
    n = 40 * R
    ref = np.zeros(n, np.float32)
    for start in range(R, n - 3 * R, 5 * R):                  # 2.5 s replies every 5 s
        at = start % (len(reply) - 3 * R)
        ref[start:start + int(2.5 * R)] = reply[at:at + int(2.5 * R)]
    t = np.arange(n) / R
    mic = (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    mic += np.random.default_rng(5).standard_normal(n).astype(np.float32) * 5e-4
    mic_pcm, ref_pcm = room.to_pcm(mic), room.to_pcm(room.scale_to(ref, 0.1))
    ec = EchoCanceller(SpeexEchoKernel(480, int(R * 0.3), R), R)
    searched = []
    estimate = ec._estimate_lag
    monkeypatch.setattr(ec, "_estimate_lag", lambda *a: searched.append(ec._mic_count)
                        or estimate(*a))
    for i in range(0, n - PERIOD + 1, PERIOD):
        ec.push_reference(ref_pcm[i:i + PERIOD], 100.0 + i / R)
        ec.process(mic_pcm[i:i + PERIOD], 100.0 + i / R)
    stats = ec.stats()
    assert stats.realigns == 0 and stats.delay_ms is None
    assert stats.guard is Guard.CONVERGED                 # the user can talk over replies
    assert not searched


class CountingKernel:
    """Speex's kernel, noting the mic position of every frame it is handed."""

    def __init__(self) -> None:
        self.inner = SpeexEchoKernel(480, int(R * 0.3), R)
        self.frame = self.inner.frame
        self.ec: EchoCanceller | None = None
        self.calls: list[int] = []
        self.resets = 0

    def process(self, mic, ref, out, linear=None):
        assert self.ec is not None
        self.calls.append(self.ec._mic_count - self.frame)   # the frame handed over
        self.inner.process(mic, ref, out, linear)

    def impulse_response(self):
        return self.inner.impulse_response()

    def reset(self):
        self.resets += 1
        self.inner.reset()


def replies_every_5_s(n: int) -> np.ndarray:
    """2.5 s of reply every 5 s from 1 s on (float, peak 0.5)."""
    reply, _ = voices()
    ref = np.zeros(n, np.float32)
    for start in range(R, n - 3 * R, 5 * R):
        at = start % (len(reply) - 3 * R)
        ref[start:start + int(2.5 * R)] = reply[at:at + int(2.5 * R)]
    return ref


def run_counted(mic: np.ndarray, ref: np.ndarray) -> tuple[EchoCanceller, CountingKernel,
                                                            np.ndarray]:
    mic_pcm, ref_pcm = room.to_pcm(mic), room.to_pcm(ref)
    kernel = CountingKernel()
    ec = kernel.ec = EchoCanceller(kernel, R)
    outs = []
    for i in range(0, len(mic) - PERIOD + 1, PERIOD):
        ec.push_reference(ref_pcm[i:i + PERIOD], 100.0 + i / R)
        outs.append(ec.process(mic_pcm[i:i + PERIOD], 100.0 + i / R))
    return ec, kernel, np.concatenate(outs)


def tone_and_noise(n: int) -> np.ndarray:
    t = np.arange(n) / R
    mic = (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return mic + np.random.default_rng(5).standard_normal(n).astype(np.float32) * 5e-4


def test_a_mic_that_does_not_hear_the_speaker_rests_the_kernel():
    # The same headphone room: once the mic is known not to hear the speaker, the
    # kernel rests through the replies and the mic passes bit for bit, stream whole.
    n = 30 * R
    mic, ref = tone_and_noise(n), room.scale_to(replies_every_5_s(n), 0.1)
    ec, kernel, out = run_counted(mic, ref)
    assert len(out) == n                                 # the stream stays whole
    assert [k for k in kernel.calls if k >= 10 * R] == []
    mic_pcm = room.to_pcm(mic)
    assert np.array_equal(out[10 * R:], mic_pcm[10 * R:len(out)])
    assert ec.stats().guard is Guard.CONVERGED


def test_an_echo_that_starts_wakes_the_resting_kernel_at_once_and_is_cancelled():
    # Headphones unplugged at 16 s, during a reply: from the first frame the echo
    # reaches, the kernel runs on every frame while the speaker plays, and it cancels
    # the later replies.
    n = 40 * R
    ref = replies_every_5_s(n)
    echo = room.scale_to(room.echo_of(ref, room.room_response(50, 250)), 2 * USER_RMS)
    plug = 16 * R
    echo[:plug] = 0
    mic = tone_and_noise(n) * 0.2 + echo
    ec, kernel, out = run_counted(mic, ref)
    assert len(out) == n                                  # whole across every switch
    mic_pcm = room.to_pcm(mic)
    assert np.array_equal(out[8 * R:plug], mic_pcm[8 * R:plug])    # resting: as it was
    arrives = plug + int(0.05 * R)
    first = next(k for k in kernel.calls if k >= plug)
    assert first <= arrives + PERIOD
    playing = range(first, int(18.5 * R), PERIOD)         # the rest of that reply
    assert set(playing) <= set(kernel.calls)
    last = slice(36 * R, int(38.5 * R))                   # the last reply
    m, o = mic[last], out[last].astype(np.float32) / 32767
    assert 10 * np.log10(np.dot(m, m) / np.dot(o, o)) > 15
    assert ec.stats().erle_db > 15                        # and status says so


def test_the_output_follows_the_echo_estimate_where_the_filter_under_estimates():
    ec = EchoCanceller(RecordingKernel(), R)
    rng = np.random.default_rng(1)
    echo, user = rng.standard_normal((2, ec.frame)) * 3000
    ec._lin[:] = 0.4 * echo                    # the filter took out 60 % of the echo
    assert ec._follows(echo.astype(np.int16)) > 0.9
    ec._lin[:] = user                          # it took out all of it: the user is left
    assert abs(ec._follows((echo + user).astype(np.int16))) < FOLLOWS_MAX
    ec._lin[:] = 0                             # no output at all: nothing to follow
    assert ec._follows(echo.astype(np.int16)) == 0.0


def test_the_echo_estimate_explains_an_echo_even_scaled_wrong_but_not_the_user():
    rng = np.random.default_rng(2)

    def coherence(estimate_of, user_level: float) -> float:
        ec = EchoCanceller(RecordingKernel(), R)
        for _ in range(10):                          # a few frames: it is smoothed
            echo, user = rng.standard_normal((2, ec.frame)) * 3000
            est = estimate_of(echo)
            ec._lin[:] = echo + user * user_level - est   # the output: mic less estimate
            ec._follows((echo + user * user_level).astype(np.int16))
            value = ec._coherence()
        return value

    # A filter that learnt a third of the echo, and the low band of it better: the
    # estimate is the echo scaled wrong, per frequency.
    def young(echo):
        return 0.3 * echo + 0.3 * np.convolve(echo, np.ones(4) / 4, mode="same")

    assert coherence(young, 0.0) > 0.99
    assert coherence(young, 1.0) < 0.7                # the user as loud as the echo
    assert coherence(lambda echo: 0.0 * echo, 0.0) == 0.0    # no estimate at all


def only_the_user_heard(echo: np.ndarray, ref: np.ndarray) -> EchoCanceller:
    """Run the canceller on `echo` (of replies `ref`), a user talking at 51.5 s and a
    little room noise: the simulated service's turn detector hears speech while the
    user talks and at no other time."""
    n = len(ref)
    _, said = voices()
    talk = int(51.5 * R)
    user = np.zeros(n, np.float32)
    user[talk:talk + len(said)] = room.scale_to(said, 2 * USER_RMS)
    noise = np.random.default_rng(5).standard_normal(n).astype(np.float32) * USER_RMS / 100
    ec, _, out = run_counted(echo + user + noise, ref)
    starts = [c.audio_ms / 1000 for c in EnergyVad().feed(out) if c.started]
    said_s = (talk / R - 0.3, (talk + len(said)) / R)
    assert [t for t in starts if not said_s[0] <= t <= said_s[1]] == []
    assert [t for t in starts if said_s[0] <= t <= said_s[1]] != []
    return ec


def test_a_speaker_turned_up_in_a_learnt_room_is_not_taken_for_the_user():
    # The room is learnt with the echo under the user's level (the guard converged, and
    # settled, at about 32 s); at 37 s, in a reply, the speaker is turned up 10 dB. The
    # filter now under-estimates the echo, which the frames' energies alone would take
    # for the user talking. The simulated service's turn detector hears no speech in
    # any reply; the user talking over a later one is heard.
    ref = replies_every_5_s(56 * R)
    echo = room.scale_to(room.echo_of(ref, room.room_response(60, 250)), 2 * USER_RMS)
    echo[:37 * R] *= 10 ** (-10 / 20)
    ec = only_the_user_heard(echo, ref)
    assert ec.stats().guard is Guard.CONVERGED


@pytest.mark.parametrize("moved_s", [37, 17], ids=["learnt", "settling"])
def test_an_echo_that_moves_later_is_learnt_again_and_not_taken_for_the_user(moved_s):
    # The echo comes 40 ms later (still under the filter, which re-adapts for seconds).
    # In a learnt room (37 s: the guard converged, and settled, at about 32 s) the output
    # looks like the user by its energies, though it follows the filter's echo estimate
    # or its negative on most frames: the guard learns again before a frame that does
    # not can pass. While the filter settles (17 s), the canceller loses the echo and
    # the guard learns again rather than trust it when the settling ends. Either way
    # the simulated service's turn detector hears no speech in any reply; the user
    # talking over a later one is heard.
    ref = replies_every_5_s(56 * R)
    echo, later = (room.scale_to(room.echo_of(ref, room.room_response(ms, 250)), 2 * USER_RMS)
                   for ms in (60, 100))
    echo[moved_s * R:] = later[moved_s * R:]
    ec = only_the_user_heard(echo, ref)
    assert ec.guard is Guard.CONVERGED                        # learnt again


def drifting_room(seconds: int, ppm: float) -> tuple[np.ndarray, np.ndarray]:
    """The mic and the speaker (float) of replies every 5 s in a 60 ms room whose mic
    clock runs `ppm` fast (the echo resampled by that ratio), no user."""
    n = seconds * R
    ref = replies_every_5_s(n)
    echo = room.scale_to(room.echo_of(ref, room.room_response(60, 250)), 2 * USER_RMS)
    echo = soxr.resample(echo, R, R * (1 + ppm * 1e-6), quality="VHQ")[:n]
    echo = np.pad(echo, (0, n - len(echo)))
    noise = np.random.default_rng(5).standard_normal(n).astype(np.float32) * USER_RMS / 100
    return echo + noise, ref


@pytest.mark.parametrize("ppm", [20, -50])
def test_a_mic_whose_clock_drifts_from_the_speakers_is_followed(ppm):
    # Two devices, two clocks: the echo comes `ppm` later (or earlier) every second.
    # Speex cannot follow even 1 ppm by itself (ERLE under 20 dB, the residual heard as
    # speech every few seconds); the canceller reads the reference where the drift has
    # taken it. Replies from 60 s on are never heard as speech, the echo is cancelled as
    # in a room without drift, and status shows the drift.
    mic, ref = drifting_room(100, ppm)
    ec, _, out = run_counted(mic, ref)
    starts = [c.audio_ms / 1000 for c in EnergyVad().feed(out) if c.started]
    assert [t for t in starts if t >= 60] == []
    last = slice(91 * R, 93 * R)                                  # inside the last reply
    cancelled = out[last].astype(np.float64) / 32767
    assert 10 * np.log10(np.dot(mic[last], mic[last]) / np.dot(cancelled, cancelled)) > 30
    drift = ec.stats().drift_ppm
    assert drift is not None and drift == pytest.approx(ppm, abs=2)


@pytest.mark.parametrize("ppm", [5, -20])
def test_a_drift_found_late_does_not_leave_the_echo_smeared(ppm):
    # Until the drift is found (about 13 s in), the filter learns an echo that moves
    # under it, and learns its high frequencies smeared: once the reading follows the
    # drift, that smear is a residual for seconds, loud enough to be heard as speech.
    # The filter learns again from zero when the drift is found: no reply is ever heard
    # as speech.
    ec, _, out = run_counted(*drifting_room(60, ppm))
    assert [c.audio_ms / 1000 for c in EnergyVad().feed(out) if c.started] == []
    drift = ec.stats().drift_ppm
    assert drift is not None and drift == pytest.approx(ppm, abs=1)


@pytest.mark.parametrize("ppm", [100, 150])
def test_a_filter_that_started_again_settles_before_the_user_may_pass(ppm):
    # The replies read on through the sentences. The drift is found 20-27 s in, and the
    # filter, smeared by then, starts again from zero; converged again on the few
    # replies it has heard since, it meets at 42 s a sound it has not learnt, whose
    # residual passed as the user. The mic stays held while such a filter settles.
    n = 60 * R
    reply, _ = voices()
    speech = np.tile(reply, 1 + n // len(reply))
    ref = np.zeros(n, np.float32)
    for start in range(R, n - 3 * R, 5 * R):
        ref[start:start + int(2.5 * R)] = speech[start:start + int(2.5 * R)]
    echo = room.scale_to(room.echo_of(ref, room.room_response(60, 250)), 2 * USER_RMS)
    echo = soxr.resample(echo, R, R * (1 + ppm * 1e-6), quality="VHQ")[:n]
    echo = np.pad(echo, (0, n - len(echo)))
    noise = np.random.default_rng(5).standard_normal(n).astype(np.float32) * USER_RMS / 100
    ec, kernel, out = run_counted(echo + noise, ref)
    assert [c.audio_ms / 1000 for c in EnergyVad().feed(out) if c.started] == []
    assert kernel.resets >= 1 and ec.guard is Guard.CONVERGED


@pytest.mark.parametrize("tail_ms", [250, 500])
def test_a_burst_of_residual_that_followed_the_estimate_stays_echo(tail_ms):
    # A 150 ms room, the reply alone: 9.6 s in, the filter's residual rises for six
    # frames, 10 dB over the residual held from echo frames. Its first frames follow
    # the echo estimate (echo), the next ones no longer do, and by their energies
    # they are the user: three of them in a row would be a speech start. The guard
    # holds the mic there, the filter settling (FIRST_S); and a burst that followed the
    # estimate stays echo while it stays near the residual (test_echo_guard).
    n = 12 * R
    reply = np.concatenate([room.speech(s, "en", seed=i) for i, s in enumerate(room.SENTENCES)])
    ref = np.zeros(n, np.float32)
    ref[:n] = np.tile(reply, 2)[:n]
    echo = room.scale_to(room.echo_of(ref, room.room_response(150, tail_ms)), 2 * USER_RMS)
    noise = np.random.default_rng(5).standard_normal(n).astype(np.float32) * USER_RMS / 100
    _, _, out = run_counted(echo + noise, ref)
    assert [c.audio_ms / 1000 for c in EnergyVad().feed(out) if c.started] == []


def test_only_a_drift_that_moved_the_echo_under_the_filter_makes_it_learn_again():
    # The rule on its own, the tracker's updates stated: the echo moved by the change of
    # drift times the time since the drift the reading follows was set.
    kernel = CountingKernel()
    ec = kernel.ec = EchoCanceller(kernel, R)

    def update(ppm: float, at_s: float) -> None:
        ec._mic_count = int(at_s * R)
        ec._drift.ratio, ec._drift.updates = ppm * 1e-6, ec._drift.updates + 1
        ec._drift_found()

    update(0.02, 2 * 3600)      # one sound card: hundredths of a ppm, after two quiet hours
    assert kernel.resets == 0 and ec.guard is Guard.LEARNING    # 3.5 samples, but no drift
    ec._guardian.state = Guard.CONVERGED
    update(5.0, 2 * 3600 + 20)  # a drift found 20 s on: the echo moved 2.4 samples
    assert kernel.resets == 1 and ec.guard is Guard.LEARNING
    ec._guardian.state = Guard.CONVERGED
    update(5.3, 2 * 3600 + 40)  # a correction of 0.3 ppm: the filter follows it
    update(15.0, 2 * 3600 + 41)  # 10 ppm more, a second on: a quarter of a sample
    assert kernel.resets == 1 and ec.guard is Guard.CONVERGED


def test_replies_in_a_learnt_room_are_never_heard_as_speech():
    # Replies every 5 s in a 60 ms room, the echo 6 dB over the user's level. At a loud
    # word's onset the output can follow the negative of the filter's echo estimate
    # (the filter subtracts more than the echo holds), which by its energies alone
    # would be the user. The guard converges, settled, at about 32 s.
    n = 44 * R
    ref = replies_every_5_s(n)
    echo = room.scale_to(room.echo_of(ref, room.room_response(60, 250)), 2 * USER_RMS)
    noise = np.random.default_rng(5).standard_normal(n).astype(np.float32) * USER_RMS / 100
    ec, _, out = run_counted(echo + noise, ref)
    assert [c.audio_ms for c in EnergyVad().feed(out) if c.started] == []
    assert ec.guard is Guard.CONVERGED


@pytest.mark.parametrize("on_s", [16.0, 18.0, 19.5])
def test_an_echo_that_appears_is_held_until_it_is_learnt(on_s):
    # The guard converged where the mic did not hear the speaker (switched off); as a
    # reply starts (16 s), at its end (18 s) or between two (19.5 s) it is switched on.
    # The next reply's echo and a user talking look alike to the guard: the mic is held
    # until the delay estimate finds the echo, then while the canceller learns it. An
    # estimate made before that reply has played long enough does not let it pass. The
    # filter has met this echo only now: once converged, it settles until it has played
    # FIRST_S since (its bursts on sounds it has not met yet would pass as the user),
    # then the guard converges. No reply is heard as speech.
    n = 64 * R
    ref = replies_every_5_s(n)
    echo = room.scale_to(room.echo_of(ref, room.room_response(60, 250)), 2 * USER_RMS)
    echo[:int(on_s * R)] = 0
    noise = np.random.default_rng(5).standard_normal(n).astype(np.float32) * USER_RMS / 100
    ec, _, out = run_counted(echo + noise, ref)
    assert [c.audio_ms for c in EnergyVad().feed(out) if c.started] == []
    stats = ec.stats()
    assert stats.delay_ms == pytest.approx(60, abs=15) and stats.held_s > FIRST_S
    assert stats.guard is Guard.CONVERGED


def test_a_user_talking_over_replies_in_a_room_without_echo_is_heard():
    # Headphones: the mic never hears the speaker. The user talks over two replies; each
    # time the mic is held only until the estimate finds no echo in it.
    n = 32 * R
    ref = replies_every_5_s(n)
    _, said = voices()
    user = np.zeros(n, np.float32)
    talks = (22.3, 27.0)
    for t in talks:
        user[int(t * R):int(t * R) + int(1.8 * R)] = room.scale_to(said[:int(1.8 * R)],
                                                                    USER_RMS)
    noise = np.random.default_rng(5).standard_normal(n).astype(np.float32) * USER_RMS / 100
    ec, _, out = run_counted(user + noise, ref)
    starts = [c.audio_ms / 1000 for c in EnergyVad().feed(out) if c.started]
    assert len(starts) == 2
    for t, start in zip(talks, starts, strict=True):
        assert t - 0.1 <= start <= t + 1.5
    assert ec.stats().delay_ms is None and ec.guard is Guard.CONVERGED


def test_the_guard_weighs_energies_towards_the_voice_band():
    ec = EchoCanceller(RecordingKernel(), R)
    t = np.arange(ec.frame) / R
    low = (0.1 * 32767 * np.sin(2 * np.pi * 100 * t)).astype(np.int16)
    voice = (0.1 * 32767 * np.sin(2 * np.pi * 2000 * t)).astype(np.int16)
    (low_e, low_v), (voice_e, voice_v) = ec._energies(low), ec._energies(voice)
    assert low_e == pytest.approx(voice_e, rel=0.02)
    assert 10 * np.log10(voice_v / low_v) > 15


def test_a_mic_that_starts_in_digital_silence_still_learns_the_room_at_rest():
    # Many devices hand over zeros for their first periods. Those say nothing of the
    # room: the headphone room's tone, which follows them, is its level at rest, so
    # the mic is known not to hear the speaker and the kernel rests as before.
    n = 30 * R
    mic, ref = tone_and_noise(n), room.scale_to(replies_every_5_s(n), 0.1)
    mic[:R // 2] = 0.0
    ec, kernel, _ = run_counted(mic, ref)
    assert [k for k in kernel.calls if k >= 10 * R] == []
    stats = ec.stats()
    assert stats.guard is Guard.CONVERGED and stats.delay_ms is None
    assert stats.held_s < 1.5                              # the first reply's learning


def test_a_muted_mic_rests_the_kernel_and_the_room_is_learnt_once_unmuted():
    # A capture muted at the device hands over zeros: there is no echo in them to
    # cancel (and a filter run on them would unlearn the room). Unmuted at 10 s into
    # an echo room, the canceller learns it and cancels the later replies.
    n = 40 * R
    ref = replies_every_5_s(n)
    mic = room.scale_to(room.echo_of(ref, room.room_response(50, 250)), 2 * USER_RMS)
    mic += np.random.default_rng(5).standard_normal(n).astype(np.float32) * USER_RMS / 100
    unmute = 10 * R
    mic[:unmute] = 0.0
    _, kernel, out = run_counted(mic, ref)
    assert len(out) == n
    assert [k for k in kernel.calls if k < unmute] == []
    assert not out[:unmute].any()
    late = slice(31 * R, int(33.5 * R))                   # a reply 20 s after unmuting
    m, o = room.to_pcm(mic)[late].astype(float), out[late].astype(float)
    assert 10 * np.log10(np.dot(m, m) / max(np.dot(o, o), 1.0)) > 15
