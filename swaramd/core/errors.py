"""The one exception tree of swaramd.

Everything swaramd raises on purpose derives from `SwaramdError`. Problems in
the user's own input (config, key) are `ConfigError`; problems with a device
are `AudioDeviceError`. Mistakes of the remote peer (malformed frames, error
events) are not exceptions at all: they are values, counted in status.
"""

from __future__ import annotations

from dataclasses import dataclass


class SwaramdError(Exception):
    """Base class of every error swaramd raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config file, located by file, line and dotted key."""

    file: str
    line: int | None
    key: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"


class ConfigError(SwaramdError, ValueError):
    """The config (or the key source it names) is invalid; carries every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class AudioDeviceError(SwaramdError, OSError):
    """An audio device is missing, cannot be opened at a usable rate, or failed."""


class PanelError(SwaramdError):
    """The button/LED panel cannot be set up (for example: no GPIO on this machine).

    `key` is the config key to fix (`gpio.pin_factory`, `gpio.button_pin`, ...), so the
    command line can report it as `FILE:LINE: key: problem`."""

    def __init__(self, problem: str, key: str = "gpio") -> None:
        super().__init__(problem)
        self.key = key
