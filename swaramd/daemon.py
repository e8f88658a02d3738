"""The daemon: one asyncio loop that owns every task and carries out the conversation's actions.

Wiring only: the conversation (core) decides, the adapters do.

    panel gestures --(core.panel table)--> Conversation.on_panel
    link states and events -------------> Conversation.on_link_* / on_event
    audio health, playback drained -----> Conversation.on_audio_* / on_playback_drained
    Conversation actions ---------------> link, audio engine, panel, status, sd_notify
    engine.next_frame() --(uplink gate, mic gate)--> link.send_text()
    engine.next_frame() --(wake detector, every frame)--> Conversation.on_wake

Every task belongs to one `asyncio.TaskGroup`. SIGTERM/SIGINT end the group;
cleanup is bounded. An exception escaping any task ends the group too: it
is logged and `run()` returns 1, so systemd restarts a clean process rather
than leaving one half alive. SIGHUP re-reads the config's session settings
and the key (taking effect on the next connection) and leaves a halt.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swaramd.adapters.audio import AudioEngine, open_audio
from swaramd.adapters.audio_backend import AudioHealth, EngineTuning
from swaramd.adapters.control import serve_control
from swaramd.adapters.credentials import read_api_key
from swaramd.adapters.link import Link, LinkState, LinkTimings
from swaramd.adapters.logs import SecretFilter
from swaramd.adapters.notify import Notifier, watchdog_interval_s
from swaramd.adapters.panel import NullPanel, Panel, open_panel
from swaramd.adapters.wake import open_wake
from swaramd.core import earcons, protocol, wake
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
from swaramd.core.config import Config, Gate, load_config
from swaramd.core.conversation import Conversation, Uplink
from swaramd.core.errors import ConfigError
from swaramd.core.events import ErrorEvent, ServerEvent
from swaramd.core.gate import SpeechGate
from swaramd.core.panel import Gesture, PanelInput
from swaramd.core.policy import ReconnectPolicy
from swaramd.core.states import Duplex, HaltReason, Mode
from swaramd.core.status import Status
from swaramd.core.tools import ToolRegistry, output_text, preview

log = logging.getLogger(__name__)

TICK_S = 0.1                 # deadlines, status counters, watchdog
SHUTDOWN_S = 0.8             # hang-up budget after SIGTERM; with the link's 1 s close
                             # timeout and the audio stop, the whole stop stays under 2 s
OUTBOX_LIMIT = 64            # control events waiting for the link


class _Shutdown(Exception):
    """Raised inside the task group to end it on SIGTERM/SIGINT."""


class Daemon:
    """swaramd run: everything between `config.yaml` and a talking appliance."""

    def __init__(self, cfg: Config, *, secret_filter: SecretFilter | None = None,
                 notifier: Notifier | None = None, state_dir: Path | None = None,
                 link_timings: LinkTimings | None = None,
                 policy: ReconnectPolicy | None = None,
                 engine_tuning: EngineTuning | None = None,
                 engine_options: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.status = Status(started_at=time.monotonic())
        self._secret_filter = secret_filter
        self._notifier = notifier or Notifier()
        self._state_dir = state_dir
        self._link_timings = link_timings or LinkTimings()
        self._policy = policy
        self._engine_tuning = engine_tuning
        self._engine_options = engine_options or {}
        self._key = read_api_key(cfg)
        self._remember_secret()
        self._stop = asyncio.Event()
        self._outbox: asyncio.Queue[dict[str, Any] | HangUp | Connect] = asyncio.Queue()
        self._response_ended = asyncio.Event()
        self._earcon_pcm = {name: earcons.render(name) for name in earcons.EARCONS}
        self._earcon_count = 0
        self._uplink_captured = 0
        self._uplink_sent = 0
        self.conversation = Conversation(
            cfg.conversation.mode,
            duplex=Duplex.FULL if cfg.audio.duplex == Duplex.FULL else Duplex.HALF,
            echo_tail_s=cfg.audio.echo_tail_ms / 1000,
            idle_timeout_s=cfg.conversation.idle_timeout_s, earcon_s=earcons.durations(),
            wake_word=cfg.conversation.wake_word != "none")
        self._wake = open_wake(cfg)  # ConfigError (exit 78) when the engine is missing
        self.status.wake_word.name = self._wake.name if self._wake else None
        # Held frames before the wake word: the last few are sent with it (core.wake).
        self._held: collections.deque[bytes] = collections.deque(
            maxlen=wake.preroll_frames(cfg.audio.frame_ms))
        self._gate = SpeechGate(cfg.audio.frame_ms) if cfg.audio.gate == Gate.VAD else None
        self.engine: AudioEngine | None = None
        self.panel: Panel | NullPanel | None = None
        self.link: Link | None = None
        self._tg: asyncio.TaskGroup | None = None

    # --- life cycle -----------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (0) or an unexpected error (1)."""
        loop = asyncio.get_running_loop()
        self.panel = open_panel(self.cfg.gpio, loop, self._on_gesture)  # PanelError: exit 78
        self.engine = open_audio(self.cfg.audio, loop, self._state_dir,
                                 on_health=self._on_audio_health, tuning=self._engine_tuning,
                                 **self._engine_options)
        self.conversation.duplex = self._effective_duplex(self.engine)
        self.link = Link(self.cfg.server.url, lambda: self._key, self._session_update,
                         self, policy=self._policy, timings=self._link_timings)
        self._install_signals(loop)
        try:
            async with serve_control(self.cfg.control.socket, self._snapshot):
                await self.engine.start()
                # Audio open, or failed and retrying (STATUS=audio_error): see adapters.notify.
                self._notifier.ready(self.conversation.shown.value)
                self._apply(self.conversation.on_start(time.monotonic()))
                log.info("swaramd ready: mode %s, audio %s", self.cfg.conversation.mode,
                         self.cfg.audio.backend)
                if self.cfg.gpio.pin_factory == "none" and \
                        self.cfg.conversation.mode != Mode.ALWAYS_ON:
                    log.warning("gpio.pin_factory is none: no button, so mode %s never starts "
                                "a conversation (always_on needs no button)",
                                self.cfg.conversation.mode)
                return await self._run_tasks()
        finally:
            self._notifier.stopping()
            self.engine.stop(timeout_s=1.0)
            self.panel.close()
            if self._wake is not None:
                self._wake.close()
            self._uninstall_signals(loop)

    async def _run_tasks(self) -> int:
        assert self.link is not None
        code = 0
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self.link.run(), name="link")
                tg.create_task(self._pump_uplink(), name="uplink")
                tg.create_task(self._pump_outbox(), name="outbox")
                tg.create_task(self._watch_playback(), name="playback")
                tg.create_task(self._tick(), name="tick")
                tg.create_task(self._wait_stop(), name="stop")
        except* _Shutdown:
            log.info("stopped")
        except* Exception as group:
            for exc in group.exceptions:
                log.critical("internal error, exiting for a clean restart: %s: %s",
                             type(exc).__name__, exc, exc_info=exc)
            code = 1
        finally:
            self._tg = None
        return code

    async def _wait_stop(self) -> None:
        await self._stop.wait()
        self._notifier.stopping()
        assert self.link is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_S):
                await self.link.hang_up()
        raise _Shutdown

    def request_stop(self) -> None:
        """Stop as if SIGTERM arrived (also used by tests and the demo)."""
        self._stop.set()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, self.reload)

    @staticmethod
    def _uninstall_signals(loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    def reload(self) -> None:
        """SIGHUP: re-read the config's session settings and the key; leave a halt."""
        self._notifier.reloading()
        try:
            fresh = load_config(self.cfg.path)
            key = read_api_key(fresh)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused, keeping the running config: %s", problem)
        else:
            # Only what a new connection can take; the rest is read once, at start.
            self.cfg = dataclasses.replace(self.cfg, server=fresh.server, session=fresh.session,
                                           path=fresh.path, lines=fresh.lines)
            self._key = key
            self._remember_secret()
            if self.link is not None:
                self.link.url = fresh.server.url
            log.info("reloaded the key and session settings (used from the next connection)")
        if self.link is not None and self.link.state is LinkState.HALTED:
            self._apply(self.conversation.on_panel(PanelInput.RETRY, time.monotonic()))
        self._notifier.ready(self.conversation.shown.value)

    def _effective_duplex(self, engine: AudioEngine) -> Duplex:
        """`audio.duplex: auto` is full while the echo canceller runs, else half (said once)."""
        if self.cfg.audio.duplex != Duplex.AUTO:
            return Duplex(self.cfg.audio.duplex)
        if engine.echo is not None:
            return Duplex.FULL
        # Two WAV files never echo: nothing to warn about there.
        report = log.warning if engine.hears_speaker else log.info
        report("half duplex (the mic is shut while the speaker plays): no echo cancellation, "
               "because %s", engine.echo_problem)
        return Duplex.HALF

    def _session_update(self) -> dict[str, Any]:
        """The opening `session.update`, from the config as it is now (SIGHUP may change it)."""
        return protocol.session_update(self.cfg.session, self._tools().schemas())

    def _tools(self) -> ToolRegistry:
        return ToolRegistry.enabled(self.cfg.session.tools, self._set_volume)

    def _remember_secret(self) -> None:
        if self._secret_filter is not None:
            self._secret_filter.set_secrets([self._key])

    # --- inputs: link (LinkListener), panel, audio ------------------------------

    def on_link_state(self, state: LinkState, *, delay: float | None = None,
                      halt: HaltReason | None = None) -> None:
        """The link moved on; tell the conversation."""
        now, conv = time.monotonic(), self.conversation
        if state is LinkState.LIVE:
            assert self.engine is not None
            self.engine.clear_uplink()  # audio from before session.updated is never sent
            if self._gate is not None:
                self._gate.reset()
            self._apply(conv.on_link_live(now))
        elif state is LinkState.CONNECTING:
            self._apply(conv.on_link_connecting(now))
        elif state is LinkState.BACKOFF:
            log.info("reconnecting in %.1f s", delay or 0.0)
            self._apply(conv.on_link_backoff(now))
        elif state is LinkState.HALTED and halt is not None:
            log.error("halted (%s): %s", halt.value,
                      "the service refused the API key" if halt is HaltReason.AUTH
                      else "the account is out of credits")
            self._apply(conv.on_link_halted(halt, now))
        elif state is LinkState.IDLE:
            self._apply(conv.on_link_idle(now))

    def on_event(self, event: ServerEvent) -> None:
        """A decoded server event."""
        if isinstance(event, ErrorEvent):
            self.status.on_error_event()
        self._apply(self.conversation.on_event(event, time.monotonic()))

    def on_session_live(self, live: bool) -> None:
        """The link's session went live or ended: `connected` in status."""
        self.status.on_session_live(live)

    def on_link_closed(self, code: int | None) -> None:
        """A connection closed: `last_close_code` in status."""
        self.status.on_link_closed(code)

    def on_reconnect(self) -> None:
        """Another attempt within one conversation: `reconnects` in status."""
        self.status.on_reconnect()

    def on_malformed_frame(self) -> None:
        """The link refused a frame: `protocol.malformed_frames` in status."""
        self.status.on_malformed_frame()

    def _on_gesture(self, gesture: Gesture) -> None:
        self._apply(self.conversation.on_gesture(gesture, time.monotonic()))

    def _on_audio_health(self, health: AudioHealth, reason: str | None) -> None:
        now = time.monotonic()
        if health is AudioHealth.ERROR:  # the engine has logged why; it retries by itself
            self._apply(self.conversation.on_audio_lost(now))
        elif health is AudioHealth.OK:
            self._apply(self.conversation.on_audio_back(now))

    # --- outputs ----------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        """Carry out the conversation's actions, in order, without blocking the loop."""
        engine, link = self.engine, self.link
        assert engine is not None and link is not None
        for action in actions:
            if isinstance(action, Play):
                engine.play(action.pcm, action.response_id)
            elif isinstance(action, Send):
                self._post(action.event)
            elif isinstance(action, Flush):
                engine.flush()
            elif isinstance(action, EndResponse):
                engine.end_response(action.response_id)
                self._response_ended.set()
            elif isinstance(action, ShowState):
                self._show(action)
            elif isinstance(action, Connect):
                if self._outbox.empty():
                    link.want_connected()
                else:
                    self._post(action)  # behind a hang-up still queued, or that would undo it
            elif isinstance(action, HangUp):
                self._post(action)
            elif isinstance(action, ResumeLink):
                link.resume()
            elif isinstance(action, RetryAudio):
                engine.retry_now()
            elif isinstance(action, PlayEarcon):
                self._earcon_count += 1
                rid = f"earcon-{action.name}-{self._earcon_count}"
                engine.play(self._earcon_pcm[action.name], rid)
                engine.end_response(rid)
            elif isinstance(action, RunTool) and self._tg is not None:
                self._tg.create_task(self._run_tool(action),
                                     name=f"tool {preview(action.name, 40)}")

    def _post(self, item: dict[str, Any] | HangUp | Connect) -> None:
        """Queue an item for the link, in order. Events are bounded: when the link stalls the
        oldest event goes. A hang-up or a connect is never dropped (the user's wish outlives
        any event); they alternate, one per button press, so they cannot pile up."""
        if isinstance(item, dict) and self._outbox.qsize() >= OUTBOX_LIMIT:
            queued = [self._outbox.get_nowait() for _ in range(self._outbox.qsize())]
            events = [i for i, q in enumerate(queued) if isinstance(q, dict)]
            dropped = queued.pop(events[0]) if events else item
            if events:
                queued.append(item)
            for q in queued:
                self._outbox.put_nowait(q)
            log.warning("outbox full: dropped the oldest event (%s)",
                        dropped.get("type") if isinstance(dropped, dict) else dropped)
            return
        self._outbox.put_nowait(item)

    def _show(self, action: ShowState) -> None:
        self.status.state = action.state
        self.status.halt_reason = action.halt_reason
        if self.panel is not None:
            self.panel.show(action.state, action.halt_reason)
        self._notifier.status(action.state.value)

    def _set_volume(self, level: int) -> None:
        assert self.engine is not None
        self.engine.set_volume(level)

    # --- tasks --------------------------------------------------------------------

    async def _pump_outbox(self) -> None:
        assert self.link is not None
        while True:
            item = await self._outbox.get()
            if isinstance(item, HangUp):
                await self.link.hang_up()
            elif isinstance(item, Connect):
                self.link.want_connected()
            elif not await self.link.send(item):
                log.debug("not sent (no live session): %s", item.get("type"))

    async def _pump_uplink(self) -> None:
        """Microphone frames to the wire, through the conversation's gate and the mic gate."""
        engine, link, conv = self.engine, self.link, self.conversation
        assert engine is not None and link is not None
        while True:
            # A slow link: wait here while what is in flight is over the link's bound, so
            # the engine's backlog (about 1 s) drops the oldest frames, counted in
            # audio.dropped_frames, rather than the kernel queueing seconds of them.
            await link.wait_sendable()
            frame = await engine.next_frame()
            self._uplink_captured += 1
            if self._wake is not None:
                self._listen_for_wake(frame)
            mode = conv.uplink(time.monotonic())
            if mode is Uplink.HOLD:
                self._held.append(frame)
                continue
            # The word was just heard: what was said right after it goes first.
            held = [*self._held] if mode is Uplink.MIC else []
            self._held.clear()
            if mode is Uplink.DROP:
                continue
            if mode is Uplink.SILENCE:
                frames = [bytes(len(frame))]
            elif self._gate is not None:
                frames = [out for f in (*held, frame) for out in self._gate.process(f)]
            else:
                frames = [*held, frame]
            for out in frames:
                if await link.send_text(protocol.audio_append_text(out)):
                    self._uplink_sent += 1

    def _listen_for_wake(self, frame: bytes) -> None:
        """Every captured frame goes to the detector, whatever the uplink does with it."""
        assert self._wake is not None
        score = self._wake.feed(frame)
        if score is None:
            return
        self.status.wake_word.detections += 1
        log.info("wake word %s heard (score %.2f)", self._wake.name, score)
        if self._gate is not None:
            self._gate.reset()  # its pre-roll would hold the word, or audio from long ago
        self._apply(self.conversation.on_wake(time.monotonic()))

    async def _watch_playback(self) -> None:
        """Tell the conversation when a finished reply has left the speaker."""
        assert self.engine is not None
        while True:
            await self._response_ended.wait()
            self._response_ended.clear()
            await self.engine.wait_drained()
            self._apply(self.conversation.on_playback_drained(time.monotonic()))

    async def _tick(self) -> None:
        """Deadlines and the systemd watchdog."""
        assert self.engine is not None
        interval = watchdog_interval_s()
        next_ping = 0.0
        while True:
            now = time.monotonic()
            self._apply(self.conversation.tick(now))
            if interval is not None and now >= next_ping and self.engine.alive(now):
                self._notifier.watchdog()
                next_ping = now + interval
            await asyncio.sleep(TICK_S)

    async def _run_tool(self, call: RunTool) -> None:
        """Run one call in a worker thread, bounded; whatever happens, answer its call_id.

        The peer's arguments are parsed in the thread too (bounded in size by the
        registry), and a log line shows only a preview of them.
        """
        name, timeout_s = preview(call.name, 40), self.cfg.session.tool_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                output, ok = await asyncio.to_thread(self._tools().answer, call.name,
                                                     call.arguments)
        except TimeoutError:
            output, ok = output_text({"error": f"{name} took longer than {timeout_s} s"}), False
        except Exception as exc:  # the worker itself failed: still an answer, never a crash
            output, ok = output_text({"error": f"{name} failed: {type(exc).__name__}"}), False
        (log.info if ok else log.warning)("tool %s(%s) -> %s", name, preview(call.arguments),
                                          preview(output))
        self._apply(self.conversation.on_tool_result(call, output, time.monotonic()))

    def _snapshot(self) -> dict[str, Any]:
        frame_s = self.cfg.audio.frame_ms / 1000
        engine = self.engine
        if engine is not None:
            self.status.audio = engine.counters()
            self.status.echo_cancel = engine.echo_status()
        self.status.protocol.failed_responses = self.conversation.failed_responses
        self.status.extra = {
            "mode": self.cfg.conversation.mode,
            "uplink": {"captured_s": round(self._uplink_captured * frame_s, 2),
                       "sent_s": round(self._uplink_sent * frame_s, 2)},
            "audio_health": engine.health.value if engine else None,
            "volume": engine.volume.level if engine else None,
        }
        return self.status.snapshot(time.monotonic())


def state_dir_from_env(environ: dict[str, str] | None = None) -> Path | None:
    """systemd's `StateDirectory=` (first entry), or None when not under systemd."""
    env = os.environ if environ is None else environ
    value = env.get("STATE_DIRECTORY")
    return Path(value.split(":")[0]) if value else None


def run_daemon(cfg: Config, secret_filter: SecretFilter | None = None,
               factory: Callable[..., Daemon] = Daemon) -> int:
    """`swaramd run`: build the daemon and run its loop; returns the exit code."""
    async def main() -> int:
        daemon = factory(cfg, secret_filter=secret_filter, state_dir=state_dir_from_env())
        return await daemon.run()
    return asyncio.run(main())
