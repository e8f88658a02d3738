"""The chaos run: the real daemon as a process against tests/support/chaos_service.py.

`run_chaos(ChaosPlan(...))` starts `python -m tests.chaos_runner` (the daemon
with a scaled reconnect policy, WAV audio, no GPIO, always_on, gate open),
lets the service break N connections in a row, resumes the daemon with
SIGHUP after each halt as a person would, then stops it with SIGTERM.
`ChaosResult.problems()` lists every broken promise; an empty list is a pass:

- the process never died and stopped with 0;
- it halted (status `halted`, the right `halt_reason`, no attempt for a quiet
  while) after exactly 4001/4003/HTTP 401, and after every other fault it
  came back by itself (a halt would have stopped the run);
- from each fault to the next handshake, never less than the policy's least
  delay for that fault (no hot loop);
- private memory (RssAnon) grew less than 2 MB between the two marks;
- the microphone streamed on every connection that was set up, and went on
  streaming after every carry-on fault;
- every client event was strictly valid; status counted every malformed
  frame and error event; the log has no traceback and never the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from swaramd.adapters.control import ControlError, query
from swaramd.core.policy import STABLE_AFTER_S
from tests.daemon_rig import KEY, RATE, config_text
from tests.support.chaos_service import FAULTS, ChaosService, Connection
from tests.support.procfs import rss_anon_kb
from tests.support.wavfiles import write_wav

ROOT = Path(__file__).resolve().parents[2]
RSS_GROWTH_LIMIT_KB = 2048


@dataclass(frozen=True)
class ChaosPlan:
    """What to run: N faulty connections drawn with `seed` from `faults`."""

    workdir: Path
    connections: int = 100
    seed: int = 8
    scale: float = 0.02
    faults: tuple[str, ...] = tuple(FAULTS)
    rss_marks: tuple[int, int] = (20, 100)
    ping_interval: float = 0.5
    ping_timeout: float = 1.0
    close_timeout: float = 0.3
    session_timeout: float = 3.0
    quiet_s: float = 0.5          # after a halt: no attempt may come in this long
    next_timeout: float = 60.0    # bound on each connection, fault and backoff included
    progress: bool = False
    daemon_scale: float | None = None  # what the daemon really runs (None: `scale`); only to
                                       # prove the hot-loop check catches a too-fast daemon
    dwell_share: float = 0.5      # share of connections that stay up until stable first

    def draw(self) -> tuple[list[str], list[bool]]:
        """Every fault once, the rest at random, shuffled; and which connections dwell until
        stable (so the schedules reset) before their fault."""
        rng = random.Random(self.seed)
        plan = list(self.faults)[: self.connections]
        plan += [rng.choice(self.faults) for _ in range(self.connections - len(plan))]
        rng.shuffle(plan)
        return plan, [rng.random() < self.dwell_share for _ in plan]


@dataclass
class ChaosResult:
    """Everything the run saw; `problems()` judges it."""

    plan: ChaosPlan
    connections: list[Connection]
    halts_expected: int = 0
    halts_seen: int = 0
    died_at: int | None = None
    exit_code: int | None = None
    rss_kb: dict[int, int] = field(default_factory=dict)
    final_status: dict[str, Any] = field(default_factory=dict)
    malformed_sent: int = 0
    error_events_sent: int = 0
    invalid: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    log_text: str = ""
    seconds: float = 0.0

    @property
    def faulted(self) -> list[Connection]:
        """The planned connections (the one after them is the healthy `hold`)."""
        return self.connections[: self.plan.connections]

    def gaps(self) -> list[tuple[Connection, float, float]]:
        """(connection, seconds from its fault to the next handshake, least allowed)."""
        out = []
        for conn, nxt in zip(self.connections, self.connections[1:], strict=False):
            fault = FAULTS[conn.fault]
            if fault.min_delay_s is None or conn.t_fault is None:
                continue
            floor = fault.min_delay_s * self.plan.scale
            if conn.fault == "stall":  # the daemon can only notice after a ping timed out
                floor += self.plan.ping_timeout
            out.append((conn, nxt.t_attempt - conn.t_fault, floor))
        return out

    def audio_back(self, conn: Connection) -> bool:
        """The microphone streamed again after this connection's fault: it went on (carry-on
        faults), and it streamed on the next connection that got past the handshake."""
        if FAULTS[conn.fault].carries_on and not conn.carried_on:
            return False
        for nxt in self.connections[conn.index + 1:]:  # the next one that was set up
            if nxt.fault not in FAULTS or FAULTS[nxt.fault].http is None:
                return nxt.t_audio is not None
        return False

    def survived(self) -> int:
        """Faults after which the process was still alive and tried again."""
        return sum(1 for c in self.faulted
                   if c.index + 1 < len(self.connections)) if self.died_at is None else 0

    def problems(self) -> list[str]:
        """Every broken promise, one line each (empty: the run passed)."""
        out = list(self.errors)
        if self.died_at is not None:
            out.append(f"the daemon died after connection {self.died_at}")
        if self.exit_code != 0:
            out.append(f"exit code {self.exit_code} on SIGTERM (wanted 0)")
        if len(self.connections) <= self.plan.connections:
            out.append(f"only {len(self.connections)} connections of {self.plan.connections} + 1")
        if self.halts_seen != self.halts_expected:
            out.append(f"halted {self.halts_seen} times, expected {self.halts_expected}")
        for conn, gap, floor in self.gaps():
            if gap < floor:
                out.append(f"hot loop: connection {conn.index} ({conn.fault}): next attempt "
                           f"{gap * 1000:.1f} ms after the fault, the policy allows no less than "
                           f"{floor * 1000:.1f} ms")
        for conn, nxt in zip(self.connections, self.connections[1:], strict=False):
            if conn.t_resume is not None and nxt.t_attempt < conn.t_resume:
                out.append(f"connection {conn.index} ({conn.fault}): retried before SIGHUP")
        for conn in self.connections:
            out += [f"connection {conn.index} ({conn.fault}): {p}" for p in conn.problems]
        marks = [self.rss_kb.get(m) for m in self.plan.rss_marks]
        if None in marks:
            out.append(f"RssAnon not sampled at {self.plan.rss_marks}")
        elif marks[1] - marks[0] >= RSS_GROWTH_LIMIT_KB:  # type: ignore[operator]
            out.append(f"RssAnon grew {marks[1] - marks[0]} kB between connections "  # type: ignore[operator]
                       f"{self.plan.rss_marks[0]} and {self.plan.rss_marks[1]}")
        out += [f"invalid client event: {e}" for e in self.invalid[:5]]
        proto = {k: v for k, v in self.final_status.get("protocol", {}).items()
                 if k in ("malformed_frames", "error_events")}
        if proto != {"malformed_frames": self.malformed_sent,
                     "error_events": self.error_events_sent}:
            out.append(f"status protocol counters {proto}, sent {self.malformed_sent} malformed "
                       f"and {self.error_events_sent} error events")
        if self.final_status.get("reconnects") != len(self.connections) - 1:
            out.append(f"status reconnects {self.final_status.get('reconnects')}, "
                       f"the service saw {len(self.connections)} attempts")
        for marker in ("Traceback", "CRITICAL", KEY):
            if marker in self.log_text:
                out.append(f"the daemon's log holds {marker!r}")
        return out

    def table(self) -> str:
        """Per fault: how often, survived, halted, audio back, least gap / allowed."""
        rows = [f"{'fault':<13} {'count':>5} {'survived':>8} {'halted':>6} {'audio back':>10} "
                f"{'min gap':>9} {'allowed':>9} {'ratio':>6}"]
        counts = Counter(c.fault for c in self.faulted)
        gaps: dict[str, list[tuple[float, float]]] = {}
        for conn, gap, floor in self.gaps():
            gaps.setdefault(conn.fault, []).append((gap, floor))
        for name in FAULTS:
            if not counts[name]:
                continue
            conns = [c for c in self.faulted if c.fault == name]
            survived = sum(1 for c in conns if c.index + 1 < len(self.connections))
            halted = sum(1 for c in conns if c.halted is not None)
            back = sum(1 for c in conns if self.audio_back(c))
            if name in gaps:
                gap, floor = min(gaps[name], key=lambda g: g[0] / g[1])
                tail = f"{gap * 1000:7.1f}ms {floor * 1000:7.1f}ms {gap / floor:6.1f}"
            else:
                tail = f"{'(halt: resumed by SIGHUP)':>28}"
            rows.append(f"{name:<13} {counts[name]:>5} {survived:>8} {halted:>6} {back:>10} "
                        + tail)
        return "\n".join(rows)

    def summary(self) -> str:
        """The figures of the run, as docs/reliability.md records them."""
        gaps = self.gaps()
        worst = min(gaps, key=lambda g: g[1] / g[2]) if gaps else None
        marks = self.plan.rss_marks
        lines = [
            f"connections: {self.plan.connections} faulty + 1 healthy, seed {self.plan.seed}, "
            f"policy scale {self.plan.scale}, {self.seconds:.0f} s",
            f"survived: {self.survived()}/{self.plan.connections}; process alive throughout: "
            f"{self.died_at is None}; exit code on SIGTERM: {self.exit_code}",
            f"halts: {self.halts_seen} seen, {self.halts_expected} expected "
            "(4001, 4003, HTTP 401 only)",
        ]
        if worst is not None:
            conn, gap, floor = worst
            lines.append(f"least gap / allowed: {gap / floor:.2f} ({gap * 1000:.1f} ms vs "
                         f"{floor * 1000:.1f} ms, connection {conn.index}, {conn.fault})")
        rss = [self.rss_kb.get(m) for m in marks]
        if None not in rss:
            lines.append(f"RssAnon: {rss[0]} kB at connection {marks[0]}, {rss[1]} kB at "
                         f"{marks[1]}: {rss[1] - rss[0]:+d} kB")  # type: ignore[operator]
        lines.append(f"status: {self.final_status.get('protocol')}, reconnects "
                     f"{self.final_status.get('reconnects')}")
        return "\n".join(lines)


async def _status(path: Path) -> dict[str, Any] | None:
    try:
        return await asyncio.to_thread(query, path)
    except ControlError:
        return None


async def _wait_halted(path: Path, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await _status(path)
        if status is not None and status.get("state") == "halted":
            return status
        await asyncio.sleep(0.02)
    return await _status(path)


def _write_config(plan: ChaosPlan, url: str) -> Path:
    work = plan.workdir
    (work / "key").write_text(KEY + "\n")
    noise = np.random.default_rng(1).normal(0, 300, RATE * 5).astype("<i2")
    write_wav(work / "in.wav", noise)
    text = config_text(work, url, gpio={"pin_factory": "none"}, log={"level": "info"},
                       conversation={"mode": "always_on"}, audio={"gate": "open"})
    (work / "config.yaml").write_text(text)
    return work / "config.yaml"


async def run_chaos(plan: ChaosPlan) -> ChaosResult:
    """Run the daemon through `plan.connections` faults; see the module docstring."""
    faults, dwell = plan.draw()
    started = time.monotonic()
    stable_s = STABLE_AFTER_S * plan.scale * 1.2
    async with ChaosService(faults, dwell, stable_s=stable_s, key=KEY) as svc:
        config = _write_config(plan, svc.url)
        control = plan.workdir / "control.sock"
        log_path = plan.workdir / "daemon.log"
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.chaos_runner", "-c", str(config),
                "--policy-scale", str(plan.daemon_scale or plan.scale),
                "--ping-interval", str(plan.ping_interval),
                "--ping-timeout", str(plan.ping_timeout),
                "--close-timeout", str(plan.close_timeout),
                "--session-timeout", str(plan.session_timeout),
                stdout=log, stderr=log, cwd=plan.workdir,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
        result = ChaosResult(plan, svc.connections)
        try:
            await _drive(plan, svc, proc, control, result)
            result.final_status = await _status(control) or {}
        finally:
            result.exit_code = await _stop(proc)
            result.malformed_sent = svc.malformed_sent
            result.error_events_sent = svc.error_events_sent
            result.invalid = list(svc.invalid)
            result.log_text = log_path.read_text(errors="replace")
            result.seconds = time.monotonic() - started
    return result


async def _drive(plan: ChaosPlan, svc: ChaosService, proc: asyncio.subprocess.Process,
                 control: Path, result: ChaosResult) -> None:
    started = time.monotonic()
    for i in range(plan.connections):
        try:
            conn = await svc.wait_connection(i, plan.next_timeout)
        except TimeoutError:
            if proc.returncode is not None:
                result.died_at = i
                break
            status = await _status(control)
            before = svc.connections[i - 1].fault if i else "the start"
            result.errors.append(f"connection {i} never finished (after {before}); "
                                 f"process {'alive' if proc.returncode is None else 'dead'}, "
                                 f"status {status}")
            break
        if proc.returncode is not None:
            result.died_at = i
            break
        if i + 1 in plan.rss_marks:
            result.rss_kb[i + 1] = rss_anon_kb(proc.pid)
        if plan.progress and (i + 1) % 50 == 0:
            print(f"  {i + 1} connections, {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)
        fault = FAULTS[conn.fault]
        if fault.halts is None:
            continue
        result.halts_expected += 1
        status = await _wait_halted(control, 10.0)
        if status is None or status.get("state") != "halted":
            conn.problems.append(f"no halt after {conn.fault}: status {status}")
        elif status.get("halt_reason") != fault.halts:
            conn.problems.append(f"halted for {status.get('halt_reason')}, wanted {fault.halts}")
        else:
            result.halts_seen += 1
            conn.halted = fault.halts
        await asyncio.sleep(plan.quiet_s)
        if len(svc.connections) > i + 1:
            conn.problems.append("a new attempt came while halted")
        conn.t_resume = time.monotonic()
        proc.send_signal(signal.SIGHUP)  # a person fixed the key / topped up the credits
    else:
        try:  # the healthy connection after the last fault: audio must come back there too
            await svc.wait_audio(plan.connections, plan.next_timeout)
        except TimeoutError:
            result.errors.append("no audio on the healthy connection after the last fault")
        if proc.returncode is not None:
            result.died_at = plan.connections


async def _stop(proc: asyncio.subprocess.Process) -> int | None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(10):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    return proc.returncode
