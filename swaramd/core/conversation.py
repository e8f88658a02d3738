"""The conversation state machine (docs/design.md, 5): inputs and time in, actions out.

Rules this module keeps:

- The base states form a table, `TRANSITIONS[state][input] -> state`. An
  input a state does not list leaves it unchanged (server events arrive in
  any order; a peer's oddity is never a crash). Every change is one log line.
- Three conditions overlay the base state for what the appliance shows, in
  this order: `halted` (a person is needed), `audio_error` (a device is
  gone; it retries by itself), `muted` (the user shut the mic; shown while
  listening or thinking).
- Late audio is refused here and only here: a delta of a response that was
  interrupted, cancelled, done or superseded is never played. The speech
  detection that cancels a reply on the service also cancels one that is
  created but not yet heard. One reply plays at a time: a delta of a newer
  response ends the older one for good (what is queued of it plays out).
- Barge-in: speech while speaking flushes playback; a button interrupt does
  the same and sends `response.cancel` when a reply is still in progress on
  the service (the service cancels on its own speech detection).
- Tool results go back as `conversation.item.create`; no `response.create`
  follows, since the service carries on by itself. A result is sent only into
  the session that asked for it; a few calls may run at once, more are
  answered with an error at once.
- What is kept per response is bounded and forgotten with the session.
- The uplink is decided per frame by `uplink(now)`: drop, microphone, hold
  (kept as the wake word's pre-roll, not sent) or silence (the push-to-talk
  tail), gated by session, mute, earcons and half duplex with its echo tail.
- The wake word means what a short press means (`on_wake`, through
  `core.panel`'s table). In always_on with a wake word the link stays up but
  the microphone is held back until the word is heard; it then streams until
  `idle_timeout_s` passes without speech, and waits for the word again.
"""

from __future__ import annotations

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
from swaramd.core.states import Duplex, HaltReason, Mode, State
from swaramd.core.tools import preview

log = logging.getLogger(__name__)

