"""The conversation state machine, driven with no threads and no sleeps."""

from __future__ import annotations

import pytest

from swaramd.core.actions import (
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
from swaramd.core.conversation import (
    MAX_TOOL_CALLS,
    RECENT_RESPONSES,
    TRANSCRIPT_CHARS,
    TRANSITIONS,
    Conversation,
    Input,
    Uplink,
)
from swaramd.core.events import (
    AudioDelta,
    FunctionCall,
    InputTranscript,
    ResponseCreated,
    ResponseDone,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
)
from swaramd.core.panel import PanelInput as P
from swaramd.core.states import HaltReason, State
from tests.support.strict import check_client_event

PCM = b"\1\0" * 480


def kinds(actions):
    return [type(a) for a in actions]


def sent(actions):
    return [a.event["type"] for a in actions if isinstance(a, Send)]


def live(mode="on_demand", **kw) -> Conversation:
    conv = Conversation(mode, **kw)
    conv.on_start(0.0)
    if mode != "always_on":
        conv.on_panel(P.START if mode == "on_demand" else P.TALK_START, 0.0)
    conv.on_link_connecting(0.1)
    conv.on_link_live(0.2)
    assert conv.base is State.LISTENING
    return conv


def speaking(conv: Conversation, rid="r1", now=1.0) -> None:
    conv.on_event(SpeechStarted(None, None), now)
    conv.on_event(SpeechStopped(None, None), now + 0.1)
    conv.on_event(ResponseCreated(rid), now + 0.2)
    conv.on_event(AudioDelta(rid, None, PCM), now + 0.3)
    assert conv.base is State.SPEAKING


def test_every_base_state_has_a_row_and_targets_are_states():
    assert set(TRANSITIONS) == {State.IDLE, State.CONNECTING, State.LISTENING, State.THINKING,
                                State.SPEAKING, State.BACKOFF, State.HALTED}
    for row in TRANSITIONS.values():
        assert all(isinstance(i, Input) and isinstance(s, State) for i, s in row.items())


def test_on_demand_press_connects_then_listens():
    conv = Conversation("on_demand")
    assert Connect not in kinds(conv.on_start(0.0))
    out = conv.on_panel(P.START, 0.0)
    assert Connect in kinds(out) and conv.shown is State.CONNECTING
    conv.on_link_connecting(0.1)
    out = conv.on_link_live(0.5)
    assert ShowState(State.LISTENING, None) in out
    assert conv.uplink(0.5 + 1.0) is Uplink.MIC


def test_always_on_connects_at_start():
    conv = Conversation("always_on")
    assert Connect in kinds(conv.on_start(0.0))


def test_no_audio_before_session_updated():
    conv = Conversation("always_on")
    conv.on_start(0.0)
    conv.on_link_connecting(0.0)
    assert conv.uplink(1.0) is Uplink.DROP


def test_a_turn_listening_thinking_speaking_listening():
    conv = live()
    conv.on_event(SpeechStarted(None, None), 1.0)
    conv.on_event(SpeechStopped(None, None), 2.0)
    assert conv.shown is State.THINKING
    out = conv.on_event(AudioDelta("r1", None, PCM), 2.5)
    assert Play(PCM, "r1") in out and conv.shown is State.SPEAKING
    assert EndResponse("r1") in conv.on_event(ResponseDone("r1", "completed"), 3.0)
    conv.on_playback_drained(3.5)
    assert conv.shown is State.LISTENING


def test_drained_before_response_done_is_an_underrun_not_the_end():
    conv = live()
    speaking(conv)
    conv.on_playback_drained(1.5)
    assert conv.base is State.SPEAKING


def test_barge_in_flushes_and_drops_late_deltas_without_cancel():
    conv = live()
    speaking(conv)
    out = conv.on_event(SpeechStarted(None, 900), 2.0)
    assert Flush in kinds(out) and sent(out) == []
    assert conv.shown is State.LISTENING
    assert conv.on_event(AudioDelta("r1", None, PCM), 2.1) == []  # late delta never played
    out = conv.on_event(AudioDelta("r2", None, PCM), 3.0)  # the next reply plays
    assert Play(PCM, "r2") in out


def test_button_interrupt_flushes_and_sends_cancel():
    conv = live()
    speaking(conv)
    out = conv.on_panel(P.INTERRUPT, 2.0)
    assert Flush in kinds(out) and sent(out) == ["response.cancel"]
    assert conv.on_event(AudioDelta("r1", None, PCM), 2.1) == []


def test_half_duplex_shuts_the_mic_while_speaking_and_for_the_echo_tail():
    conv = live(echo_tail_s=0.3)
    speaking(conv, now=1.0)
    assert conv.uplink(1.5) is Uplink.DROP
    conv.on_event(ResponseDone("r1", None), 2.0)
    conv.on_playback_drained(2.0)
    assert conv.uplink(2.1) is Uplink.DROP
    assert conv.uplink(2.31) is Uplink.MIC


def test_full_duplex_streams_while_speaking():
    conv = live(duplex="full", echo_tail_s=0.0)
    speaking(conv)
    assert conv.uplink(1.5) is Uplink.MIC


def test_tool_call_runs_and_answers_without_response_create():
    conv = live()
    out = conv.on_event(FunctionCall("c1", "get_time", "{}", "r1"), 1.0)
    assert out == [RunTool("c1", "get_time", "{}", session=1)]
    out = conv.on_tool_result(out[0], {"time": "10:00"}, 1.1)
    assert sent(out) == ["conversation.item.create"]
    for action in out:
        check_client_event(action.event)


def test_idle_timeout_hangs_up_on_demand_only():
    conv = live(idle_timeout_s=20)
    assert conv.next_deadline() == pytest.approx(20.2)
    assert conv.tick(10.0) == []
    out = conv.tick(20.3)
    assert HangUp in kinds(out) and conv.shown is State.IDLE
    kiosk = live("always_on")
    assert kiosk.tick(1000.0) == [] and kiosk.next_deadline() is None


def test_speech_pushes_the_idle_deadline():
    conv = live(idle_timeout_s=20)
    conv.on_event(SpeechStarted(None, None), 15.0)
    conv.on_event(SpeechStopped(None, None), 16.0)
    conv.on_event(ResponseDone(None, None), 17.0)
    assert conv.base is State.LISTENING
    assert conv.tick(30.0) == []


def test_hang_up_ends_the_conversation():
    conv = live()
    assert HangUp in kinds(conv.on_panel(P.HANG_UP, 1.0)) and conv.shown is State.IDLE


def test_inputs_that_do_not_fit_the_state_do_nothing():
    conv = live()
    assert conv.on_panel(P.INTERRUPT, 1.0) == []  # nothing playing
    assert conv.on_panel(P.START, 1.0) == []      # already in a conversation
    assert Conversation("on_demand").on_panel(P.HANG_UP, 0.0) == []


@pytest.mark.parametrize(("reason"), [HaltReason.AUTH, HaltReason.CREDITS])
def test_halt_and_retry_by_button(reason):
    conv = live("always_on")
    out = conv.on_link_halted(reason, 1.0)
    assert ShowState(State.HALTED, reason) in out
    out = conv.on_panel(P.RETRY, 2.0)
    assert ResumeLink in kinds(out) and conv.shown is State.CONNECTING
    conv.on_link_live(3.0)
    assert conv.halt_reason is None


def test_backoff_and_reconnect():
    conv = live("always_on")
    speaking(conv)
    out = conv.on_link_backoff(2.0)
    assert Flush in kinds(out) and conv.shown is State.BACKOFF
    assert conv.uplink(2.5) is Uplink.DROP
    conv.on_link_connecting(3.0)
    conv.on_link_live(3.5)
    assert conv.shown is State.LISTENING
    assert conv.on_event(AudioDelta("r1", None, PCM), 3.6) == []  # old reply stays dropped


def test_mute_overlays_listening_and_shuts_the_mic():
    conv = live()
    out = conv.on_panel(P.TOGGLE_MUTE, 1.0)
    assert ShowState(State.MUTED, None) in out and conv.uplink(1.1) is Uplink.DROP
    speaking(conv, now=2.0)
    assert conv.shown is State.SPEAKING
    conv.on_panel(P.TOGGLE_MUTE, 3.0)
    assert conv.shown is State.SPEAKING and not conv.muted


def test_audio_error_overlays_and_recovers_but_halted_wins():
    conv = live("always_on")
    assert ShowState(State.AUDIO_ERROR, None) in conv.on_audio_lost(1.0)
    assert conv.uplink(1.1) is Uplink.DROP
    assert ShowState(State.LISTENING, None) in conv.on_audio_back(2.0)
    conv.on_audio_lost(3.0)
    conv.on_link_halted(HaltReason.CREDITS, 3.5)
    assert conv.shown is State.HALTED


def test_retry_in_audio_error_reopens_the_devices_now():
    conv = live("always_on")
    assert not any(isinstance(a, RetryAudio) for a in conv.on_panel(P.RETRY, 0.5))
    conv.on_audio_lost(1.0)
    assert RetryAudio() in conv.on_panel(P.RETRY, 2.0)
    conv.on_audio_back(3.0)
    assert not any(isinstance(a, RetryAudio) for a in conv.on_panel(P.RETRY, 4.0))


def test_push_to_talk_streams_while_held_then_commits_with_a_silence_tail():
    conv = live("push_to_talk", echo_tail_s=0.0)
    assert conv.uplink(0.5) is Uplink.MIC
    out = conv.on_panel(P.TALK_END, 2.0)
    assert sent(out) == ["input_audio_buffer.commit", "response.create"]
    assert conv.uplink(2.3) is Uplink.SILENCE
    assert conv.uplink(2.7) is Uplink.DROP
    for action in out:
        check_client_event(action.event)


def test_push_to_talk_too_short_press_clears():
    conv = live("push_to_talk", echo_tail_s=0.0)
    conv.on_panel(P.TALK_END, 2.0)
    conv.on_panel(P.TALK_START, 5.0)
    assert sent(conv.on_panel(P.TALK_END, 5.1)) == ["input_audio_buffer.clear"]


def test_transcripts_are_logged_at_response_done(caplog):
    caplog.set_level("INFO", logger="swaramd.core.conversation")
    conv = live()
    conv.on_event(ResponseCreated("r1"), 1.0)
    conv.on_event(TranscriptDelta("r1", "നമ"), 1.1)
    conv.on_event(TranscriptDelta("r1", "സ്കാരം"), 1.2)
    conv.on_event(ResponseDone("r1", "completed"), 1.3)
    assert "swaram said: നമസ്കാരം" in caplog.text


def test_transcript_deltas_without_a_response_id_join_the_reply_under_way(caplog):
    # The service's docs show `response.output_audio_transcript.delta` with only `delta`.
    caplog.set_level("INFO", logger="swaramd.core.conversation")
    conv = live()
    conv.on_event(TranscriptDelta(None, "ഒന്ന്"), 0.9)       # before the reply is named
    conv.on_event(ResponseCreated("r1"), 1.0)
    conv.on_event(TranscriptDelta(None, " രണ്ട്"), 1.1)
    conv.on_event(ResponseDone("r1", "completed"), 1.3)
    conv.on_event(TranscriptDelta(None, "മൂന്ന്"), 2.0)       # no response.created at all
    conv.on_event(ResponseDone(None, None), 2.1)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("swaram said")]
    assert said == ["swaram said: ഒന്ന് രണ്ട്", "swaram said: മൂന്ന്"]


