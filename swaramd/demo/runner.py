"""`swaramd demo`: a whole conversation with the real daemon, no hardware and no key.

What runs is `swaramd.daemon.Daemon`, unmodified, with a config written for
the run: the WAV audio backend (a generated recording is the microphone, a
WAV file is the speaker), gpiozero's mock pins (the button is pressed in
software), and `server.url` pointing at the simulated service on loopback
(`simulator.py`) with a throwaway key. The demo watches only public surfaces:
the `swaramd` loggers, `daemon.conversation`, `daemon.engine`, the control
socket, and the service's own journal.

Choices, and why:

- `conversation.mode: on_demand`, the smart speaker: a button press starts
  the conversation and another ends it (close 1000), as a user would. With
  `--wake-word`, the spoken word "okay nabu" (espeak-ng, at the start of the
  recording) starts it instead (`conversation.wake_word: okay_nabu`).
- `audio.gate: open` (on_demand's default): all mic audio goes up, so the
  simulated service's own VAD does the turn-taking, as the real one does.
- `audio.duplex: auto` and `audio.echo_cancel: on`, the defaults, against a
  simulated room (`room.EchoRoom`): the speaker's output comes back into the
  microphone 60 ms late, with a 250 ms reverberant tail, 3 dB louder than
  the user's voice, as on a bare mic beside a speaker. The echo canceller
  removes it, so the service hears the user's third utterance over the
  second reply and barges in, and never hears the reply's echo as speech.
  The replies are spoken by espeak-ng; without it they are a test signal
  that does not teach a canceller the room in time, so the demo runs
  without the room and with `duplex: full`, as hardware that cancels its
  own echo would. `--audio` runs half duplex so that the played-back words
  never reach the mic (the real room is unknown, and the canceller would
  still be learning).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swaramd.core.errors import SwaramdError
from swaramd.core.states import State
from swaramd.daemon import Daemon
from swaramd.demo.analysis import SpeakerClock
from swaramd.demo.harness import (
    DemoFailed,
    ask_status,
    drive,
    press,
    wait_audio_open,
    wait_until,
    write_config,
)
from swaramd.demo.recording import (
    RECORDING_S,
    UTTERANCES,
    WAKE_PHRASE,
    WAKE_SHIFT_S,
    WAKE_WORD,
    Samples,
    demo_recording,
    read_wav,
    wake_recording,
    write_wav,
)
from swaramd.demo.report import file_report, print_summary
from swaramd.demo.room import EchoRoom, rms, room_response
from swaramd.demo.script import DemoScript
from swaramd.demo.selftest import audio_demo, preflight_audio
from swaramd.demo.simulator import SimulatedSwaram
from swaramd.demo.timeline import JournalLines, Timeline, install_timeline_log

DEFAULT_OUT = "swaramd-demo-reply.wav"
DEADLINE_S = 80.0       # the whole file demo; it takes about 35 s
EXPECTED_S = 35.0       # for the progress indicator
ROOM_DELAY_MS = 60.0    # the simulated room: speaker to mic
ROOM_TAIL_MS = 250.0    # its reverberation, down 60 dB
ROOM_ECHO_DB = 3.0      # the echo's level at the mic over the user's voice


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `swaramd demo`, for the CLI's sub-parser."""
    parser.add_argument("--audio", action="store_true",
                        help="use the real microphone and speaker (PyAudio): the simulated "
                             "service plays your own words back, a self-test of the audio")
    parser.add_argument("--out", metavar="PATH", default=DEFAULT_OUT,
                        help=f"where to write what the speaker played (default ./{DEFAULT_OUT})")
    parser.add_argument("--seconds", metavar="S", type=float, default=30.0,
                        help="--audio: how long to listen at most (default 30)")
    parser.add_argument("--wake-word", action="store_true",
                        help=f"start the conversation by the spoken wake word "
                             f"“{WAKE_PHRASE}” (espeak-ng) instead of the mock button")


