"""Key sources in their documented order; errors name where, never the key."""

from __future__ import annotations

import os

import pytest

from swaramd.adapters.credentials import read_api_key
from swaramd.core.config import parse_config
from swaramd.core.errors import ConfigError

KEY = "swaram_secret_key_abcdef123456"


def cfg_with(text: str):
    return parse_config(text, "c.yaml")


def test_key_file(tmp_path):
    (tmp_path / "k").write_text(KEY + "\n")
    assert read_api_key(cfg_with(f"server:\n  api_key_file: {tmp_path / 'k'}\n"), {}) == KEY


def test_credentials_directory_wins(tmp_path):
    (tmp_path / "api_key").write_text("swaram_from_systemd_credential")
    cfg = cfg_with("server:\n  api_key_file: /nonexistent/k\n")
    assert read_api_key(cfg, {"CREDENTIALS_DIRECTORY": str(tmp_path)}) == \
        "swaram_from_systemd_credential"


def test_env_source():
    cfg = cfg_with("server:\n  api_key_env: SWARAM_API_KEY\n")
    assert read_api_key(cfg, {"SWARAM_API_KEY": KEY}) == KEY
    with pytest.raises(ConfigError, match=r"c.yaml:2: server.api_key_env: the environment "
                                          r"variable named here is not set"):
        read_api_key(cfg, {})


@pytest.mark.parametrize(("setup", "message"), [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_text("   \n"), "is empty"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_text("two words"), "more than one word"),
    (lambda p: os.mkfifo(p), "is not a regular file"),            # reading it would block
    (lambda p: p.write_bytes(b"swaram_ab\x01cd\n"), "cannot go in an HTTP header"),
    (lambda p: p.write_text("x" * 5000), "too large to be a key"),
])
def test_key_file_problems_name_file_and_line(tmp_path, setup, message):
    path = tmp_path / "k"
    setup(path)
    cfg = cfg_with(f"# swaramd\nserver:\n  api_key_file: {path}\n")
    with pytest.raises(ConfigError) as info:
        read_api_key(cfg, {})
    assert str(info.value).startswith("c.yaml:3: server.api_key_file: key file")
    assert message in str(info.value)


def test_unreadable_key_file(tmp_path, monkeypatch):
    # CI runs as root, which reads any file: make the read fail as it would for the daemon user.
    path = tmp_path / "k"
    path.write_text(KEY)

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(path), "read_bytes", denied)
    with pytest.raises(ConfigError, match="not readable by this user"):
        read_api_key(cfg_with(f"server:\n  api_key_file: {path}\n"), {})


def test_the_key_never_appears_in_an_error(tmp_path):
    path = tmp_path / "k"
    path.write_text(f"{KEY} extra")
    with pytest.raises(ConfigError) as info:
        read_api_key(cfg_with(f"server:\n  api_key_file: {path}\n"), {})
    assert KEY not in str(info.value)


def test_a_byte_order_mark_is_not_part_of_the_key(tmp_path):
    (tmp_path / "k").write_bytes(b"\xef\xbb\xbf" + KEY.encode() + b"\r\n")
    assert read_api_key(cfg_with(f"server:\n  api_key_file: {tmp_path / 'k'}\n"), {}) == KEY


def test_env_key_problems_do_not_repeat_the_variable_name():
    """A key pasted as the variable's name must not be printed back."""
    pasted = "swaram_live_9f8e7d6c5b4a"
    cfg = cfg_with(f"server:\n  api_key_env: {pasted}\n")
    for env, message in (({}, "not set or empty"), ({pasted: "two words"}, "one word"),
                         ({pasted: "ab\x7fcd"}, "HTTP header")):
        with pytest.raises(ConfigError) as info:
            read_api_key(cfg, env)
        assert str(info.value).startswith("c.yaml:2: server.api_key_env: ")
        assert message in str(info.value) and pasted not in str(info.value)
    with pytest.raises(ConfigError) as info:
        cfg_with("server:\n  api_key_env: sk-live-9f8e7d6c\n")
    assert "sk-live" not in str(info.value) and "environment variable name" in str(info.value)
