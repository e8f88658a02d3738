"""The WebSocket link to swaram: connect, set up the session, receive, reconnect per policy.

This adapter only shuttles: frames go through `core.protocol`, every
decision about retrying comes from `core.policy.ReconnectPolicy`, and the
listener (the conversation) is told about states and events. Timers that a
pure core cannot own (keepalive, handshake and session-setup timeouts) live
here.

Session order (DESIGN §4): connect with `Authorization: Bearer`, send
`session.update` first, then nothing else until `session.updated`; only then
is the link LIVE and may audio flow. One outcome per attempt is fed to the
policy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from swaramd import __version__
from swaramd.core import protocol
from swaramd.core.events import ErrorEvent, Malformed, ServerEvent, SessionUpdated, UnknownEvent
from swaramd.core.policy import (
    Closed,
    Decision,
    Halt,
    Outcome,
    ReconnectPolicy,
    Rejected,
    ServerErrorEvent,
    Unreachable,
)
from swaramd.core.states import HaltReason
from swaramd.core.status import Status

log = logging.getLogger(__name__)

# The largest frame we accept. A reply's audio can come as one delta: 8 MiB of
# base64 is about 2.9 minutes of 24 kHz PCM16, far above any real delta.
MAX_FRAME_BYTES = 8 * 2**20


@dataclass(frozen=True, slots=True)
class LinkTimings:
    """Every wait of the link has a bound; tests shorten them.

    A stalled peer is noticed within ping_interval + ping_timeout +
    close_timeout = 21 s by default (DESIGN §4 asks for 30 s). The short
    close_timeout also bounds shutdown against a peer that never answers our
    close (DESIGN: stop within 2 s).
    """

    open_timeout: float = 10.0
    session_timeout: float = 10.0
    ping_interval: float = 10.0
    ping_timeout: float = 10.0
    close_timeout: float = 1.0


class LinkState(StrEnum):
    """Where the link is in its life."""

    IDLE = "idle"
    CONNECTING = "connecting"
    LIVE = "live"
    BACKOFF = "backoff"
    HALTED = "halted"


class LinkListener(Protocol):
    """What the link tells its owner; called on the event loop, must not block."""

    def on_link_state(self, state: LinkState, *, delay: float | None = None,
                      halt: HaltReason | None = None) -> None: ...

    def on_event(self, event: ServerEvent) -> None: ...


class Link:
    """One auto-reconnecting WebSocket session at a time, run by `run()` until cancelled."""

    def __init__(
        self,
        url: str,
        api_key: Callable[[], str],
        session_update: Callable[[], Mapping[str, Any]],
        listener: LinkListener,
        status: Status,
        *,
        policy: ReconnectPolicy | None = None,
        timings: LinkTimings = LinkTimings(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self._session_update = session_update
        self._listener = listener
        self._status = status
        self.policy = policy or ReconnectPolicy()
        self.timings = timings
        self._clock = clock
        self._wanted = asyncio.Event()
        self._wake = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._live = False
        self._hung_up = False
        self.state = LinkState.IDLE

    # --- owner's controls ---------------------------------------------------

    def want_connected(self) -> None:
        """Connect (or stay connected, reconnecting per policy) from now on."""
        self._wanted.set()

    async def hang_up(self) -> None:
        """Close with 1000 and stay disconnected until `want_connected()` (user ended it)."""
        self._wanted.clear()
        self._wake.set()
        ws = self._ws
        if ws is not None:
            self._hung_up = True
            await ws.close(1000, "hang up")

    def resume(self) -> None:
        """A person acted (SIGHUP, button): leave a halt or a backoff wait at once, afresh."""
        if self.state in (LinkState.HALTED, LinkState.BACKOFF):
            self.policy.resume()
            self._wake.set()

    @property
    def live(self) -> bool:
        """True between `session.updated` and the end of the connection."""
        return self._live

    async def send(self, event: Mapping[str, Any]) -> bool:
        """Send one client event if the session is live; False (dropped) otherwise."""
        return await self.send_text(protocol.encode(event))

    async def send_text(self, text: str) -> bool:
        """Send an already-encoded client event if the session is live."""
        ws = self._ws
        if ws is None or not self._live:
            return False
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    # --- the loop -----------------------------------------------------------

    async def run(self) -> None:
        """Connect whenever wanted, and reconnect per policy, until cancelled."""
        first = True
        while True:
            if not self._wanted.is_set():
                self._set_state(LinkState.IDLE)
                await self._wanted.wait()
                first = True
            if not first:
                self._status.reconnects += 1
            first = False
            outcome = await self._attempt()
            if outcome is None:  # we hung up: the user ended the conversation
                continue
            decision = self.policy.after(outcome, self._clock())
            log.info("link ended: %s; %s", _describe(outcome), _describe_decision(decision))
            await self._wait_out(decision)

    async def _wait_out(self, decision: Decision) -> None:
        self._wake.clear()
        if isinstance(decision, Halt):
            self._status.halt_reason = decision.reason
            self._set_state(LinkState.HALTED, halt=decision.reason)
            await self._wake.wait()
            self.policy.resume()
            return
        self._set_state(LinkState.BACKOFF, delay=decision.delay)
        try:
            async with asyncio.timeout(decision.delay):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _attempt(self) -> Outcome | None:
        self._set_state(LinkState.CONNECTING)
        self._hung_up = False
        try:
            ws = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self._api_key()}"},
                user_agent_header=f"swaramd/{__version__}",
                compression=None,  # base64 PCM barely deflates; a Pi's CPU is better spent
                max_size=MAX_FRAME_BYTES,
                open_timeout=self.timings.open_timeout,
                ping_interval=self.timings.ping_interval,
                ping_timeout=self.timings.ping_timeout,
                close_timeout=self.timings.close_timeout,
            )
        except InvalidStatus as exc:
            return Rejected(exc.response.status_code)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            return Unreachable(type(exc).__name__)
        if not self._wanted.is_set():   # hung up while the handshake ran: no session, no bill
            await ws.close(1000, "hang up")
            self._status.last_close_code = ws.close_code
            return None
        self._ws = ws
        try:
            return await self._converse(ws)
        finally:
            self._ws = None
            self._set_live(False)
            await ws.close(1000)
            self._status.last_close_code = ws.close_code

    async def _converse(self, ws: ClientConnection) -> Outcome | None:
        """Set the session up, then receive until the connection ends; returns its outcome."""
        try:
            await ws.send(protocol.encode(self._session_update()))
            async with asyncio.timeout(self.timings.session_timeout) as setup:
                async for frame in ws:
                    wanted = self._dispatch(frame)
                    if wanted is not None:
                        await ws.close(1000, f"{wanted}: starting a fresh session")
                        # An expired session is a clean end (reconnect at once, as for
                        # 1001); server_error takes a backoff step.
                        return Closed(1001) if wanted == "session_expired" \
                            else ServerErrorEvent()
                    if self._live and setup.when() is not None:
                        setup.reschedule(None)  # session.updated came: no more deadline
        except TimeoutError:
            await ws.close(1000, "no session.updated")
            return Unreachable("no session.updated in time")
        except ConnectionClosed:
            pass
        if self._hung_up:
            return None
        return Closed(ws.close_code)

    def _dispatch(self, frame: str | bytes) -> str | None:
        """Decode and hand on one frame; the error code when the service wants a fresh session."""
        event = protocol.decode(frame)
        if isinstance(event, Malformed):
            self._status.protocol.malformed_frames += 1
            log.warning("malformed frame ignored (%s%s)", event.reason,
                        f", type {event.type}" if event.type else "")
            return None
        if isinstance(event, UnknownEvent):
            log.debug("ignored event of type %s", event.type)
            return None
        if isinstance(event, SessionUpdated) and not self._live:
            self.policy.on_session_updated(self._clock())
            self._set_live(True)
        if isinstance(event, ErrorEvent):
            self._status.protocol.error_events += 1
            log.warning("service error %s: %s", event.code or "(no code)", event.message)
        self._listener.on_event(event)
        return event.code if isinstance(event, ErrorEvent) and event.wants_reconnect else None

    def _set_live(self, live: bool) -> None:
        self._live = live
        self._status.connected = live
        if live:
            self._status.halt_reason = None
            self._set_state(LinkState.LIVE)

    def _set_state(self, state: LinkState, *, delay: float | None = None,
                   halt: HaltReason | None = None) -> None:
        self.state = state
        self._listener.on_link_state(state, delay=delay, halt=halt)


def _describe(outcome: Outcome) -> str:
    if isinstance(outcome, Closed):
        return f"closed {outcome.code}"
    if isinstance(outcome, Rejected):
        return f"handshake refused with HTTP {outcome.status}"
    if isinstance(outcome, Unreachable):
        return f"could not connect ({outcome.detail})"
    return "service asked for a fresh session (server_error)"


def _describe_decision(decision: Decision) -> str:
    if isinstance(decision, Halt):
        return f"halting ({decision.reason.value}) until SIGHUP, a button press or a restart"
    return f"retrying in {decision.delay:.1f} s ({decision.schedule.value} backoff)"
