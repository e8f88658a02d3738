"""The link against a real loopback `websockets` service scripting each close code."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from swaramd.adapters.link import (
    MAX_FRAME_BYTES,
    Link,
    LinkState,
    LinkTimings,
    describe_connect_failure,
)
from swaramd.core import protocol
from swaramd.core.config import SessionConfig
from swaramd.core.events import AudioDelta, ErrorEvent, ServerEvent
from swaramd.core.policy import ReconnectPolicy, Schedule
from swaramd.core.states import HaltReason
from swaramd.core.status import Status
from tests.support.service import FakeService, Peer, Reject, audio_delta

FAST = LinkTimings(open_timeout=2, session_timeout=2, ping_interval=0.2, ping_timeout=0.2,
                   close_timeout=0.3)
TOOLS = [{"type": "function", "name": "get_time", "description": "time",
          "parameters": {"type": "object", "properties": {}}}]


class Recorder:
    """A LinkListener that records states and events, with waits for tests."""

    def __init__(self) -> None:
        self.states: list[tuple[LinkState, float | None, HaltReason | None]] = []
        self.events: list[ServerEvent] = []
        self.changed = asyncio.Event()
        self.status = Status(started_at=time.monotonic())   # kept as the daemon keeps it

    def on_link_state(self, state, *, delay=None, halt=None) -> None:
        self.states.append((state, delay, halt))
        self.changed.set()

    def on_event(self, event) -> None:
        if isinstance(event, ErrorEvent):
            self.status.on_error_event()
        self.events.append(event)
        self.changed.set()

    def on_session_live(self, live: bool) -> None:
        self.status.on_session_live(live)

    def on_link_closed(self, code: int | None) -> None:
        self.status.on_link_closed(code)

    def on_reconnect(self) -> None:
        self.status.on_reconnect()

    def on_malformed_frame(self) -> None:
        self.status.on_malformed_frame()

    async def wait_state(self, state: LinkState, count: int = 1, timeout: float = 10.0):
        async with asyncio.timeout(timeout):
            while True:
                found = [s for s in self.states if s[0] is state]
                if len(found) >= count:
                    return found[count - 1]
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def running(service: FakeService, rand=lambda: 0.999,
                  timings: LinkTimings = FAST) -> AsyncIterator[tuple[Link, Recorder]]:
    recorder = Recorder()
    link = Link(service.url, lambda: service.key,
                lambda: protocol.session_update(SessionConfig(), TOOLS),
                recorder,
                policy=ReconnectPolicy(rand), timings=timings)
    link.want_connected()
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(link.run())
        try:
            yield link, recorder
        finally:
            task.cancel()
    assert not service.invalid, service.invalid


async def wait_attempts(service: FakeService, count: int, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while len(service.attempts) < count:
            await asyncio.sleep(0.01)


async def close_after_setup(code: int):
    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.close(code)
    return script


async def test_session_order_and_bearer_header():
    sent_after_update: list[str] = []

    async def script(peer: Peer) -> None:
        await peer.send({"type": "session.created", "session": {}})
        first = await peer.next_event()
        assert first["type"] == "session.update"
        # Nothing else may arrive before session.updated.
        try:
            extra = await peer.next_event(timeout=0.3)
            sent_after_update.append(extra["type"])
        except TimeoutError:
            pass
        await peer.send({"type": "session.updated", "session": {}})
        await peer.hold(5)

    async with FakeService([script]) as svc, running(svc) as (link, rec):
        await rec.wait_state(LinkState.LIVE)
        assert link.live and rec.status.connected
        assert await link.send(protocol.audio_append(b"\0\0" * 480))
        await svc.peers[0].wait_for("input_audio_buffer.append")
    assert svc.headers[0]["Authorization"] == f"Bearer {svc.key}"
    assert svc.received[0]["type"] == "session.update"
    assert set(svc.received[0]["session"]) == {"instructions", "voice", "tools", "tool_choice"}
    assert sent_after_update == []


async def test_nothing_is_sent_before_session_updated():
    async def script(peer: Peer) -> None:
        await peer.wait_for("session.update")
        await peer.hold(5)

    async with FakeService([script]) as svc, running(svc) as (link, rec):
        await rec.wait_state(LinkState.CONNECTING)
        await asyncio.sleep(0.2)
        assert not await link.send(protocol.audio_append(b"\0\0"))
        assert not rec.status.connected
    assert [e["type"] for e in svc.received] == ["session.update"]


@pytest.mark.parametrize(("code", "reason"), [(4001, HaltReason.AUTH),
                                              (4003, HaltReason.CREDITS)])
async def test_halting_close_codes(code, reason):
    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "error", "error": {"code": "x", "message": "m"}})
        await peer.close(code)

    async with FakeService([script]) as svc, running(svc) as (link, rec):
        state = await rec.wait_state(LinkState.HALTED)
        assert state[2] is reason
        await asyncio.sleep(0.5)
        assert len(svc.attempts) == 1  # no further attempt while halted
        assert rec.status.last_close_code == code
        # An `error` before the close is counted but is not a second failure.
        assert rec.status.protocol.error_events == 1
        link.resume()
        await wait_attempts(svc, 2)
        # The second connection plays out too (ending the test mid-handshake would leave
        # the service's script waiting for a session.update that never comes).
        await rec.wait_state(LinkState.HALTED, count=2)


@pytest.mark.parametrize("status", [401, 403])
async def test_handshake_401_403_halts_for_auth(status):
    async with FakeService([Reject(status)]) as svc, running(svc) as (_link, rec):
        state = await rec.wait_state(LinkState.HALTED)
        assert state[2] is HaltReason.AUTH
        await asyncio.sleep(0.3)
    assert len(svc.attempts) == 1


@pytest.mark.parametrize(("script_kind", "schedule", "first_delay"), [
    (4008, Schedule.SLOW, 30.0),
    (1013, Schedule.FAST, 1.0),
    (1011, Schedule.FAST, 1.0),
    (500, Schedule.FAST, 1.0),
])
async def test_backoff_close_codes(script_kind, schedule, first_delay):
    script = Reject(500) if script_kind == 500 else await close_after_setup(script_kind)
    async with FakeService([script]) as svc, running(svc) as (_link, rec):
        state = await rec.wait_state(LinkState.BACKOFF)
        assert state[1] == pytest.approx(first_delay, rel=0.01)
        if script_kind != 500:
            assert rec.status.last_close_code == script_kind
    assert len(svc.attempts) == 1
    del schedule  # the delay pins the schedule: 30 s is only the slow one's first step


@pytest.mark.parametrize("code", [1000, 1001])
async def test_session_expiry_reconnects_within_a_second(code):
    async with FakeService([await close_after_setup(code), _hold]) as svc, \
            running(svc) as (_link, rec):
        await rec.wait_state(LinkState.LIVE, count=2)
        gap = svc.attempts[1] - svc.attempts[0]
        assert gap < 1.5
        assert rec.status.reconnects == 1
    assert [e["type"] for e in svc.received] == ["session.update", "session.update"]


async def _hold(peer: Peer) -> None:
    await peer.setup()
    await peer.hold(10)


async def test_a_stalled_peer_is_detected_and_retried():
    async def stall(peer: Peer) -> None:
        await peer.setup()
        await peer.stall(10)

    async with FakeService([stall, _hold]) as svc, running(svc) as (_link, rec):
        await rec.wait_state(LinkState.LIVE)
        started = time.monotonic()
        state = await rec.wait_state(LinkState.BACKOFF, timeout=5)
        # ping_interval + ping_timeout + close_timeout = 0.7 s here; generous bound.
        assert time.monotonic() - started < 3.0
        assert state[1] is not None and state[1] <= 1.0
        assert rec.status.last_close_code == 1006
        await rec.wait_state(LinkState.LIVE, count=2)


async def test_server_error_event_closes_with_1000_and_backs_off():
    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "error", "error": {"type": "server_error",
                                                    "code": "server_error", "message": "retry"}})
        await peer.hold(5)

    async with FakeService([script, _hold]) as svc, running(svc) as (_link, rec):
        state = await rec.wait_state(LinkState.BACKOFF)
        assert state[1] == pytest.approx(1.0, rel=0.01)
        assert rec.status.last_close_code == 1000
        assert rec.status.protocol.error_events == 1
        await rec.wait_state(LinkState.LIVE, count=2)
    assert svc.peers[0].ws.close_code == 1000


async def test_other_errors_and_garbage_are_counted_and_the_session_goes_on():
    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "error", "error": {"code": "invalid_value", "message": "m"}})
        for junk in ("nope", "[]", '{"type": 1}', '{"type": "response.audio.delta"}'):
            await peer.send(junk)
        await peer.send({"type": "output_audio_buffer.started"})
        await peer.send(audio_delta(b"\1\0" * 100))
        await peer.hold(5)

    async with FakeService([script]) as svc, running(svc) as (link, rec):
        async with asyncio.timeout(5):
            while not any(isinstance(e, AudioDelta) for e in rec.events):
                rec.changed.clear()
                await rec.changed.wait()
        assert rec.status.protocol.malformed_frames == 4
        assert rec.status.protocol.error_events == 1
        assert link.live
    assert len(svc.attempts) == 1


async def test_a_large_delta_fits_the_frame_bound():
    big = b"\0\1" * (24000 * 20)  # 20 s of audio in one delta: about 1.3 MB of base64

    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send(audio_delta(big))
        await peer.hold(5)

    assert len(audio_delta(big)["delta"]) > 2**20 and MAX_FRAME_BYTES >= 4 * 2**20
    async with FakeService([script]) as svc, running(svc) as (_link, rec):
        async with asyncio.timeout(5):
            while not any(isinstance(e, AudioDelta) for e in rec.events):
                rec.changed.clear()
                await rec.changed.wait()
    assert len(svc.attempts) == 1


async def test_hang_up_closes_with_1000_and_stays_idle():
    async with FakeService([_hold]) as svc, running(svc) as (link, rec):
        await rec.wait_state(LinkState.LIVE)
        await link.hang_up()
        await rec.wait_state(LinkState.IDLE)
        await asyncio.sleep(0.3)
        assert len(svc.attempts) == 1
        assert rec.status.last_close_code == 1000 and not rec.status.connected
        link.want_connected()
        await rec.wait_state(LinkState.LIVE, count=2)


async def test_hang_up_during_the_handshake_never_goes_live():
    class SlowHandshake(FakeService):
        async def _process_request(self, conn, request):  # type: ignore[no-untyped-def,override]
            await asyncio.sleep(0.5)
            return super()._process_request(conn, request)

    async with SlowHandshake([_hold]) as svc, running(svc) as (link, rec):
        await rec.wait_state(LinkState.CONNECTING)
        await asyncio.sleep(0.1)                 # the handshake is under way
        await link.hang_up()
        await rec.wait_state(LinkState.IDLE)
        await asyncio.sleep(1.0)                 # the handshake has long completed
        assert link.state is LinkState.IDLE and not link.live
        assert LinkState.LIVE not in [s for s, *_ in rec.states]
        assert not svc.received                  # not even session.update
        assert len(svc.attempts) == 1


async def test_unreachable_server_backs_off():
    async with FakeService([_hold]) as svc:
        url = svc.url
    recorder = Recorder()
    link = Link(url, lambda: "k" * 20, lambda: protocol.session_update(SessionConfig(), []),
                recorder, policy=ReconnectPolicy(lambda: 0.999),
                timings=FAST)
    link.want_connected()
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(link.run())
        state = await recorder.wait_state(LinkState.BACKOFF)
        task.cancel()
    assert state[1] == pytest.approx(1.0, rel=0.01)


async def test_session_expired_error_reconnects_at_once():
    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "error", "error": {"type": "invalid_request_error",
                                                    "code": "session_expired",
                                                    "message": "session expired"}})
        await peer.hold(5)

    async with FakeService([script, _hold]) as svc, running(svc) as (_link, rec):
        state = await rec.wait_state(LinkState.BACKOFF)
        assert state[1] is not None and state[1] <= 0.5
        await rec.wait_state(LinkState.LIVE, count=2)
        assert rec.status.last_close_code == 1000


def _error(code: str) -> dict:
    kind = "server_error" if code == "server_error" else "invalid_request_error"
    return {"type": "error", "error": {"type": kind, "code": code, "message": code}}


@pytest.mark.parametrize("live", [True, False], ids=["live", "before-session.updated"])
@pytest.mark.parametrize(("error", "code", "expect"), [
    ("server_error", 4001, HaltReason.AUTH),
    ("server_error", 4003, HaltReason.CREDITS),
    ("server_error", 4008, Schedule.SLOW),
    ("server_error", 1000, Schedule.QUICK),
    ("session_expired", 4001, HaltReason.AUTH),
    ("session_expired", 4008, Schedule.SLOW),
    ("session_expired", 1013, Schedule.FAST),
])
async def test_the_close_code_decides_after_an_error(live, error, code, expect):
    """An `error` that makes us want a fresh session does not pre-empt the server's close
    that follows it: its code is the outcome, one step, whatever came first."""
    async def script(peer: Peer) -> None:
        if live:
            await peer.setup()
        else:
            await peer.wait_for("session.update")
        await peer.send(_error(error))
        await asyncio.sleep(0.05)       # a service sends its close just after the event
        await peer.close(code)

    delays = {Schedule.SLOW: 30.0, Schedule.FAST: 1.0, Schedule.QUICK: 0.5}
    # The grace for the server's close is the close timeout: the default 1 s here, so a
    # loaded machine does not make our own 1000 cross the service's (a different outcome).
    timings = dataclasses.replace(FAST, close_timeout=1.0)
    async with FakeService([script]) as svc, running(svc, timings=timings) as (_link, rec):
        if isinstance(expect, HaltReason):
            state = await rec.wait_state(LinkState.HALTED)
            assert state[2] is expect
            await asyncio.sleep(0.5)
        else:
            state = await rec.wait_state(LinkState.BACKOFF)
            assert state[1] == pytest.approx(delays[expect], rel=0.01)
        assert rec.status.last_close_code == code
        assert rec.status.protocol.error_events == 1
        assert len(svc.attempts) == 1


async def test_server_error_without_a_close_is_one_fast_step_after_a_bounded_grace():
    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send(_error("server_error"))
        await peer.hold(10)             # never closes: we do, with 1000

    async with FakeService([script, _hold]) as svc, running(svc) as (_link, rec):
        await rec.wait_state(LinkState.LIVE)
        started = time.monotonic()
        state = await rec.wait_state(LinkState.BACKOFF)
        assert time.monotonic() - started < 3.0     # the grace is the close timeout, 0.3 s
        assert state[1] == pytest.approx(1.0, rel=0.01)
        assert rec.status.last_close_code == 1000
    assert svc.peers[0].ws.close_code == 1000


@asynccontextmanager
async def raw_server(answer: bytes | None, *, at_once: bool = False) -> AsyncIterator[int]:
    """A TCP server on loopback that sends `answer` and closes (after the client's request,
    or `at_once`), or with no answer holds the connection silently."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        if answer is not None:
            if not at_once:
                await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()
        async with asyncio.timeout(5):
            await server.wait_closed()


