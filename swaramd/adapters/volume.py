"""The speaker's software volume, 0-100, kept in the state directory across restarts.

The `set_volume` tool changes it; the playback path reads `gain_q15`
once per period. Level 100 is exactly unity (the bytes pass unchanged), level 0
is silence, and in between the gain follows a square law, which sounds evenly
spaced to the ear where a linear gain crowds the useful range at the top.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

VOLUME_FILE = "volume"
_UNITY_Q15 = 1 << 15


class Volume:
    """The persisted speaker level; reads once at start, writes atomically on change."""

    def __init__(self, state_dir: Path | None, default: int) -> None:
        self.path = state_dir / VOLUME_FILE if state_dir is not None else None
        self._level = _check(default)
        if self.path is not None:
            self._level = self._load(self._level)

    @property
    def level(self) -> int:
        """The current level, 0-100."""
        return self._level

    @property
    def gain_q15(self) -> int:
        """The linear gain as a Q15 integer (32768 is unity) for the playback path."""
        return gain_q15(self._level)

    def set(self, level: int) -> int:
        """Change the level (0-100) and persist it; raises ValueError outside the range."""
        self._level = _check(level)
        if self.path is not None:
            self._save()
        return self._level

    def _load(self, default: int) -> int:
        assert self.path is not None
        try:
            return _check(int(self.path.read_text(encoding="ascii").strip()))
        except FileNotFoundError:
            return default
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable volume file %s: %s", self.path, exc)
            return default

    def _save(self) -> None:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".volume.", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{self._level}\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            # The level still applies for this run; losing it at restart is not worth a crash.
            log.warning("could not save the volume to %s: %s", self.path, exc)


def gain_q15(level: int) -> int:
    """Q15 gain for a level: 0 is silence, 100 exactly unity, square law between."""
    level = _check(level)
    return (level * level * _UNITY_Q15) // 10_000


def _check(level: int) -> int:
    if isinstance(level, bool) or not isinstance(level, int):
        raise ValueError(f"volume must be a whole number from 0 to 100 (got {level!r})")
    if not 0 <= level <= 100:
        raise ValueError(f"volume must be from 0 to 100 (got {level})")
    return level
