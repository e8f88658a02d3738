"""Where the API key comes from, in DESIGN §3's order, with errors that name the config line.

Order: `$CREDENTIALS_DIRECTORY/api_key` (systemd `LoadCredential=`) when
present, else `server.api_key_file`, else `server.api_key_env`. The key's
value never appears in an error: only where it was looked for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from swaramd.core.config import Config
from swaramd.core.errors import ConfigError, ConfigProblem

CREDENTIAL_NAME = "api_key"


def read_api_key(cfg: Config, environ: Mapping[str, str] | None = None) -> str:
    """The API key, stripped; raises `ConfigError` naming the source that failed."""
    env = os.environ if environ is None else environ
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / CREDENTIAL_NAME).exists():
        return _read_file(Path(cred_dir) / CREDENTIAL_NAME, cfg, "")
    server = cfg.server
    if server.api_key_file is not None:
        return _read_file(server.api_key_file, cfg, "server.api_key_file")
    if server.api_key_env is not None:
        value = env.get(server.api_key_env, "").strip()
        if not value:
            raise _problem(cfg, "server.api_key_env",
                           f"environment variable {server.api_key_env} is not set or empty")
        return value
    raise _problem(cfg, "server", "no key source: set api_key_file or api_key_env")


def _read_file(path: Path, cfg: Config, key: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise _problem(cfg, key, f"key file {path} does not exist") from None
    except PermissionError:
        raise _problem(cfg, key, f"key file {path} is not readable by this user") from None
    except IsADirectoryError:
        raise _problem(cfg, key, f"key file {path} is a directory") from None
    except OSError as exc:
        raise _problem(cfg, key, f"key file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise _problem(cfg, key, f"key file {path} is not text") from None
    if not value:
        raise _problem(cfg, key, f"key file {path} is empty")
    if any(c.isspace() for c in value):
        raise _problem(cfg, key, f"key file {path} holds more than one word")
    return value


def _problem(cfg: Config, key: str, problem: str) -> ConfigError:
    if not key:  # the systemd credential is not in the config file
        return ConfigError([ConfigProblem("$CREDENTIALS_DIRECTORY", None, CREDENTIAL_NAME,
                                          problem)])
    return ConfigError([ConfigProblem(cfg.path, cfg.where(key), key, problem)])
