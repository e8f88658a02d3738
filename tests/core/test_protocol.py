"""Client event builders (strictly validated) and the server event decoder."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swaramd.core import protocol
from swaramd.core.config import SessionConfig, parse_config
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
from tests.support.strict import DOCUMENTED, check_client_event

TOOLS = [{"type": "function", "name": "get_time", "description": "Local date and time.",
          "parameters": {"type": "object", "properties": {}}}]

ALL_CLIENT_EVENTS = [
    protocol.session_update(SessionConfig(), TOOLS),
    protocol.session_update(
        parse_config("session:\n  turn_detection: {type: server_vad}\n").session, []),
    protocol.audio_append(b"\x01\x00" * 480),
    json.loads(protocol.audio_append_text(b"\x01\x00" * 480)),
    protocol.audio_commit(),
    protocol.audio_clear(),
    protocol.response_create(),
    protocol.response_cancel(),
    protocol.function_call_output("call_1", {"ok": True}),
    protocol.function_call_output("call_2", '{"error": "boom"}'),
]


def test_builders_cover_exactly_the_seven_documented_events():
    assert {e["type"] for e in ALL_CLIENT_EVENTS} == DOCUMENTED == protocol.CLIENT_EVENT_TYPES


@pytest.mark.parametrize("event", ALL_CLIENT_EVENTS, ids=lambda e: e["type"])
def test_every_client_event_validates_strictly(event):
    check_client_event(json.loads(protocol.encode(event)))


def test_strict_validator_rejects_unknown_keys_and_types():
    bad_session = protocol.session_update(SessionConfig(), [])
    bad_session["session"]["type"] = "realtime"  # GA field the flat shape must not carry
    bad_session["session"]["bogus"] = 1
    for event in (bad_session, {"type": "conversation.item.truncate", "item_id": "x",
                                "content_index": 0, "audio_end_ms": 0},
                  {**protocol.response_cancel(), "extra": 1}):
        with pytest.raises(AssertionError):
            check_client_event(event)


def test_session_update_is_flat_and_omits_turn_detection_unless_configured():
    event = protocol.session_update(SessionConfig(), TOOLS)
    assert set(event) == {"type", "session"}
    assert set(event["session"]) == {"instructions", "voice", "tools", "tool_choice"}
    assert event["session"]["voice"] == "mal-female"


def test_encode_refuses_undocumented_events():
    with pytest.raises(ValueError, match="not a client event"):
        protocol.encode({"type": "conversation.item.truncate"})


def test_tool_output_is_a_json_string():
    event = protocol.function_call_output("c", {"time": "10:00"})
    assert json.loads(event["item"]["output"]) == {"time": "10:00"}


PCM = b"\x10\x00\xf0\xff" * 10
B64 = base64.b64encode(PCM).decode()

DECODE_CASES = [
    ({"type": "session.created", "session": {"id": "s"}}, SessionCreated({"id": "s"})),
    ({"type": "session.updated", "session": {}}, SessionUpdated({})),
    ({"type": "input_audio_buffer.speech_started", "audio_start_ms": 5, "item_id": "i"},
     SpeechStarted("i", 5)),
    ({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 9}, SpeechStopped(None, 9)),
    ({"type": "conversation.item.input_audio_transcription.completed", "item_id": "i",
      "transcript": "നമസ്കാരം"}, InputTranscript("i", "നമസ്കാരം")),
    ({"type": "conversation.item.created", "item": {"id": "i"}}, ItemCreated({"id": "i"})),
    ({"type": "response.created", "response": {"id": "r"}}, ResponseCreated("r")),
    ({"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": B64},
     AudioDelta("r", "i", PCM)),
    ({"type": "response.audio.delta", "response_id": "r", "delta": B64},
     AudioDelta("r", None, PCM)),
    ({"type": "response.output_audio_transcript.delta", "response_id": "r", "delta": "ന"},
     TranscriptDelta("r", "ന")),
    ({"type": "response.audio_transcript.delta", "delta": "ന"}, TranscriptDelta(None, "ന")),
    ({"type": "response.function_call_arguments.done", "call_id": "c", "name": "get_time",
      "arguments": "{}"}, FunctionCall("c", "get_time", "{}", None)),
    ({"type": "response.done", "response": {"id": "r", "status": "cancelled"}},
     ResponseDone("r", "cancelled")),
    ({"type": "response.done", "response": {"id": "r", "status": "incomplete", "status_details":
      {"type": "incomplete", "reason": "max_output_tokens"}}},
     ResponseDone("r", "incomplete", "max_output_tokens")),
    ({"type": "response.done", "response": {"id": "r", "status": "failed", "status_details":
      {"type": "failed", "error": {"type": "server_error", "code": "busy", "message": "m"}}}},
     ResponseDone("r", "failed", "busy: m")),
    ({"type": "error", "error": {"type": "server_error", "code": "server_error",
                                 "message": "retry"}},
     ErrorEvent("server_error", "retry", "server_error")),
    ({"type": "rate_limits.updated", "rate_limits": []}, UnknownEvent("rate_limits.updated")),
]


@pytest.mark.parametrize(("frame", "expected"), DECODE_CASES, ids=lambda c: str(c)[:50])
def test_decoder_on_every_server_event_of_the_subset(frame, expected):
    assert protocol.decode(json.dumps(frame)) == expected


def test_server_error_asks_for_a_reconnect_and_others_do_not():
    assert ErrorEvent("server_error", "", None).wants_reconnect
    assert ErrorEvent("session_expired", "", None).wants_reconnect
    assert not ErrorEvent("invalid_request_error", "", None).wants_reconnect


@pytest.mark.parametrize("frame", [
    b"binary", "", "not json", "[1, 2]", "42", '{"no_type": 1}', '{"type": 7}',
    '{"type": "response.output_audio.delta", "response_id": "r"}',
    '{"type": "response.output_audio.delta", "response_id": "r", "delta": "@@@"}',
    '{"type": "response.output_audio.delta", "response_id": "r", "delta": "AA=="}',
    '{"type": "response.output_audio.delta", "delta": "AAAA"}',
    '{"type": "response.function_call_arguments.done", "name": "x", "arguments": "{}"}',
    '{"type": "conversation.item.input_audio_transcription.completed"}',
    '{"type": "error"}', '{"type": "error", "error": "boom"}',
    "[" * 100_000,
])
def test_decoder_turns_garbage_into_malformed_values(frame):
    assert isinstance(protocol.decode(frame), Malformed)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
known_types = st.sampled_from(sorted(protocol.SERVER_EVENT_TYPES))


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.text(), st.binary(),
    json_values.map(json.dumps),
    st.builds(lambda t, body: json.dumps({**body, "type": t}), known_types,
              st.dictionaries(st.sampled_from(
                  ["delta", "response_id", "item_id", "error", "response", "session",
                   "call_id", "name", "arguments", "transcript", "item"]), json_values)),
))
def test_decoder_never_raises(frame):
    result = protocol.decode(frame)
    assert result is not None


def test_a_lone_surrogate_in_a_frame_still_decodes_and_is_escaped_when_echoed():
    # orjson refuses a lone surrogate's escape; the call must still be answered, and an
    # echo of it (the call_id) must still be text a WebSocket can carry.
    frame = json.dumps({"type": "response.function_call_arguments.done",
                        "call_id": "c\ud800", "name": "get_time", "arguments": "\udc00"})
    event = protocol.decode(frame)
    assert event == FunctionCall("c\ud800", "get_time", "\udc00", None)
    text = protocol.encode(protocol.function_call_output(event.call_id, {"error": "x"}))
    text.encode()
    assert json.loads(text)["item"]["call_id"] == "c\ud800"
