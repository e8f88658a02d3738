"""Config validation: every problem named as FILE:LINE: key.path: problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from swaramd.core.config import Config, load_config, parse_config
from swaramd.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml")
    return [str(p) for p in info.value.problems]


def test_the_shipped_config_is_valid_and_equals_the_defaults():
    shipped = load_config(ROOT / "config.yaml")
    defaults = Config()
    for section in ("server", "session", "audio", "gpio", "conversation", "control", "log"):
        assert getattr(shipped, section) == getattr(defaults, section), section


@pytest.mark.parametrize(("value", "expected"), [
    ("on", "on"), ("off", "off"), ('"on"', "on"), ('"off"', "off"), ("true", "on"),
    ("false", "off")])
def test_echo_cancel_takes_on_and_off_as_yaml_reads_them(value, expected):
    cfg = parse_config(f"audio:\n  echo_cancel: {value}\n", "c.yaml")
    assert cfg.audio.echo_cancel == expected


def test_echo_cancellation_and_auto_duplex_are_the_defaults():
    assert (Config().audio.echo_cancel, Config().audio.duplex) == ("on", "auto")


def test_an_empty_file_gives_the_defaults():
    assert parse_config("", "c.yaml").server == Config().server


@pytest.mark.parametrize(("text", "expected"), [
    ("server:\n  url: [\n", "c.yaml:3: not valid YAML"),
    ("audio:\n\tframe_ms: 20\n", "c.yaml:2: not valid YAML"),
    ("- a\n- b\n", "c.yaml:1: must be a mapping"),
    ("audio:\n  frame_ms: twenty\n", "c.yaml:2: audio.frame_ms: must be a whole number"),
    ("audio:\n  frame_ms: 5\n", "c.yaml:2: audio.frame_ms: must be from 10 to 200 (got 5)"),
    ("audio:\n  duplex: quarter\n", "c.yaml:2: audio.duplex: must be one of auto, half, full"),
    ("audio:\n  echo_cancel: maybe\n", "c.yaml:2: audio.echo_cancel: must be one of on, off"),
    ("gpio:\n  button_pin: true\n", "c.yaml:2: gpio.button_pin: must be a whole number"),
    ("gpio:\n  led_active_high: 1\n", "c.yaml:2: gpio.led_active_high: must be true or false"),
    ("log:\n  level: loud\n", "c.yaml:2: log.level: must be one of debug, info"),
    ("audio:\n  input_device: -1\n", "c.yaml:2: audio.input_device: a device index"),
    ("audio:\n  frame_mz: 20\n", "c.yaml:2: audio.frame_mz: unknown key"),
    ("sever:\n  url: wss://x\n", "c.yaml:1: sever: unknown section"),
    ("server:\n  url: ws://example.com/v1\n", "c.yaml:2: server.url: ws:// is unencrypted"),
    ("server:\n  url: http://localhost/\n", "c.yaml:2: server.url: must be a wss:// URL"),
    ("server:\n  url: wss://\n", "c.yaml:2: server.url: has no host"),
    ("server:\n  api_key_env: 9LIVES\n", "c.yaml:2: server.api_key_env: must be an environment"),
    ("server:\n  api_key_file: /k\n  api_key_env: K\n", "c.yaml:3: server.api_key_env: give"),
    ("gpio:\n  led_pin: 17\n", "c.yaml:2: gpio.led_pin: is the same pin"),
    ("gpio:\n  rgb_pins: [1, 2]\n", "c.yaml:2: gpio.rgb_pins: must be a list of three"),
    ("session:\n  tools: [get_weather]\n", "c.yaml:2: session.tools: unknown tool"),
    ("session:\n  voice: alloy\n", "c.yaml:2: session.voice: must be one of mal-female"),
    ("session:\n  turn_detection: {silence: 3}\n", "c.yaml:2: session.turn_detection: unknown"),
    ("audio:\n  volume: 1\n  volume: 2\n", "c.yaml:3: audio.volume: is given twice"),
    ("audio: 3\n", "c.yaml:1: audio: must be a mapping"),
    # Found by a bad-input audit: each was a traceback, a hang or a many-line message.
    ("log: {level: info}\n# \x01\n", "c.yaml:2: not valid YAML: character #x0001"),
    ("session:\n  tool_timeout_s: " + "9" * 400 + "\n", "c.yaml:2: session.tool_timeout_s: must"),
    ("audio:\n  frame_ms: " + "9" * 5000 + "\n", "c.yaml:2: audio.frame_ms: not a valid value"),
    ("audio:\n  frame_ms: 0x" + "f" * 4000 + "\n", "c.yaml:2: audio.frame_ms: must be from"),
    ("server:\n  url: 'ws://[::1/'\n", "c.yaml:2: server.url: is not a valid URL"),
    ("server:\n  url: 'wss://[zz]/'\n", "c.yaml:2: server.url: is not a valid URL"),
    ("server:\n  url: 'wss://host:99999/'\n", "c.yaml:2: server.url: is not a valid URL"),
    ("server:\n  url: 'wss://host:abc/'\n", "c.yaml:2: server.url: is not a valid URL"),
    ("server:\n  url: 'wss://host:0/'\n", "c.yaml:2: server.url: has port 0"),
    ("server:\n  url: 'wss://ho st/'\n", "c.yaml:2: server.url: must not contain spaces"),
    # Each passed, then name lookup raised UnicodeError and run exited 1.
    ("server:\n  url: 'wss://api..example/v1'\n",
     "c.yaml:2: server.url: has a host name that cannot be looked up ('api..example': label"),
    ("server:\n  url: 'wss://" + "a" * 64 + ".example/v1'\n",
     "c.yaml:2: server.url: has a host name that cannot be looked up"),
    ("server:\n  url: 'wss://.example/v1'\n",
     "c.yaml:2: server.url: has a host name that cannot be looked up"),
    ("server:\n  url: 'wss://" + "abc." * 70 + "com/v1'\n",
     "c.yaml:2: server.url: has a host name longer than 253"),
    # A credential in the URL would be printed where the key never is.
    ("server:\n  url: 'wss://me:s3cret@api.example/v1'\n",
     "c.yaml:2: server.url: must not carry a user name or password"),
    ("server:\n  url: 'wss://s3cret@api.example:x/v1'\n",
     "c.yaml:2: server.url: must not carry a user name or password"),
    ("server:\n  url: 'wss://api.example/v1?model=m&api_key=s3cret'\n",
     "c.yaml:2: server.url: must not carry a credential (query parameter 'api_key')"),
    ("server:\n  url: 'wss://api.example/v1?key=s3cret'\n",
     "c.yaml:2: server.url: must not carry a credential (query parameter 'key')"),
    ("server:\n  url: 'wss://api.example/v1?Token=s3cret'\n",
     "c.yaml:2: server.url: must not carry a credential (query parameter 'Token')"),
    ("session:\n\n  instructions: !custom x\n", "c.yaml:3: session.instructions: not a valid"),
    ("audio:\n  backend: " + "x" * 200_000 + "\n", "c.yaml:2: audio.backend: must be one of"),
])
def test_each_problem_names_file_line_and_key(text, expected):
    found = problems(text)
    assert any(p.startswith(expected) for p in found), [p[:200] for p in found]
    assert all("\n" not in p and len(p) < 300 for p in found), [p[:200] for p in found]


def test_a_credential_in_the_url_is_never_repeated():
    for url in ("wss://me:s3cret@api.example/v1", "wss://api.example/v1?api_key=s3cret",
                "wss://s3cret@api.example:x/v1"):
        found = problems(f"server:\n  url: '{url}'\n")
        assert found and not any("s3cret" in p for p in found), found


def test_idna_and_ip_hosts_pass():
    for url in ("wss://exämple.com/v1", "wss://[::1]:8443/v1", "wss://10.0.0.2/v1",
                "wss://api.example./v1?model=mal-realtime-simple"):
        assert parse_config(f"server:\n  url: '{url}'\n").server.url == url


def test_aliases_nested_a_billion_deep_are_reported_at_once():
    lines = ["x1: &a [l, l, l, l, l, l, l, l, l, l]"]
    for i, (prev, name) in enumerate(zip("abcdefgh", "bcdefghi", strict=True), 2):
        lines.append(f"x{i}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    found = problems("\n".join(lines) + "\nsession: {voice: *i}\n")      # 10**9 leaves
    assert any(p.startswith("c.yaml:10: session.voice: must be one of") for p in found)
    assert all(len(p) < 300 for p in found)


def test_every_problem_is_reported_not_just_the_first():
    found = problems("audio:\n  frame_ms: 5\n  duplex: x\nlog:\n  level: y\n")
    assert [p.split(":")[1] for p in found] == ["2", "3", "5"]


def test_ws_to_loopback_is_allowed():
    for host in ("localhost", "127.0.0.1", "127.8.9.10", "[::1]"):
        cfg = parse_config(f"server:\n  url: ws://{host}:8080/v1/realtime\n")
        assert cfg.server.url.startswith("ws://")


def test_pin_factory_none_is_valid_in_every_mode():
    # `none` (no button, no LED) is valid in every mode; the daemon warns instead.
    for mode in ("on_demand", "always_on", "push_to_talk"):
        cfg = parse_config(f"gpio:\n  pin_factory: none\nconversation:\n  mode: {mode}\n")
        assert cfg.gpio.pin_factory == "none" and cfg.conversation.mode == mode


def test_gate_default_depends_on_mode():
    assert parse_config("conversation:\n  mode: always_on\n").audio.gate == "vad"
    assert parse_config("conversation:\n  mode: on_demand\n").audio.gate == "open"
    assert parse_config("conversation:\n  mode: always_on\naudio:\n  gate: open\n").audio.gate \
        == "open"


def test_api_key_env_alone_drops_the_default_key_file():
    cfg = parse_config("server:\n  api_key_env: SWARAM_API_KEY\n")
    assert cfg.server.api_key_file is None and cfg.server.api_key_env == "SWARAM_API_KEY"


def test_lines_are_recorded_for_later_errors():
    cfg = parse_config("# comment\nserver:\n  api_key_file: /k\n", "c.yaml")
    assert cfg.where("server.api_key_file") == 3


def test_load_config_names_an_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


def test_wake_word_keys():
    cfg = parse_config("conversation:\n  mode: always_on\n  wake_word: okay_nabu\n"
                       "  wake_sensitivity: 0.7\n")
    assert cfg.conversation.wake_word == "okay_nabu"
    assert cfg.conversation.wake_sensitivity == 0.7
    assert parse_config("").conversation.wake_word == "none"
    assert parse_config("").conversation.wake_sensitivity == 0.5


@pytest.mark.parametrize(("body", "line", "words"), [
    ("  wake_word: hey_siri\n", 2, ["conversation.wake_word", "okay_nabu, hey_jarvis"]),
    ("  wake_sensitivity: 1.5\n", 2, ["conversation.wake_sensitivity", "from 0 to 1"]),
    ("  wake_sensitivity: loud\n", 2, ["conversation.wake_sensitivity", "must be a number"]),
    ("  mode: push_to_talk\n  wake_word: alexa\n", 3,
     ["conversation.wake_word", "push_to_talk ignores the wake word"]),
])
def test_wake_word_problems_name_their_line(body, line, words):
    with pytest.raises(ConfigError) as err:
        parse_config("conversation:\n" + body, "c.yaml")
    text = str(err.value.problems[0])
    assert text.startswith(f"c.yaml:{line}: ")
    for word in words:
        assert word in text
