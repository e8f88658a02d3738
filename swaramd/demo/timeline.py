"""The demo's readable timeline: the daemon's log and the service's journal, as they happen.

Two public surfaces feed it, and nothing private of the daemon:

- the `swaramd` loggers (state changes, transcripts, the tool call, the
  barge-in), through `TimelineLog`, a logging handler installed for the run;
- the simulated service's journal (`simulator.Entry`), through
  `describe_entry`, which picks the events worth a line: the session set-up,
  the turn-taking events, the first audio of each reply, the tool call,
  `response.done` with what was streamed, errors.

Lines go to stdout as they happen, each with the seconds since the demo
began. When stderr is a terminal a one-line progress indicator is kept
there, cleared before each timeline line (a CI log gets only the timeline).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import Counter
from typing import TextIO

from swaramd.demo.simulator import Entry

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Timeline:
    """Prints `  1.23 s  who       what` lines; keeps them in `lines` as well."""

    def __init__(self, t0: float | None = None, out: TextIO | None = None,
                 err: TextIO | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.lines: list[str] = []
        self.glosses: dict[str, str] = {}        # Malayalam transcript -> English
        self.tty = bool(getattr(self.err, "isatty", lambda: False)())
        self._status = ""
        self._spin = 0
        self._lock = threading.Lock()            # log records may come from other threads

    def at(self, t: float) -> str:
        """`t` (time.monotonic()) as seconds since the demo began."""
        return f"{t - self.t0:6.2f} s"

    def line(self, who: str, what: str, t: float | None = None) -> None:
        """Print one timeline line (and redraw the progress line after it)."""
        text = f"{self.at(time.monotonic() if t is None else t)}  {who:<9} {what}"
        with self._lock:
            self.lines.append(text)
            self._clear()
            print(text, file=self.out, flush=True)
            self._draw()

    def say(self, text: str = "") -> None:
        """Print a plain line (headings, the summary)."""
        with self._lock:
            self._clear()
            print(text, file=self.out, flush=True)
            self._draw()

    def progress(self, status: str) -> None:
        """Update the progress indicator (only drawn when stderr is a terminal)."""
        with self._lock:
            self._status = status
            self._spin += 1
            self._draw()

    def end_progress(self) -> None:
        """Remove the progress indicator for good."""
        with self._lock:
            self._clear()
            self._status = ""

    def gloss(self, text: str) -> str:
        """`  (English)` for a known transcript, else nothing."""
        meaning = self.glosses.get(text)
        return f"  ({meaning})" if meaning else ""

    def _clear(self) -> None:
        if self.tty and self._status:
            self.err.write("\r\033[K")
            self.err.flush()

    def _draw(self) -> None:
        if self.tty and self._status:
            spin = SPINNER[self._spin % len(SPINNER)]
            self.err.write(f"\r{spin} {self._status}")
            self.err.flush()


class TimelineLog(logging.Handler):
    """Turns the daemon's log records into timeline lines (INFO and above)."""

    def __init__(self, timeline: Timeline) -> None:
        super().__init__(logging.INFO)
        self.timeline = timeline
        self.seen: Counter[str] = Counter()      # which kinds of line appeared, for checks

    def emit(self, record: logging.LogRecord) -> None:
        try:
            who, what = self.describe(record)
        except Exception:  # a changed log message must never break the demo
            who, what = "daemon", record.getMessage()
        self.seen[who] += 1
        self.timeline.line(who, what)

    def describe(self, record: logging.LogRecord) -> tuple[str, str]:
        """(who, what) for one record."""
        msg, args = record.msg, record.args if isinstance(record.args, tuple) else ()
        tl = self.timeline
        if msg == "state %s -> %s (%s)":
            return "state", f"{args[0]} → {args[1]}   ({args[2]})"
        if msg.startswith("barge-in"):
            return "barge-in", "the user spoke over the reply: speaker flushed, rest dropped"
        if msg == "user said: %s":
            return "user", f"“{args[0]}”{tl.gloss(str(args[0]))}"
        if msg == "swaram said: %s%s":
            return "swaram", f"“{args[0]}”{args[1]}{tl.gloss(str(args[0]))}"
        if msg == "wake word %s heard (score %.2f)":
            return "wake", f"heard the wake word {args[0]} (score {args[1]:.2f})"
        if msg == "tool %s(%s) -> %s":
            return "tool", f"ran {args[0]}({args[1]}) → {args[2]}"
        if record.levelno >= logging.WARNING:
            return record.levelname.lower(), record.getMessage()
        return "daemon", record.getMessage()


