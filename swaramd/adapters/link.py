"""The WebSocket link to swaram: connect, set up the session, receive, reconnect per policy.

This adapter only shuttles: frames go through `core.protocol`, every
decision about retrying comes from `core.policy.ReconnectPolicy`, and the
listener (the conversation) is told about states and events. Timers that a
pure core cannot own (keepalive, handshake and session-setup timeouts) live
here.

Session order: connect with `Authorization: Bearer`, send
`session.update` first, then nothing else until `session.updated`; only then
is the link LIVE and may audio flow. One outcome per attempt is fed to the
policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import socket
import ssl
import struct
import termios
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
    ProxyError,
    WebSocketException,
)
from websockets.proxy import get_proxy, parse_proxy
from websockets.uri import parse_uri

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
    Unreachable,
    ended_by,
)
from swaramd.core.states import HaltReason

log = logging.getLogger(__name__)

# The largest frame we accept. A reply's audio can come as one delta: 4 MiB of
# base64 is about 87 s of 24 kHz PCM16, far above any real delta (tenths of a
# second). With at most MAX_QUEUE frames waiting for our reader (it hands each
# on at once, so the queue only fills if the loop stalls), inbound memory stays
# under 16 MiB: a Pi Zero's worth, where websockets' defaults (16 x 1 MiB
# frames) came to 128 MiB with our old 8 MiB bound.
MAX_FRAME_BYTES = 4 * 2**20
MAX_QUEUE = 4

# Uplink audio in flight is bounded, so a slow link drops old audio at the
# uplink backlog (counted in audio.dropped_frames) instead of queueing it in
# the kernel: websockets' buffer plus our socket's send queue stay under
# IN_FLIGHT_BYTES (about 0.5 s of 24 kHz PCM16 as base64 appends), and a ping
# sent behind the audio must come back within AUDIO_LAG_S, else the service
# is not reading what we send (its receive buffer can hold seconds of audio).
# Probes go only behind something sent: a gate that passes nothing costs none.
IN_FLIGHT_BYTES = 32 * 1024
AUDIO_LAG_S = 0.5
PROBE_EVERY_S = 0.25
SEND_POLL_S = 0.02
UNSENT_EVERY_S = 0.1       # the socket's send queue is read (an ioctl) at most this often


@dataclass(frozen=True, slots=True)
class LinkTimings:
    """Every wait of the link has a bound; tests shorten them.

    A stalled peer is noticed within ping_interval + ping_timeout +
    close_timeout = 21 s by default (30 s is the bound). The short
    close_timeout also bounds shutdown against a peer that never answers our
    close (a stop within 2 s).
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

    def on_session_live(self, live: bool) -> None:
        """A session reached `session.updated` (True), or ended (False)."""

    def on_link_closed(self, code: int | None) -> None:
        """A connection closed with `code`, from either side (None: no close frame)."""

    def on_reconnect(self) -> None:
        """An attempt after a connection of the same conversation ended."""

    def on_malformed_frame(self) -> None:
        """A frame was refused by the decoder (logged here, counted by the owner)."""