PTT_MIN_PRESS_S = 0.3   # shorter: a slip of the finger, sends input_audio_buffer.clear
PTT_TAIL_S = 0.6        # silence streamed after release so the service's VAD ends the turn
RECENT_RESPONSES = 16   # how many interrupted response ids (and replies in progress) to keep
TRANSCRIPT_CHARS = 2000  # of one turn, kept and logged; a peer's flood stays one short line
MAX_TOOL_CALLS = 8      # tool calls running at once; more are answered with an error
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
_IN_SESSION = frozenset({State.LISTENING, State.THINKING, State.SPEAKING})
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

    def __init__(self, mode: Mode | str, *, duplex: Duplex | str = Duplex.HALF,
                 echo_tail_s: float = 0.3,
                 idle_timeout_s: float = 20.0, earcon_s: dict[str, float] | None = None,
                 wake_word: bool = False) -> None:
        self.mode = Mode(mode)
        self.wake_word = wake_word and self.mode is not Mode.PUSH_TO_TALK
        self._awake = False                        # always_on with a wake word: the word was heard
        self.duplex = Duplex(duplex)               # HALF or FULL: the daemon resolves AUTO
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
        # Replies in progress on the service (created, not done) with their transcript so
        # far; "" for deltas that came before the reply was named. Bounded in number and
        # length, forgotten with the session.
        self._transcripts: dict[str, str] = {}
        self._session = 0                          # counts sessions, for tool results
        self._tool_calls: dict[str, int] = {}      # call_id -> session, for calls running
        self.failed_responses = 0                  # response.done failed or incomplete
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
        if self.base is State.SPEAKING and self.duplex is Duplex.HALF:
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
        if self.mode is Mode.ALWAYS_ON:
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
                     "push_to_talk" if self.mode is Mode.PUSH_TO_TALK else "none configured")
            return []
        return self.on_gesture(Gesture.WAKE_WORD, now)

    def on_gesture(self, gesture: Gesture, now: float) -> list[Action]:
        """A button gesture or the wake word: what it means in the state shown and the mode
        (`core.panel.GESTURE_TABLE`), carried out as that panel input."""
        inp = input_for_gesture(gesture, self.shown, self.mode)
        log.log(logging.INFO if gesture is Gesture.WAKE_WORD else logging.DEBUG,
                "%s in %s -> %s", gesture.value.replace("_", " "), self.shown.value,
                inp.value if inp else "nothing")
        return self.on_panel(inp, now) if inp is not None else []

    def _wake(self, now: float) -> None:
        """always_on with a wake word: stream the microphone from now until the idle timeout."""
        if self.wake_word and self.mode is Mode.ALWAYS_ON:
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
            self._close(rid)
            out.append(EndResponse(rid))
        elif self.base is State.THINKING and now - self._last_activity >= THINKING_TIMEOUT_S:
            log.info("no reply for %.0f s: listening again", THINKING_TIMEOUT_S)
            self._answer_due = False
            self._feed(Input.RESPONSE_DONE, now, out)
        elif (self.mode is Mode.ON_DEMAND and self.base is State.LISTENING
                and now - self._last_activity >= self.idle_timeout_s):
            log.info("no speech for %.0f s: hanging up", self.idle_timeout_s)
            self._end(now, out)
        elif (self._awake and self.base is State.LISTENING
                and now - self._last_activity >= self.idle_timeout_s):
            log.info("no speech for %.0f s: waiting for the wake word", self.idle_timeout_s)
            self._awake = False
        return out

    def on_tool_result(self, call: RunTool, output: Any, now: float) -> list[Action]:
        """A local tool finished (or failed: `output` then holds an error).

        Sent only into the session that asked: a call still running when the link
        dropped answers a call the new session never made.
        """
        if self._tool_calls.get(call.call_id) != call.session or call.session != self._session \
                or not self._live:
            log.info("result of tool %s dropped: the session that called it has ended",
                     preview(call.name, 40))
            return []
        del self._tool_calls[call.call_id]
        self._last_activity = now
        return [Send(protocol.function_call_output(call.call_id, output))]

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
        self._session += 1
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
            # The service cancels the replies under way, heard yet or not.
            for rid in [rid for rid in self._transcripts if rid]:
                self._close(rid)
                del self._transcripts[rid]
            self._feed(Input.SPEECH_STARTED, now, out)
        elif isinstance(event, SpeechStopped):
            self._last_activity = now
            self._feed(Input.SPEECH_STOPPED, now, out)
        elif isinstance(event, ResponseCreated):
            if event.response_id and event.response_id not in self._closed:
                self._reply_id = event.response_id
                self._in_progress(event.response_id)
        elif isinstance(event, TranscriptDelta):
            rid = event.response_id or self._reply_id
            if rid not in self._closed:
                said = self._in_progress(rid)
                if len(said) < TRANSCRIPT_CHARS:   # a reply that never ends stays bounded
                    self._transcripts[rid] = said + event.delta[:TRANSCRIPT_CHARS - len(said)]
        elif isinstance(event, ResponseDone):
            self._on_response_done(event, now, out)
        elif isinstance(event, InputTranscript):
            log.info("user said: %s", preview(event.transcript, TRANSCRIPT_CHARS))
        elif isinstance(event, FunctionCall):
            self._on_function_call(event, now, out)
        return out

    def _on_function_call(self, event: FunctionCall, now: float, out: list[Action]) -> None:
        self._last_activity = now
        if not self._live:
            return
        if event.call_id in self._tool_calls:
            log.warning("tool call %s repeated while it runs: answered once",
                        preview(event.call_id, 40))
            return
        if len(self._tool_calls) >= MAX_TOOL_CALLS:
            log.warning("tool %s refused: %d calls are running already",
                        preview(event.name, 40), MAX_TOOL_CALLS)
            out.append(Send(protocol.function_call_output(
                event.call_id, {"error": "too many tool calls at once; try again"})))
            return
        self._answer_due = True
        self._tool_calls[event.call_id] = self._session
        out.append(RunTool(event.call_id, event.name, event.arguments, self._session))

    def _on_audio(self, event: AudioDelta, now: float, out: list[Action]) -> None:
        rid = event.response_id
        if rid in self._closed or not self._live:
            return  # a late delta of an interrupted or finished reply: never played
        old = self._playing
        if old is not None and old != rid:
            # A newer reply: the older one ends for good; what is queued of it plays out.
            self._close(old)
            if old not in self._done:
                out.append(EndResponse(old))
            self._forget(old)
        if rid not in self._transcripts:
            self._in_progress(rid)
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
        text = self._transcripts.pop(key, "")
        if key:                     # deltas from before the reply was named belong to it
            text = self._transcripts.pop("", "") + text
        if rid is None or rid == self._reply_id:
            self._reply_id = ""
        if text:
            log.info("swaram said: %s%s", preview(text, TRANSCRIPT_CHARS),
                     "" if event.status in (None, "completed") else f" ({event.status})")
        if event.status in ("failed", "incomplete"):
            self.failed_responses += 1
            log.warning("reply %s %s: %s", preview(rid or "(unnamed)", 40), event.status,
                        preview(event.reason or "no reason given"))
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
        if not self._live or self.muted or self.audio_lost or self.base not in _IN_SESSION:
            return Uplink.DROP
        if now < self._mic_shut_until:
            return Uplink.DROP
        if self.duplex is Duplex.HALF and self.base is State.SPEAKING:
            return Uplink.DROP
        if self.mode is Mode.PUSH_TO_TALK:
            if self._ptt_held_since is not None:
                return Uplink.MIC
            return Uplink.SILENCE if now < self._ptt_tail_until else Uplink.DROP
        if self.wake_word and self.mode is Mode.ALWAYS_ON and not self._awake:
            return Uplink.HOLD
        return Uplink.MIC

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do (None: nothing pending). The daemon ticks
        at a fixed 10 Hz anyway (the tick also feeds the watchdog); the tests state each
        timeout through this."""
        if self.base is State.SPEAKING and self._playing not in self._done:
            return self._last_audio + REPLY_GAP_S
        if self.base is State.THINKING:
            return self._last_activity + THINKING_TIMEOUT_S
        if self.base is State.LISTENING and (self.mode is Mode.ON_DEMAND or self._awake):
            return self._last_activity + self.idle_timeout_s
        return None

    # --- helpers --------------------------------------------------------------

    def _interrupt(self, now: float, out: list[Action], *, send_cancel: bool) -> None:
        # Only a reply still in progress on the service can be cancelled: the tail of
        # one whose response.done came is ours alone to silence.
        in_progress = bool(self._transcripts)
        self._drop_playback(out)
        if send_cancel and self._live and in_progress:
            out.append(Send(protocol.response_cancel()))

    def _end(self, now: float, out: list[Action]) -> None:
        self._interrupt(now, out, send_cancel=False)
        self._lose_session(out)  # the mic stops now, not when the link has closed
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
        # Replies and tool calls belong to their session: the next one never sees them.
        for rid in self._transcripts:
            if rid:
                self._close(rid)
        self._transcripts.clear()
        self._tool_calls.clear()
        if self._playing is not None:
            self._drop_playback(out)

    def _drop_playback(self, out: list[Action]) -> None:
        if self._playing is not None:
            self._close(self._playing)
            self._transcripts.pop(self._playing, None)
            self._forget(self._playing)
        out.append(Flush())

    def _close(self, rid: str) -> None:
        """None of this response's audio may play any more."""
        if rid not in self._closed:
            self._closed.append(rid)

    def _in_progress(self, rid: str) -> str:
        """The transcript so far of a reply in progress (kept for at most RECENT_RESPONSES)."""
        said = self._transcripts.get(rid)
        if said is None:
            if len(self._transcripts) >= RECENT_RESPONSES:
                del self._transcripts[next(iter(self._transcripts))]
            said = self._transcripts[rid] = ""
        return said

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

