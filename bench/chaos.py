"""Chaos, the long run: the real daemon as a process through N faulty connections.

    .venv/bin/python bench/chaos.py [--connections 1000] [--seed 8] [--scale 0.02]
                                    [--faults close_1000,stall,...] [--keep DIR]

The same run as tests/test_chaos.py (tests/support/chaos_driver.py says what is
checked), longer: it prints a table of faults -> counts (survived, halted,
audio back, least gap from the fault to the next handshake against the least
the policy allows), then the figures: survived, halts, the least gap ratio,
RssAnon at connection 100 and at N. Exit 0 when no promise was broken, 1
otherwise (each broken one printed). Figures: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.chaos_driver import ChaosPlan, run_chaos  # noqa: E402
from tests.support.chaos_service import FAULTS  # noqa: E402


def main() -> int:
    """Run the chaos and print its figures; 0 when it passed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--scale", type=float, default=0.02,
                   help="ReconnectPolicy scale (0.02: the 1 s step is 20 ms)")
    p.add_argument("--faults", default=",".join(FAULTS),
                   help="comma-separated subset of: " + ", ".join(FAULTS))
    p.add_argument("--rss-from", type=int, default=100,
                   help="first RssAnon mark (the second is at N)")
    p.add_argument("--keep", type=Path, help="work in this directory and keep it (the log)")
    args = p.parse_args()
    faults = tuple(f for f in args.faults.split(",") if f)
    unknown = set(faults) - set(FAULTS)
    if unknown:
        p.error(f"unknown faults: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="swaramd-chaos-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        plan = ChaosPlan(work, connections=args.connections, seed=args.seed, scale=args.scale,
                         faults=faults, rss_marks=(min(args.rss_from, args.connections),
                                                   args.connections), progress=True)
        print(f"chaos: {plan.connections} connections, faults {', '.join(faults)}; "
              f"python {platform.python_version()} on {platform.machine()}", flush=True)
        result = asyncio.run(run_chaos(plan))
    print(result.table())
    print(result.summary())
    problems = result.problems()
    print(f"problems: {len(problems)}")
    for line in problems:
        print(f"  {line}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
