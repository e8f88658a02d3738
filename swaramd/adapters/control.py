"""The control socket: a unix stream socket that answers `status` with one JSON object.

The socket is created with mode 0660 (the daemon's user and group only) by
binding under a temporary name, setting the mode, and renaming it into place,
so it is never reachable with looser permissions. It is removed on exit,
unless something else has taken its place meanwhile (that is left alone). A
stale socket left by a crash is replaced; a live one (another daemon
answering) is an error, and so is anything else at that path (a file, a
directory, a symlink), which is never removed.

Wire: the client sends one line (`status`), the server answers one line of
JSON and closes. Every read and write on both sides has a time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from swaramd.core.errors import SwaramdError

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
_SUN_PATH_MAX = 107         # bytes in a unix socket address, less the terminating NUL (Linux)
_TEMP_EXTRA = 10            # what the temporary name adds: ".", "." and a pid of up to 8 digits
REQUEST_LIMIT = 256
IO_TIMEOUT_S = 2.0


class ControlError(SwaramdError):
    """The control socket could not be created, or no daemon answered on it."""


@contextlib.asynccontextmanager
async def serve_control(path: Path, snapshot: Callable[[], dict[str, Any]]) -> AsyncIterator[None]:
    """Serve `status` on `path` for the duration of the `async with` block."""
    sock = _bind(path)
    ours = os.lstat(path)
    server = await asyncio.start_unix_server(
        lambda r, w: _answer(r, w, snapshot), sock=sock, limit=REQUEST_LIMIT)
    log.debug("control socket at %s", path)
    try:
        yield
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IO_TIMEOUT_S):
                await server.wait_closed()
        _remove_if_ours(path, ours)


def _remove_if_ours(path: Path, ours: os.stat_result) -> None:
    """Remove our socket at exit, and nothing else: what replaced it while we ran (a file, a
    directory, another daemon's socket) is left alone, and no error here stops the exit."""
    try:
        now = os.lstat(path)
        if stat.S_ISSOCK(now.st_mode) and (now.st_dev, now.st_ino) == (ours.st_dev, ours.st_ino):
            path.unlink()
        else:
            log.warning("%s is no longer our control socket; left in place", path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("%s: could not remove the control socket: %s", path, exc.strerror or exc)


def socket_path_problem(path: Path) -> str | None:
    """Why `path` cannot be the control socket, or None. Anything there but a socket is
    left alone: a mistyped path must never cost the user a file."""
    if len(os.fsencode(path)) + _TEMP_EXTRA > _SUN_PATH_MAX:
        return (f"{path} is too long for a unix socket (at most "
                f"{_SUN_PATH_MAX - _TEMP_EXTRA} bytes here)")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    else:
        if not stat.S_ISSOCK(mode):
            return f"{path} exists and is not a socket; swaramd will not replace it"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    return None


def _bind(path: Path) -> socket.socket:
    problem = socket_path_problem(path)
    if problem is not None:
        raise ControlError(problem)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ControlError(f"{path.parent}: cannot create the directory: "
                           f"{exc.strerror or exc}") from None
    if path.is_socket():
        if _answers(path):
            raise ControlError(f"{path}: another swaramd is already running here")
        path.unlink()           # a stale socket left by a crash
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(temp))
        os.chmod(temp, SOCKET_MODE)
        os.replace(temp, path)
    except OSError as exc:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise ControlError(f"{path}: cannot create the control socket: "
                           f"{exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def _answers(path: Path) -> bool:
    """True if something listens on `path` (a stale socket refuses the connection)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  snapshot: Callable[[], dict[str, Any]]) -> None:
    try:
        async with asyncio.timeout(IO_TIMEOUT_S):
            line = await reader.readline()
            command = line.decode("utf-8", "replace").strip()
            if command == "status":
                reply: dict[str, Any] = snapshot()
            else:
                reply = {"error": f"unknown command {command[:40]!r}; known: status"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
    except (TimeoutError, OSError, asyncio.LimitOverrunError, ValueError) as exc:
        log.debug("control client dropped: %s", type(exc).__name__)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(IO_TIMEOUT_S):
                await writer.wait_closed()


def query(path: Path, command: str = "status", timeout: float = IO_TIMEOUT_S) -> dict[str, Any]:
    """Ask the daemon on `path`; raises `ControlError` when nothing answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except FileNotFoundError:
        raise ControlError(f"{path}: no control socket (is swaramd running?)") from None
    except PermissionError:
        raise ControlError(f"{path}: permission denied (are you in the swaramd group?)") from None
    except (OSError, TimeoutError) as exc:
        raise ControlError(f"{path}: no answer ({exc.strerror or type(exc).__name__})") from None
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        raise ControlError(f"{path}: the answer is not JSON") from None
    if not isinstance(reply, dict):
        raise ControlError(f"{path}: the answer is not a JSON object")
    return reply
