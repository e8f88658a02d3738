"""Fuzz: hypothesis-made server frames into the decoder and the conversation.

Frames are events of every type the decoder knows, with each field usually of
the right type and sometimes anything JSON can hold, plus unknown types,
garbage text, binary frames, truncated JSON and arbitrary JSON values. A
session interleaves them with every other input the conversation takes
(panel inputs, link states, audio health, playback drained, tool results,
ticks and uplink questions, at increasing times). Nothing may escape, and:

- `shown` is always a `State`; the base state is a row of the table;
- every `ShowState` carries a `halt_reason` exactly when it shows `halted`,
  and the last one shown is `conversation.shown`;
- every `Send` is one of the seven documented client events and validates
  strictly (tests/support/strict.py), and `protocol.encode` takes it;
- the microphone is dropped whenever the session is not live;
- `Play` carries whole PCM16 samples; tool arguments parse without raising.

This file runs a few thousand examples; bench/fuzz.py runs 100k with the same
strategies and checks and counts escapes instead of stopping at the first.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swaramd.core import protocol
from swaramd.core.actions import Action, Play, RunTool, Send, ShowState
from swaramd.core.conversation import TRANSITIONS, Conversation, Uplink
from swaramd.core.earcons import durations
from swaramd.core.events import (
    AudioDelta,
    ErrorEvent,
    FunctionCall,
    InputTranscript,
    ItemCreated,
    Malformed,
    ResponseCreated,
    ResponseDone,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
    UnknownEvent,
)
from swaramd.core.panel import PanelInput
from swaramd.core.states import HaltReason, State
from swaramd.core.tools import ToolRegistry, get_time_tool
from tests.support.strict import check_client_event

DECODED = (SessionCreated, SessionUpdated, SpeechStarted, SpeechStopped, InputTranscript,
           ItemCreated, ResponseCreated, AudioDelta, TranscriptDelta, FunctionCall,
           ResponseDone, ErrorEvent, UnknownEvent, Malformed)

# --- strategies ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)
ids = st.sampled_from(["r1", "r2", "r3", "item_1", "call_1", ""]) | st.text(max_size=6)
pcm_b64 = st.binary(max_size=96).map(lambda b: base64.b64encode(b).decode()) | st.sampled_from(
    ["", "AAAA", "!!!!", "AAA="])
tool_names = st.sampled_from(["get_time", "set_volume", "no_such_tool"]) | st.text(max_size=8)
arguments = st.sampled_from(['{}', '{"level": 40}', '{"level": "loud"}', '{"level": 1e999}',
                             "[]", "null", "not json", "", " "]) | st.text(max_size=12)
error_codes = st.sampled_from(["server_error", "session_expired", "invalid_api_key",
                               "rate_limit", None])


def _obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


# Each field the decoder reads, with values of the right shape.
EVENT_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "session.created": {"session": _obj(id=ids, voice=st.text(max_size=8))},
    "session.updated": {"session": _obj(id=ids, voice=st.text(max_size=8))},
    "input_audio_buffer.speech_started": {"item_id": ids, "audio_start_ms": st.integers()},
    "input_audio_buffer.speech_stopped": {"item_id": ids, "audio_end_ms": st.integers()},
    "conversation.item.input_audio_transcription.completed":
        {"item_id": ids, "transcript": st.text(max_size=20)},
    "conversation.item.created": {"item": _obj(id=ids, type=st.text(max_size=8))},
    "response.created": {"response": _obj(id=ids, status=st.text(max_size=8))},
    "response.output_audio.delta": {"response_id": ids, "item_id": ids, "delta": pcm_b64},
    "response.audio.delta": {"response_id": ids, "item_id": ids, "delta": pcm_b64},
    "response.output_audio_transcript.delta": {"response_id": ids, "delta": st.text(max_size=8)},
    "response.audio_transcript.delta": {"response_id": ids, "delta": st.text(max_size=8)},
    "response.function_call_arguments.done":
        {"call_id": ids, "name": tool_names, "arguments": arguments, "response_id": ids},
    "response.done": {"response": _obj(id=ids, status=st.sampled_from(
        ["completed", "cancelled", "failed", "incomplete"])), "response_id": ids},
    "error": {"error": _obj(code=error_codes, message=st.text(max_size=12),
                            type=st.text(max_size=8))},
}
UNKNOWN_TYPES = ["rate_limits.updated", "response.output_item.added", "no.such.event", ""]


def _event(kind: str, fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    # Usually the right shape, sometimes anything at all (a missing field is also drawn).
    return st.fixed_dictionaries(
        {"type": st.just(kind)},
        optional={name: good | json_values for name, good in fields.items()})


events = st.one_of(
    *[_event(kind, fields) for kind, fields in EVENT_FIELDS.items()],
    st.sampled_from(UNKNOWN_TYPES).flatmap(lambda k: _event(k, {"x": json_values})),
    st.dictionaries(st.text(max_size=6), json_values, max_size=4),
)
frames: st.SearchStrategy[str | bytes] = st.one_of(
    events.map(json.dumps),
    events.map(json.dumps).flatmap(lambda s: st.integers(0, len(s)).map(lambda n: s[:n])),
    json_values.map(json.dumps),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)

# Well-formed events with a few shared ids, so that replies, dones and barge-ins meet.
pool = st.sampled_from(["r1", "r2", "r3"])
even_pcm = st.integers(0, 48).map(lambda n: base64.b64encode(bytes(2 * n)).decode())
WELL_FORMED: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    **EVENT_FIELDS,
    "response.created": {"response": st.fixed_dictionaries({"id": pool})},
    "response.output_audio.delta": {"response_id": pool, "item_id": ids, "delta": even_pcm},
    "response.audio.delta": {"response_id": pool, "delta": even_pcm},
    "response.output_audio_transcript.delta": {"response_id": pool, "delta": st.text(max_size=8)},
    "response.done": {"response": st.fixed_dictionaries({"id": pool, "status": st.sampled_from(
        ["completed", "cancelled"])})},
    "response.function_call_arguments.done":
        {"call_id": ids, "name": tool_names, "arguments": arguments},
    "error": {"error": _obj(code=error_codes, message=st.text(max_size=12))},
}
well_formed = st.one_of(*[
    st.fixed_dictionaries({"type": st.just(kind), **fields}).map(json.dumps)
    for kind, fields in WELL_FORMED.items()])

LINK_INPUTS = ["link_connecting", "link_live", "link_backoff", "link_idle", "audio_lost",
               "audio_back", "playback_drained", "tick", "uplink", "start"]
_ARGS: dict[str, st.SearchStrategy[Any]] = {
    "event": well_formed,
    "frame": frames,
    "panel": st.sampled_from(list(PanelInput)),
    "link_halted": st.sampled_from(list(HaltReason)),
    "tool_result": st.tuples(ids, json_values | st.text(max_size=8)),
    **{name: st.none() for name in LINK_INPUTS},
}
# Weighted by repetition: mostly events that fit together, then buttons and link changes.
_KINDS = ["event"] * 14 + ["frame"] * 3 + ["panel"] * 5 + LINK_INPUTS + \
    ["link_live", "playback_drained", "tick", "uplink", "link_halted", "tool_result"]
inputs = st.sampled_from(_KINDS).flatmap(lambda kind: _ARGS[kind].map(lambda a: (kind, a)))
LIVE = [(0.0, ("link_connecting", None)), (0.1, ("link_live", None))]
sessions = st.tuples(
    st.sampled_from(["on_demand", "always_on", "push_to_talk"]),
    st.sampled_from(["half", "full"]),
    st.tuples(st.sampled_from([[], LIVE, LIVE]),
              st.lists(st.tuples(st.floats(0, 5, allow_nan=False) | st.floats(0, 25), inputs),
                       min_size=5, max_size=60)).map(lambda t: t[0] + t[1]),
)


# --- checks (shared with bench/fuzz.py) ------------------------------------------------------


def check_decode(frame: str | bytes) -> None:
    """`protocol.decode` returns a value for any frame, never raises."""
    event = protocol.decode(frame)
    assert isinstance(event, DECODED), event
    if isinstance(event, AudioDelta):
        assert len(event.pcm) % 2 == 0
    if not isinstance(frame, str):
        assert isinstance(event, Malformed)


class SessionCheck:
    """Drives one Conversation through a fuzzed session, checking every action it returns."""

    def __init__(self, mode: str, duplex: str) -> None:
        self.conv = Conversation(mode, duplex=duplex, idle_timeout_s=20.0, earcon_s=durations())
        self.live = False
        self.shown = State.IDLE
        self.now = 0.0
        self.calls: list[RunTool] = []

    def run(self, steps: list[tuple[float, tuple[str, Any]]]) -> None:
        self.check(self.conv.on_start(self.now))
        for dt, (name, arg) in steps:
            self.now += dt
            self.step(name, arg)
            self.check_state()

    def step(self, name: str, arg: Any) -> None:
        conv, now = self.conv, self.now
        if name in ("frame", "event"):
            event = protocol.decode(arg)
            if not isinstance(event, Malformed):
                self.check(conv.on_event(event, now))
        elif name == "panel":
            self.check(conv.on_panel(arg, now))
        elif name == "link_halted":
            self.live = False
            self.check(conv.on_link_halted(arg, now))
        elif name == "tool_result":
            # A result for a call this session made, or for one it never made.
            call = self.calls.pop() if self.calls else RunTool(arg[0], "get_time", "{}")
            self.check(conv.on_tool_result(call, arg[1], now))
        elif name == "uplink":
            assert isinstance(conv.uplink(now), Uplink)
        elif name == "tick":
            self.check(conv.tick(now))
            deadline = conv.next_deadline()
            assert deadline is None or isinstance(deadline, float)
        elif name == "start":
            self.check(conv.on_start(now))
        else:
            if name.startswith("link_"):
                self.live = name == "link_live"
            self.check(getattr(conv, f"on_{name}")(now))

    def check(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                check_client_event(action.event)
                protocol.encode(action.event)
            elif isinstance(action, ShowState):
                assert isinstance(action.state, State)
                assert (action.halt_reason is not None) == (action.state is State.HALTED), action
                self.shown = action.state
            elif isinstance(action, Play):
                assert isinstance(action.response_id, str) and len(action.pcm) % 2 == 0
            elif isinstance(action, RunTool):
                output, _ = ToolRegistry([get_time_tool()]).answer(action.name, action.arguments)
                assert isinstance(output, str)
                self.calls.append(action)

    def check_state(self) -> None:
        conv = self.conv
        assert isinstance(conv.shown, State) and conv.base in TRANSITIONS
        assert conv.shown is self.shown, (conv.shown, self.shown)
        if not self.live:
            assert conv.uplink(self.now) is Uplink.DROP


def check_session(session: tuple[str, str, list[tuple[float, tuple[str, Any]]]]) -> None:
    """One fuzzed session through a fresh Conversation."""
    mode, duplex, steps = session
    SessionCheck(mode, duplex).run(steps)


# --- the tests -------------------------------------------------------------------------------

QUIET = {"deadline": None, "database": None,
         "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


def test_the_fuzzed_event_types_are_the_decoders():
    assert set(EVENT_FIELDS) == protocol.SERVER_EVENT_TYPES


@settings(max_examples=3000, **QUIET)
@given(frames)
def test_decode_never_raises(frame):
    check_decode(frame)


@settings(max_examples=800, **QUIET)
@given(sessions)
def test_conversation_takes_any_session(session):
    check_session(session)