def test_earcons_gate_the_mic_while_they_play():
    conv = Conversation("on_demand", earcon_s={"listening": 0.5}, echo_tail_s=0.0)
    conv.on_start(0.0)
    conv.on_panel(P.START, 0.0)
    conv.on_link_connecting(0.0)
    out = conv.on_link_live(1.0)
    assert PlayEarcon("listening") in out
    assert conv.uplink(1.2) is Uplink.DROP and conv.uplink(1.6) is Uplink.MIC


def test_events_out_of_order_never_raise():
    conv = Conversation("always_on")
    for event in (ResponseDone("x", None), AudioDelta("x", None, PCM), SpeechStopped(None, None),
                  TranscriptDelta(None, "a"), ResponseCreated(None)):
        conv.on_event(event, 0.0)
    conv.on_playback_drained(0.0)
    conv.on_panel(P.TALK_END, 0.0)
    assert conv.base is State.IDLE


def test_a_tool_only_reply_keeps_thinking_until_the_answer_speaks():
    conv = live()
    conv.on_event(SpeechStopped(None, None), 1.0)
    [call] = conv.on_event(FunctionCall("c1", "get_time", "{}", "r1"), 1.1)
    conv.on_tool_result(call, {"time": "10:00"}, 1.15)  # a quick tool: done before r1 is
    conv.on_event(ResponseDone("r1", "completed"), 1.2)
    assert conv.shown is State.THINKING  # the spoken answer is still to come
    conv.on_event(AudioDelta("r2", None, PCM), 1.5)
    assert conv.shown is State.SPEAKING


