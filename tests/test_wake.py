"""The wake word end to end: the real detector on espeak-ng speech, the daemon on WAV audio
against the loopback service, and check-config without the engine."""

from __future__ import annotations

import asyncio
import base64
import sys

import numpy as np
import pytest

from swaramd.adapters.control import query
from swaramd.adapters.wake import WakeDetector
from swaramd.cli import main
from swaramd.core.states import State
from tests.daemon_rig import RATE, appends, daemon_running, reply, tone, wait_until
from tests.support.service import FakeService, Peer
from tests.support.speech import say, silence
from tests.support.wavfiles import read_wav
from tests.test_cli import _run, write_config

WORD = "okay nabu"     # okay_nabu as espeak-ng's en-us voice says it at 150 words a minute
FRAME = RATE * 20 // 1000


def detections(samples: np.ndarray, detector: WakeDetector) -> list[tuple[float, float]]:
    """(seconds, score) of each detection, feeding 20 ms frames as the daemon does."""
    out = []
    for i in range(0, len(samples), FRAME):
        score = detector.feed(samples[i:i + FRAME].tobytes())
        if score is not None:
            out.append(((i + FRAME) / RATE, score))
    return out


def sent_audio(service: FakeService) -> np.ndarray:
    pcm = b"".join(base64.b64decode(e["audio"]) for e in appends(service))
    return np.frombuffer(pcm, dtype="<i2")


def where(part: np.ndarray, whole: np.ndarray) -> tuple[int, float]:
    """Where `part` best matches in `whole` (sample index) and how well (correlation)."""
    a = part.astype(np.float64)
    b = np.concatenate([whole, np.zeros(len(a), dtype=whole.dtype)]).astype(np.float64)
    n = 1 << (len(a) + len(b)).bit_length()
    corr = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)[:len(b) - len(a) + 1]
    at = int(np.argmax(corr))
    window = b[at:at + len(a)]
    score = float(corr[at] / (np.linalg.norm(a) * np.linalg.norm(window) + 1e-9))
    return at, score


# --- the detector --------------------------------------------------------------------------

def test_the_detector_hears_the_word_once_with_its_score():
    word = say(WORD)
    audio = np.concatenate([silence(1), word, silence(1.5), word, silence(1.5)])
    detector = WakeDetector("okay_nabu")
    try:
        found = detections(audio, detector)
    finally:
        detector.close()
    assert len(found) == 2, found
    ends = [(RATE + len(word)) / RATE, (RATE + 2 * len(word)) / RATE + 1.5]
    for (at, score), end in zip(found, ends, strict=True):
        assert end < at < end + 1.0 and detector.cutoff < score <= 1.0


def test_other_speech_does_not_wake():
    other = np.concatenate([say("what time is it now, and will it rain today"), silence(0.3),
                            say("ഇന്ന് മഴ പെയ്യുമോ", voice="ml"), silence(0.5)])
    detector = WakeDetector("okay_nabu")
    try:
        assert detections(other, detector) == []
    finally:
        detector.close()


def test_a_stricter_sensitivity_raises_the_cutoff():
    strict, eager = WakeDetector("alexa", 0.0), WakeDetector("alexa", 1.0)
    try:
        assert strict.cutoff == pytest.approx(0.99) and eager.cutoff == pytest.approx(0.5)
    finally:
        strict.close()
        eager.close()


# --- the daemon ----------------------------------------------------------------------------

WAKE = {"wake_word": "okay_nabu"}


