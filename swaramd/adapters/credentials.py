"""Where the API key comes from, in the documented order, with errors that name the config line.

Order: `$CREDENTIALS_DIRECTORY/api_key` (systemd `LoadCredential=`) when
present, else `server.api_key_file`, else `server.api_key_env`. The key's
value never appears in an error: only where it was looked for.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from swaramd.core.config import Config
from swaramd.core.errors import ConfigError, ConfigProblem

CREDENTIAL_NAME = "api_key"
MAX_KEY_FILE_BYTES = 4096


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
        # The variable's name is not repeated: a key pasted here by mistake would be printed.
        value = env.get(server.api_key_env, "").strip()
        if not value:
            raise _problem(cfg, "server.api_key_env",
                           "the environment variable named here is not set or empty")
        problem = _key_problem(value)
        if problem:
            raise _problem(cfg, "server.api_key_env",
                           f"the environment variable named here {problem}")
        return value
    raise _problem(cfg, "server", "no key source: set api_key_file or api_key_env")


def _read_file(path: Path, cfg: Config, key: str) -> str:
    # A FIFO or a device would block the read (and, on SIGHUP, the whole loop): refuse all
    # but a regular file, and anything too large to be a key.
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise _problem(cfg, key, f"key file {path} is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise _problem(cfg, key, f"key file {path} is not a regular file")
        if info.st_size > MAX_KEY_FILE_BYTES:
            raise _problem(cfg, key, f"key file {path} is {info.st_size} bytes, too large to "
                                     f"be a key")
        value = path.read_bytes().decode("utf-8-sig").strip()
    except FileNotFoundError:
        raise _problem(cfg, key, f"key file {path} does not exist{_relative_to(path)}") from None
    except PermissionError:
        raise _problem(cfg, key, f"key file {path} is not readable by this user") from None
    except OSError as exc:
        raise _problem(cfg, key, f"key file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise _problem(cfg, key, f"key file {path} is not text") from None
    if not value:
        raise _problem(cfg, key, f"key file {path} is empty")
    problem = _key_problem(value)
    if problem:
        raise _problem(cfg, key, f"key file {path} {problem}")
    return value


def _relative_to(path: Path) -> str:
    """What a relative key path is taken from: the working directory, not the config's."""
    if path.is_absolute():
        return ""
    return f" (a relative path is taken from the working directory, {Path.cwd()})"


def _key_problem(value: str) -> str | None:
    """Why `value` cannot be sent as `Authorization: Bearer <value>`, or None."""
    if any(c.isspace() for c in value):
        return "holds more than one word"
    if not all("!" <= c <= "~" for c in value):
        return "holds characters that cannot go in an HTTP header (a key is printable ASCII)"
    return None


def _problem(cfg: Config, key: str, problem: str) -> ConfigError:
    if not key:  # the systemd credential is not in the config file
        return ConfigError([ConfigProblem("$CREDENTIALS_DIRECTORY", None, CREDENTIAL_NAME,
                                          problem)])
    return ConfigError([cfg.problem(key, problem)])