def test_a_reply_that_never_comes_returns_to_listening():
    conv = live(idle_timeout_s=60)
    conv.on_event(SpeechStopped(None, None), 1.0)
    assert conv.next_deadline() == pytest.approx(16.0)
    assert conv.tick(10.0) == [] and conv.shown is State.THINKING
    conv.tick(16.1)
    assert conv.shown is State.LISTENING


def test_audio_lost_while_speaking_leaves_speaking_so_the_mic_reopens():
    conv = live("always_on", echo_tail_s=0.3)
    speaking(conv)
    conv.on_event(ResponseDone("r1", "completed"), 1.5)
    out = conv.on_audio_lost(2.0)
    assert Flush in kinds(out) and conv.shown is State.AUDIO_ERROR
    conv.on_audio_back(6.0)
    assert conv.shown is State.LISTENING and conv.uplink(6.0) is Uplink.MIC


def test_the_echo_tail_is_for_half_duplex_only():
    full = live(duplex="full", echo_tail_s=0.3)
    speaking(full)
    full.on_event(SpeechStarted(None, None), 2.0)  # a barge-in: its first words must go up
    assert full.uplink(2.01) is Uplink.MIC
    half = live(duplex="half", echo_tail_s=0.3)
    speaking(half)
    half.on_event(SpeechStarted(None, None), 2.0)
    assert half.uplink(2.01) is Uplink.DROP and half.uplink(2.31) is Uplink.MIC