@pytest.mark.parametrize("gate", ["open", "vad"])
async def test_always_on_sends_nothing_before_the_word_then_what_follows_it(tmp_path, caplog,
                                                                            gate):
    caplog.set_level("INFO")
    before, word, after = say("hello there, how are you today"), say(WORD), say("what time is it")
    mic = np.concatenate([silence(2), before, silence(1), word, silence(0.3), after, silence(1)])
    word_end = len(mic) - RATE - len(after) - int(0.3 * RATE)
    after_start = word_end + int(0.3 * RATE)

    async def script(peer: Peer) -> None:
        await peer.setup()
        await peer.hold(60)

    async with FakeService([script]) as svc, \
            daemon_running(tmp_path, svc, mic=mic, conversation=WAKE,
                           audio={"gate": gate}) as daemon:
        await wait_until(lambda: daemon.status.wake_word.detections == 1, timeout=20)
        await wait_until(lambda: len(sent_audio(svc)) >= len(after) + RATE // 2, timeout=20)
        assert daemon.conversation.shown is State.LISTENING
        status = await asyncio.to_thread(query, tmp_path / "control.sock")
        assert status["wake_word"] == {"name": "okay_nabu", "detections": 1}
    sent = sent_audio(svc)
    at, match = where(sent[:RATE // 2], mic)
    assert match > 0.9, match
    # Nothing before the word, and none of the word; what follows from its first syllable.
    assert word_end - 0.01 * RATE <= at <= after_start, (word_end, at, after_start)
    tail = mic[at:at + len(sent)]
    assert np.corrcoef(sent[:len(tail)], tail)[0, 1] > 0.9   # one stretch, nothing else
    assert "wake word okay_nabu heard (score 0." in caplog.text


async def test_on_demand_the_word_starts_a_conversation(tmp_path, caplog):
    caplog.set_level("INFO")
    mic = np.concatenate([silence(1.5), say(WORD), silence(4)])
    connected = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.setup()
        connected.set()
        await peer.hold(60)

    async with FakeService([script]) as svc, \
            daemon_running(tmp_path, svc, mic=mic,
                           conversation={"mode": "on_demand", **WAKE}) as daemon:
        await asyncio.wait_for(connected.wait(), 20)
        await wait_until(lambda: daemon.conversation.shown is State.LISTENING and appends(svc))
        assert daemon.status.wake_word.detections == 1
    said = [r.getMessage() for r in caplog.records]
    heard = said.index(next(m for m in said if m.startswith("wake word okay_nabu heard")))
    assert said[heard + 1] == "wake word in idle -> start"
    assert said.index("state idle -> connecting (start)") > heard   # not before the word


async def test_the_word_interrupts_a_reply(tmp_path):
    mic = np.concatenate([silence(3.5), say(WORD), silence(1), say("what time is it"),
                          silence(2)])
    cancelled = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.setup()
        # Still in progress on the service (no response.done): an interrupt cancels it.
        await reply(peer, tone(8, level=0.5).tobytes(), "r1", done=False)
        await peer.wait_for("response.cancel", timeout=30)
        cancelled.set()
        await peer.hold(60)

    async with FakeService([script]) as svc, \
            daemon_running(tmp_path, svc, mic=mic, conversation=WAKE) as daemon:
        await wait_until(lambda: daemon.conversation.shown is State.SPEAKING, timeout=20)
        await asyncio.wait_for(cancelled.wait(), 20)
        assert daemon.status.wake_word.detections == 1
        await wait_until(lambda: daemon.conversation.shown is State.LISTENING)
        await wait_until(lambda: len(sent_audio(svc)) > RATE, timeout=20)   # what follows
    played = np.nonzero(np.abs(read_wav(tmp_path / "out.wav")) > 12_000)[0]  # the reply only
    assert 0 < (played[-1] - played[0]) / RATE < 6, "the speaker went on after the word"


# --- without the engine --------------------------------------------------------------------

def test_check_config_names_the_key_and_how_to_install(tmp_path, capsys, monkeypatch):
    key = tmp_path / "key"
    key.write_text("swaram_test_key_123456789\n")
    cfg = write_config(tmp_path, f"server:\n  api_key_file: {key}\n"
                                 f"conversation:\n  mode: always_on\n  wake_word: okay_nabu\n")
    assert main(["check-config", "-c", str(cfg)]) == 0
    assert "wake word okay_nabu" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "pymicro_wakeword", None)   # as if not installed
    assert main(["check-config", "-c", str(cfg)]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{cfg}:5: conversation.wake_word: okay_nabu needs the wake word engine "
                   "pymicro-wakeword, which is not installed: install it with: pip install "
                   "'swaramd[wakeword]' (into swaramd's virtualenv), or run install.sh again"]


async def test_run_without_the_engine_exits_78_with_the_line(tmp_path):
    key = tmp_path / "key"
    key.write_text("swaram_test_key_123456789\n")
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nsys.modules['pymicro_wakeword'] = None  # as if not installed\n")
    cfg = write_config(tmp_path, f"server:\n  api_key_file: {key}\n"
                                 f"gpio:\n  pin_factory: none\n"
                                 f"control:\n  socket: {tmp_path / 'c.sock'}\n"
                                 f"conversation:\n  wake_word: alexa\n")
    from tests.test_cli import ROOT
    code, _, err = await _run("run", "-c", str(cfg), env={"PYTHONPATH": f"{blocker}:{ROOT}"})
    assert code == 78, err
    assert err.strip().splitlines()[-1].startswith(
        f"{cfg}:8: conversation.wake_word: alexa needs the wake word engine pymicro-wakeword"), err
    assert "Traceback" not in err
