"""sd_notify in a few lines of stdlib (docs/design.md, "systemd"), a no-op without `$NOTIFY_SOCKET`.

The protocol is one datagram of `KEY=VALUE` lines to the socket systemd
names in `$NOTIFY_SOCKET` (a leading `@` means the abstract namespace). The
daemon sends READY=1 once the config is read and the audio engine has had
its first outcome (open, or failed and retrying: READY=1 goes out with
STATUS=audio_error then, since holding it back would have systemd kill a
daemon that heals itself), STATUS= on every state change, WATCHDOG=1 only
while its loop turns and the audio makes progress (callbacks arriving, or the
device thread retrying within its grace period: `AudioEngine.alive`),
RELOADING=1/READY=1 around SIGHUP and STOPPING=1 on shutdown.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    """Talks to systemd's notify socket; every method is safe to call without systemd."""

    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self._address = ("\0" + address[1:]) if address and address.startswith("@") else address
        self._sock: socket.socket | None = None
        self._stopping = False
        if self._address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """True when running under a systemd that listens."""
        return self._sock is not None

    def notify(self, *lines: str) -> None:
        """Send one datagram of `KEY=VALUE` lines; failures are logged, never raised."""
        if self._sock is None or self._address is None:
            return
        try:
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)

    def ready(self, status: str = "") -> None:
        """The service can serve (config and audio are open)."""
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        """A one-line status shown by `systemctl status`."""
        self.notify(f"STATUS={text}")

    def watchdog(self) -> None:
        """We are alive: the loop turns and the audio makes progress."""
        self.notify("WATCHDOG=1")

    def reloading(self) -> None:
        """A SIGHUP reload starts (READY=1 ends it)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        """Shutdown has begun (said once, however many paths lead to it)."""
        if not self._stopping:
            self._stopping = True
            self.notify("STOPPING=1")

    def close(self) -> None:
        """Release the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """Half of systemd's `WatchdogSec=` for this process, or None when there is no watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 1e6 / 2)
    except ValueError:
        return None
