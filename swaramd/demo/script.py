"""What the simulated service says: its "recognition" and its replies, turn by turn.

The simulator hears only energy, so its transcripts are scripted and marked
`[simulated]`; its replies, marked `[simulated reply]`, are their own words
spoken in Malayalam by espeak-ng (`-v ml`), or speech-like test signals
(`recording.speechlike`) where espeak-ng is not installed; in echo mode they
are the user's own audio played back, marked `[echo]`. English glosses are
kept beside the Malayalam so the demo's timeline can print them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from swaramd.demo.recording import RATE, UTTERANCES, speechlike

REPLY_F0 = 210.0    # a higher voice than the user's, like the default mal-female
REPLY_LEVEL = 0.55
REPLY_HUM = 0.06    # keeps the reply free of digital silence (see recording.py)
REPLY_NOISE = 8.0   # the same for espeak-ng's pauses: a noise floor (PCM16 RMS, -72 dBFS)


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


def _spoken(text: str, seed: int) -> bytes | None:
    """A reply's words as espeak-ng says them in Malayalam, peaking at `REPLY_LEVEL`
    over a faint noise floor (a reply holds no digital silence); None when espeak-ng
    is missing or fails."""
    from swaramd.demo.room import espeak
    words = text.removeprefix("[simulated reply] ")
    try:
        audio = espeak(words, "ml")
    except OSError:
        return None
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    if not len(loud):
        return None
    audio = audio[loud[0]:loud[-1] + 1] * (REPLY_LEVEL / float(np.max(np.abs(audio))))
    floor = np.random.default_rng(seed).standard_normal(len(audio)) * REPLY_NOISE
    pcm = np.clip(np.round(audio * 32767 + floor), -32768, 32767).astype("<i2")
    return pcm.tobytes()


STORY = ("[simulated reply] ശരി, ഒരു കഥ പറയാം. പണ്ട് പണ്ട് ഒരു വലിയ കാട്ടിൽ ബുദ്ധിമാനായ "
         "ഒരു മുയൽ ഉണ്ടായിരുന്നു. ആ കാട്ടിൽ ക്രൂരനായ ഒരു സിംഹവും ജീവിച്ചിരുന്നു. എല്ലാ "
         "ദിവസവും സിംഹം ഒരു മൃഗത്തെ തിന്നുമായിരുന്നു, മൃഗങ്ങളെല്ലാം പേടിച്ചു വിറച്ചു. ഒരു "
         "ദിവസം മുയലിന്റെ ഊഴം വന്നു. മുയൽ പതുക്കെ പതുക്കെ സിംഹത്തിന്റെ ഗുഹയിലേക്ക് നടന്നു. "
         "വഴിയിൽ അവൻ ഒരു പഴയ കിണർ കണ്ടു, അവന് ഒരു ഉപായം തോന്നി. വൈകി എത്തിയ മുയലിനെ കണ്ട് "
         "സിംഹം ദേഷ്യത്തോടെ അലറി, എന്നിട്ട്...")
STORY_GLOSS = ("OK, a story. Long, long ago in a big forest there lived a clever rabbit. "
               "A cruel lion lived in that forest too. Every day the lion ate an animal, "
               "and all the animals trembled with fear. One day it was the rabbit's turn. "
               "The rabbit walked slowly, slowly to the lion's cave. On the way he saw an "
               "old well, and he had an idea. Seeing the rabbit arrive late, the lion "
               "roared in anger, and then...")
STOP_ACK = "[simulated reply] ശരി, നിർത്താം. ശുഭദിനം!"
# Without espeak-ng: the time answer; the story (cut by the barge-in); the ack.
REPLY_SECONDS = (2.8, 29.3, 2.6)


def _time_said(clock: str) -> str:
    return f"[simulated reply] ഇപ്പോൾ സമയം {clock} ആണ്."


def _time_answer(output: Any, spoken: dict[str, bytes]) -> Reply:
    """The spoken answer to get_time, built from what the device said. `spoken` holds
    the audio said for a clock, rendered ahead; another clock is rendered now."""
    try:
        data = json.loads(output) if isinstance(output, str) else output
        clock, zone = str(data["time"]), str(data.get("time_zone", ""))
    except (ValueError, TypeError, KeyError):
        clock, zone = "?", ""
    if clock not in spoken:
        spoken[clock] = _spoken(_time_said(clock), 1) or _voice(REPLY_SECONDS[0], 1)
    where = f" ({zone})" if zone else ""
    return Reply(f"[simulated reply] ഇപ്പോൾ സമയം {clock} ആണ്{where}.", spoken[clock],
                 f"It is {clock} now{where}.")


class DemoScript:
    """The demo conversation: the time (via get_time), a story, then a short goodbye.

    The reply audio is rendered up front (the time answer for the clock at the
    start, which the device reports unless a minute turns meanwhile), so the
    simulated service answers at once and the demo's latencies are the
    daemon's own.
    """

    def __init__(self) -> None:
        clock = dt.datetime.now().astimezone().strftime("%H:%M")   # as get_time says it
        said = [_spoken(text, seed) for seed, text in enumerate(
            (_time_said(clock), STORY, STOP_ACK), 1)]
        self.spoken = all(audio is not None for audio in said)   # else a test signal speaks
        voices = [audio or _voice(seconds, seed)
                  for seed, (audio, seconds) in enumerate(zip(said, REPLY_SECONDS, strict=True), 1)]
        self._times = {clock: voices[0]}
        self._story, self._ack = voices[1], voices[2]

    def reply_audio(self) -> np.ndarray[Any, Any]:
        """Every reply's audio rendered so far, end to end (PCM16)."""
        return np.frombuffer(b"".join([*self._times.values(), self._story, self._ack]),
                             dtype="<i2")

    @property
    def story(self) -> bytes:
        """The second reply's audio: the story the barge-in cuts short."""
        return self._story

    def time_audio(self, clock: str) -> bytes | None:
        """The time answer's audio for `clock` ("HH:MM"), if rendered."""
        return self._times.get(clock)

    @property
    def ack(self) -> bytes:
        """The third reply's audio."""
        return self._ack

    def transcript(self, turn: int, utterance: bytes) -> Heard:
        """The scripted recognition of the user's `turn`-th utterance."""
        if turn <= len(UTTERANCES):
            u = UTTERANCES[turn - 1]
            return Heard(f"[simulated] {u.transcript}", u.meaning)
        return Heard("[simulated] ...")

    def respond(self, turn: int, utterance: bytes) -> Reply | ToolCall:
        """Turn 1 asks the device for the time; turn 2 tells a long story; then short acks."""
        if turn == 1:
            return ToolCall("get_time", "{}", lambda output: _time_answer(output, self._times))
        if turn == 2:
            return Reply(STORY, self._story, STORY_GLOSS)
        return Reply(STOP_ACK, self._ack, "OK, I'll stop. Have a nice day!")


class EchoScript:
    """Audio self-test: every utterance is played straight back."""

    def transcript(self, turn: int, utterance: bytes) -> Heard:
        """No recognition here: say how much audio was heard."""
        return Heard(f"[echo] {len(utterance) / 2 / RATE:.1f} s of speech heard")

    def respond(self, turn: int, utterance: bytes) -> Reply | ToolCall:
        """The user's own words, played back."""
        return Reply(f"[echo] your own words, played back "
                     f"({len(utterance) / 2 / RATE:.1f} s)", utterance)
