"""`swaramd run` with a faster reconnect schedule, for the chaos runs (tests/test_chaos.py,
bench/chaos.py). Not for the appliance: the scale is a launcher argument, never a config key.

    python -m tests.chaos_runner -c config.yaml [--policy-scale 0.02] [--ping-interval 0.5] ...

It is `swaramd run` (the same config loading, key check, logging with the key
redacted, signals: SIGTERM/SIGINT stop, SIGHUP reloads and leaves a halt) with
`Daemon(cfg, policy=ReconnectPolicy(scale=...), link_timings=LinkTimings(...))`.
Exit codes as `swaramd run`: 0 clean stop, 1 internal error, 78 bad config.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

from swaramd.adapters.credentials import read_api_key
from swaramd.adapters.link import LinkTimings
from swaramd.adapters.logs import setup_logging
from swaramd.cli import EX_CONFIG
from swaramd.core.config import load_config
from swaramd.core.errors import ConfigError
from swaramd.core.policy import ReconnectPolicy
from swaramd.daemon import Daemon, run_daemon


def build_parser() -> argparse.ArgumentParser:
    """The launcher's options: the config, the policy scale and the link's timings."""
    p = argparse.ArgumentParser(prog="python -m tests.chaos_runner", description=__doc__)
    p.add_argument("-c", "--config", required=True, metavar="FILE")
    p.add_argument("--policy-scale", type=float, default=0.02,
                   help="ReconnectPolicy(scale=...): every delay and the stable period times this")
    p.add_argument("--open-timeout", type=float, default=5.0)
    p.add_argument("--session-timeout", type=float, default=3.0)
    p.add_argument("--ping-interval", type=float, default=0.5)
    p.add_argument("--ping-timeout", type=float, default=1.0)
    p.add_argument("--close-timeout", type=float, default=0.3)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns its exit code."""
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
        key = read_api_key(cfg)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    secret_filter = setup_logging(cfg.log.level, secrets=[key])
    timings = LinkTimings(open_timeout=args.open_timeout, session_timeout=args.session_timeout,
                          ping_interval=args.ping_interval, ping_timeout=args.ping_timeout,
                          close_timeout=args.close_timeout)
    factory = functools.partial(Daemon, policy=ReconnectPolicy(scale=args.policy_scale),
                                link_timings=timings)
    return run_daemon(cfg, secret_filter, factory=factory)


if __name__ == "__main__":
    sys.exit(main())
