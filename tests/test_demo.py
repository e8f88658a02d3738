"""`swaramd demo`: the real daemon, the simulated service, WAV audio, mock pins.

The whole demo runs once in-process: its timeline must show both turns, the
tool call and the barge-in, every client event the simulator received must
validate strictly (tests/support/strict.py), and the speaker's WAV must hold
the simulated replies sample for sample. `--audio` runs as a process through
PyAudio on a private jackd, with jack_metro's beeps as the user's voice.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from websockets.asyncio.client import connect

from swaramd.adapters.volume import gain_q15
from swaramd.demo import runner
from swaramd.demo.recording import RATE, UTTERANCES, demo_recording, read_wav
from swaramd.demo.script import DemoScript
from swaramd.demo.simulator import SimulatedSwaram
from swaramd.demo.vad import EnergyVad
from tests.adapters.alsa_rig import Jackd
from tests.support.strict import check_client_event

ROOT = Path(__file__).resolve().parents[1]


class KeptSimulator(SimulatedSwaram):
    """The demo's simulator, kept for the test to inspect afterwards."""

    made: ClassVar[list[SimulatedSwaram]] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        KeptSimulator.made.append(self)


def segments(out: np.ndarray, gap_s: float = 0.1) -> list[tuple[int, int]]:
    """Stretches of sound separated by at least `gap_s` of digital silence."""
    loud = np.flatnonzero(out)
    breaks = np.flatnonzero(np.diff(loud) > gap_s * RATE)
    starts = [loud[0], *loud[breaks + 1]]
    ends = [*loud[breaks] + 1, loud[-1] + 1]
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def as_played(audio: bytes | None) -> np.ndarray:
    """A simulated reply as the speaker plays it at the default volume (100: unchanged)."""
    assert audio is not None
    pcm = np.frombuffer(audio, dtype="<i2").astype(np.int32)
    return ((pcm * gain_q15(100)) >> 15).astype(np.int16)


def test_demo_runs_a_whole_conversation(tmp_path, capsys, monkeypatch):
    KeptSimulator.made.clear()
    monkeypatch.setattr(runner, "SimulatedSwaram", KeptSimulator)
    out = tmp_path / "reply.wav"

    assert runner.run_demo(["--out", str(out)]) == 0

    text = capsys.readouterr().out
    [sim] = KeptSimulator.made
    # The timeline: set-up, both turns, the tool call, the barge-in, the hang-up.
    for needle in ["button    short press (mock GPIO17): start a conversation",
                   "state     idle → connecting", "→ swaram  session.update",
                   "← swaram  session.updated", "input_audio_buffer.speech_started",
                   "input_audio_buffer.speech_stopped", "state     listening → thinking",
                   "call get_time({})", "tool      ran get_time({}) →",
                   "conversation.item.create   function_call_output",
                   "state     thinking → speaking", "barge-in  the user spoke over the reply",
                   "state     speaking → listening   (speech_started)",
                   "state     listening → idle",
                   "swaramd demo: OK. 3 turns, the get_time tool call, and a barge-in"]:
        assert needle in text, needle
    for u in UTTERANCES:
        assert f"user      “[simulated] {u.transcript}”  ({u.meaning})" in text
    assert re.search(r"swaram    “\[simulated reply\] ഇപ്പോൾ സമയം \d\d:\d\d ആണ്", text)
    assert "swaram    “[simulated reply] ശരി, നിർത്താം. ശുഭദിനം!”" in text
    # Lines carry times since the start, in order.
    times = [float(m) for m in re.findall(r"^ *(\d+\.\d\d) s  ", text, re.M)]
    assert len(times) > 30 and times == sorted(times) and times[-1] < 50
    # The measured latencies.
    latencies = [int(m) for m in re.findall(r"first reply audio heard: (\d+) ms", text)]
    assert len(latencies) == 3 and all(0 < ms < 500 for ms in latencies)
    [silence] = [int(m) for m in re.findall(r"speech_started → speaker silent: (\d+) ms", text)]
    assert silence <= 100  # barge-in: never over 100 ms
    # From the user's voice at the mic: the service's detector alone needs 60 ms of it.
    [voice] = [int(m) for m in re.findall(r"the user's voice → speaker silent: (\d+) ms", text)]
    assert 60 < voice < 1000
    # The barge-in came through the echo canceller, in a room louder than the user:
    # the service heard the user over the reply, and never the reply's echo.
    assert "room        the speaker's sound reaches the microphone 60 ms late" in text
    [echo_db] = [float(m) for m in re.findall(r"replies' echo \+(\d+\.\d) dB over the user", text)]
    assert echo_db > 1
    [erle] = [float(m) for m in re.findall(r"the canceller removed (\d+\.\d) dB", text)]
    assert erle > 10 and "guard converged" in text
    # The mic was held while the canceller learnt and its filter settled: 18 s of playback.
    [held] = [float(m) for m in re.findall(r"the mic was held for (\d+\.\d) s", text)]
    assert 17.5 <= held < 25
    assert len(sim.turns) == 3 and sim.turns[1].barged_in_at is not None

    # Every client event was documented and strictly valid, in the service's order.
    assert not sim.invalid
    for event in sim.received:
        check_client_event(event)
    kinds = [e["type"] for e in sim.received if e["type"] != "input_audio_buffer.append"]
    assert kinds == ["session.update", "conversation.item.create"]
    output = json.loads(sim.turns[0].tool_output)
    assert set(output) >= {"date", "time", "time_zone"}

    # The speaker's WAV holds the replies, sample for sample: ready and listening
    # tones, reply 1, reply 2 cut short by the barge-in, reply 3, the goodbye tone.
    played = read_wav(out)
    parts = segments(played)
    assert len(parts) == 6, parts
    script = sim.script
    assert isinstance(script, DemoScript)
    replies = [script.time_audio(output["time"]), script.story, script.ack]
    for (start, end), audio, whole in [(parts[2], replies[0], True),
                                       (parts[3], replies[1], False),
                                       (parts[4], replies[2], True)]:
        want = as_played(audio)
        begin = start - int(np.flatnonzero(want)[0])    # a reply's first sample is 0
        got = played[begin:begin + len(want)] if whole else played[begin:end]
        assert np.array_equal(got, want[:len(got)]) and len(got) > RATE
    cut = (parts[3][1] - parts[3][0]) / RATE
    assert 1.0 < cut < len(script.story) / 2 / RATE - 2  # the barge-in cut the story short


