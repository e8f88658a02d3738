"""The config model: `config.yaml` into typed, frozen objects.

Rules this module keeps:

- Every key has a type, a range or a set of choices, and a default; a key we
  do not know is an error, never silently ignored (a typo must not hide).
- Every problem names where it is: `FILE:LINE: dotted.key: problem`, from the
  YAML node marks. All problems are collected, not just the first.
- Parsing is pure: text in, `Config` or `ConfigError` out. Reading the key
  file is the credentials adapter's job; this module only records where the
  key is to come from.
"""

from __future__ import annotations

import ipaddress
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from swaramd.core.errors import ConfigError, ConfigProblem
from swaramd.core.states import Duplex, Mode
from swaramd.core.tools import BUILTIN_TOOLS
from swaramd.core.wake import DEFAULT_SENSITIVITY, WAKE_WORDS

DEFAULT_URL = "wss://api.swaram.live/v1/realtime?model=mal-realtime-simple"
DEFAULT_INSTRUCTIONS = (
    "You are a friendly Malayalam voice assistant on a small home device. "
    "Keep replies short and speakable."
)
TURN_DETECTION_KEYS = {
    "type": ("server_vad", "semantic_vad"),
    "threshold": float,
    "prefix_padding_ms": int,
    "silence_duration_ms": int,
    "create_response": bool,
    "interrupt_response": bool,
}


class Backend(StrEnum):
    """Where the audio comes from and goes to (`audio.backend`)."""

    PYAUDIO = "pyaudio"
    WAV = "wav"


class Gate(StrEnum):
    """What of the microphone goes up (`audio.gate`)."""

    VAD = "vad"     # only speech, with pre-roll
    OPEN = "open"   # everything


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where swaram is and where the API key comes from."""

    url: str = DEFAULT_URL
    api_key_file: Path | None = Path("/etc/swaramd/api_key")
    api_key_env: str | None = None


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What goes into the opening `session.update` (fixed for a connection)."""

    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = "mal-female"
    tools: tuple[str, ...] = BUILTIN_TOOLS
    tool_choice: str = "auto"
    turn_detection: Mapping[str, Any] | None = None
    tool_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """Audio devices and the uplink/playback shaping."""

    backend: Backend = Backend.PYAUDIO
    input_device: str | int = "default"
    output_device: str | int = "default"
    frame_ms: int = 40
    wav_input: Path | None = None
    wav_output: Path | None = None
    duplex: Duplex = Duplex.AUTO
    echo_cancel: str = "on"
    gate: Gate = Gate.OPEN
    prebuffer_ms: int = 80
    echo_tail_ms: int = 300
    volume: int = 100   # unity: the reply's samples reach the device as they came


