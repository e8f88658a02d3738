"""Logging to stderr in a form journald reads, with the API key redacted everywhere.

Under systemd (`$JOURNAL_STREAM` set) each line starts with a `<N>` syslog
priority, which journald turns into the entry's level. The redaction is a
filter on the root logger's handler, so it covers every logger that
propagates, including the debug output of websockets (which logs handshake
headers), and exception text too; no call site has to be careful.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from typing import TextIO

REDACTED = "[redacted]"
# Whatever follows `Bearer ` is a credential, whoever logs it (websockets' handshake at debug).
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")
_PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
               logging.CRITICAL: 2}


class SecretFilter(logging.Filter):
    """Replaces every known secret in a record's final text (message and traceback)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Replace the secrets to hide (after SIGHUP re-reads the key)."""
        # Every key, however short: a short one may redact ordinary words too, but a
        # mangled line is better than a leaked key.
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """`text` with every secret, and any `Bearer` credential, replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JournalFormatter(logging.Formatter):
    """`<N>` priority prefixes for journald; timestamps only when not under journald."""

    def __init__(self, journal: bool) -> None:
        fmt = "%(name)s: %(message)s" if journal else \
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
        super().__init__(fmt)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.journal:
            return text
        prio = _PRIORITIES.get(record.levelno, 6)
        # journald reads one entry per line: prefix each line of a traceback too.
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines())


def setup_logging(level: str, secrets: Iterable[str] = (), stream: TextIO | None = None,
                  journal: bool | None = None) -> SecretFilter:
    """Install the one root handler; returns its secret filter so the key can be updated."""
    if journal is None:
        journal = bool(os.environ.get("JOURNAL_STREAM"))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JournalFormatter(journal))
    secret_filter = SecretFilter(secrets)
    handler.addFilter(secret_filter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.addFilter(secret_filter)
    root.setLevel(level.upper())
    return secret_filter
