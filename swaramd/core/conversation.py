"""The conversation state machine (DESIGN §4, §5): inputs and time in, actions out.

Rules this module keeps:

- The base states form a table, `TRANSITIONS[state][input] -> state`. An
  input a state does not list leaves it unchanged (server events arrive in
  any order; a peer's oddity is never a crash). Every change is one log line.
- Three conditions overlay the base state for what the appliance shows, in
  this order: `halted` (a person is needed), `audio_error` (a device is
  gone; it retries by itself), `muted` (the user shut the mic; shown while
  listening or thinking).
- Barge-in: speech while speaking flushes playback and drops every later
  delta of that response; a button interrupt does the same and also sends
  `response.cancel` (the service cancels on its own speech detection).
- Tool results go back as `conversation.item.create`; no `response.create`
  follows, since the service carries on by itself.
- The uplink is decided per frame by `uplink(now)`: drop, microphone, hold
  (kept as the wake word's pre-roll, not sent) or silence (the push-to-talk
  tail), gated by session, mute, earcons and half duplex with its echo tail.
- The wake word means what a short press means (`on_wake`, through
  `core.panel`'s table). In always_on with a wake word the link stays up but
  the microphone is held back until the word is heard; it then streams until
  `idle_timeout_s` passes without speech, and waits for the word again.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from enum import StrEnum
from typing import Any

from swaramd.core import protocol
from swaramd.core.actions import (
    Action,
    Connect,
    EndResponse,
    Flush,
    HangUp,
    Play,
    PlayEarcon,
    ResumeLink,
    RetryAudio,
    RunTool,
    Send,
    ShowState,
)
from swaramd.core.events import (
    AudioDelta,
    FunctionCall,
    InputTranscript,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
)
from swaramd.core.panel import Gesture, PanelInput, input_for_gesture
from swaramd.core.states import HaltReason, State

log = logging.getLogger(__name__)

PTT_MIN_PRESS_S = 0.3   # shorter: a slip of the finger, sends input_audio_buffer.clear
PTT_TAIL_S = 0.6        # silence streamed after release so the service's VAD ends the turn
RECENT_RESPONSES = 16   # how many interrupted response ids to remember
THINKING_TIMEOUT_S = 15.0  # no reply this long after the user spoke: back to listening
REPLY_GAP_S = 2.0       # reply audio stopped this long without response.done: end it here


class Input(StrEnum):
    """The columns of the transition table."""

    START = "start"
    END = "end"
    INTERRUPT = "interrupt"
    RETRY = "retry"
    LINK_CONNECTING = "link_connecting"
    LINK_LIVE = "link_live"
    LINK_BACKOFF = "link_backoff"
    LINK_HALTED = "link_halted"
    LINK_IDLE = "link_idle"
    SPEECH_STARTED = "speech_started"
    SPEECH_STOPPED = "speech_stopped"
    REPLY_AUDIO = "reply_audio"
    RESPONSE_DONE = "response_done"
    PLAYBACK_DRAINED = "playback_drained"
    PLAYBACK_LOST = "playback_lost"


S, IN = State, Input
_LINK = {IN.LINK_CONNECTING: S.CONNECTING, IN.LINK_BACKOFF: S.BACKOFF,
         IN.LINK_HALTED: S.HALTED, IN.LINK_IDLE: S.IDLE}
_SESSION = {**_LINK, IN.END: S.IDLE}

TRANSITIONS: dict[State, dict[Input, State]] = {
    S.IDLE: {IN.START: S.CONNECTING, IN.LINK_CONNECTING: S.CONNECTING},
    S.CONNECTING: {**_LINK, IN.LINK_LIVE: S.LISTENING, IN.END: S.IDLE},
    S.LISTENING: {**_SESSION, IN.SPEECH_STOPPED: S.THINKING, IN.REPLY_AUDIO: S.SPEAKING},
    S.THINKING: {**_SESSION, IN.REPLY_AUDIO: S.SPEAKING, IN.SPEECH_STARTED: S.LISTENING,
                 IN.RESPONSE_DONE: S.LISTENING},
    S.SPEAKING: {**_SESSION, IN.SPEECH_STARTED: S.LISTENING, IN.INTERRUPT: S.LISTENING,
                 IN.PLAYBACK_DRAINED: S.LISTENING, IN.PLAYBACK_LOST: S.LISTENING},
    S.BACKOFF: {**_LINK, IN.END: S.IDLE},
    S.HALTED: {IN.RETRY: S.CONNECTING, IN.LINK_CONNECTING: S.CONNECTING, IN.LINK_IDLE: S.IDLE},
}


class Uplink(StrEnum):
    """What to do with one captured frame."""

    DROP = "drop"
    MIC = "mic"
    HOLD = "hold"         # not sent: waiting for the wake word (the last few are its pre-roll)
    SILENCE = "silence"


class Conversation:
    """One appliance's conversation: fed inputs with `now`, returns actions to carry out."""

    def __init__(self, mode: str, *, duplex: str = "half", echo_tail_s: float = 0.3,
                 idle_timeout_s: float = 20.0, earcon_s: dict[str, float] | None = None,
                 wake_word: bool = False) -> None:
        self.mode = mode
        self.wake_word = wake_word and mode != "push_to_talk"
        self._awake = False                        # always_on with a wake word: the word was heard
        self.duplex = duplex
        self.echo_tail_s = echo_tail_s
        self.idle_timeout_s = idle_timeout_s
        self.earcon_s = earcon_s or {}
        self.base = State.IDLE
        self.halt_reason: HaltReason | None = None
        self.muted = False
        self.audio_lost = False
        self.shown = State.IDLE
        self._live = False
        self._playing: str | None = None          # response whose audio is queued or playing
        self._done: set[str] = set()               # responses whose response.done arrived
        # Responses none of whose audio may play any more: interrupted, or done.
        self._closed: deque[str] = deque(maxlen=RECENT_RESPONSES)
        self._last_audio = 0.0
        self._transcripts: dict[str, list[str]] = {}
        # The reply under way, for transcript deltas that carry no response_id (the
        # service's docs show them with only `delta`); "" when none was named yet.
        self._reply_id = ""
        self._answer_due = False                   # a tool was called: its spoken answer is due
        self._last_activity = 0.0
        self._mic_shut_until = 0.0                 # echo tail and earcons
        self._ptt_held_since: float | None = None
        self._ptt_tail_until = 0.0

    # --- the table ------------------------------------------------------------

    def _feed(self, inp: Input, now: float, out: list[Action]) -> None:
        new = TRANSITIONS[self.base].get(inp)
        if new is None or new is self.base:
            return
        log.info("state %s -> %s (%s)", self.base.value, new.value, inp.value)
        if self.base is State.SPEAKING and self.duplex == "half":
            # The room still rings: keep a bare mic shut a little longer. Full duplex
            # hardware cancels its own echo, and a barge-in must not lose its first words.
            self._mic_shut_until = max(self._mic_shut_until, now + self.echo_tail_s)
        self.base = new
        if new in (State.LISTENING, State.CONNECTING):
            self._last_activity = now
        self._publish(out)

    def _publish(self, out: list[Action]) -> None:
        if self.base is State.HALTED:
            shown = State.HALTED
        elif self.audio_lost:
            shown = State.AUDIO_ERROR
        elif self.muted and self.base in (State.LISTENING, State.THINKING):
            shown = State.MUTED
        else:
            shown = self.base
        if shown is not self.shown:
            self.shown = shown
            out.append(ShowState(shown, self.halt_reason if shown is State.HALTED else None))

    # --- gestures and local inputs --------------------------------------------

    def on_start(self, now: float) -> list[Action]:
        """Begin: always_on connects at once; on_demand and push_to_talk wait for the button."""
        out: list[Action] = []
        if self.mode == "always_on":
            out.append(Connect())
            self._feed(Input.START, now, out)
        self._earcon("ready", now, out)
        return out

    def on_panel(self, inp: PanelInput, now: float) -> list[Action]:
        """A button gesture's meaning, as `core.panel`'s table decided it for the shown state."""
        out: list[Action] = []
        if inp is PanelInput.TALK_START:
            self._talk_start(now, out)
        elif inp is PanelInput.TALK_END:
            self._talk_end(now, out)
        elif inp is PanelInput.TOGGLE_MUTE:
            self.muted = not self.muted
            log.info("microphone %s", "muted" if self.muted else "unmuted")
            self._publish(out)
        elif inp is PanelInput.RETRY:
            if self.audio_lost:
                out.append(RetryAudio())  # reopen the devices now
            out.append(ResumeLink())  # leaves a halt, or cuts a backoff wait short
            self._feed(Input.RETRY, now, out)
        elif inp is PanelInput.INTERRUPT and self.base is State.SPEAKING:
            self._interrupt(now, out, send_cancel=True)
            self._feed(Input.INTERRUPT, now, out)
            self._wake(now)  # whoever stops the reply has something to say
        elif inp is PanelInput.START and self.base is State.IDLE:
            out.append(Connect())
            self._feed(Input.START, now, out)
        elif inp is PanelInput.LISTEN:
            self._wake(now)
        elif inp is PanelInput.HANG_UP and self.base is not State.IDLE:
            self._end(now, out)
        return out

    def on_wake(self, now: float) -> list[Action]:
        """The wake word was heard: what a short press means in this state (`core.panel`).

        Ignored while muted (the user shut the microphone) and in push_to_talk.
        """
        if not self.wake_word or self.muted:
            log.info("wake word ignored (%s)", "muted" if self.muted else
                     "push_to_talk" if self.mode == "push_to_talk" else "none configured")
            return []
        inp = input_for_gesture(Gesture.WAKE_WORD, self.shown, self.mode)
        log.info("wake word in %s -> %s", self.shown.value, inp.value if inp else "nothing")
        return self.on_panel(inp, now) if inp is not None else []

    def _wake(self, now: float) -> None:
        """always_on with a wake word: stream the microphone from now until the idle timeout."""
        if self.wake_word and self.mode == "always_on":
            self._awake = True
            self._last_activity = now

    def _talk_start(self, now: float, out: list[Action]) -> None:
        """Push-to-talk pressed: stream the microphone while held (connect first if idle)."""
        if self.base is State.SPEAKING:
            self._interrupt(now, out, send_cancel=True)
            self._feed(Input.INTERRUPT, now, out)
        elif self.base is State.IDLE:
            out.append(Connect())
            self._feed(Input.START, now, out)
        self._ptt_held_since = now
        self._last_activity = now

    def _talk_end(self, now: float, out: list[Action]) -> None:
        """Push-to-talk released: commit and ask for a reply, or clear a too-short press."""
        held_since, self._ptt_held_since = self._ptt_held_since, None
        if held_since is None or not self._live:
            return
        if now - held_since < PTT_MIN_PRESS_S:
            out.append(Send(protocol.audio_clear()))
            return
        out += [Send(protocol.audio_commit()), Send(protocol.response_create())]
        self._ptt_tail_until = now + PTT_TAIL_S
        self._last_activity = now

    def on_audio_lost(self, now: float) -> list[Action]:
        """An audio device failed (the engine retries on its own)."""
        out: list[Action] = []
        if not self.audio_lost:
            self.audio_lost = True
            self._drop_playback(out)
            # The reply is gone with the speaker: not `speaking` any more, or the mic
            # (shut while speaking in half duplex) would stay shut after the device returns.
            self._feed(Input.PLAYBACK_LOST, now, out)
            self._publish(out)
        return out

    def on_audio_back(self, now: float) -> list[Action]:
        """The audio device is back."""
        out: list[Action] = []
        if self.audio_lost:
            self.audio_lost = False
            self._publish(out)
        return out

    def on_playback_drained(self, now: float) -> list[Action]:
        """The speaker played everything queued."""
        out: list[Action] = []
        if self._playing is not None and self._playing in self._done:
            self._forget(self._playing)
            self._feed(Input.PLAYBACK_DRAINED, now, out)
        return out

    def tick(self, now: float) -> list[Action]:
        """Time passed: the on_demand idle timeout, a reply that never came or never ended."""
        out: list[Action] = []
        rid = self._playing
        if (self.base is State.SPEAKING and rid is not None and rid not in self._done
                and now - self._last_audio >= REPLY_GAP_S):
            log.info("reply audio stopped %.0f s ago without response.done: ending it",
                     REPLY_GAP_S)
            self._done.add(rid)
            self._closed.append(rid)
            out.append(EndResponse(rid))
        elif self.base is State.THINKING and now - self._last_activity >= THINKING_TIMEOUT_S:
            log.info("no reply for %.0f s: listening again", THINKING_TIMEOUT_S)
            self._answer_due = False
            self._feed(Input.RESPONSE_DONE, now, out)
        elif (self.mode == "on_demand" and self.base is State.LISTENING
                and now - self._last_activity >= self.idle_timeout_s):
            log.info("no speech for %.0f s: hanging up", self.idle_timeout_s)
            self._end(now, out)
        elif (self._awake and self.base is State.LISTENING
                and now - self._last_activity >= self.idle_timeout_s):
            log.info("no speech for %.0f s: waiting for the wake word", self.idle_timeout_s)
            self._awake = False
        return out

    def on_tool_result(self, call_id: str, output: Any, now: float) -> list[Action]:
        """A local tool finished (or failed: `output` then holds an error)."""
        if not self._live:
            return []
        self._last_activity = now
        return [Send(protocol.function_call_output(call_id, output))]

    # --- link -----------------------------------------------------------------

    def on_link_connecting(self, now: float) -> list[Action]:
        """The link is opening a connection."""
        out: list[Action] = []
        self._lose_session(out)
        self._feed(Input.LINK_CONNECTING, now, out)
        return out

    def on_link_live(self, now: float) -> list[Action]:
        """`session.updated` arrived: the mic may stream."""
        out: list[Action] = []
        self._live = True
        self.halt_reason = None
        self._feed(Input.LINK_LIVE, now, out)
        self._earcon("listening", now, out)
        return out

    def on_link_backoff(self, now: float) -> list[Action]:
        """The link failed and waits to retry (an error tone if a conversation was cut off)."""
        out: list[Action] = []
        was_talking = self.base in (State.LISTENING, State.THINKING, State.SPEAKING)
        self._lose_session(out)
        self._feed(Input.LINK_BACKOFF, now, out)
        if was_talking:
            self._earcon("error", now, out)
        return out

    def on_link_halted(self, reason: HaltReason, now: float) -> list[Action]:
        """4001/4003/401/403: stop until a person acts."""
        out: list[Action] = []
        self._lose_session(out)
        self.halt_reason = reason
        self._feed(Input.LINK_HALTED, now, out)
        self._earcon("halted", now, out)
        return out

    def on_link_idle(self, now: float) -> list[Action]:
        """The link is closed and not wanted (after a hang-up)."""
        out: list[Action] = []
        self._lose_session(out)
        self._feed(Input.LINK_IDLE, now, out)
        return out

    # --- server events --------------------------------------------------------

    def on_event(self, event: ServerEvent, now: float) -> list[Action]:
        """One decoded server event."""
        out: list[Action] = []
        if isinstance(event, AudioDelta):
            self._on_audio(event, now, out)
        elif isinstance(event, SpeechStarted):
            self._last_activity = now
            if self.base is State.SPEAKING:
                log.info("barge-in: the user spoke over the reply")
                self._interrupt(now, out, send_cancel=False)
            self._feed(Input.SPEECH_STARTED, now, out)
        elif isinstance(event, SpeechStopped):
            self._last_activity = now
            self._feed(Input.SPEECH_STOPPED, now, out)
        elif isinstance(event, ResponseCreated):
            if event.response_id:
                self._reply_id = event.response_id
                self._transcripts.setdefault(event.response_id, [])
        elif isinstance(event, TranscriptDelta):
            rid = event.response_id or self._reply_id
            if rid not in self._closed:
                self._transcripts.setdefault(rid, []).append(event.delta)
        elif isinstance(event, ResponseDone):
            self._on_response_done(event, now, out)
        elif isinstance(event, InputTranscript):
            log.info("user said: %s", event.transcript)
        elif isinstance(event, FunctionCall):
            self._answer_due = True
            self._last_activity = now
            out.append(RunTool(event.call_id, event.name, event.arguments))
        return out

    def _on_audio(self, event: AudioDelta, now: float, out: list[Action]) -> None:
        rid = event.response_id
        if rid in self._closed or not self._live:
            return  # a late delta of an interrupted or finished reply: never played
        if self._playing is not None and self._playing != rid:
            self._forget(self._playing)
        self._playing = self._reply_id = rid
        self._last_activity = self._last_audio = now
        self._answer_due = False
        out.append(Play(event.pcm, rid))
        if self.base is not State.SPEAKING:
            self._feed(Input.REPLY_AUDIO, now, out)

    def _on_response_done(self, event: ResponseDone, now: float, out: list[Action]) -> None:
        rid = event.response_id
        if rid is not None and rid not in self._closed:
            self._closed.append(rid)  # audio after response.done is the peer's mistake
        key = rid or self._reply_id
        parts = self._transcripts.pop(key, [])
        if key:                     # deltas from before the reply was named belong to it
            parts = self._transcripts.pop("", []) + parts
        text = "".join(parts)
        if rid is None or rid == self._reply_id:
            self._reply_id = ""
        if text:
            log.info("swaram said: %s%s", text,
                     "" if event.status in (None, "completed") else f" ({event.status})")
        self._last_activity = now
        if rid is not None and rid == self._playing:
            self._done.add(rid)
            out.append(EndResponse(rid))
        elif self.base is State.THINKING and not self._answer_due:
            # A reply with no audio. One that only called a tool is not the end: the
            # service speaks once it has the result, so keep showing `thinking`.
            self._feed(Input.RESPONSE_DONE, now, out)

    # --- uplink ---------------------------------------------------------------

    def uplink(self, now: float) -> Uplink:
        """Whether a frame captured now goes out, and as what."""
        if not self._live or self.muted or self.audio_lost:
            return Uplink.DROP
        if now < self._mic_shut_until:
            return Uplink.DROP
        if self.duplex == "half" and self.base is State.SPEAKING:
            return Uplink.DROP
        if self.mode == "push_to_talk":
            if self._ptt_held_since is not None:
                return Uplink.MIC
            return Uplink.SILENCE if now < self._ptt_tail_until else Uplink.DROP
        if self.wake_word and self.mode == "always_on" and not self._awake:
            return Uplink.HOLD
        return Uplink.MIC

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do (None: nothing pending)."""
        if self.base is State.SPEAKING and self._playing not in self._done:
            return self._last_audio + REPLY_GAP_S
        if self.base is State.THINKING:
            return self._last_activity + THINKING_TIMEOUT_S
        if self.base is State.LISTENING and (self.mode == "on_demand" or self._awake):
            return self._last_activity + self.idle_timeout_s
        return None

    # --- helpers --------------------------------------------------------------

    def _interrupt(self, now: float, out: list[Action], *, send_cancel: bool) -> None:
        self._drop_playback(out)
        if send_cancel and self._live:
            out.append(Send(protocol.response_cancel()))

    def _end(self, now: float, out: list[Action]) -> None:
        self._interrupt(now, out, send_cancel=False)
        out.append(HangUp())
        self._feed(Input.END, now, out)
        self._earcon("goodbye", now, out)

    def _lose_session(self, out: list[Action]) -> None:
        # The push-to-talk button stays held through a reconnect: that is the user's hand.
        self._live = False
        self._awake = False          # a new session waits for the word again
        self._answer_due = False
        self._ptt_tail_until = 0.0
        self._reply_id = ""
        self._transcripts.pop("", None)
        if self._playing is not None:
            self._drop_playback(out)

    def _drop_playback(self, out: list[Action]) -> None:
        if self._playing is not None:
            self._closed.append(self._playing)
            self._transcripts.pop(self._playing, None)
            self._forget(self._playing)
        out.append(Flush())

    def _forget(self, rid: str) -> None:
        self._done.discard(rid)
        if self._playing == rid:
            self._playing = None

    def _earcon(self, name: str, now: float, out: list[Action]) -> None:
        duration = self.earcon_s.get(name)
        if duration is None:
            return
        out.append(PlayEarcon(name))
        self._mic_shut_until = max(self._mic_shut_until, now + duration)


def parse_arguments(arguments: str) -> dict[str, Any] | None:
    """A tool call's `arguments` JSON string as an object, or None when it is not one."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
