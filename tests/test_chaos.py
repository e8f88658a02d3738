"""Chaos, short run for CI: the real daemon as a process through 100 faulty connections.

tests/support/chaos_driver.py says what is checked; bench/chaos.py is the long
run (1000 connections); docs/reliability.md has the figures. Here RssAnon is
compared at connections 20 and 100 (the bench: 100 and N).
"""

from __future__ import annotations

import pytest

from tests.support.chaos_driver import ChaosPlan, run_chaos
from tests.support.chaos_service import FAULTS


@pytest.mark.timeout(300)
async def test_a_hundred_faulty_connections(tmp_path):
    result = await run_chaos(ChaosPlan(tmp_path, connections=100, rss_marks=(20, 100)))
    print(result.table())
    print(result.summary())
    assert {c.fault for c in result.faulted} == set(FAULTS)  # every fault at least once
    problems = result.problems()
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(120)
async def test_the_hot_loop_check_catches_a_daemon_faster_than_its_policy(tmp_path):
    """The harness's own check: the daemon backs off 3000 times faster than the policy the
    driver judges by (a near-hot loop); nearly every gap must be flagged. The driver's scale
    puts the least allowed gap at 75-150 ms, so that a reconnect slowed by a loaded machine
    (tens of ms) is still far below it."""
    # Not server_error: the daemon waits its close timeout (unscaled) for the service's own
    # close before closing itself, so that gap is never near a hot loop.
    fast = ("close_1000", "close_1013", "http_500", "tcp_reset")
    result = await run_chaos(ChaosPlan(tmp_path, connections=20, rss_marks=(5, 20), faults=fast,
                                       scale=0.3, daemon_scale=0.0001, dwell_share=0.0))
    flagged = [p for p in result.problems() if p.startswith("hot loop")]
    assert len(flagged) >= 15, (flagged, result.table())
