"""`swaramd demo --audio`: a new Pi's microphone and speaker, tested without a key.

The same real daemon and simulated service, with the PyAudio backend on the
default devices, `always_on`, half duplex (a real speaker echoes into a real
microphone) and no GPIO; the service plays each utterance straight back.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from swaramd.core.states import State
from swaramd.daemon import Daemon
from swaramd.demo.harness import DemoFailed, drive, wait_audio_open, wait_until, write_config
from swaramd.demo.script import EchoScript
from swaramd.demo.simulator import SimulatedSwaram
from swaramd.demo.timeline import JournalLines, Timeline, install_timeline_log

ECHO_TURNS = 3          # the self-test ends after this many echoes (or its time limit)


def preflight_audio() -> None:
    """Fail in one line, before anything starts, when there is no microphone or speaker."""
    from swaramd.adapters.audio_devices import list_devices

    devices = list_devices()
    for direction in ("input", "output"):
        if not any(d.channels(direction) > 0 for d in devices):
            raise DemoFailed(f"no audio {direction} device found (`swaramd devices` lists "
                             "them; is a sound card connected?)")


async def audio_demo(seconds: float, tmp: Path, tl: Timeline) -> int:
    """The real microphone and speaker; the simulated service plays each utterance back."""
    async with SimulatedSwaram(EchoScript(), listener=JournalLines(tl)) as sim:
        # Half duplex: every utterance is played back, and the mic must not hear it
        # whatever the room (the echo canceller may still be learning it).
        cfg = write_config(tmp, sim.url,
                           audio={"backend": "pyaudio", "gate": "open", "duplex": "half"},
                           gpio={"pin_factory": "none"}, conversation={"mode": "always_on"})
        tl.say("swaramd demo --audio: your microphone and speaker, the real daemon, and a "
               "simulated service that plays your words back.")
        tl.say(f"Say a sentence after the tone, then pause. Up to {seconds:g} s or "
               f"{ECHO_TURNS} echoes; Ctrl-C stops.")
        tl.say()
        with install_timeline_log(tl):
            daemon = Daemon(cfg, state_dir=tmp / "state")
            result = await drive(daemon, direct_audio_demo(daemon, sim, seconds), tl,
                                 seconds, seconds + 40)
    echoed = [t for t in sim.turns if t.reply_status == "completed"]
    tl.say()
    tl.say(f"Summary: {len(echoed)} utterance(s) played back; loudest microphone level "
           f"{sim.vad_loudest_db:.0f} dBFS.")
    problem = result.get("error") or result.get("failure")   # Ctrl-C is a fine way to end
    if not problem and result.get("code") not in (0, None):
        problem = f"the daemon exited with {result['code']}"
    if not problem and not echoed:
        problem = (f"heard no speech in {seconds:g} s (loudest microphone level "
                   f"{sim.vad_loudest_db:.0f} dBFS): is the microphone connected and unmuted?")
    if problem:
        raise DemoFailed(problem)
    tl.say("swaramd demo --audio: OK. The microphone was heard and the speaker played it back.")
    return 0


async def direct_audio_demo(daemon: Daemon, sim: SimulatedSwaram, seconds: float) -> None:
    """Wait for the devices, then for the echoes (or the time limit)."""
    await wait_audio_open(daemon, 20, "no audio device opened")
    with contextlib.suppress(TimeoutError):
        await sim.wait_for(lambda: sum(t.reply_status == "completed" for t in sim.turns)
                           >= ECHO_TURNS, seconds)
    with contextlib.suppress(DemoFailed):
        await wait_until(lambda: daemon.conversation.base is not State.SPEAKING, 15, "")