def test_audio_after_response_done_is_never_played():
    conv = live("always_on", duplex="half", echo_tail_s=0.0)
    conv.on_event(ResponseCreated("r1"), 1.0)
    conv.on_event(AudioDelta("r1", "i1", PCM), 1.0)
    conv.on_event(ResponseDone("r1", "completed"), 1.1)
    conv.on_playback_drained(1.2)
    assert conv.on_event(AudioDelta("r1", "i1", PCM), 2.0) == []  # late: the peer's mistake
    assert conv.shown is State.LISTENING and conv.uplink(2.0) is Uplink.MIC


def test_a_reply_without_response_done_is_ended_after_its_audio_stops():
    conv = live("always_on", duplex="half", echo_tail_s=0.0)
    conv.on_event(AudioDelta("r1", "i1", PCM), 1.0)
    assert conv.next_deadline() == pytest.approx(3.0)
    assert conv.tick(2.5) == []
    assert EndResponse("r1") in conv.tick(3.0)
    conv.on_playback_drained(3.1)
    assert conv.shown is State.LISTENING and conv.uplink(3.2) is Uplink.MIC
    assert conv.on_event(AudioDelta("r1", "i1", PCM), 3.3) == []


# --- late audio, one reply at a time ---------------------------------------------------------

def _created_then_speech(conv):
    conv.on_event(SpeechStopped(None, None), 1.0)
    conv.on_event(ResponseCreated("r1"), 1.1)
    conv.on_event(SpeechStarted(None, None), 1.2)   # the service cancels r1 before its audio