@asynccontextmanager
async def failing_url(kind: str, monkeypatch) -> AsyncIterator[str]:
    if kind in ("refused", "refused-ipv6"):
        async with FakeService([_hold]) as svc:
            url = svc.url
        yield url.replace("127.0.0.1", "[::1]") if kind == "refused-ipv6" else url
    elif kind in ("idna", "empty-label"):
        yield "ws://api..example:8080/v1" if kind == "empty-label" \
            else f"ws://{'a' * 64}.example:8080/v1"
    elif kind.startswith("proxy"):
        bad = "ftp://user:s3cret@proxy.example:1" if kind == "proxy" else "http://[s3cret"
        for name in ("https_proxy", "http_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.setenv("https_proxy", bad)
        yield "ws://127.0.0.1:9/v1"
    elif kind == "tls":                 # a plain-text server where TLS was expected
        async with raw_server(b"HTTP/1.1 400 Bad Request\r\n\r\n", at_once=True) as port:
            yield f"wss://127.0.0.1:{port}/v1"
    elif kind == "timeout":
        async with raw_server(None) as port:
            yield f"ws://127.0.0.1:{port}/v1"
    elif kind == "garbage":
        async with raw_server(b"hello\r\n\r\n") as port:
            yield f"ws://127.0.0.1:{port}/v1"
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "words"), [
    ("refused", "link ended: connection refused by 127.0.0.1:"),
    ("refused-ipv6", "link ended: connection refused by [::1]:"),
    ("empty-label", "link ended: name lookup for api..example failed (not a valid host name)"),
    ("idna", "link ended: name lookup for aaaaaaaa"),
    ("proxy", "link ended: proxy ftp://proxy.example:1 is invalid: scheme ftp isn't supported"),
    ("proxy-unparsable", "link ended: the proxy set in the environment is not a valid URL"),
    ("tls", "link ended: TLS handshake with 127.0.0.1:"),
    ("timeout", "link ended: timed out opening the connection to 127.0.0.1:"),
    ("garbage", "link ended: WebSocket handshake with 127.0.0.1:"),
])
async def test_a_connect_failure_is_a_fast_step_told_in_words(kind, words, monkeypatch, caplog):
    """Whatever opening the connection meets is one failed attempt on the fast schedule,
    said in words; nothing escapes the link (it used to end the daemon with exit 1)."""
    caplog.set_level("INFO", logger="swaramd.adapters.link")
    async with failing_url(kind, monkeypatch) as url:
        recorder = Recorder()
        link = Link(url, lambda: "k" * 20, lambda: protocol.session_update(SessionConfig(), []),
                    recorder, policy=ReconnectPolicy(lambda: 0.999),
                    timings=FAST)
        link.want_connected()
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(link.run())
            state = await recorder.wait_state(LinkState.BACKOFF, timeout=15)
            task.cancel()
    assert state[1] == pytest.approx(1.0, rel=0.01)
    ended = [r.getMessage() for r in caplog.records if "link ended" in r.getMessage()]
    assert ended and ended[0].startswith(words), ended
    assert "s3cret" not in caplog.text and "user" not in caplog.text


