"""`swaramd run` as a real process: a minute of conversation with flat memory and a clean log,
real signals (SIGHUP reload, SIGTERM stop within 2 s, exit 0), exit 78 on a bad config, a
process that cannot dump core, and no libjack or ALSA chatter on its stderr."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np

from swaramd.core.config import AudioConfig
from tests.adapters.alsa_rig import file_pcm, jack_pcm, write_asoundrc
from tests.daemon_rig import KEY, RATE, config_text, reply, tone
from tests.support.procfs import rss_anon_kb
from tests.support.service import FakeService, Peer
from tests.support.wavfiles import write_wav

ROOT = Path(__file__).resolve().parents[1]
SOAK_S = float(os.environ.get("SWARAMD_SOAK_S", "60"))


async def start(tmp: Path, url: str, *, env: dict[str, str] | None = None,
                group: int | None = None, **sections) -> asyncio.subprocess.Process:
    (tmp / "key").write_text(KEY + "\n")
    write_wav(tmp / "in.wav", (np.random.default_rng(1).normal(0, 300, RATE * 5)).astype("<i2"))
    sections.setdefault("gpio", {"pin_factory": "none"})
    sections.setdefault("log", {"level": "info"})
    (tmp / "config.yaml").write_text(config_text(tmp, url, **sections))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "swaramd", "run", "-c", str(tmp / "config.yaml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=tmp, group=group)


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, float, str]:
    """SIGTERM, then the exit code, how long it took, and stderr."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(10):
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, time.monotonic() - sent, err.decode()


async def conversation_forever(peer: Peer) -> None:
    await peer.setup()
    turn = 0
    while True:
        await asyncio.sleep(2.0)
        turn += 1
        await peer.send({"type": "input_audio_buffer.speech_started"})
        await peer.send({"type": "input_audio_buffer.speech_stopped"})
        await peer.send({"type": "conversation.item.input_audio_transcription.completed",
                         "item_id": f"i{turn}", "transcript": f"turn {turn}"})
        await reply(peer, tone(1.0).tobytes(), f"r{turn}", transcript=f"answer {turn}")
        if turn % 5 == 0:
            await peer.send({"type": "response.function_call_arguments.done",
                             "call_id": f"c{turn}", "name": "get_time", "arguments": "{}"})


async def test_a_minute_of_conversation_flat_memory_clean_log(tmp_path):
    async with FakeService([conversation_forever]) as svc:
        proc = await start(tmp_path, svc.url, conversation={"mode": "always_on"})
        try:
            await asyncio.sleep(15)
            assert proc.returncode is None
            early = rss_anon_kb(proc.pid)
            await asyncio.sleep(SOAK_S - 15)
            late = rss_anon_kb(proc.pid)
        finally:
            code, took, err = await stop(proc)
    assert code == 0 and took < 2.0, (code, took, err[-2000:])
    appends = sum(e["type"] == "input_audio_buffer.append" for e in svc.received)
    per_s = 1000 / AudioConfig().frame_ms
    assert appends > SOAK_S * per_s * 0.3, appends  # the mic streamed (half duplex pauses it)
    print(f"soak: RssAnon {early} kB at 15 s, {late} kB at {SOAK_S:.0f} s, {appends} appends")
    assert late - early < 2048, f"private memory grew {late - early} kB ({early} -> {late})"
    problems = [line for line in err.splitlines()
                if " WARNING " in line or " ERROR " in line or " CRITICAL " in line]
    assert problems == [], problems
    assert err.count("swaram said: answer") >= SOAK_S / 4
    assert KEY not in err