def test_without_espeak_ng_the_demo_runs_without_the_room(tmp_path, capsys, monkeypatch):
    which = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda name, *a, **k: None if name == "espeak-ng" else which(name, *a, **k))

    assert runner.run_demo(["--out", str(tmp_path / "reply.wav")]) == 0

    text = capsys.readouterr().out
    assert "room        none: without espeak-ng the replies are a test signal" in text
    assert "the canceller removed" not in text
    assert "swaramd demo: OK. 3 turns, the get_time tool call, and a barge-in" in text


def test_the_spoken_wake_word_starts_the_demo(tmp_path, capsys, monkeypatch):
    KeptSimulator.made.clear()
    monkeypatch.setattr(runner, "SimulatedSwaram", KeptSimulator)

    assert runner.run_demo(["--wake-word", "--out", str(tmp_path / "reply.wav")]) == 0

    text = capsys.readouterr().out
    [sim] = KeptSimulator.made
    assert "start a conversation" not in text           # no press starts it
    woke = text.index("wake      heard the wake word okay_nabu")
    assert woke < text.index("state     idle → connecting   (start)")
    # Three turns and no more: the word itself never reached the service as speech.
    assert len(sim.turns) == 3
    for u in UTTERANCES:
        assert f"user      “[simulated] {u.transcript}”  ({u.meaning})" in text
    assert "barge-in  the user spoke over the reply" in text
    assert "swaramd demo: OK. 3 turns started by the word “okay nabu”" in text
    assert not sim.invalid


def test_a_bad_out_path_fails_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "swaramd.demo", "--out",
                           str(tmp_path / "missing" / "x.wav")],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "no such directory" in proc.stderr


def test_the_recording_has_three_utterances_the_vad_finds():
    vad = EnergyVad()
    changes = vad.feed(demo_recording())
    spans = [(c.audio_ms / 1000) for c in changes]
    assert [c.started for c in changes] == [True, False] * 3
    for u, (start, end) in zip(UTTERANCES, zip(spans[::2], spans[1::2], strict=True),
                               strict=True):
        assert abs(start - u.start_s) < 0.1 and abs(end - u.end_s) < 0.1
    assert np.array_equal(demo_recording(), demo_recording())  # deterministic


async def test_simulator_requires_a_key_and_rejects_undocumented_events():
    async with SimulatedSwaram(DemoScript()) as sim:
        async with connect(sim.url) as ws:
            error = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert error["type"] == "error" and error["error"]["code"] == "invalid_api_key"
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 4001
        headers = {"Authorization": "Bearer anything"}
        async with connect(sim.url, additional_headers=headers) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            await ws.send(json.dumps({"type": "conversation.item.truncate"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "error"
            await ws.send(json.dumps({"type": "session.update", "session": {"voice": "mal-male"}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "session.updated"
            silence = base64.b64encode(bytes(960)).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": silence}))
        assert sim.invalid == ["not a documented client event: 'conversation.item.truncate'"]


def test_audio_mode_echoes_through_pyaudio(tmp_path):
    """--audio on a private jackd: jack_metro's beeps are the voice, echoed back."""
    jackd = Jackd(24_000, 480)
    jackd.start()
    metro_name = f"metro-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **jackd.env, "ALSA_CONFIG_PATH": str(tmp_path / "asoundrc")}
    (tmp_path / "asoundrc").write_text(
        "pcm.default { type jack playback_ports { 0 system:playback_1 } "
        f"capture_ports {{ 0 {metro_name}:40_bpm }} }}\n", encoding="ascii")
    metro = subprocess.Popen(["jack_metro", "-n", metro_name, "-b", "40", "-f", "300",
                              "-D", "700", "-A", "0.5"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc = subprocess.run([sys.executable, "-m", "swaramd.demo", "--audio",
                               "--seconds", "20"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=45)
    finally:
        os.kill(metro.pid, signal.SIGTERM)
        metro.wait(timeout=5)
        jackd.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "audio open: in 'default' at 24000 Hz" in proc.stdout
    assert proc.stdout.count("swaram    “[echo] your own words, played back") == 3
    assert proc.stdout.count("(playback_drained)") == 3
    assert "3 utterance(s) played back" in proc.stdout


@pytest.mark.parametrize("asoundrc", ["pcm.default { type hw card 99 }\n"])
def test_audio_mode_without_a_sound_card_fails_in_one_line(tmp_path, asoundrc):
    (tmp_path / "asoundrc").write_text(asoundrc, encoding="ascii")
    env = {**os.environ, "ALSA_CONFIG_PATH": str(tmp_path / "asoundrc"),
           "JACK_NO_START_SERVER": "1", "JACK_DEFAULT_SERVER": "swaramd-test-none"}
    proc = subprocess.run([sys.executable, "-m", "swaramd.demo", "--audio", "--seconds", "3"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.startswith("swaramd demo: no audio input device")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