@pytest.mark.parametrize(("exc", "url", "words"), [
    (OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 9, 0, 0), "
             "[Errno 111] Connect call failed ('127.0.0.1', 9)"), "ws://localhost:9/v1",
     "connection refused by localhost:9 (every address)"),
    (OSError(101, "Network is unreachable"), "wss://[2001:db8::1]/v1",
     "could not connect to [2001:db8::1]:443: Network is unreachable"),
    (RuntimeError("s3cret"), "wss://api.example/v1?model=m",
     "could not connect to api.example:443 (RuntimeError)"),
])
def test_connect_failures_that_loopback_cannot_stage_are_told_in_words(exc, url, words):
    """asyncio's error when every address of a name failed, a host with no route, and
    anything unforeseen (its message is not repeated: it may quote what it should not)."""
    assert describe_connect_failure(exc, url) == words


async def test_lag_probes_go_only_behind_audio_sent(caplog):
    # A gate that passes nothing: every frame asks whether it may be sent, none is,
    # and nothing is in flight to measure, so no ping goes out. Audio going out is
    # followed by a ping every PROBE_EVERY_S.
    caplog.set_level(logging.DEBUG, logger="websockets.client")
    quiet = dataclasses.replace(FAST, ping_interval=60, ping_timeout=60)   # no keepalive

    def pings() -> int:
        return sum(r.name == "websockets.client" and r.getMessage().startswith("> PING")
                   for r in caplog.records)

    async with FakeService([_hold]) as svc, running(svc, timings=quiet) as (link, rec):
        await rec.wait_state(LinkState.LIVE)
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.0
        while loop.time() < end:
            await link.wait_sendable()
            await asyncio.sleep(0.02)
        assert pings() == 0
        end = loop.time() + 1.0
        while loop.time() < end:
            await link.wait_sendable()
            assert await link.send_text(protocol.audio_append_text(bytes(960)))
            await asyncio.sleep(0.02)
        assert pings() >= 2