async def test_sighup_reloads_and_sigterm_stops(tmp_path):
    async def hold(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(30)

    async with FakeService([hold]) as svc:
        proc = await start(tmp_path, svc.url, conversation={"mode": "always_on"})
        try:
            async with asyncio.timeout(10):
                while not svc.peers or not svc.peers[0].received:
                    await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            assert proc.returncode is None
        finally:
            code, took, err = await stop(proc)
    assert code == 0 and took < 2.0
    assert "reloaded the key and session settings" in err


async def test_bad_config_exits_78_before_opening_anything(tmp_path):
    (tmp_path / "config.yaml").write_text("audio:\n  frame_ms: 3\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "swaramd", "run", "-c", str(tmp_path / "config.yaml"),
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 78
    assert err.decode().strip() == \
        f"{tmp_path / 'config.yaml'}:2: audio.frame_ms: must be from 10 to 200 (got 3)"


async def test_sigterm_stops_within_2s_even_when_the_peer_stalls(tmp_path):
    stalled = asyncio.Event()

    async def stall(peer: Peer) -> None:
        await peer.setup()
        await peer.wait_for("input_audio_buffer.append")
        stalled.set()
        await peer.stall(30)  # never answers our closing handshake

    async with FakeService([stall]) as svc:
        proc = await start(tmp_path, svc.url, conversation={"mode": "always_on"},
                           audio={"gate": "open"})
        try:
            await asyncio.wait_for(stalled.wait(), 10)
        finally:
            code, took, err = await stop(proc)
    assert code == 0, err[-2000:]
    assert took < 2.0, took


async def wait_for_line(proc: asyncio.subprocess.Process, text: str, seen: list[str],
                        timeout: float = 30) -> None:
    """Read stderr lines into `seen` until one holds `text` (bounded)."""
    assert proc.stderr is not None
    async with asyncio.timeout(timeout):
        while not seen or text not in seen[-1]:
            line = await proc.stderr.readline()
            assert line, f"stderr ended before {text!r}: {seen[-20:]}"
            seen.append(line.decode().rstrip("\n"))


async def hold(peer: Peer) -> None:
    await peer.setup()
    await peer.hold(30)


async def test_run_is_not_dumpable(tmp_path):
    """A non-dumpable process's /proc/PID files belong to root:root, whatever its own ids: the
    daemon runs with another group (as root) or user (as anyone else) to tell the two apart."""
    group = 65534 if os.getuid() == 0 else None  # nogroup
    async with FakeService([hold]) as svc:
        proc = await start(tmp_path, svc.url, group=group)
        try:
            async with asyncio.timeout(15):
                while not svc.peers or not svc.peers[0].received:
                    await asyncio.sleep(0.05)
            own = os.stat(f"/proc/{proc.pid}")
            status = os.stat(f"/proc/{proc.pid}/status")
        finally:
            code, _, err = await stop(proc)
    assert code == 0, err[-2000:]
    assert (own.st_uid, own.st_gid) != (0, 0)  # the test can tell: the ids differ from root's
    assert (status.st_uid, status.st_gid) == (0, 0), "the daemon is dumpable"


SWARAMD_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ swaramd[.:]")


async def test_pyaudio_without_a_jack_server_logs_swaramd_lines_only(tmp_path):
    """PortAudio's JACK host and an ALSA `type jack` PCM both try a server that does not
    run, and an ALSA PCM names a card that does not exist: libjack and alsa-lib would print
    a dozen lines at each (re)open. The journal gets swaramd's own lines only."""
    asoundrc = write_asoundrc(tmp_path / "asound.conf", jack_pcm("jackpcm"),
                              "pcm.nocard { type hw card 99 }",
                              file_pcm("speaker", outfile=tmp_path / "spk.raw"))
    env = {"ALSA_CONFIG_PATH": str(asoundrc), "JACK_NO_START_SERVER": "1",
           "JACK_DEFAULT_SERVER": f"swaramd-test-none-{os.getpid()}"}
    seen: list[str] = []
    async with FakeService([hold]) as svc:
        proc = await start(tmp_path, svc.url, env=env,
                           audio={"backend": "pyaudio", "output_device": "speaker",
                                  "input_device": "jackpcm"})
        try:
            await wait_for_line(proc, "audio device problem", seen)
            await wait_for_line(proc, "audio device problem", seen)  # and again at the retry
        finally:
            code, _, err = await stop(proc)
    lines = seen + err.splitlines()
    assert code == 0, lines[-30:]
    assert [line for line in lines if not SWARAMD_LINE.match(line)] == []


async def test_a_host_name_lookup_refuses_is_exit_78_not_a_crash(tmp_path):
    """It passed check-config, then name lookup's UnicodeError ended run with exit 1."""
    proc = await start(tmp_path, "wss://api..example/v1/realtime")
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    assert proc.returncode == 78, err.decode()[-2000:]
    assert err.decode().strip() == (
        f"{tmp_path / 'config.yaml'}:2: server.url: has a host name that cannot be looked up "
        "('api..example': label empty or too long)")


async def test_a_malformed_proxy_setting_is_a_failed_attempt_not_a_crash(tmp_path):
    """websockets' InvalidProxy (and a proxy URL that does not parse) ended run with exit 1;
    now each attempt fails on the fast schedule, in words, and SIGTERM still stops with 0."""
    async with FakeService([_hold_forever]) as svc:
        for proxy in ("ftp://user:s3cret@proxy.example:3128", "http://[s3cret"):
            env = {"https_proxy": proxy, "HTTPS_PROXY": proxy, "no_proxy": "", "NO_PROXY": ""}
            proc = await start(tmp_path, svc.url, env=env,
                               conversation={"mode": "always_on"})
            try:
                await asyncio.sleep(4)          # the first attempts, each 0.5-1 s apart
                assert proc.returncode is None
            finally:
                code, took, err = await stop(proc)
            assert code == 0 and took < 2.0, (code, err[-2000:])
            assert "proxy" in err and "link ended" in err, err[-2000:]
            assert err.count("link ended") >= 2, err[-2000:]
            assert "s3cret" not in err and "Traceback" not in err and KEY not in err
    assert not svc.attempts                     # the proxy was never passed by


async def _hold_forever(peer: Peer) -> None:
    await peer.setup()
    await peer.hold(30)
