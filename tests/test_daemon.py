"""End-to-end scenarios: the real daemon, WAV audio, mock pins and a loopback service.

Every event the service receives is checked to be one of the seven documented
client events and validated strictly (tests/support/strict.py); the WAV
output is the speaker, sample index = time.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from swaramd.adapters.control import query
from swaramd.core.config import AudioConfig
from swaramd.core.conversation import PTT_TAIL_S
from swaramd.core.states import State
from tests.daemon_rig import (
    RATE,
    appends,
    daemon_running,
    non_audio,
    press,
    release,
    rendered,
    reply,
    tone,
    wait_until,
)
from tests.support.service import FakeService, Peer, audio_delta
from tests.support.wavfiles import read_wav


async def ask_status(tmp_path):
    return await asyncio.to_thread(query, tmp_path / "control.sock")


# The replies here are tones at half scale (16384 at the default volume, 100); the
# earcons peak at a quarter (8192): between them, only a reply counts as loud.
REPLY_ONLY = 12_000


def loud_span(samples: np.ndarray, threshold: int = 2000) -> tuple[int, int]:
    idx = np.nonzero(np.abs(samples) > threshold)[0]
    return (int(idx[0]), int(idx[-1])) if len(idx) else (-1, -1)


async def test_a_turn_always_on(tmp_path, caplog):
    caplog.set_level("INFO")
    heard = asyncio.Event()

    async def script(peer: Peer) -> None:
        update = await peer.setup()
        assert set(update["session"]) == {"instructions", "voice", "tools", "tool_choice"}
        assert [t["name"] for t in update["session"]["tools"]] == ["get_time", "set_volume"]
        await peer.wait_for("input_audio_buffer.append")
        await peer.send({"type": "input_audio_buffer.speech_started"})
        await peer.send({"type": "input_audio_buffer.speech_stopped"})
        await peer.send({"type": "conversation.item.input_audio_transcription.completed",
                         "item_id": "i1", "transcript": "സമയം എത്രയായി"})
        await reply(peer, tone(0.5, level=0.5).tobytes(), "r1", transcript="പത്ത് മണി")
        heard.set()
        await peer.hold(10)

    async with FakeService([script]) as svc, daemon_running(tmp_path, svc) as daemon:
        await asyncio.wait_for(heard.wait(), 10)
        await wait_until(lambda: daemon.conversation.shown is State.LISTENING
                         and daemon.conversation.base is State.LISTENING
                         and rendered(daemon) > RATE)
        status = await ask_status(tmp_path)
        assert status["state"] == "listening" and status["connected"] is True
        assert status["protocol"] == {"malformed_frames": 0, "error_events": 0,
                                      "failed_responses": 0}
    out = read_wav(tmp_path / "out.wav")
    start, end = loud_span(out, REPLY_ONLY)
    assert 0.45 * RATE < end - start < 0.55 * RATE
    assert non_audio(svc)[0] == "session.update"
    assert "user said: സമയം എത്രയായി" in caplog.text
    assert "swaram said: പത്ത് മണി" in caplog.text


async def test_no_audio_is_sent_before_session_updated(tmp_path):
    async def script(peer: Peer) -> None:
        await peer.send({"type": "session.created", "session": {}})
        await peer.wait_for("session.update")
        await asyncio.sleep(0.6)  # the mic is running meanwhile
        await peer.send({"type": "session.updated", "session": {}})
        await peer.hold(10)

    async with FakeService([script]) as svc, daemon_running(tmp_path, svc) as daemon:
        await wait_until(lambda: daemon.conversation.shown is State.LISTENING)
        await wait_until(lambda: len(appends(svc)) >= 10)
    first = svc.peers[0].received
    assert first[0]["type"] == "session.update"
    # Audio captured before session.updated was dropped, not sent late in a burst:
    # the first 10 appends took real time to arrive (about 20 ms each).
    assert len(appends(svc)) < 40


async def test_barge_in_silences_within_100ms_and_drops_late_deltas(tmp_path):
    marks: dict[str, int] = {}
    daemon_ref = {}

    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.wait_for("input_audio_buffer.append")
        await peer.send({"type": "input_audio_buffer.speech_stopped"})
        # A long reply at 440 Hz, all queued at once.
        await reply(peer, tone(3.0, 440, 0.5).tobytes(), "r1", done=False)
        await asyncio.sleep(0.8)
        daemon = daemon_ref["d"]
        await peer.send({"type": "input_audio_buffer.speech_started"})
        await wait_until(lambda: daemon.conversation.base is not State.SPEAKING, step=0.001)
        marks["speech_started"] = rendered(daemon)
        # Late deltas of the interrupted reply, at another pitch: must never be heard.
        for _ in range(5):
            await peer.send(audio_delta(tone(0.1, 1000, 0.5).tobytes(), "r1"))
        await peer.send({"type": "response.done", "response": {"id": "r1", "status": "cancelled"}})
        await peer.hold(10)

    async with FakeService([script]) as svc, \
            daemon_running(tmp_path, svc, audio={"duplex": "full"}) as daemon:
        daemon_ref["d"] = daemon
        await wait_until(lambda: "speech_started" in marks)
        await asyncio.sleep(1.0)
    out = read_wav(tmp_path / "out.wav")
    start, end = loud_span(out, REPLY_ONLY)
    assert start > 0 and end - start > 0.5 * RATE  # the reply did play
    assert end - marks["speech_started"] <= 0.100 * RATE
    # No 1 kHz late delta anywhere after the cut.
    after = out[end + 1:].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(after))
    freqs = np.fft.rfftfreq(len(after), 1 / RATE)
    assert spectrum[(freqs > 950) & (freqs < 1050)].max(initial=0) < 1e5


async def test_button_interrupt_flushes_and_sends_cancel(tmp_path):
    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "input_audio_buffer.speech_stopped"})
        await reply(peer, tone(3.0, 440, 0.5).tobytes(), "r1", done=False)
        await peer.wait_for("response.cancel")
        await peer.send({"type": "error", "error": {"type": "invalid_request_error",
                                                    "code": "response_cancel_not_active",
                                                    "message": "no active response"}})
        await peer.hold(10)

    async with FakeService([script]) as svc, daemon_running(tmp_path, svc) as daemon:
        await wait_until(lambda: daemon.conversation.base is State.SPEAKING)
        await asyncio.sleep(0.3)
        press()
        await asyncio.sleep(0.1)
        release()
        await wait_until(lambda: "response.cancel" in non_audio(svc))
        await wait_until(lambda: daemon.conversation.base is State.LISTENING)
        cut = rendered(daemon)
        await asyncio.sleep(0.3)
        assert daemon.link is not None and daemon.link.live  # the harmless error changed nothing
    out = read_wav(tmp_path / "out.wav")
    assert loud_span(out, REPLY_ONLY)[1] <= cut


async def test_tools_answer_without_response_create(tmp_path):
    outputs: dict[str, dict] = {}

    async def script(peer: Peer) -> None:
        await peer.setup()
        calls = [("c1", "get_time", "{}"), ("c2", "set_volume", '{"level": 30}'),
                 ("c3", "get_weather", "{}"), ("c4", "set_volume", '{"level": "max"}'),
                 ("c5", "set_volume", "not json")]
        for call_id, name, args in calls:
            await peer.send({"type": "response.function_call_arguments.done",
                             "call_id": call_id, "name": name, "arguments": args})
        for _ in calls:
            item = (await peer.wait_for("conversation.item.create"))["item"]
            outputs[item["call_id"]] = json.loads(item["output"])
        await peer.hold(10)

    state = tmp_path / "state"
    async with FakeService([script]) as svc, \
            daemon_running(tmp_path, svc, state_dir=state) as daemon:
        await wait_until(lambda: len(outputs) == 5)
        await asyncio.sleep(0.2)
        assert (await ask_status(tmp_path))["volume"] == 30
        assert daemon.engine is not None and daemon.engine.volume.level == 30
    assert set(outputs["c1"]) >= {"date", "time", "time_zone"}
    assert outputs["c2"] == {"ok": True, "level": 30}
    assert "unknown tool" in outputs["c3"]["error"]
    assert "must be of type integer" in outputs["c4"]["error"]
    assert "not a JSON object" in outputs["c5"]["error"]
    assert "response.create" not in non_audio(svc)
    assert (state / "volume").read_text().strip() == "30"


async def test_on_demand_button_idle_timeout_and_press_to_end(tmp_path):
    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(20)

    async with FakeService([script]) as svc, daemon_running(
            tmp_path, svc, conversation={"mode": "on_demand", "idle_timeout_s": 1.0}) as daemon:
        await asyncio.sleep(0.5)
        assert len(svc.attempts) == 0 and daemon.conversation.shown is State.IDLE
        press(); await asyncio.sleep(0.1); release()  # noqa: E702
        await wait_until(lambda: daemon.conversation.shown is State.LISTENING)
        started = time.monotonic()
        await wait_until(lambda: daemon.conversation.shown is State.IDLE, timeout=5)
        assert 0.9 < time.monotonic() - started < 3.0
        await wait_until(lambda: svc.peers[0].ws.close_code is not None)
        assert svc.peers[0].ws.close_code == 1000
        assert (await ask_status(tmp_path))["last_close_code"] == 1000
        # A second press starts again; a press while listening hangs up.
        press(); await asyncio.sleep(0.1); release()  # noqa: E702
        await wait_until(lambda: daemon.conversation.shown is State.LISTENING)
        await asyncio.sleep(0.2)
        press(); await asyncio.sleep(0.1); release()  # noqa: E702
        await wait_until(lambda: daemon.conversation.shown is State.IDLE)
    assert len(svc.attempts) == 2


async def test_push_to_talk(tmp_path):
    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(20)

    mic = tone(5.0, 300, 0.3)
    async with FakeService([script]) as svc, daemon_running(
            tmp_path, svc, mic=mic, conversation={"mode": "push_to_talk"},
            audio={"echo_tail_ms": 0}) as daemon:
        press()
        await wait_until(lambda: daemon.link is not None and daemon.link.live)
        await wait_until(lambda: len(appends(svc)) >= 25)
        release()
        await wait_until(lambda: "response.create" in non_audio(svc))
        await asyncio.sleep(1.0)
        events = svc.received
        cut = [e["type"] for e in events].index("input_audio_buffer.commit")
        tail = [e for e in events[cut:] if e["type"] == "input_audio_buffer.append"]
        # About 600 ms of silence after release, then nothing.
        frames = PTT_TAIL_S * 1000 / AudioConfig().frame_ms
        assert 2 / 3 * frames <= len(tail) <= 4 / 3 * frames
        assert all(set(json.dumps(e["audio"])) <= set('"A=') for e in tail)
        before = len(appends(svc))
        await asyncio.sleep(0.5)
        assert len(appends(svc)) == before
        # A slip of the finger clears.
        press(); await asyncio.sleep(0.1); release()  # noqa: E702
        await wait_until(lambda: "input_audio_buffer.clear" in non_audio(svc))
    assert non_audio(svc)[1:3] == ["input_audio_buffer.commit", "response.create"]


async def test_half_duplex_sends_no_mic_while_speaking(tmp_path):
    stamps: dict[str, float] = {}

    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "input_audio_buffer.speech_stopped"})
        await reply(peer, tone(1.0).tobytes(), "r1")
        await peer.hold(10)

    async with FakeService([script]) as svc, daemon_running(
            tmp_path, svc, audio={"duplex": "half", "echo_tail_ms": 300}) as daemon:
        await wait_until(lambda: daemon.conversation.base is State.SPEAKING)
        n_speaking = len(appends(svc))
        await wait_until(lambda: daemon.conversation.base is State.LISTENING, timeout=5)
        stamps["drained"] = time.monotonic()
        assert len(appends(svc)) == n_speaking
        await asyncio.sleep(0.2)
        assert len(appends(svc)) == n_speaking  # the echo tail
        await asyncio.sleep(0.5)
        assert len(appends(svc)) > n_speaking


async def test_vad_gate_sends_only_speech(tmp_path):
    mic = np.concatenate([np.zeros(RATE * 2), tone(0.6, 250, 0.3), np.zeros(RATE * 3)])

    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(20)

    async with FakeService([script]) as svc, daemon_running(
            tmp_path, svc, mic=mic.astype("<i2"), audio={"gate": "vad"}) as daemon:
        await wait_until(lambda: (daemon._uplink_captured or 0) * 0.02 > 4.5, timeout=10)
        status = await ask_status(tmp_path)
    sent = len(appends(svc)) * 0.02
    assert 0.6 <= sent <= 0.6 + 0.3 + 0.8 + 0.2  # speech + pre-roll + hangover
    assert status["uplink"]["sent_s"] < status["uplink"]["captured_s"] / 2


@pytest.mark.parametrize("code", [1001, 1000])
async def test_session_expiry_reconnects_within_a_second(tmp_path, code):
    async def expire(peer: Peer) -> None:
        await peer.setup()
        await asyncio.sleep(0.5)
        await peer.close(code, "session expired")

    async def hold(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(10)

    async with FakeService([expire, hold]) as svc, daemon_running(tmp_path, svc) as daemon:
        await wait_until(lambda: len(svc.peers) == 2 and daemon.link is not None
                         and daemon.link.live)
        assert svc.attempts[1] - svc.attempts[0] < 0.5 + 1.0 + 0.3
        await wait_until(lambda: len(svc.peers[1].received) > 3)
        status = await ask_status(tmp_path)
        assert status["reconnects"] == 1 and status["last_close_code"] == code
    assert svc.peers[1].received[0]["type"] == "session.update"


async def test_halt_on_4001_then_sighup_retries(tmp_path):
    async def bad_key(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "error", "error": {"code": "invalid_api_key", "message": "k"}})
        await peer.close(4001)

    async def hold(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(10)

    async with FakeService([bad_key, hold]) as svc, daemon_running(tmp_path, svc) as daemon:
        await wait_until(lambda: daemon.conversation.shown is State.HALTED)
        status = await ask_status(tmp_path)
        assert (status["state"], status["halt_reason"]) == ("halted", "auth")
        await asyncio.sleep(0.5)
        assert len(svc.attempts) == 1
        daemon.reload()  # what SIGHUP calls
        await wait_until(lambda: daemon.conversation.shown is State.LISTENING)
        assert (await ask_status(tmp_path))["halt_reason"] is None


async def test_server_error_starts_a_fresh_session(tmp_path):
    async def flaky(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "error", "error": {"type": "server_error",
                                                    "code": "server_error", "message": "retry"}})
        await peer.hold(5)

    async def hold(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(10)

    async with FakeService([flaky, hold]) as svc, daemon_running(tmp_path, svc) as daemon:
        await wait_until(lambda: len(svc.peers) == 2 and daemon.link is not None
                         and daemon.link.live, timeout=5)
        assert svc.peers[0].ws.close_code == 1000
        assert 0.5 <= svc.attempts[1] - svc.attempts[0] < 2.0
        assert (await ask_status(tmp_path))["protocol"]["error_events"] == 1


async def test_an_internal_error_exits_1_not_half_alive(tmp_path, monkeypatch):
    from swaramd.core.config import parse_config
    from swaramd.daemon import Daemon
    from tests.daemon_rig import KEY, config_text
    from tests.support.wavfiles import write_wav

    async def hold(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(10)

    async with FakeService([hold]) as svc:
        (tmp_path / "key").write_text(KEY)
        write_wav(tmp_path / "in.wav", np.zeros(RATE, dtype="<i2"))
        daemon = Daemon(parse_config(config_text(tmp_path, svc.url), "c.yaml"))

        def broken(now: float) -> list:
            raise RuntimeError("bug")

        monkeypatch.setattr(daemon.conversation, "tick", broken)
        try:
            async with asyncio.timeout(10):
                assert await daemon.run() == 1
        finally:
            from gpiozero import Device
            Device.pin_factory.close()
            Device.pin_factory = None
    assert not (tmp_path / "control.sock").exists()


async def test_earcons_play_and_gate_the_uplink(tmp_path):
    from swaramd.core.earcons import durations

    marks: dict[str, float] = {}

    async def script(peer: Peer) -> None:
        await peer.send({"type": "session.created", "session": {}})
        await peer.wait_for("session.update")
        marks["updated"] = time.monotonic()
        await peer.send({"type": "session.updated", "session": {}})
        await peer.wait_for("input_audio_buffer.append")
        marks["first_append"] = time.monotonic()
        await peer.hold(10)

    async with FakeService([script]) as svc, daemon_running(
            tmp_path, svc, conversation={"mode": "on_demand"}, audio={"echo_tail_ms": 0}) as d:
        await asyncio.sleep(0.5)
        press(); await asyncio.sleep(0.1); release()  # noqa: E702
        await wait_until(lambda: "first_append" in marks)
        await asyncio.sleep(0.3)
        assert d.conversation.shown is State.LISTENING
    out = read_wav(tmp_path / "out.wav").astype(np.float64)
    # "ready" at start (660 Hz then 880 Hz), "listening" (880 Hz) after connecting.
    first = out[: int(0.2 * RATE)]
    spectrum = np.abs(np.fft.rfft(first))
    freqs = np.fft.rfftfreq(len(first), 1 / RATE)
    for hz in (660, 880):
        assert spectrum[(freqs > hz - 20) & (freqs < hz + 20)].max() > 1e5
    loud = np.nonzero(np.abs(out) > 1000)[0]
    assert loud[-1] > 0.5 * RATE  # a second tone, after the press
    assert marks["first_append"] - marks["updated"] >= durations()["listening"] - 0.02


async def test_hostile_tool_calls_are_all_answered_and_the_daemon_lives_on(tmp_path, caplog):
    caplog.set_level("DEBUG")
    outputs: dict[str, dict] = {}
    calls = {"deep": ("set_volume", "[" * 1000 + "]" * 1000),
             "deep_object": ("set_volume", '{"a":' * 3000 + "1" + "}" * 3000),
             "huge": ("set_volume", '{"level": "' + "9" * 3_000_000 + '"}'),
             "not_object": ("set_volume", "[30]"),
             "not_json": ("set_volume", "{level"),
             "surrogate": ("set_volume", '{"level": "\ud800"}'),     # orjson refuses the frame
             "surrogate_text": ("set_volume", '{"level": "\\udc00"}'),
             "unknown": ("x" * 100_000, "{}"),
             "raises": ("odd", "{}"),
             "last": ("get_time", "{}")}

    async def script(peer: Peer) -> None:
        await peer.setup()
        # The hostile calls in one burst, then, once all are answered, a good one: at
        # most 8 run at once, so a call sent amid the burst may be refused by design.
        for batch in (list(calls)[:-1], ["last"]):
            for call_id in batch:
                name, args = calls[call_id]
                await peer.send({"type": "response.function_call_arguments.done",
                                 "call_id": call_id, "name": name, "arguments": args})
            for _ in batch:
                item = (await peer.wait_for("conversation.item.create", timeout=20))["item"]
                outputs[item["call_id"]] = json.loads(item["output"])
        await peer.hold(10)

    async with FakeService([script]) as svc, daemon_running(tmp_path, svc) as daemon:
        from swaramd.core.tools import Tool, ToolRegistry, get_time_tool, set_volume_tool

        odd = Tool("odd", "", {"type": "object"}, lambda _args: {"not": {1j}})  # not JSON
        daemon._tools = lambda: ToolRegistry([get_time_tool(), set_volume_tool(print), odd])
        await wait_until(lambda: len(outputs) == len(calls), timeout=30)
        assert daemon.link is not None and daemon.link.live
    assert set(outputs) == set(calls)
    assert all("error" in outputs[c] for c in calls if c != "last"), outputs
    assert "time" in outputs["last"]
    assert max(len(r.getMessage()) for r in caplog.records) < 1000


async def test_a_reply_cancelled_before_its_audio_is_never_heard(tmp_path):
    sent = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "input_audio_buffer.speech_stopped"})
        await peer.send({"type": "response.created", "response": {"id": "r1"}})
        await peer.send({"type": "input_audio_buffer.speech_started"})
        for _ in range(5):   # late: the service cancelled r1 when the user spoke
            await peer.send(audio_delta(tone(0.2, 1000, 0.5).tobytes(), "r1"))
        await peer.send({"type": "response.done", "response": {"id": "r1",
                                                               "status": "cancelled"}})
        sent.set()
        await peer.hold(10)

    async with FakeService([script]) as svc, daemon_running(
            tmp_path, svc, audio={"duplex": "half", "echo_tail_ms": 0}) as daemon:
        await asyncio.wait_for(sent.wait(), 10)
        start = time.monotonic()
        while time.monotonic() - start < 1.5:
            assert daemon.conversation.base is not State.SPEAKING
            await asyncio.sleep(0.01)
        before = len(appends(svc))
        await asyncio.sleep(0.5)
        assert len(appends(svc)) > before + 10  # the mic streams on while the user talks
    out = read_wav(tmp_path / "out.wav")
    assert loud_span(out, REPLY_ONLY) == (-1, -1)


async def test_a_failed_reply_is_logged_and_counted(tmp_path, caplog):
    caplog.set_level("INFO")

    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "response.created", "response": {"id": "r1"}})
        await peer.send({"type": "response.done", "response": {
            "id": "r1", "status": "failed", "status_details": {
                "type": "failed", "error": {"type": "server_error", "code": "overloaded",
                                            "message": "try later"}}}})
        await peer.hold(10)

    async with FakeService([script]) as svc, daemon_running(tmp_path, svc):
        await wait_until(lambda: "reply r1 failed" in caplog.text)
        status = await ask_status(tmp_path)
    assert status["protocol"]["failed_responses"] == 1
    assert "reply r1 failed: overloaded: try later" in caplog.text


async def test_a_tool_result_never_crosses_into_the_next_session(tmp_path):
    patched = asyncio.Event()   # the slow tool is in place before the call comes

    async def first(peer: Peer) -> None:
        await peer.setup()
        await asyncio.wait_for(patched.wait(), 10)
        await peer.send({"type": "response.function_call_arguments.done",
                         "call_id": "c1", "name": "slow", "arguments": "{}"})
        await asyncio.sleep(0.3)
        await peer.close(1001, "session expired")   # the tool is still running

    async def second(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(10)

    async with FakeService([first, second]) as svc, daemon_running(tmp_path, svc) as daemon:
        from swaramd.core.tools import Tool, ToolRegistry

        def slow(_args: dict) -> dict:
            time.sleep(1.5)
            return {"ok": True}

        daemon._tools = lambda: ToolRegistry([Tool("slow", "", {"type": "object"}, slow)])
        patched.set()
        await wait_until(lambda: len(svc.peers) == 2 and daemon.link is not None
                         and daemon.link.live)
        await asyncio.sleep(2.0)   # the slow tool finishes meanwhile
    assert "conversation.item.create" not in [e["type"] for e in svc.received]


async def test_a_hang_up_survives_a_full_outbox(tmp_path):
    from swaramd.core import protocol
    from swaramd.core.actions import HangUp, Send
    from swaramd.daemon import OUTBOX_LIMIT

    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(20)

    async with FakeService([script]) as svc, daemon_running(tmp_path, svc) as daemon:
        await wait_until(lambda: daemon.link is not None and daemon.link.live)
        # All at once, before the outbox's pump can run: the link looks stalled.
        daemon._apply([HangUp()] + [Send(protocol.audio_clear())] * (OUTBOX_LIMIT + 5))
        await wait_until(lambda: svc.peers[0].ws.close_code is not None, timeout=5)
        assert svc.peers[0].ws.close_code == 1000
        await asyncio.sleep(1.5)
        assert len(svc.attempts) == 1     # hung up for good: no reconnect


async def test_interrupt_after_response_done_flushes_without_cancel(tmp_path):
    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.send({"type": "input_audio_buffer.speech_stopped"})
        await reply(peer, tone(3.0, 440, 0.5).tobytes(), "r1")   # done: only the tail plays
        await peer.hold(10)

    async with FakeService([script]) as svc, daemon_running(tmp_path, svc) as daemon:
        await wait_until(lambda: daemon.conversation.base is State.SPEAKING)
        await asyncio.sleep(0.5)
        press()
        await asyncio.sleep(0.1)
        release()
        await wait_until(lambda: daemon.conversation.base is State.LISTENING)
        cut = rendered(daemon)
        await asyncio.sleep(0.5)
    assert "response.cancel" not in non_audio(svc)
    assert loud_span(read_wav(tmp_path / "out.wav"), REPLY_ONLY)[1] <= cut


async def test_a_press_to_start_right_after_a_hang_up_is_not_lost(tmp_path):
    from swaramd.core.panel import PanelInput

    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(20)

    async with FakeService([script]) as svc, daemon_running(
            tmp_path, svc, conversation={"mode": "on_demand"}) as daemon:
        press(); await asyncio.sleep(0.1); release()  # noqa: E702
        await wait_until(lambda: daemon.conversation.shown is State.LISTENING)
        conv, now = daemon.conversation, time.monotonic()
        # Two gestures before the outbox's pump runs (as when it waits on a slow link):
        # the hang-up must not undo the start that came after it.
        daemon._apply(conv.on_panel(PanelInput.HANG_UP, now))
        daemon._apply(conv.on_panel(PanelInput.START, now))
        await wait_until(lambda: len(svc.attempts) == 2, timeout=5)
        await wait_until(lambda: conv.shown is State.LISTENING, timeout=5)
        assert svc.peers[0].ws.close_code == 1000