def _superseded(conv):
    conv.on_event(AudioDelta("r1", None, PCM), 1.0)
    conv.on_event(AudioDelta("r2", None, PCM), 1.1)


def _barge_in(conv):
    speaking(conv)
    conv.on_event(SpeechStarted(None, None), 2.0)


def _button(conv):
    speaking(conv)
    conv.on_panel(P.INTERRUPT, 2.0)


def _done(conv):
    speaking(conv)
    conv.on_event(ResponseDone("r1", "completed"), 2.0)


def _reconnect(conv):
    conv.on_event(ResponseCreated("r1"), 1.0)
    conv.on_link_backoff(1.5)
    conv.on_link_connecting(2.0)
    conv.on_link_live(2.1)


@pytest.mark.parametrize("scenario", [_created_then_speech, _superseded, _barge_in, _button,
                                      _done, _reconnect])
def test_late_deltas_of_an_ended_reply_never_play(scenario):
    conv = live("always_on", duplex="half", echo_tail_s=0.0)
    scenario(conv)
    shown = conv.shown
    assert conv.on_event(AudioDelta("r1", None, PCM), 3.0) == []
    assert conv.shown is shown   # not `speaking`: in half duplex that would shut the mic


def test_a_reply_cancelled_before_its_audio_leaves_the_mic_open():
    conv = live("always_on", duplex="half", echo_tail_s=0.0)
    _created_then_speech(conv)
    assert conv.on_event(AudioDelta("r1", None, PCM), 1.3) == []
    assert conv.shown is State.LISTENING and conv.uplink(1.4) is Uplink.MIC
    assert Play(PCM, "r2") in conv.on_event(AudioDelta("r2", None, PCM), 2.0)  # the next plays


def test_a_newer_reply_ends_the_older_for_good_never_interleaves():
    conv = live()
    conv.on_event(AudioDelta("r1", None, PCM), 1.0)
    out = conv.on_event(AudioDelta("r2", None, PCM), 1.1)
    assert out[:2] == [EndResponse("r1"), Play(PCM, "r2")]  # r1's queued audio plays out
    assert conv.on_event(AudioDelta("r1", None, PCM), 1.2) == []
    assert conv.on_event(AudioDelta("r2", None, PCM), 1.3) == [Play(PCM, "r2")]
    assert EndResponse("r2") in conv.on_event(ResponseDone("r2", "completed"), 1.4)
    conv.on_playback_drained(1.5)
    assert conv.shown is State.LISTENING


# --- bounded records, sessions ---------------------------------------------------------------

def test_replies_without_response_done_are_not_kept_forever():
    conv = live("always_on")
    for i in range(1000):           # a reply per session that never got response.done
        conv.on_event(ResponseCreated(f"s{i}"), i + 0.1)
        conv.on_event(TranscriptDelta(f"s{i}", "x"), i + 0.2)
        conv.on_link_backoff(i + 0.3)
        conv.on_link_connecting(i + 0.4)
        conv.on_link_live(i + 0.5)
    assert len(conv._transcripts) == 0
    for i in range(1000):           # and within one session
        conv.on_event(ResponseCreated(f"r{i}"), 2000.0)
        conv.on_event(TranscriptDelta(None, "y"), 2000.0)
    assert len(conv._transcripts) <= RECENT_RESPONSES


def test_a_tool_result_goes_only_to_the_session_that_called():
    conv = live("always_on")
    [old] = conv.on_event(FunctionCall("c1", "get_time", "{}", "r1"), 1.0)
    conv.on_link_backoff(1.5)
    conv.on_link_connecting(2.0)
    conv.on_link_live(2.1)
    [new] = conv.on_event(FunctionCall("c1", "get_time", "{}", "r9"), 2.5)  # same call_id
    assert conv.on_tool_result(old, {"time": "10:00"}, 3.0) == []   # session 1's: dropped
    out = conv.on_tool_result(new, {"time": "10:01"}, 3.1)
    assert [a.event["item"]["output"] for a in out] == ['{"time": "10:01"}']
    assert conv.on_tool_result(new, {"time": "10:01"}, 3.2) == []   # answered once


