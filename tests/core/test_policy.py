"""The reconnect policy: delays, caps, jitter, separate schedules, reset, halts."""

from __future__ import annotations

import pytest

from swaramd.core.policy import (
    Closed,
    Halt,
    ReconnectPolicy,
    Rejected,
    Retry,
    Schedule,
    ServerErrorEvent,
    Unreachable,
    ended_by,
)
from swaramd.core.states import HaltReason

LOW, HIGH = (lambda: 0.0), (lambda: 0.999999)

FAST_FAILURES = [Closed(1013), ServerErrorEvent(), Unreachable("refused"), Closed(None),
                 Closed(1006), Closed(1011), Rejected(500), Rejected(502)]


@pytest.mark.parametrize("outcome", FAST_FAILURES, ids=repr)
def test_fast_schedule_doubles_from_1s_to_a_60s_cap(outcome):
    high, low = ReconnectPolicy(HIGH), ReconnectPolicy(LOW)
    ups = [high.after(outcome, 0.0) for _ in range(10)]
    downs = [low.after(outcome, 0.0) for _ in range(10)]
    assert all(isinstance(d, Retry) and d.schedule is Schedule.FAST for d in ups + downs)
    assert [round(d.delay, 3) for d in ups] == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert [d.delay for d in downs] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]


def test_4008_retries_slowly_from_30s_to_a_300s_cap():
    policy = ReconnectPolicy(HIGH)
    delays = [round(policy.after(Closed(4008), 0.0).delay) for _ in range(6)]  # type: ignore[union-attr]
    assert delays == [30, 60, 120, 240, 300, 300]
    assert ReconnectPolicy(LOW).after(Closed(4008), 0.0) == Retry(15.0, Schedule.SLOW)
    assert ReconnectPolicy(HIGH).after(Rejected(429), 0.0).schedule is Schedule.SLOW  # type: ignore[union-attr]


def test_jitter_stays_between_half_and_full():
    import random

    policy = ReconnectPolicy(random.Random(7).random)
    for step in range(1, 12):
        decision = policy.after(Closed(1013), 0.0)
        nominal = min(60.0, 2.0 ** (step - 1))
        assert isinstance(decision, Retry) and nominal / 2 <= decision.delay <= nominal


def test_the_two_schedules_count_separately():
    policy = ReconnectPolicy(HIGH)
    policy.after(Closed(1013), 0.0)
    policy.after(Closed(1013), 0.0)
    assert round(policy.after(Closed(4008), 0.0).delay) == 30  # type: ignore[union-attr]
    assert round(policy.after(Closed(1013), 0.0).delay) == 4  # type: ignore[union-attr]


@pytest.mark.parametrize(("outcome", "reason"), [
    (Closed(4001), HaltReason.AUTH), (Rejected(401), HaltReason.AUTH),
    (Rejected(403), HaltReason.AUTH), (Closed(4003), HaltReason.CREDITS),
])
def test_halts(outcome, reason):
    policy = ReconnectPolicy(HIGH)
    assert policy.after(outcome, 0.0) == Halt(reason)
    assert policy.halted is reason
    policy.resume()
    assert policy.halted is None


def test_reset_after_30s_live_but_not_before():
    policy = ReconnectPolicy(HIGH)
    for _ in range(4):
        policy.after(Closed(1013), 0.0)
    policy.on_session_updated(100.0)
    assert round(policy.after(Closed(1013), 129.0).delay) == 16  # type: ignore[union-attr]
    policy.on_session_updated(200.0)
    assert round(policy.after(Closed(1013), 230.0).delay) == 1  # type: ignore[union-attr]


def test_a_connection_that_never_reached_session_updated_does_not_reset():
    policy = ReconnectPolicy(HIGH)
    policy.after(Closed(4008), 0.0)
    assert round(policy.after(Closed(4008), 1000.0).delay) == 60  # type: ignore[union-attr]


def test_session_expiry_reconnects_within_1s_once_per_stable_period():
    policy = ReconnectPolicy(HIGH)
    policy.on_session_updated(0.0)
    first = policy.after(Closed(1001), 600.0)
    assert isinstance(first, Retry) and first.schedule is Schedule.QUICK and first.delay <= 1.0
    # A server that closes cleanly again at once does not get another quick retry.
    policy.on_session_updated(601.0)
    second = policy.after(Closed(1000), 602.0)
    assert isinstance(second, Retry) and second.schedule is Schedule.FAST
    # After a stable period, the next expiry is quick again.
    policy.on_session_updated(700.0)
    third = policy.after(Closed(1000), 800.0)
    assert isinstance(third, Retry) and third.schedule is Schedule.QUICK


def test_resume_starts_the_schedules_afresh():
    policy = ReconnectPolicy(HIGH)
    for _ in range(5):
        policy.after(Closed(1013), 0.0)
    policy.resume()
    assert round(policy.after(Closed(1013), 0.0).delay) == 1  # type: ignore[union-attr]


def test_no_outcome_gives_a_delay_below_the_floor_of_its_schedule():
    policy = ReconnectPolicy(LOW)
    delays = [policy.after(o, 0.0) for o in FAST_FAILURES * 3]
    assert all(isinstance(d, Retry) and d.delay >= 0.5 for d in delays)


def test_scale_shrinks_every_delay_and_the_stable_period_alike():
    fast = ReconnectPolicy(HIGH, scale=0.01)
    assert [round(fast.after(Closed(1013), 0.0).delay, 4) for _ in range(3)] == \
        [0.01, 0.02, 0.04]  # type: ignore[union-attr]
    assert round(fast.after(Closed(4008), 0.0).delay, 4) == 0.3  # type: ignore[union-attr]
    fast.on_session_updated(10.0)
    assert round(fast.after(Closed(1013), 10.31).delay, 4) == 0.01  # reset after 0.3 s live
    with pytest.raises(ValueError):
        ReconnectPolicy(scale=0)


@pytest.mark.parametrize(("close", "by_server", "error", "timed_out", "outcome"), [
    (4001, True, "server_error", None, Closed(4001)),
    (4003, True, "session_expired", None, Closed(4003)),
    (4008, True, "server_error", None, Closed(4008)),
    (1013, True, "session_expired", None, Closed(1013)),
    (1000, True, "server_error", None, Closed(1000)),
    (4001, True, None, "no session.updated in time", Closed(4001)),
    (1000, False, "server_error", None, ServerErrorEvent()),     # our own close, echoed
    (None, False, "server_error", None, ServerErrorEvent()),
    (1011, True, "server_error", None, ServerErrorEvent()),      # not a deciding code
    (1000, False, "session_expired", None, Closed(1001)),
    (1000, False, None, "no session.updated in time", Unreachable("no session.updated in time")),
    (1011, False, None, None, Closed(1011)),
    (None, False, None, None, Closed(None)),
])
def test_the_servers_close_code_decides_whatever_came_first(close, by_server, error, timed_out,
                                                            outcome):
    assert ended_by(close, by_server=by_server, error=error, timed_out=timed_out) == outcome
