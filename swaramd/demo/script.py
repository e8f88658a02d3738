"""What the simulated service says: its "recognition" and its replies, turn by turn.

The simulator hears only energy, so its transcripts are scripted and marked
`[simulated]`; its replies are speech-like test signals (`recording.speechlike`)
marked `[simulated reply]`, or, in echo mode, the user's own audio played
back and marked `[echo]`. English glosses are kept beside the Malayalam so
the demo's timeline can print them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from swaramd.demo.recording import RATE, UTTERANCES, speechlike

REPLY_F0 = 210.0    # a higher voice than the user's, like the default mal-female
REPLY_LEVEL = 0.55
REPLY_HUM = 0.06    # keeps the reply free of digital silence (see recording.py)


@dataclass(frozen=True, slots=True)
class Reply:
    """Audio to stream back, with the transcript streamed beside it."""

    transcript: str
    pcm: bytes
    gloss: str = ""     # in English, for the timeline


@dataclass(frozen=True, slots=True)
class Heard:
    """The service's transcript of one utterance, with its English gloss."""

    transcript: str
    gloss: str = ""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """Ask the client to run a tool; `then` turns its output into the spoken answer."""

    name: str
    arguments: str
    then: Callable[[Any], Reply]


class Script(Protocol):
    """Turn `n` (from 1) of a session: what was "heard", and how to answer it."""

    def transcript(self, turn: int, utterance: bytes) -> Heard: ...

    def respond(self, turn: int, utterance: bytes) -> Reply | ToolCall: ...


def _voice(seconds: float, seed: int) -> bytes:
    return speechlike(seconds, f0=REPLY_F0, seed=seed, level=REPLY_LEVEL,
                      hum=REPLY_HUM).tobytes()


STORY = ("[simulated reply] ശരി, ഒരു കഥ പറയാം. പണ്ട് പണ്ട് ഒരു വലിയ കാട്ടിൽ ബുദ്ധിമാനായ "
         "ഒരു മുയൽ ഉണ്ടായിരുന്നു. ഒരു ദിവസം അവൻ ഒരു സിംഹത്തെ കണ്ടുമുട്ടി, എന്നിട്ട്...")
STORY_GLOSS = ("OK, a story. Long, long ago in a big forest there lived a clever rabbit. "
               "One day he met a lion, and then...")
STOP_ACK = "[simulated reply] ശരി, നിർത്താം. ശുഭദിനം!"
REPLY_SECONDS = (1.8, 8.0, 1.4)     # the time answer; the story (cut by the barge-in); the ack


def _time_answer(output: Any, pcm: bytes) -> Reply:
    """The spoken answer to get_time, built from what the device said."""
    try:
        data = json.loads(output) if isinstance(output, str) else output
        clock, zone = str(data["time"]), str(data.get("time_zone", ""))
    except (ValueError, TypeError, KeyError):
        clock, zone = "?", ""
    where = f" ({zone})" if zone else ""
    return Reply(f"[simulated reply] ഇപ്പോൾ സമയം {clock} ആണ്{where}.", pcm,
                 f"It is {clock} now{where}.")


class DemoScript:
    """The demo conversation: the time (via get_time), a story, then a short goodbye.

    The reply audio is rendered up front, so the simulated service answers at
    once and the demo's latencies are the daemon's own.
    """

    def __init__(self) -> None:
        self._voices = [_voice(seconds, seed) for seed, seconds in enumerate(REPLY_SECONDS, 1)]

    def transcript(self, turn: int, utterance: bytes) -> Heard:
        """The scripted recognition of the user's `turn`-th utterance."""
        if turn <= len(UTTERANCES):
            u = UTTERANCES[turn - 1]
            return Heard(f"[simulated] {u.transcript}", u.meaning)
        return Heard("[simulated] ...")

    def respond(self, turn: int, utterance: bytes) -> Reply | ToolCall:
        """Turn 1 asks the device for the time; turn 2 tells a long story; then short acks."""
        if turn == 1:
            return ToolCall("get_time", "{}", lambda output: _time_answer(output,
                                                                          self._voices[0]))
        if turn == 2:
            return Reply(STORY, self._voices[1], STORY_GLOSS)
        return Reply(STOP_ACK, self._voices[2], "OK, I'll stop. Have a nice day!")


class EchoScript:
    """Audio self-test: every utterance is played straight back."""

    def transcript(self, turn: int, utterance: bytes) -> Heard:
        """No recognition here: say how much audio was heard."""
        return Heard(f"[echo] {len(utterance) / 2 / RATE:.1f} s of speech heard")

    def respond(self, turn: int, utterance: bytes) -> Reply | ToolCall:
        """The user's own words, played back."""
        return Reply(f"[echo] your own words, played back "
                     f"({len(utterance) / 2 / RATE:.1f} s)", utterance)