def test_too_many_tool_calls_at_once_are_answered_with_an_error():
    conv = live("always_on")
    outs = [conv.on_event(FunctionCall(f"c{i}", "get_time", "{}", "r1"), 1.0)
            for i in range(MAX_TOOL_CALLS + 2)]
    assert all(kinds(out) == [RunTool] for out in outs[:MAX_TOOL_CALLS])
    for out in outs[MAX_TOOL_CALLS:]:
        assert sent(out) == ["conversation.item.create"]
        assert "too many" in out[0].event["item"]["output"]
        check_client_event(out[0].event)


@pytest.mark.parametrize("mode", ["on_demand", "always_on", "push_to_talk"])
def test_hang_up_stops_the_uplink_at_once(mode):
    conv = live(mode, echo_tail_s=0.0)
    assert conv.uplink(1.0) is Uplink.MIC
    assert HangUp in kinds(conv.on_panel(P.HANG_UP, 1.0))
    assert conv.uplink(1.0) is Uplink.DROP      # not only once the link says it is idle
    conv.on_link_live(1.1)                      # session.updated raced the hang-up
    assert conv.uplink(1.2) is Uplink.DROP


@pytest.mark.parametrize(("status", "reason", "counted"), [
    ("failed", "server_error: boom", True),
    ("incomplete", "max_output_tokens", True),
    ("cancelled", "turn_detected", False),
    ("completed", None, False),
    (None, None, False),
])
def test_failed_and_incomplete_replies_are_logged_and_counted(caplog, status, reason, counted):
    caplog.set_level("INFO", logger="swaramd.core.conversation")
    conv = live()
    conv.on_event(ResponseCreated("r1"), 1.0)
    conv.on_event(ResponseDone("r1", status, reason), 1.1)
    assert conv.failed_responses == int(counted)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ([f"reply r1 {status}: {reason}"] if counted else [])


@pytest.mark.parametrize(("before_press", "cancel"), [
    ((), ["response.cancel"]),                                      # r1 still in progress
    ((ResponseDone("r1", "completed"),), []),                       # only its tail plays
    ((ResponseDone("r1", "completed"), ResponseCreated("r2")), ["response.cancel"]),
])
def test_button_interrupt_cancels_only_a_reply_in_progress(before_press, cancel):
    conv = live()
    speaking(conv)
    for event in before_press:
        conv.on_event(event, 1.5)
    out = conv.on_panel(P.INTERRUPT, 2.0)
    assert Flush in kinds(out) and sent(out) == cancel
    assert conv.shown is State.LISTENING


def test_a_flood_of_transcript_stays_one_short_line(caplog):
    caplog.set_level("INFO", logger="swaramd.core.conversation")
    conv = live()
    caplog.clear()
    conv.on_event(InputTranscript("i1", "ക" * 1_000_000), 1.0)
    conv.on_event(ResponseCreated("r1"), 1.1)
    for _ in range(10_000):
        conv.on_event(TranscriptDelta("r1", "ന" * 100), 1.2)
    assert max(len(t) for t in conv._transcripts.values()) <= TRANSCRIPT_CHARS
    conv.on_event(ResponseDone("r1", "completed"), 1.3)
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("user said: ക") and said[1].startswith("swaram said: ന")
    assert all(len(line) < TRANSCRIPT_CHARS + 100 for line in said)


def test_a_call_id_repeated_while_it_runs_is_run_and_answered_once():
    conv = live("always_on")
    [call] = conv.on_event(FunctionCall("c1", "get_time", "{}", "r1"), 1.0)
    assert conv.on_event(FunctionCall("c1", "get_time", "{}", "r1"), 1.1) == []
    assert sent(conv.on_tool_result(call, {"time": "10:00"}, 1.2)) == ["conversation.item.create"]


# --- the wake word ----------------------------------------------------------------------

