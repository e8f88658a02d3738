"""The `swaramd` command line. `main()` returns the exit code.

Exit codes: 0 success; 1 no daemon answered (`status`) or a crash; 78
(EX_CONFIG) for any invalid config or key source, with one
`FILE:LINE: key.path: problem` line per problem on stderr.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from swaramd import __version__
from swaramd.core.config import Backend, Config, load_config
from swaramd.core.errors import ConfigError, ConfigProblem, PanelError, SwaramdError

EX_OK, EX_FAIL, EX_CONFIG = 0, 1, 78
SYSTEM_CONFIG = Path("/etc/swaramd/config.yaml")
PR_SET_DUMPABLE = 4  # <linux/prctl.h>

log = logging.getLogger(__name__)


def find_config(explicit: str | None) -> Path:
    """`-c FILE`, else `$SWARAMD_CONFIG`, else /etc/swaramd/config.yaml, else ./config.yaml."""
    if explicit:
        return Path(explicit)
    if os.environ.get("SWARAMD_CONFIG"):
        return Path(os.environ["SWARAMD_CONFIG"])
    if SYSTEM_CONFIG.exists():
        return SYSTEM_CONFIG
    return Path("config.yaml")


def _where_looked(explicit: str | None) -> str:
    """How `find_config` chose its path, for the error when there is no file there."""
    if explicit:
        return "given with -c"
    if os.environ.get("SWARAMD_CONFIG"):
        return "named by $SWARAMD_CONFIG"
    return (f"looked for -c FILE (not given), $SWARAMD_CONFIG (not set), {SYSTEM_CONFIG} "
            f"and ./config.yaml (in {Path.cwd()})")


def _load(args: argparse.Namespace) -> Config:
    path = find_config(args.config)
    if not path.exists():
        raise ConfigError([ConfigProblem(str(path), None, "",
                                         f"no such config file ({_where_looked(args.config)})")])
    return load_config(path)


def _forbid_core_dumps() -> str | None:
    """Make this process non-dumpable (prctl PR_SET_DUMPABLE 0): no core dump, and no
    ptrace or /proc/PID/mem read by other processes of the same user, could show the API
    key held in memory. Returns why not (not Linux, no prctl), or None when done."""
    if not sys.platform.startswith("linux"):
        return f"no prctl on {sys.platform}"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            return f"prctl failed: {os.strerror(ctypes.get_errno())}"
    except (OSError, AttributeError) as exc:
        return f"no prctl: {exc}"
    return None


def _check_paths(cfg: Config) -> None:
    """The paths the config names beyond the key: the control socket, and the WAV backend's
    input and output."""
    from swaramd.adapters.control import socket_path_problem

    problem = socket_path_problem(cfg.control.socket)
    if problem is not None:
        raise ConfigError([cfg.problem("control.socket", problem)])
    if cfg.audio.backend == Backend.WAV:
        from swaramd.adapters.wav_audio import check_wav_files

        check_wav_files(cfg)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the config and the key source; print where the key comes from."""
    from swaramd.adapters.credentials import read_api_key
    from swaramd.adapters.panel import gpio_absent
    from swaramd.adapters.wake import check_wake

    cfg = _load(args)
    read_api_key(cfg)
    _check_paths(cfg)
    check_wake(cfg)
    no_gpio = gpio_absent(cfg.gpio.pin_factory)
    if no_gpio is not None:  # a warning: gpiozero may still find a remote pigpio or the like
        print(cfg.problem("gpio.pin_factory", f"warning: {no_gpio}"), file=sys.stderr)
    cred = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred and (Path(cred) / "api_key").exists():
        source = "$CREDENTIALS_DIRECTORY/api_key"
    elif cfg.server.api_key_file is not None:
        source = str(cfg.server.api_key_file)
    else:
        source = f"${cfg.server.api_key_env}"
    wake = cfg.conversation.wake_word
    print(f"{cfg.path}: OK (mode {cfg.conversation.mode}, audio {cfg.audio.backend}, "
          f"key from {source}{'' if wake == 'none' else f', wake word {wake}'})")
    return EX_OK


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon, until SIGTERM/SIGINT."""
    from swaramd.adapters.credentials import read_api_key
    from swaramd.adapters.logs import setup_logging
    from swaramd.daemon import run_daemon

    still_dumpable = _forbid_core_dumps()  # before the key is in memory
    cfg = _load(args)
    key = read_api_key(cfg)  # a bad key source is a config error: exit 78 before opening anything
    _check_paths(cfg)
    secret_filter = setup_logging(cfg.log.level, secrets=[key])
    if still_dumpable is not None:
        log.debug("the process stays dumpable (%s): LimitCORE=0 in the unit keeps core dumps "
                  "off", still_dumpable)
    try:
        return run_daemon(cfg, secret_filter)
    except PanelError as exc:  # e.g. pin_factory auto on a machine with no GPIO: the key's line
        raise ConfigError([cfg.problem(exc.key, str(exc))]) from None


def cmd_status(args: argparse.Namespace) -> int:
    """Print the running daemon's status as one JSON object."""
    from swaramd.adapters.control import ControlError, query

    cfg = _load(args)
    try:
        reply = query(cfg.control.socket)
    except ControlError as exc:
        print(f"swaramd: {exc}", file=sys.stderr)
        return EX_FAIL
    print(json.dumps(reply))
    return EX_OK


def cmd_devices(args: argparse.Namespace) -> int:
    """List audio inputs and outputs: index, name, channels, default rate."""
    from swaramd.adapters.audio_devices import format_devices, list_devices

    print(format_devices(list_devices()))
    return EX_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """A whole conversation against the embedded simulated service: no hardware, no key."""
    from swaramd.demo import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; one sub-command per documented command."""
    parser = argparse.ArgumentParser(
        prog="swaramd", description="Voice-appliance daemon for the swaram realtime service.")
    parser.add_argument("--version", action="version", version=f"swaramd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: object, help_text: str, config: bool = True) -> None:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if config:
            p.add_argument("-c", "--config", metavar="FILE", help="config file (see README)")
        p.set_defaults(func=func)

    add("run", cmd_run, "run the daemon until SIGTERM/SIGINT")
    add("check-config", cmd_check_config, "validate the config and the API key source")
    add("status", cmd_status, "print the running daemon's status as JSON")
    add("devices", cmd_devices, "list audio input and output devices", config=False)
    add("demo", cmd_demo, "a whole conversation with a simulated service (no hardware, no key)",
        config=False)
    from swaramd.demo import add_arguments
    add_arguments(sub.choices["demo"])
    return parser


def _say_restarts_stop(command: str) -> None:
    """Under systemd (`$INVOCATION_ID` set), exit 78 ends the restarts (the unit's
    RestartPreventExitStatus=78): say so in the journal, next to the problem."""
    if command == "run" and os.environ.get("INVOCATION_ID"):
        print("swaramd: exit 78, a config problem (above): systemd does not restart swaramd "
              "until it is fixed; check with `swaramd check-config`, then "
              "`systemctl restart swaramd`", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (never a traceback for bad input)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        _say_restarts_stop(args.command)
        return EX_CONFIG
    except PanelError as exc:  # e.g. pin_factory auto on a machine with no GPIO
        print(f"swaramd: {exc}", file=sys.stderr)
        _say_restarts_stop(args.command)
        return EX_CONFIG
    except SwaramdError as exc:
        print(f"swaramd: {exc}", file=sys.stderr)
        return EX_FAIL
    except KeyboardInterrupt:
        return EX_FAIL
    return code