class install_timeline_log:
    """For the block, the `swaramd` loggers feed the timeline (and only the timeline)."""

    def __init__(self, timeline: Timeline) -> None:
        self.handler = TimelineLog(timeline)
        self._logger = logging.getLogger("swaramd")
        self._saved = (self._logger.level, self._logger.propagate)

    def __enter__(self) -> TimelineLog:
        self._logger.addHandler(self.handler)
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False
        return self.handler

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self.handler)
        self._logger.setLevel(self._saved[0])
        self._logger.propagate = self._saved[1]


class JournalLines:
    """Feeds the service's journal to the timeline: one line for each event worth one."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self._streamed: Counter[tuple[str, str]] = Counter()
        self._appends = 0

    def __call__(self, entry: Entry) -> None:
        described = self.describe(entry)
        if described is not None:
            self.timeline.line(described[0], described[1], entry.t)

    def describe(self, e: Entry) -> tuple[str, str] | None:
        """(who, what) for a journal entry, or None for one not worth a line."""
        d = e.detail
        if e.direction == "note":
            if e.type == "connected":
                return "→ swaram", ("connect, Authorization: Bearer (the simulator takes "
                                    "any key)" if d.get("bearer") else "connect without a key")
            return "link", f"connection closed, code {d.get('code')}"
        if e.direction == "received":
            return self._received(e)
        if e.type in ("conversation.item.input_audio_transcription.completed",
                      "response.done") and d.get("transcript"):
            self.timeline.glosses[d["transcript"]] = d.get("gloss", "")
        return self._sent(e)

    def _received(self, e: Entry) -> tuple[str, str] | None:
        d = e.detail
        if e.type == "input_audio_buffer.append":
            self._appends += 1
            if self._appends == 1:
                return "→ swaram", ("input_audio_buffer.append …  the microphone streams, "
                                    f"{d['samples'] * 1000 // 24000} ms per event")
            return None
        event = d.get("event", {})
        if e.type == "session.update":
            s = event.get("session", {})
            tools = ", ".join(t.get("name", "?") for t in s.get("tools", []))
            return "→ swaram", f"session.update   (voice {s.get('voice')}; tools {tools})"
        if e.type == "conversation.item.create":
            item = event.get("item", {})
            return "→ swaram", (f"conversation.item.create   {item.get('type')} "
                                f"{_short(item.get('output', ''))}")
        return "→ swaram", e.type

    def _sent(self, e: Entry) -> tuple[str, str] | None:
        d, kind = e.detail, e.type
        if kind in ("session.created", "session.updated"):
            return "← swaram", kind
        if kind == "input_audio_buffer.speech_started":
            return "← swaram", f"{kind}   (the service heard speech begin)"
        if kind == "input_audio_buffer.speech_stopped":
            return "← swaram", f"{kind}   (…and end)"
        if kind == "response.function_call_arguments.done":
            return "← swaram", f"{kind}   call {d['name']}({d['arguments']})"
        if kind == "response.output_audio.delta":
            key = (d["response_id"], "audio")
            self._streamed[key] += d["samples"]
            if self._streamed[key] == d["samples"]:
                return "← swaram", "response.output_audio.delta …  reply audio streams in"
            return None
        if kind == "response.output_audio_transcript.delta":
            self._streamed[(d["response_id"], "text")] += 1
            return None
        if kind == "response.done":
            rid = d["response_id"]
            audio = self._streamed[(rid, "audio")] / 24000
            texts = self._streamed[(rid, "text")]
            what = f"response.done   ({d['status']}"
            if audio:
                what += f"; {audio:.1f} s of audio, {texts} transcript deltas sent"
            return "← swaram", what + ")"
        if kind == "error":
            return "← swaram", f"error {d.get('code')}: {d.get('message')}"
        return None


def _short(text: str, limit: int = 90) -> str:
    try:
        text = json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        pass
    return text if len(text) <= limit else text[: limit - 1] + "…"