def test_wake_word_starts_on_demand_as_a_short_press_does():
    pressed, woken = Conversation("on_demand", wake_word=True), \
        Conversation("on_demand", wake_word=True)
    for conv in (pressed, woken):
        conv.on_start(0.0)
    by_press = pressed.on_panel(P.START, 1.0)
    by_word = woken.on_wake(1.0)
    assert by_word == by_press and Connect in kinds(by_word)
    assert woken.shown is State.CONNECTING
    woken.on_link_connecting(1.1)
    woken.on_link_live(1.5)
    assert woken.uplink(1.6) is Uplink.MIC


@pytest.mark.parametrize("mode", ["on_demand", "always_on"])
def test_wake_word_interrupts_a_reply_as_a_press_does(mode):
    conv = live(mode, wake_word=True)
    conv.on_wake(0.5)
    speaking(conv)
    out = conv.on_wake(2.0)
    assert Flush in kinds(out) and sent(out) == ["response.cancel"]
    assert conv.shown is State.LISTENING
    assert conv.on_event(AudioDelta("r1", None, PCM), 2.1) == []


@pytest.mark.parametrize(("mode", "state"), [
    ("on_demand", State.LISTENING),    # never hangs up
    ("on_demand", State.THINKING),
    ("push_to_talk", State.LISTENING),  # push_to_talk ignores it
    ("push_to_talk", State.SPEAKING),
])
def test_wake_word_does_nothing_where_a_press_would_end_or_talk(mode, state):
    conv = live(mode, wake_word=True)
    conv.on_panel(P.TALK_END, 0.25)
    if state is State.THINKING:
        conv.on_event(SpeechStarted(None, None), 0.3)
        conv.on_event(SpeechStopped(None, None), 0.4)
    elif state is State.SPEAKING:
        speaking(conv)
    assert conv.shown is state
    assert conv.on_wake(2.0) == [] and conv.shown is state


def test_wake_word_is_ignored_while_muted():
    conv = live("always_on", wake_word=True)
    conv.on_panel(P.TOGGLE_MUTE, 1.0)
    assert conv.on_wake(2.0) == []
    conv.on_panel(P.TOGGLE_MUTE, 3.0)
    assert conv.uplink(3.1) is Uplink.HOLD


def test_always_on_holds_the_mic_until_the_word_then_until_the_idle_timeout():
    conv = live("always_on", wake_word=True, idle_timeout_s=20)
    assert conv.uplink(0.3) is Uplink.HOLD and conv.next_deadline() is None
    assert conv.on_wake(1.0) == [] and conv.shown is State.LISTENING
    assert conv.uplink(1.0) is Uplink.MIC
    assert conv.next_deadline() == pytest.approx(21.0)
    conv.on_event(SpeechStarted(None, None), 10.0)       # speech keeps it awake
    conv.on_event(SpeechStopped(None, None), 11.0)
    conv.on_event(ResponseDone(None, None), 12.0)
    assert conv.tick(25.0) == [] and conv.uplink(25.0) is Uplink.MIC
    assert conv.tick(32.1) == [] and conv.uplink(32.1) is Uplink.HOLD
    assert conv.base is State.LISTENING                  # the link stays up
    conv.on_wake(40.0)
    assert conv.uplink(40.0) is Uplink.MIC


def test_always_on_a_reconnect_waits_for_the_word_again():
    conv = live("always_on", wake_word=True)
    conv.on_wake(1.0)
    conv.on_link_backoff(2.0)
    conv.on_link_connecting(3.0)
    conv.on_link_live(3.5)
    assert conv.uplink(3.6) is Uplink.HOLD


def test_always_on_a_button_interrupt_opens_the_mic_as_the_word_does():
    conv = live("always_on", wake_word=True)
    speaking(conv)
    conv.on_panel(P.INTERRUPT, 2.0)
    assert conv.uplink(2.0 + 0.31) is Uplink.MIC


@pytest.mark.parametrize("mode", ["on_demand", "always_on", "push_to_talk"])
def test_without_a_wake_word_nothing_is_held(mode):
    conv = live(mode)
    conv.on_panel(P.TALK_START, 0.3)
    assert conv.uplink(1.0) is Uplink.MIC
    assert conv.on_wake(1.0) == []
