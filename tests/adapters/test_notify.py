"""sd_notify: the notifier against a real datagram socket standing in for systemd, and the
daemon's READY / STATUS / WATCHDOG / STOPPING over the real PyAudio stack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from swaramd.adapters.audio_backend import EngineTuning
from swaramd.adapters.link import LinkTimings
from swaramd.adapters.notify import Notifier, watchdog_interval_s
from swaramd.core.config import parse_config
from swaramd.core.states import State
from swaramd.daemon import Daemon
from tests.adapters.alsa_rig import file_pcm, jack_pcm, write_asoundrc
from tests.daemon_rig import KEY, wait_until
from tests.support.service import FakeService, Peer


@pytest.fixture
def systemd_socket(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.setblocking(False)
    try:
        yield path, sock
    finally:
        sock.close()


def drain(sock: socket.socket) -> list[tuple[float, str]]:
    got = []
    while True:
        try:
            got.append((time.monotonic(), sock.recv(4096).decode()))
        except BlockingIOError:
            return got



def test_notifier_messages(systemd_socket):
    path, sock = systemd_socket
    n = Notifier(str(path))
    n.ready("listening")
    n.status("speaking")
    n.watchdog()
    n.reloading()
    n.stopping()
    n.close()
    got = [m for _, m in drain(sock)]
    assert got[:3] == ["READY=1\nSTATUS=listening", "STATUS=speaking", "WATCHDOG=1"]
    assert got[3].startswith("RELOADING=1\nMONOTONIC_USEC=") and got[4] == "STOPPING=1"


def test_abstract_socket_and_no_systemd():
    name = f"swaramd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        Notifier("@" + name).ready()
        assert sock.recv(100) == b"READY=1"
    quiet = Notifier("")
    assert not quiet.enabled
    quiet.ready()  # a no-op, never an error


def test_watchdog_interval(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval_s() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval_s() is None


async def test_daemon_notifies_and_the_watchdog_stops_when_audio_hangs(
        tmp_path, systemd_socket, monkeypatch, jackd24):
    notify_path, sock = systemd_socket
    for key, value in jackd24.env.items():
        monkeypatch.setenv(key, value)
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    mic_fd = os.open(fifo, os.O_RDWR)  # a writer exists: ALSA's reads block instead of EOF
    conf = write_asoundrc(tmp_path / "asound.conf", file_pcm("swaram_mic", infile=fifo),
                          jack_pcm("swaram_spk"))
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # pings every 0.2 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    (tmp_path / "key").write_text(KEY)

    async def hold(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(30)

    feeding = True
    heard: list[tuple[float, str]] = []

    async def listen() -> None:  # stamps each datagram as it arrives
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(sock, 4096)
            heard.append((time.monotonic(), data.decode()))

    async def feed_mic() -> None:  # the "microphone": 20 ms of noise every 20 ms
        noise = np.random.default_rng(0).normal(0, 500, 480).astype("<i2").tobytes()
        while feeding:
            os.write(mic_fd, noise)
            await asyncio.sleep(0.02)

    async with FakeService([hold]) as svc:
        cfg = parse_config(f"""
server: {{url: "{svc.url}", api_key_file: "{tmp_path / 'key'}"}}
audio: {{backend: pyaudio, input_device: swaram_mic, output_device: swaram_spk, gate: open}}
gpio: {{pin_factory: none}}
conversation: {{mode: always_on}}
control: {{socket: "{tmp_path / 'c.sock'}"}}
""", "notify-test.yaml")
        daemon = Daemon(cfg, link_timings=LinkTimings(ping_interval=1, ping_timeout=1),
                        engine_tuning=EngineTuning(retry_delay_s=0.3, stall_timeout_s=0.5,
                                                   stuck_after_s=1.0, error_grace_s=1.0,
                                                   start_timeout_s=5.0))
        try:
            async with asyncio.TaskGroup() as tg:
                listener = tg.create_task(listen())
                tg.create_task(feed_mic())
                run = tg.create_task(daemon.run())
                await wait_until(lambda: daemon.conversation.shown is State.LISTENING)
                await asyncio.sleep(1.5)
                feeding = False              # the mic hangs: ALSA's read blocks
                stalled_at = time.monotonic()
                await wait_until(lambda: daemon.conversation.shown is State.AUDIO_ERROR,
                                 timeout=5)
                await asyncio.sleep(3.0)
                os.write(mic_fd, b"\0" * 48_000)  # let any blocked read return
                daemon.request_stop()
                async with asyncio.timeout(10):
                    assert await run == 0
                await asyncio.sleep(0.1)
                listener.cancel()
        finally:
            feeding = False
            with contextlib.suppress(OSError):
                os.close(mic_fd)
    messages = [m for _, m in heard]
    assert messages[0].startswith("READY=1")
    assert "STATUS=listening" in messages and "STATUS=audio_error" in messages
    pings = [t for t, m in heard if m == "WATCHDOG=1"]
    assert len([t for t in pings if t < stalled_at]) >= 4  # periodic while healthy
    # Stall noticed after 0.5 s, then 1 s of grace: from 2 s on, no more pings.
    assert [t for t in pings if t > stalled_at + 2.0] == []
    assert messages[-1] == "STOPPING=1" and messages.count("STOPPING=1") == 1