class Link:
    """One auto-reconnecting WebSocket session at a time, run by `run()` until cancelled."""

    def __init__(
        self,
        url: str,
        api_key: Callable[[], str],
        session_update: Callable[[], Mapping[str, Any]],
        listener: LinkListener,
        *,
        policy: ReconnectPolicy | None = None,
        timings: LinkTimings = LinkTimings(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self._session_update = session_update
        self._listener = listener
        self.policy = policy or ReconnectPolicy()
        self.timings = timings
        self._clock = clock
        self._wanted = asyncio.Event()
        self._wake = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._live = False
        self._hung_up = False
        self._probe: tuple[float, asyncio.Future[float]] | None = None
        self._next_probe = 0.0
        self._sent = False               # something went out since the last probe
        self._unsent = 0                 # the socket's send queue when last read
        self._next_unsent = 0.0
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
        self._sent = True
        return True

    async def wait_sendable(self) -> None:
        """Return once uplink audio may be sent without piling up: at once when the link is
        not live (a send then drops the frame), else when what is in flight is under the
        bounds above. The caller's backlog meanwhile keeps only the newest audio."""
        while True:
            ws = self._ws
            if ws is None or not self._live or not await self._backed_up(ws):
                return
            await asyncio.sleep(SEND_POLL_S)

    async def _backed_up(self, ws: ClientConnection) -> bool:
        now = self._clock()
        # Read every frame, the kernel's queue would cost a system call per frame;
        # every UNSENT_EVERY_S it lets at most a few frames more into the kernel.
        # While over the bound it is read on every poll, so sending resumes at once.
        if now >= self._next_unsent or self._unsent > IN_FLIGHT_BYTES // 2:
            self._unsent = _unsent(ws)
            self._next_unsent = now + UNSENT_EVERY_S
        if ws.transport.get_write_buffer_size() + self._unsent > IN_FLIGHT_BYTES:
            return True
        if self._probe is not None:
            sent_at, pong = self._probe
            if not pong.done():
                return now - sent_at > AUDIO_LAG_S
            self._probe = None
            self._next_probe = now + PROBE_EVERY_S
        if now >= self._next_probe and self._sent:
            self._sent = False
            try:
                pong = await ws.ping()
            except ConnectionClosed:
                return False
            if isinstance(pong, asyncio.Future):
                pong.add_done_callback(_consume)
                self._probe = (now, pong)
        return False

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
                self._listener.on_reconnect()
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
                max_queue=MAX_QUEUE,
                open_timeout=self.timings.open_timeout,
                ping_interval=self.timings.ping_interval,
                ping_timeout=self.timings.ping_timeout,
                close_timeout=self.timings.close_timeout,
            )
        except InvalidStatus as exc:
            return Rejected(exc.response.status_code)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever connect meets is a failed attempt, never a crash
            return Unreachable(describe_connect_failure(exc, self.url))
        if not self._wanted.is_set():   # hung up while the handshake ran: no session, no bill
            await ws.close(1000, "hang up")
            self._listener.on_link_closed(ws.close_code)
            return None
        self._ws = ws
        self._probe, self._sent = None, False
        self._unsent, self._next_unsent = 0, 0.0
        try:
            return await self._converse(ws)
        finally:
            self._ws = None
            self._set_live(False)
            await ws.close(1000)
            self._listener.on_link_closed(ws.close_code)

    async def _converse(self, ws: ClientConnection) -> Outcome | None:
        """Set the session up, then receive until the connection ends; returns its outcome.

        When we end it ourselves (an `error` asking for a fresh session, no
        `session.updated` in time), the server's own close code, if it sends one
        within the close timeout, still decides: see `core.policy.ended_by`."""
        error: str | None = None
        timed_out: str | None = None
        try:
            await ws.send(protocol.encode(self._session_update()))
            async with asyncio.timeout(self.timings.session_timeout) as setup:
                async for frame in ws:
                    error = self._dispatch(frame)
                    if error is not None:
                        break
                    if self._live and setup.when() is not None:
                        setup.reschedule(None)  # session.updated came: no more deadline
        except TimeoutError:
            timed_out = "no session.updated in time"
        except (OSError, WebSocketException) as exc:   # ConnectionClosed, mostly
            log.debug("connection ended: %s", type(exc).__name__)
        if error is not None or timed_out is not None:
            self._set_live(False)   # no more audio: this session is over
            await self._await_server_close(ws)
            await ws.close(1000, f"{error}: starting a fresh session" if error
                           else "no session.updated")
        if self._hung_up:
            return None
        return ended_by(ws.close_code, by_server=_closed_by_server(ws), error=error,
                        timed_out=timed_out)

    async def _await_server_close(self, ws: ClientConnection) -> None:
        """Give the server a short, bounded grace to send its own close (its code decides);
        frames meanwhile are read (so its close is not stuck behind them) and dropped."""
        with contextlib.suppress(TimeoutError, OSError, WebSocketException):
            async with asyncio.timeout(min(self.timings.close_timeout, 1.0)):
                async for _frame in ws:
                    pass

    def _dispatch(self, frame: str | bytes) -> str | None:
        """Decode and hand on one frame; the error code when the service wants a fresh session."""
        event = protocol.decode(frame)
        if isinstance(event, Malformed):
            self._listener.on_malformed_frame()
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
            log.warning("service error %s: %s", event.code or "(no code)", event.message)
        self._listener.on_event(event)
        return event.code if isinstance(event, ErrorEvent) and event.wants_reconnect else None

    def _set_live(self, live: bool) -> None:
        self._live = live
        self._listener.on_session_live(live)
        if live:
            self._set_state(LinkState.LIVE)

    def _set_state(self, state: LinkState, *, delay: float | None = None,
                   halt: HaltReason | None = None) -> None:
        self.state = state
        self._listener.on_link_state(state, delay=delay, halt=halt)


def _describe(outcome: Outcome) -> str:
    if isinstance(outcome, Closed):
        return f"closed {outcome.code}" if outcome.code is not None \
            else "connection lost (no close frame)"
    if isinstance(outcome, Rejected):
        return f"handshake refused with HTTP {outcome.status}"
    if isinstance(outcome, Unreachable):
        return outcome.detail
    return "service asked for a fresh session (server_error)"


def describe_connect_failure(exc: BaseException, url: str) -> str:
    """What went wrong opening the connection, in words, on one line. Never the URL's
    userinfo or query, nor a proxy's credentials (exceptions may quote them)."""
    host, port = _host_port(url)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"name lookup for {host} failed ({exc.strerror or 'no address'})"
    if isinstance(exc, UnicodeError):
        return f"name lookup for {host} failed (not a valid host name)"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(exc, ConnectionResetError):
        return f"connection reset by {where} while opening it"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS handshake with {where} failed: {_short(exc.verify_message or exc.reason)}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed: {_short(exc.reason or exc.strerror)}"
    if isinstance(exc, TimeoutError):
        return f"timed out opening the connection to {where}"
    if isinstance(exc, InvalidProxy):
        return f"proxy {_redact(exc.proxy)} is invalid: {_short(exc.msg)}"
    if isinstance(exc, ProxyError):
        return f"the proxy failed: {_short(str(exc))}"
    if isinstance(exc, ImportError):     # a SOCKS proxy without python-socks, say
        return f"the proxy needs a module that is not installed ({exc.name or exc})"
    if isinstance(exc, ValueError):
        bad = _proxy_problem(url)
        if bad is not None:
            return bad
    if isinstance(exc, InvalidURI):
        return "server.url is not a valid WebSocket URL"
    if isinstance(exc, InvalidHandshake):
        return f"WebSocket handshake with {where} failed ({type(exc).__name__}: " \
            f"{_short(str(exc))})"
    if isinstance(exc, OSError):
        text = str(exc)
        if exc.errno is None and text.startswith("Multiple exceptions"):
            # asyncio tried each address of the name; say so when all refused alike
            if text.count("[Errno ") == text.count(f"[Errno {errno.ECONNREFUSED}]"):
                return f"connection refused by {where} (every address)"
            return f"could not connect to {where}: {_short(text)}"
        return f"could not connect to {where}: {_short(exc.strerror or type(exc).__name__)}"
    return f"could not connect to {where} ({type(exc).__name__})"


def _proxy_problem(url: str) -> str | None:
    """Why the proxy the environment names for `url` (http(s)_proxy, all_proxy) is
    unusable, or None when there is none or it parses."""
    try:
        proxy = get_proxy(parse_uri(url))
        if proxy is not None:
            parse_proxy(proxy)
    except InvalidProxy as exc:
        return f"proxy {_redact(exc.proxy)} is invalid: {_short(exc.msg)}"
    except Exception as exc:  # the proxy's URL did not even parse
        return f"the proxy set in the environment is not a valid URL ({_short(exc)})"
    return None


def _redact(url: str) -> str:
    """`url` without userinfo, query or fragment (any may carry a credential)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def _host_port(url: str) -> tuple[str, int | str]:
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return host, parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError:
        return "?", "?"


def _short(text: object, limit: int = 120) -> str:
    return " ".join(str(text).split())[:limit]


def _closed_by_server(ws: ClientConnection) -> bool:
    """True when the server sent a close of its own, not an echo of ours."""
    proto = ws.protocol
    rcvd, sent = proto.close_rcvd, proto.close_sent
    if rcvd is None:
        return False
    return sent is None or bool(proto.close_rcvd_then_sent) or rcvd.code != sent.code


def _unsent(ws: ClientConnection) -> int:
    """Bytes in our socket's send queue that the peer has not acknowledged (Linux)."""
    sock = ws.transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # = SIOCOUTQ
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", out)[0])


def _consume(future: asyncio.Future[float]) -> None:
    """Retrieve a probe's outcome (a closed connection fails it) so none is left unread."""
    if not future.cancelled():
        future.exception()


def _describe_decision(decision: Decision) -> str:
    if isinstance(decision, Halt):
        return f"halting ({decision.reason.value}) until SIGHUP, a button press or a restart"
    return f"retrying in {decision.delay:.1f} s ({decision.schedule.value} backoff)"
