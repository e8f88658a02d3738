"""Key sources in DESIGN §3's order; errors name where, never the key."""

from __future__ import annotations

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
    with pytest.raises(ConfigError, match=r"c.yaml:2: server.api_key_env: environment variable"):
        read_api_key(cfg, {})


@pytest.mark.parametrize(("setup", "message"), [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_text("   \n"), "is empty"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_text("two words"), "more than one word"),
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

    monkeypatch.setattr(type(path), "read_text", denied)
    with pytest.raises(ConfigError, match="not readable by this user"):
        read_api_key(cfg_with(f"server:\n  api_key_file: {path}\n"), {})


def test_the_key_never_appears_in_an_error(tmp_path):
    path = tmp_path / "k"
    path.write_text(f"{KEY} extra")
    with pytest.raises(ConfigError) as info:
        read_api_key(cfg_with(f"server:\n  api_key_file: {path}\n"), {})
    assert KEY not in str(info.value)
