"""The demo's verdict and summary: what was heard on the speaker, and how soon.

Latencies come from the speaker's output file, the engine's sample count and
the service's own timestamps (`analysis.py`): speech end (the service sent
`speech_stopped`) to the moment the reply's first sample sounds; barge-in (the
service sent `speech_started` over a reply) to the moment its last sample has
sounded, and from the moment the user's voice began at the microphone (the
recording's sample that sounded then: the WAV backend's two files share one
time line) to the same moment.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swaramd.demo.analysis import ReplyHeard, Samples, SpeakerClock, reply_after
from swaramd.demo.recording import RATE
from swaramd.demo.simulator import SimulatedSwaram, TurnRecord
from swaramd.demo.timeline import Timeline

BARGE_IN_LIMIT_MS = 100.0       # barge-in: silent within one output buffer, never over 100 ms
SILENCED_MS = 500.0             # beyond this the demo says the barge-in failed


@dataclass
class TurnResult:
    """One user turn and its reply as heard on the speaker."""

    turn: TurnRecord
    heard: ReplyHeard | None = None
    latency_ms: float | None = None     # speech end -> first reply sample
    silence_ms: float | None = None     # barge-in -> last reply sample
    voice_ms: float | None = None       # the user's voice began -> last reply sample


@dataclass
class FileReport:
    """Everything the summary prints, and the first problem found (None: it completed)."""

    turns: list[TurnResult] = field(default_factory=list)
    output_s: float = 0.0
    problem: str | None = None


def file_report(out: Samples | None, sim: SimulatedSwaram, clock: SpeakerClock,
                marks: dict[str, Any], *, barge_in_logged: bool,
                utterances_s: Sequence[float] = ()) -> FileReport:
    """Measure each turn on the speaker's output and judge whether the demo completed;
    `utterances_s`: where each of the user's utterances begins in the microphone's
    recording (s)."""
    report = FileReport(output_s=len(out) / RATE if out is not None else 0.0)
    if out is None or not clock.ready:
        report.problem = "the speaker's output file was not written"
        return report
    turns = sim.turns
    end = clock.rendered_by(marks["hangup"]) if "hangup" in marks else len(out)
    for i, turn in enumerate(turns):
        result = TurnResult(turn)
        report.turns.append(result)
        if turn.speech_stopped is None:
            continue
        begin = clock.rendered_by(turn.speech_stopped)
        nxt = turns[i + 1].speech_stopped if i + 1 < len(turns) else None
        limit = clock.rendered_by(nxt) if nxt is not None else end
        result.heard = reply_after(out, begin, limit)
        heard = result.heard
        first = clock.sounds_at(heard.start) if heard else None
        last = clock.sounds_at(heard.end - 1) if heard else None
        if first is None or last is None:
            continue
        result.latency_ms = 1000 * (first - turn.speech_stopped)
        if turn.barged_in_at is not None:   # when the reply's last sample had played
            silent = last + 1 / RATE
            result.silence_ms = max(0.0, 1000 * (silent - turn.barged_in_at))
            voice = clock.sounds_at(int(RATE * utterances_s[i + 1])) \
                if i + 1 < len(utterances_s) else None
            if voice is not None:
                result.voice_ms = 1000 * (silent - voice)
    report.problem = _first_problem(report, sim, barge_in_logged)
    return report


def _first_problem(report: FileReport, sim: SimulatedSwaram, barge_in_logged: bool
                   ) -> str | None:
    results = report.turns
    if sim.invalid:
        return f"the daemon sent an invalid event: {sim.invalid[0]}"
    if len(results) < 3:
        return f"the service heard only {len(results)} of 3 utterances"
    if len(results) > 3:
        return (f"the service heard {len(results)} utterances where the user said 3: "
                "the reply's echo reached it as speech")
    if results[0].turn.tool != "get_time" or results[0].turn.tool_output is None:
        return "the get_time tool call was not answered"
    for r in results[:3]:
        if r.heard is None:
            return f"the reply to turn {r.turn.number} was not heard on the speaker"
    second = results[1]
    if second.turn.barged_in_at is None or second.silence_ms is None:
        return "no barge-in: the third utterance did not come while the second reply played"
    if not barge_in_logged:
        return "the daemon did not report the barge-in"
    if second.silence_ms > SILENCED_MS:
        return f"the speaker still played {second.silence_ms:.0f} ms after the barge-in"
    return None


def print_summary(tl: Timeline, report: FileReport, sim: SimulatedSwaram, out: Path,
                  status: dict[str, Any] | None, echo_db: float | None = None) -> None:
    """The summary after the timeline: per turn, the latencies, the echo, the files;
    `echo_db` is the room's echo at the mic over the user's voice."""
    tl.say()
    tl.say("Summary. Latencies are measured on the speaker's output; the simulated service")
    tl.say("answers at once (a few ms apart), so they are the daemon's share.")
    for r in report.turns:
        _print_turn(tl, r)
    appends = [e for e in sim.received if e.get("type") == "input_audio_buffer.append"]
    others = sorted({str(e.get("type")) for e in sim.received} - {"input_audio_buffer.append"})
    tl.say(f"  uplink     {len(appends)} input_audio_buffer.append events; also sent: "
           f"{', '.join(others) or 'nothing'}; {len(sim.invalid)} invalid")
    if echo_db is not None:
        tl.say(f"  echo       the room put the replies' echo {echo_db:+.1f} dB over the user's "
               "voice at the mic")
        _print_canceller(tl, (status or {}).get("audio", {}).get("echo_cancel"))
    if status is not None:
        keep = ("state", "connected", "last_close_code", "reconnects", "audio", "protocol")
        tl.say(f"  status     {json.dumps({k: status.get(k) for k in keep})}")
    if report.output_s:
        tl.say(f"  speaker    {out}  ({report.output_s:.1f} s, 24 kHz mono: everything the "
               "speaker played, tones and silence included)")
        tl.say(f"             play it with:  aplay {_quote(out)}")
    tl.say()


def _print_canceller(tl: Timeline, echo: dict[str, Any] | None) -> None:
    if not echo:
        tl.say("             the canceller's status was not read: the demo ended early")
        return
    if not echo.get("active"):
        tl.say(f"             echo cancellation did not run: {echo.get('reason')}")
        return
    erle, delay = echo.get("erle_db"), echo.get("delay_ms")
    tl.say(f"             the canceller removed {_db(erle)} of it (ERLE, its last second of "
           f"reply); echo delay found {_ms(delay)}; guard {echo.get('guard')}")
    held = echo.get("held_s")
    if held:
        tl.say(f"             the mic was held for {held:.1f} s of the replies, while the "
               "canceller learnt the room and settled")


def _db(value: float | None) -> str:
    return "? dB" if value is None else f"{value:.1f} dB"


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f} ms"


def _print_turn(tl: Timeline, r: TurnResult) -> None:
    t = r.turn
    tl.say(f"  turn {t.number}     “{t.transcript}”{tl.gloss(t.transcript)}")
    if t.tool:
        answered = "ran it and sent the result back" if t.tool_output is not None \
            else "never answered"
        tl.say(f"             the service called {t.tool}; the daemon {answered}")
    if r.heard is None or r.latency_ms is None:
        tl.say("             no reply heard")
        return
    via = f" (via the {t.tool} round trip)" if t.tool else ""
    tl.say(f"             speech end → first reply audio heard: {r.latency_ms:.0f} ms{via}")
    if r.silence_ms is not None:
        verdict = "within" if r.silence_ms <= BARGE_IN_LIMIT_MS else "OVER"
        tl.say(f"             heard {r.heard.seconds:.2f} s of the {t.reply_audio_s:.2f} s "
               "reply, then the user barged in")
        tl.say(f"  barge-in   speech_started → speaker silent: {r.silence_ms:.0f} ms "
               f"({verdict} the {BARGE_IN_LIMIT_MS:.0f} ms limit)")
        if r.voice_ms is not None:
            tl.say(f"             the user's voice → speaker silent: {r.voice_ms:.0f} ms "
                   "(canceller, uplink and service VAD included)")
    else:
        tl.say(f"             heard the whole reply: {r.heard.seconds:.2f} s")


def _quote(path: Path) -> str:
    text = str(path)
    return text if all(c.isalnum() or c in "/._-+" for c in text) else f"'{text}'"