def run_demo(argv: Sequence[str] | None = None) -> int:
    """`swaramd demo [--audio] [--out PATH] [--wake-word]`; returns the exit code (0: it
    completed)."""
    parser = argparse.ArgumentParser(
        prog="swaramd demo",
        description="A whole conversation against an embedded simulated swaram service: "
                    "no hardware, no key.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the demo the parsed options ask for; 0 when the conversation completed, else 1."""
    for stream in (sys.stdout, sys.stderr):     # Malayalam on a terminal that cannot show it
        if "utf" not in (getattr(stream, "encoding", None) or "utf").lower():
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(errors="replace")  # type: ignore[union-attr]
    timeline = Timeline()
    # The demo sends its own throwaway key, never one systemd handed this process.
    credentials = os.environ.pop("CREDENTIALS_DIRECTORY", None)
    try:
        if args.audio:
            preflight_audio()
        else:
            out = writable(args.out)
        with tempfile.TemporaryDirectory(prefix="swaramd-demo-") as tmp:
            main = audio_demo(args.seconds, Path(tmp), timeline) if args.audio \
                else file_demo(out, Path(tmp), timeline, wake_word=args.wake_word)
            return asyncio.run(main)
    except (DemoFailed, SwaramdError, OSError) as exc:
        timeline.end_progress()
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"swaramd demo: {first}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        timeline.end_progress()
        print("swaramd demo: interrupted", file=sys.stderr)
        return 1
    finally:
        if credentials is not None:
            os.environ["CREDENTIALS_DIRECTORY"] = credentials


# --- the demo with files -------------------------------------------------------------


def writable(name: str) -> Path:
    """`--out` as an absolute path, checked now rather than after the daemon started."""
    out = Path(name).absolute()
    if not out.parent.is_dir():
        raise DemoFailed(f"--out {name}: no such directory {out.parent}")
    try:
        out.open("ab").close()
    except OSError as exc:
        raise DemoFailed(f"--out {name}: cannot write it: {exc.strerror}") from None
    return out


async def file_demo(out: Path, tmp: Path, tl: Timeline, *, wake_word: bool = False) -> int:
    """Three turns (one with get_time), a barge-in and a goodbye, through WAV files;
    started by a press, or by the spoken wake word."""
    shift = WAKE_SHIFT_S if wake_word else 0.0
    recording, utterances = wake_recording() if wake_word else (demo_recording(), UTTERANCES)
    mic = write_wav(tmp / "mic.wav", recording)
    conversation = {"mode": "on_demand"} | ({"wake_word": WAKE_WORD} if wake_word else {})
    script = DemoScript()
    echo_room = demo_room(recording, script) if script.spoken else None
    audio = {"backend": "wav", "wav_input": str(mic), "wav_output": str(out), "gate": "open"}
    if echo_room is None:
        audio["duplex"] = "full"
    async with SimulatedSwaram(script, listener=JournalLines(tl)) as sim:
        cfg = write_config(tmp, sim.url, audio=audio, gpio={"pin_factory": "mock"},
                           conversation=conversation)
        tl.say("swaramd demo: the real daemon, end to end, with no hardware and no key.")
        tl.say(f"  service     a simulated swaram on {sim.url.split('/v1')[0]} (swaramd/demo/)")
        if wake_word:
            tl.say(f"  microphone  a generated recording, {RECORDING_S + shift:.0f} s: the wake "
                   f"word “{WAKE_PHRASE}” (espeak-ng), then")
            tl.say("              three speech-like utterances; the third comes while")
        else:
            tl.say(f"  microphone  a generated recording, {RECORDING_S:.0f} s: three "
                   "speech-like utterances; the third comes while")
        tl.say("              the second reply plays.")
        if echo_room is not None:
            tl.say(f"  room        the speaker's sound reaches the microphone "
                   f"{ROOM_DELAY_MS:.0f} ms late, with a {ROOM_TAIL_MS:.0f} ms tail,")
            tl.say(f"              {ROOM_ECHO_DB:.0f} dB louder than the user: duplex auto, "
                   "echo cancellation on (the defaults)")
        else:
            tl.say("  room        none: without espeak-ng the replies are a test signal that "
                   "does not teach")
            tl.say("              a canceller the room in time, so the microphone hears no "
                   "echo and the")
            tl.say("              demo runs duplex full (apt install espeak-ng for the room)")
        tl.say(f"  speaker     {out}")
        if wake_word:
            tl.say(f"  button      gpiozero mock pins (mode on_demand, wake word {WAKE_WORD}: "
                   "the word starts, a press ends)")
        else:
            tl.say("  button      gpiozero mock pins (mode on_demand: a press starts, a press "
                   "ends)")
        tl.say("  key         a throwaway file; the simulator wants a Bearer key, any key")
        tl.say()
        clock = SpeakerClock(period=24 * min(cfg.audio.frame_ms, 20))  # the WAV period
        marks: dict[str, Any] = {}
        with install_timeline_log(tl) as log_lines:
            daemon = Daemon(cfg, state_dir=tmp / "state",
                            engine_options={"room": echo_room} if echo_room else None)
            director = direct_file_demo(daemon, sim, tl, marks, wake_word=wake_word,
                                        deadline_s=DEADLINE_S + shift)
            result = await drive(daemon, director, tl, EXPECTED_S + shift, DEADLINE_S + shift,
                                 clock)
    report = file_report(speaker_output(out), sim, clock, marks,
                         barge_in_logged=log_lines.seen["barge-in"] > 0,
                         utterances_s=[u.start_s for u in utterances])
    if sim.turns:
        print_summary(tl, report, sim, out, marks.get("status"),
                      echo_room.echo_db if echo_room else None)
    problem = result.get("error") or result.get("failure")
    if not problem and result.get("stopped_early"):
        problem = "the daemon stopped before the demo ended (interrupted?)"
    problem = problem or report.problem
    if result.get("code") not in (0, None) and not problem:
        problem = f"the daemon exited with {result['code']}"
    if problem:
        raise DemoFailed(problem)
    barge_in = report.turns[1].silence_ms or 0.0
    started = f" started by the word “{WAKE_PHRASE}”" if wake_word else ""
    tl.say(f"swaramd demo: OK. {len(report.turns)} turns{started}, the get_time tool call, "
           f"and a barge-in silenced in {barge_in:.0f} ms.")
    return 0


def demo_room(recording: Samples, script: DemoScript) -> EchoRoom:
    """The room of the file demo: its gain puts the replies' echo `ROOM_ECHO_DB` over
    the recording's voice (the room's response has unit energy)."""
    voice = rms(recording.astype("float32") / 32768)
    reply = rms(script.reply_audio().astype("float32") / 32768)
    return EchoRoom(room_response(ROOM_DELAY_MS, ROOM_TAIL_MS),
                    10 ** (ROOM_ECHO_DB / 20) * voice / reply)


def speaker_output(out: Path) -> Samples | None:
    """What the speaker played, or None when the WAV backend wrote nothing readable."""
    try:
        return read_wav(out)
    except (OSError, EOFError, wave.Error):
        return None


async def direct_file_demo(daemon: Daemon, sim: SimulatedSwaram, tl: Timeline,
                           marks: dict[str, Any], *, wake_word: bool = False,
                           deadline_s: float = DEADLINE_S) -> None:
    """Press the button (or let the recording say the wake word), let the recording talk,
    press again to hang up."""
    pin = daemon.cfg.gpio.button_pin
    engine = await wait_audio_open(daemon, 10, "the WAV audio did not start")
    await wait_until(lambda: daemon.status.state is State.IDLE and engine.rendered_samples > 0,
                     5, "the daemon did not start")
    if wake_word:
        await wait_until(lambda: daemon.conversation.shown is not State.IDLE, 10,
                         f"the wake word “{WAKE_PHRASE}” was not heard")
    else:
        await asyncio.sleep(0.25)               # let the "ready" tone play
        await press(pin, tl, "start a conversation")
    try:
        await sim.wait_for(lambda: len(sim.turns) >= 3 and sim.turns[2].reply_status
                           == "completed", deadline_s - 15)
    except TimeoutError:
        raise DemoFailed(what_is_missing(sim)) from None
    await wait_until(lambda: daemon.conversation.base is State.LISTENING, 10,
                     "the last reply did not finish playing")
    await asyncio.sleep(0.3)
    marks["hangup"] = time.monotonic()
    await press(pin, tl, "end the conversation")
    await wait_until(lambda: daemon.conversation.shown is State.IDLE, 5,
                     "the daemon did not hang up")
    await asyncio.sleep(0.4)                    # the "goodbye" tone
    marks["status"] = await ask_status(daemon)


def what_is_missing(sim: SimulatedSwaram) -> str:
    """One line saying how far the conversation got."""
    turns = sim.turns
    if not any(e.type == "session.updated" for e in sim.journal):
        return "the daemon never set up a session with the simulated service"
    if len(turns) < 3:
        return f"the service heard only {len(turns)} of 3 utterances"
    if turns[0].tool_output is None:
        return "the get_time tool call was never answered"
    return "the conversation did not finish in time"
