"""A service that stops reading: old audio is dropped at the uplink backlog and counted, and
what is buffered between the backlog and the service stays near a second."""

from __future__ import annotations

import asyncio
import fcntl
import struct
import termios

from swaramd.adapters.link import LinkTimings
from swaramd.core import protocol
from swaramd.core.config import AudioConfig
from swaramd.daemon import Daemon
from tests import daemon_rig
from tests.daemon_rig import daemon_running
from tests.support.service import FakeService, Peer

PAUSE_S = 5.0


def _queued(sock, request: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0"))[0])


def buffered(daemon: Daemon, peer: Peer) -> int:
    """Bytes past the uplink backlog not yet read by the service: websockets' buffer and
    the socket's send queue on our side, the receive queue on the service's."""
    assert daemon.link is not None
    ws = daemon.link._ws
    ours = 0
    if ws is not None:
        ours = ws.transport.get_write_buffer_size() + \
            _queued(ws.transport.get_extra_info("socket"), termios.TIOCOUTQ)
    theirs = _queued(peer.ws.transport.get_extra_info("socket"), termios.FIONREAD)
    return ours + theirs


async def test_a_peer_that_stops_reading_costs_old_audio_not_latency(tmp_path, monkeypatch):
    # Keepalive out of the way: this is about a slow link, not a dead one.
    monkeypatch.setattr(daemon_rig, "LINK", LinkTimings(
        open_timeout=2, session_timeout=2, ping_interval=60, ping_timeout=60, close_timeout=0.5))
    paused, resume = asyncio.Event(), asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.setup()
        for _ in range(25):                      # half a second of streaming first
            await peer.wait_for("input_audio_buffer.append")
        peer.ws.transport.pause_reading()       # the service stops reading
        paused.set()
        await resume.wait()
        peer.ws.transport.resume_reading()
        await peer.hold(30)

    frame_ms = AudioConfig().frame_ms                       # the default uplink frame
    per_s = 1000 // frame_ms
    frame = protocol.audio_append_text(bytes(48 * frame_ms))    # 24 kHz PCM16
    one_second = per_s * (len(frame) + 8)                   # with the frame header and mask
    async with FakeService([script]) as svc, \
            daemon_running(tmp_path, svc, conversation={"mode": "always_on"}) as daemon:
        async with asyncio.timeout(15):
            await paused.wait()
        peer = svc.peers[0]
        peak = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + PAUSE_S
        while loop.time() < end:
            await asyncio.sleep(0.05)
            peak = max(peak, buffered(daemon, peer))
        dropped = daemon._snapshot()["audio"]["dropped_frames"]
        assert daemon.link is not None and daemon.link.live
        resume.set()
        before = len(peer.received)
        async with asyncio.timeout(10):          # the stream goes on once it reads again
            while len(peer.received) < before + 100:
                await asyncio.sleep(0.05)
    print(f"peak {peak} bytes buffered ({peak / one_second:.2f} s of audio), "
          f"{dropped} frames dropped")
    assert peak <= one_second, f"{peak} bytes buffered: {peak / one_second:.1f} s of audio"
    # PAUSE_S of audio came from the microphone; all but about a second is dropped.
    assert dropped >= (PAUSE_S - 2.5) * per_s, dropped