@dataclass(frozen=True, slots=True)
class GpioConfig:
    """The button and LED (BCM pin numbers)."""

    pin_factory: str = "auto"
    button_pin: int = 17
    led_pin: int = 25
    long_press_s: float = 2.0
    led_active_high: bool = True
    rgb_pins: tuple[int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class ConversationConfig:
    """How conversations start and end."""

    mode: Mode = Mode.ON_DEMAND
    idle_timeout_s: float = 20.0
    wake_word: str = "none"
    wake_sensitivity: float = DEFAULT_SENSITIVITY


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """The local control socket that `swaramd status` talks to."""

    socket: Path = Path("/run/swaramd/control.sock")


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Log verbosity; the API key stays hidden at every level."""

    level: str = "info"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated config, plus where each key was written."""

    server: ServerConfig = field(default_factory=ServerConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    log: LogConfig = field(default_factory=LogConfig)
    path: str = "<defaults>"
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def where(self, key: str) -> int | None:
        """The line a dotted key was written on, if it was written at all."""
        return self.lines.get(key)

    def problem(self, key: str, problem: str) -> ConfigProblem:
        """`problem` with `key`, located at this file and the key's line (when written)."""
        return ConfigProblem(self.path, self.where(key), key, problem)


class _Bad(Exception):
    """A value failed its check; the message is the problem, for the caller to locate."""


# --- value checks: each takes the constructed Python value, returns the typed value ---

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 4
_SHORT.maxlevel = 2


def _show(v: Any) -> str:
    """`v` for a one-line message: short whatever its size (a 200 kB string, a number of
    thousands of digits, a list nested by YAML aliases)."""
    try:
        return _SHORT.repr(v)
    except ValueError:                  # an int past Python's digit limit for str()
        return "a number of thousands of digits"

Check = Callable[[Any], Any]


def _one_of(kind: type[StrEnum]) -> Check:
    choices = [k.value for k in kind]

    def check(v: Any) -> StrEnum:
        if not isinstance(v, str) or v not in choices:
            raise _Bad(f"must be one of {', '.join(choices)} (got {_show(v)})")
        return kind(v)
    return check


def _choice(*choices: str) -> Check:
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in choices:
            raise _Bad(f"must be one of {', '.join(choices)} (got {_show(v)})")
        return v
    return check


def _on_off(v: Any) -> str:
    # YAML 1.1 reads a bare on/off (and yes/no, true/false) as a boolean.
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(_choice("on", "off")(v))


def _int(lo: int, hi: int) -> Check:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"must be a whole number (got {_show(v)})")
        if not lo <= v <= hi:
            raise _Bad(f"must be from {lo} to {hi} (got {_show(v)})")
        return v
    return check


def _float(lo: float, hi: float) -> Check:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _Bad(f"must be a number (got {_show(v)})")
        try:
            f = float(v)
        except OverflowError:
            f = float("inf")
        if not lo <= f <= hi:
            raise _Bad(f"must be from {lo:g} to {hi:g} (got {_show(v)})")
        return f
    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad(f"must be true or false (got {_show(v)})")
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _Bad(f"must be a non-empty string (got {_show(v)})")
    return v


def _path(v: Any) -> Path:
    return Path(_text(v))


def _optional(check: Check) -> Check:
    def opt(v: Any) -> Any:
        return None if v is None else check(v)
    return opt


def _device(v: Any) -> str | int:
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 0:
            raise _Bad(f"a device index must be 0 or more (got {_show(v)})")
        return v
    if isinstance(v, str) and v.strip():
        return v
    raise _Bad(f"must be a device name (or part of one) or an index (got {_show(v)})")


def _env_name(v: Any) -> str:
    name = _text(v)
    if not name.replace("_", "a").isalnum() or not name.isascii() or name[0].isdigit():
        # The value is not repeated: it may be a key pasted here by mistake.
        raise _Bad("must be an environment variable name (letters, digits and _, not starting "
                   "with a digit)")
    return name


# Query parameters that carry a credential: the key has its own sources, and a URL
# is printed in places a key must never be.
_SECRET_PARAMS = {"api_key", "apikey", "key", "token", "access_token", "auth", "password"}


def _url(v: Any) -> str:
    url = _text(v)
    if any(c.isspace() or not c.isprintable() for c in url):
        raise _Bad("must not contain spaces or control characters")
    authority = url.partition("//")[2]
    for end in "/?#":
        authority = authority.partition(end)[0]
    if "@" in authority:                # checked first: no message below may quote it
        raise _Bad("must not carry a user name or password; the API key comes from "
                   "api_key_file or api_key_env")
    try:
        parts = urlsplit(url)
        port = parts.port               # checks it: a number from 0 to 65535
    except ValueError as exc:           # a bad [IPv6] host, a port that is not a number
        raise _Bad(f"is not a valid URL: {exc}") from None
    if port == 0:
        raise _Bad("has port 0")
    if parts.scheme not in ("wss", "ws"):
        raise _Bad(f"must be a wss:// URL (got scheme {parts.scheme or 'none'!r})")
    if not parts.hostname:
        raise _Bad("has no host")
    host_problem = _host_problem(parts.hostname)
    if host_problem is not None:
        raise _Bad(host_problem)
    if parts.scheme == "ws" and not _is_loopback(parts.hostname):
        raise _Bad(f"ws:// is unencrypted; allowed only to a loopback host, not {parts.hostname}")
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in _SECRET_PARAMS:
            raise _Bad(f"must not carry a credential (query parameter {_show(name)}); the API "
                       "key comes from api_key_file or api_key_env")
    return url


def _host_problem(host: str) -> str | None:
    """Why name lookup would refuse `host` (as the resolver encodes it), or None."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        encoded = host.encode("idna")   # what name lookup does; it raises the same way
    except UnicodeError as exc:
        reason = str(exc).rsplit(": ", 1)[-1].rstrip(")") or "not a valid host name"
        return f"has a host name that cannot be looked up ({_show(host)}: {reason})"
    if len(encoded.rstrip(b".")) > 253:
        return f"has a host name longer than 253 characters ({_show(host)})"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tools(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise _Bad(f"must be a list of tool names (got {_show(v)})")
    for name in v:
        if name not in BUILTIN_TOOLS:
            raise _Bad(f"unknown tool {_show(name)}; built in: {', '.join(BUILTIN_TOOLS)}")
    if len(set(v)) != len(v):
        raise _Bad("names a tool twice")
    return tuple(v)


def _turn_detection(v: Any) -> Mapping[str, Any] | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _Bad("must be a mapping (or left out for the service's automatic turn-taking)")
    for key, value in v.items():
        want = TURN_DETECTION_KEYS.get(key)
        if want is None:
            raise _Bad(f"unknown key {_show(key)}; known: {', '.join(TURN_DETECTION_KEYS)}")
        if isinstance(want, tuple):
            _choice(*want)(value)
        elif want is float:
            _float(0.0, 1.0)(value)
        elif want is int:
            _int(0, 10_000)(value)
        else:
            _bool(value)
    return MappingProxyType(dict(v))


def _rgb_pins(v: Any) -> tuple[int, int, int] | None:
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != 3:
        raise _Bad("must be a list of three BCM pins [red, green, blue]")
    pins = tuple(_int(0, 27)(p) for p in v)
    return (pins[0], pins[1], pins[2])


_PIN = _int(0, 27)

SCHEMA: dict[str, tuple[type, dict[str, Check]]] = {
    "server": (ServerConfig, {
        "url": _url,
        "api_key_file": _optional(_path),
        "api_key_env": _optional(_env_name),
    }),
    "session": (SessionConfig, {
        "instructions": _text,
        "voice": _choice("mal-female", "mal-male"),
        "tools": _tools,
        "tool_choice": _choice("auto", "none", "required"),
        "turn_detection": _turn_detection,
        "tool_timeout_s": _float(0.1, 60.0),
    }),
    "audio": (AudioConfig, {
        "backend": _one_of(Backend),
        "input_device": _device,
        "output_device": _device,
        "frame_ms": _int(10, 200),
        "wav_input": _optional(_path),
        "wav_output": _optional(_path),
        "duplex": _one_of(Duplex),
        "echo_cancel": _on_off,
        "gate": _optional(_one_of(Gate)),
        "prebuffer_ms": _int(0, 2000),
        "echo_tail_ms": _int(0, 5000),
        "volume": _int(0, 100),
    }),
    "gpio": (GpioConfig, {
        "pin_factory": _choice("auto", "mock", "none"),
        "button_pin": _PIN,
        "led_pin": _PIN,
        "long_press_s": _float(0.3, 30.0),
        "led_active_high": _bool,
        "rgb_pins": _rgb_pins,
    }),
    "conversation": (ConversationConfig, {
        "mode": _one_of(Mode),
        "idle_timeout_s": _float(1.0, 3600.0),
        "wake_word": lambda v: "none" if v is None else _choice("none", *WAKE_WORDS)(v),
        "wake_sensitivity": _float(0.0, 1.0),
    }),
    "control": (ControlConfig, {"socket": _path}),
    "log": (LogConfig, {"level": _choice("debug", "info", "warning", "error")}),
}


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raises `ConfigError` naming every problem."""
    name, file = str(path), Path(path)
    if file.exists() and not file.is_file() and not file.is_dir():
        # a FIFO or a device would block the read (on SIGHUP, the daemon's loop)
        raise ConfigError([ConfigProblem(name, None, "", "is not a regular file")])
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(name, None, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(name, None, "", "is not UTF-8 text")]) from None
    return parse_config(text, name)


