"""The reconnect policy (docs/design.md, 7) as a pure object: outcomes and time in, decisions out.

Rules it keeps:

- One failure is one step: the caller feeds exactly one outcome per
  connection attempt (an `error` followed by the server's close is one).
- 4001 and handshake 401/403 halt for `auth`; 4003 halts for `credits`.
  Nothing but `resume()` (SIGHUP, a button press, a restart) leaves a halt.
- 4008 (and HTTP 429) retry slowly: 30 s doubling to 300 s.
- 1013, `server_error`, network failures and every other close retry with
  the fast schedule: 1 s doubling to 60 s.
- The close code decides. When the server closes with a code this table
  names (`DECIDING_CODES`), that code is the outcome, whatever came first
  (an `error` of any code, `session_expired`, a keepalive timeout, no
  `session.updated` yet): `server_error` then 4001 halts, then 4008 is slow.
  Only without such a code does what we saw decide (`ended_by`).
- Every delay is jittered down to no less than half (the random source is
  injected, so tests are exact).
- 1000/1001 (session expired) reconnect within 1 s, once per stable period;
  a second such close before the link was stable takes a fast-schedule step,
  so a server that keeps closing cleanly cannot make us hot-loop.
- Both schedules reset once a connection reached `session.updated` and
  stayed up for 30 s.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from swaramd.core.states import HaltReason

FAST_BASE_S, FAST_CAP_S = 1.0, 60.0
SLOW_BASE_S, SLOW_CAP_S = 30.0, 300.0
QUICK_RECONNECT_S = 0.5  # jittered down to 0.25 s: well within the 1 s the contract allows
STABLE_AFTER_S = 30.0


class Schedule(StrEnum):
    """Which backoff schedule a retry came from (each counts separately)."""

    QUICK = "quick"
    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True, slots=True)
class Closed:
    """The WebSocket closed with this code (None: no close frame, i.e. 1006)."""

    code: int | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """The server refused the WebSocket handshake with this HTTP status."""

    status: int


@dataclass(frozen=True, slots=True)
class Unreachable:
    """Refused, reset, DNS, TLS, timeout: no usable connection."""

    detail: str


@dataclass(frozen=True, slots=True)
class ServerErrorEvent:
    """An `error` event with code `server_error`: we close and want a fresh session."""


Outcome = Closed | Rejected | Unreachable | ServerErrorEvent

# Close codes with their own row in the table above: a server that sends one of
# them has said how to go on, and that beats anything we concluded before it came.
DECIDING_CODES = frozenset({4001, 4003, 4008, 1013, 1000, 1001})


def ended_by(close_code: int | None, *, by_server: bool, error: str | None = None,
             timed_out: str | None = None) -> Outcome:
    """The one outcome of a connection that got past the handshake.

    `close_code` is the connection's close code (None: no close frame came);
    `by_server` says the server sent it on its own rather than echoing ours.
    `error` is the code of an `error` event that made us end the session
    (`server_error`, `session_expired`), `timed_out` what we stopped waiting
    for (no `session.updated`). A deciding code from the server beats both.
    """
    if by_server and close_code in DECIDING_CODES:
        return Closed(close_code)
    if error == "server_error":
        return ServerErrorEvent()
    if error == "session_expired":
        return Closed(1001)         # a clean end: reconnect at once, as for 1001
    if timed_out is not None:
        return Unreachable(timed_out)
    return Closed(close_code)


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after `delay` seconds."""

    delay: float
    schedule: Schedule


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop trying until a person acts (`ReconnectPolicy.resume`)."""

    reason: HaltReason


Decision = Retry | Halt

_HALT_CODES = {4001: HaltReason.AUTH, 4003: HaltReason.CREDITS}
_HALT_STATUSES = {401: HaltReason.AUTH, 403: HaltReason.AUTH}


class ReconnectPolicy:
    """Decides, for each failed or ended connection, whether and when to try again."""

    def __init__(self, rand: Callable[[], float] = random.random, scale: float = 1.0) -> None:
        """`rand` draws the jitter in [0, 1); `scale` shrinks every delay and the stability
        period alike (the same schedule, faster: for chaos tests, never for the appliance)."""
        if not scale > 0:
            raise ValueError("scale must be positive")
        self._rand = rand
        self._scale = scale
        self._fast_steps = 0
        self._slow_steps = 0
        self._quick_used = False
        self._live_since: float | None = None
        self.halted: HaltReason | None = None

    def on_session_updated(self, now: float) -> None:
        """The connection reached `session.updated` at `now` (starts the stability clock)."""
        self._live_since = now

    def after(self, outcome: Outcome, now: float) -> Decision:
        """What to do after a connection attempt ended with `outcome` at `now`."""
        if self._live_since is not None and now - self._live_since >= STABLE_AFTER_S * self._scale:
            self._reset()
        self._live_since = None
        reason = self._halt_reason(outcome)
        if reason is not None:
            self.halted = reason
            return Halt(reason)
        if _is_slow(outcome):
            self._slow_steps += 1
            return Retry(self._jitter(SLOW_BASE_S, SLOW_CAP_S, self._slow_steps), Schedule.SLOW)
        if isinstance(outcome, Closed) and outcome.code in (1000, 1001) and not self._quick_used:
            self._quick_used = True
            return Retry(QUICK_RECONNECT_S * self._scale * (0.5 + 0.5 * self._rand()),
                         Schedule.QUICK)
        self._fast_steps += 1
        return Retry(self._jitter(FAST_BASE_S, FAST_CAP_S, self._fast_steps), Schedule.FAST)

    def resume(self) -> None:
        """A person acted (SIGHUP, button, restart): leave any halt and start afresh."""
        self.halted = None
        self._reset()

    def _reset(self) -> None:
        self._fast_steps = self._slow_steps = 0
        self._quick_used = False

    @staticmethod
    def _halt_reason(outcome: Outcome) -> HaltReason | None:
        if isinstance(outcome, Closed) and outcome.code is not None:
            return _HALT_CODES.get(outcome.code)
        if isinstance(outcome, Rejected):
            return _HALT_STATUSES.get(outcome.status)
        return None

    def _jitter(self, base: float, cap: float, step: int) -> float:
        nominal = min(cap, base * 2.0 ** min(step - 1, 32)) * self._scale
        return nominal * (0.5 + 0.5 * float(self._rand()))


def _is_slow(outcome: Outcome) -> bool:
    return (isinstance(outcome, Closed) and outcome.code == 4008) or \
        (isinstance(outcome, Rejected) and outcome.status == 429)
