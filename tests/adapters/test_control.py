"""The control socket: mode 0660, status JSON with the documented fields, removed on exit."""

from __future__ import annotations

import asyncio
import socket
import stat
import time

import pytest

from swaramd.adapters.control import ControlError, query, serve_control
from swaramd.core.states import HaltReason, State
from swaramd.core.status import AudioCounters, Status

FIELDS = {"state", "halt_reason", "connected", "last_close_code", "reconnects", "uptime_s",
          "audio", "protocol"}


async def ask(path):
    return await asyncio.to_thread(query, path)


async def test_status_over_the_socket(tmp_path):
    path = tmp_path / "run" / "control.sock"
    status = Status(started_at=time.monotonic() - 5)
    status.audio = AudioCounters(underruns=2)
    status.protocol.malformed_frames = 3
    async with serve_control(path, lambda: status.snapshot(time.monotonic())):
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        reply = await ask(path)
        assert FIELDS <= set(reply)
        assert reply["state"] == "idle" and reply["halt_reason"] is None
        assert reply["uptime_s"] >= 5
        assert reply["audio"] == {"underruns": 2, "overruns": 0, "dropped_frames": 0,
                                  "echo_cancel": {"active": False, "erle_db": None,
                                                  "delay_ms": None}}
        assert reply["protocol"] == {"malformed_frames": 3, "error_events": 0,
                                     "failed_responses": 0}
        status.state, status.halt_reason, status.last_close_code = \
            State.HALTED, HaltReason.CREDITS, 4003
        reply = await ask(path)
        assert (reply["state"], reply["halt_reason"], reply["last_close_code"]) == \
            ("halted", "credits", 4003)
    assert not path.exists()


def test_halt_reason_is_null_unless_halted():
    status = Status(started_at=0.0, state=State.BACKOFF, halt_reason=HaltReason.AUTH)
    assert status.snapshot(1.0)["halt_reason"] is None


async def test_unknown_command_and_silent_client(tmp_path):
    path = tmp_path / "c.sock"
    async with serve_control(path, lambda: {"state": "idle"}):
        reply = await asyncio.to_thread(query, path, "reboot")
        assert "unknown command" in reply["error"]
        # A client that connects and says nothing is dropped, and others still get answers.
        with socket.socket(socket.AF_UNIX) as idle:
            idle.connect(str(path))
            assert (await ask(path))["state"] == "idle"


async def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path):
    path = tmp_path / "c.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    async with serve_control(path, lambda: {"state": "idle"}):
        with pytest.raises(ControlError, match="already running"):
            async with serve_control(path, lambda: {}):
                pass
        assert (await ask(path))["state"] == "idle"


def test_query_without_a_daemon(tmp_path):
    with pytest.raises(ControlError, match="is swaramd running"):
        query(tmp_path / "absent.sock")


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: p.write_text("precious\n"), "exists and is not a socket"),
    (lambda p: p.mkdir(), "exists and is not a socket"),
    (lambda p: p.symlink_to(p.parent / "elsewhere"), "exists and is not a socket"),
])
async def test_anything_but_a_socket_at_the_path_is_refused_and_kept(tmp_path, make, expected):
    path = tmp_path / "c.sock"
    make(path)
    before = path.lstat()
    with pytest.raises(ControlError, match=expected):
        async with serve_control(path, lambda: {}):
            pass
    after = path.lstat()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)    # untouched
    if path.is_file():
        assert path.read_text() == "precious\n"


async def test_a_path_under_a_file_or_too_long_is_a_one_line_error(tmp_path):
    (tmp_path / "key").write_text("k\n")
    with pytest.raises(ControlError, match=r"(?i)not a directory"):
        async with serve_control(tmp_path / "key" / "c.sock", lambda: {}):
            pass
    long = tmp_path / ("d" * 120) / "c.sock"
    with pytest.raises(ControlError, match="too long for a unix socket"):
        async with serve_control(long, lambda: {}):
            pass
    assert not long.parent.exists()


@pytest.mark.parametrize("replace", ["file", "directory"])
async def test_what_replaced_the_socket_while_running_is_kept_at_exit(tmp_path, replace, caplog):
    """Exit removes our socket only: a file put in its place used to be deleted, and a
    directory made unlink raise at stop (the daemon's exit with a traceback)."""
    path = tmp_path / "c.sock"
    async with serve_control(path, lambda: {}):
        path.unlink()
        if replace == "file":
            path.write_text("keep me\n")
        else:
            path.mkdir()
    assert path.exists()
    assert path.read_text() == "keep me\n" if replace == "file" else path.is_dir()
    assert "no longer our control socket" in caplog.text