def parse_config(text: str, filename: str = "<config>") -> Config:
    """Validate config text; raises `ConfigError` naming every problem with its line."""
    try:
        loader = yaml.SafeLoader(text)      # checks every character first
    except yaml.reader.ReaderError as exc:
        at = text.count("\n", 0, exc.position) + 1
        ch = exc.character
        code = ch if isinstance(ch, int) else ord(ch[0]) if ch else 0
        raise ConfigError([ConfigProblem(filename, at, "", f"not valid YAML: character "
                                         f"#x{code:04x} is not allowed")]) from None
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem(filename, line, "", f"not valid YAML: {exc.problem}")]) \
            from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(filename, None, "", "not valid YAML: "
                                         + " ".join(str(exc).split()))]) from None
    finally:
        loader.dispose()
    return _Builder(filename, loader).build(root)


class _Builder:
    """Walks the YAML node tree, collecting values, lines and problems."""

    def __init__(self, filename: str, loader: yaml.SafeLoader) -> None:
        self.filename = filename
        self.loader = loader
        self.problems: list[ConfigProblem] = []
        self.lines: dict[str, int] = {}

    def fail(self, node: yaml.Node | None, key: str, problem: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(ConfigProblem(self.filename, line, key, problem))

    def build(self, root: yaml.Node | None) -> Config:
        sections: dict[str, Any] = {}
        for name, node in self._mapping(root, ""):
            if name not in SCHEMA:
                self._problem(name, f"unknown section; known: {', '.join(SCHEMA)}")
                continue
            sections[name] = self._section(name, node)
        values = {name: sections.get(name, {}) for name in SCHEMA}
        self._cross_check(values)
        if self.problems:
            raise ConfigError(self.problems)
        built = {name: SCHEMA[name][0](**values[name]) for name in SCHEMA}
        return Config(**built, path=self.filename, lines=MappingProxyType(dict(self.lines)))

    def _mapping(self, node: yaml.Node | None, key: str) -> list[tuple[str, yaml.Node]]:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            return []
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, key, "must be a mapping of keys to values")
            return []
        seen: set[str] = set()
        pairs = []
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            dotted = f"{key}.{name}" if key else str(name)
            if not isinstance(name, str):
                self.fail(key_node, key, "keys must be plain names")
            elif name in seen:
                self.fail(key_node, dotted, "is given twice")
            else:
                seen.add(name)
                self.lines[dotted] = key_node.start_mark.line + 1
                pairs.append((name, value_node))
        return pairs

    def _section(self, section: str, node: yaml.Node) -> dict[str, Any]:
        checks = SCHEMA[section][1]
        out: dict[str, Any] = {}
        for name, value_node in self._mapping(node, section):
            dotted = f"{section}.{name}"
            check = checks.get(name)
            if check is None:
                self._problem(dotted, f"unknown key; known: {', '.join(checks)}")
                continue
            try:
                out[name] = check(self.loader.construct_object(value_node, deep=True))
            except _Bad as exc:     # at the key's line: an alias's node is at its anchor
                self._problem(dotted, str(exc))
            except yaml.MarkedYAMLError as exc:     # one line, at the problem's own line
                mark = exc.problem_mark or exc.context_mark or value_node.start_mark
                self.problems.append(ConfigProblem(
                    self.filename, mark.line + 1, dotted,
                    f"not a valid value: {exc.problem or exc.context}"))
            except (yaml.YAMLError, ValueError, OverflowError) as exc:
                # e.g. an int of more digits than Python converts (ValueError)
                self.fail(value_node, dotted,
                          f"not a valid value: {' '.join(str(exc).split())[:120]}")
        return out

    def _line(self, key: str) -> int | None:
        return self.lines.get(key)

    def _problem(self, key: str, problem: str) -> None:
        self.problems.append(ConfigProblem(self.filename, self._line(key), key, problem))

    def _cross_check(self, v: dict[str, dict[str, Any]]) -> None:
        server, audio, gpio, conv = v["server"], v["audio"], v["gpio"], v["conversation"]
        if server.get("api_key_file") and server.get("api_key_env"):
            self._problem("server.api_key_env", "give api_key_file or api_key_env, not both")
        elif "api_key_env" in server and "api_key_file" not in server:
            server["api_key_file"] = None
        mode = conv.get("mode", ConversationConfig().mode)
        if mode is Mode.PUSH_TO_TALK and conv.get("wake_word", "none") != "none":
            self._problem("conversation.wake_word", "push_to_talk ignores the wake word (holding "
                          "the button is the talk): set it to none, or use on_demand or always_on")
        if audio.get("gate") is None:
            audio["gate"] = Gate.VAD if mode is Mode.ALWAYS_ON else Gate.OPEN
        pins = GpioConfig()
        button = gpio.get("button_pin", pins.button_pin)
        if button == gpio.get("led_pin", pins.led_pin):
            self._problem("gpio.led_pin", "is the same pin as gpio.button_pin")
        rgb = gpio.get("rgb_pins")
        if rgb and (len(set(rgb)) != 3 or button in rgb):
            self._problem("gpio.rgb_pins", "pins must differ from each other and the button")
