"""Fuzz, the long run: hypothesis-made frames into the decoder and the conversation.

    .venv/bin/python bench/fuzz.py [--examples 100000] [--seed 8] [--only decode|sessions]

The strategies and checks of tests/core/test_fuzz.py, run for `--examples`
examples each: server frames into `protocol.decode`, and fuzzed sessions
(frames interleaved with every other input) into `Conversation`. Unlike the
test, it does not stop at the first failure: it counts escapes (an exception
out of the core) and invariant violations (a broken promise, e.g. an invalid
client event) over every example, and prints the first few distinct ones.
Exit 0 when both are zero. Figures: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.core.test_fuzz import check_decode, check_session, frames, sessions  # noqa: E402


class Tally:
    """Examples run, escapes and violations, and the first example of each kind of failure."""

    def __init__(self) -> None:
        self.examples = 0
        self.escapes = 0
        self.violations = 0
        self.kinds: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def run(self, check: Callable[[Any], None], example: Any) -> None:
        self.examples += 1
        try:
            check(example)
        except AssertionError as exc:
            self.violations += 1
            self._note(f"violation: {exc}"[:200], example)
        except Exception as exc:
            self.escapes += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self._note(f"escape: {type(exc).__name__} at {where.filename}:{where.lineno}",
                       example)

    def _note(self, kind: str, example: Any) -> None:
        self.kinds[kind] += 1
        self.first.setdefault(kind, repr(example)[:600])


def fuzz(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None],
         examples: int, seed_value: int) -> Tally:
    """Run `check` on `examples` examples drawn from `strategy`; print and return the tally."""
    tally = Tally()

    @seed(seed_value)
    @settings(max_examples=examples, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(example: Any) -> None:
        tally.run(check, example)

    started = time.monotonic()
    run()
    took = time.monotonic() - started
    print(f"{name}: {tally.examples} examples in {took:.0f} s; escapes {tally.escapes}, "
          f"invariant violations {tally.violations}", flush=True)
    for kind, count in tally.kinds.most_common(5):
        print(f"  {count} x {kind}\n    first: {tally.first[kind]}")
    return tally


def main() -> int:
    """Fuzz the decoder and the conversation; 0 when nothing escaped or broke."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--only", choices=["decode", "sessions"])
    args = p.parse_args()
    tallies = []
    if args.only in (None, "decode"):
        tallies.append(fuzz("decode (frames)", frames, check_decode, args.examples, args.seed))
    if args.only in (None, "sessions"):
        tallies.append(fuzz("conversation (sessions)", sessions, check_session, args.examples,
                            args.seed))
    total = sum(t.examples for t in tallies)
    bad = sum(t.escapes + t.violations for t in tallies)
    print(f"total: {total} examples, {sum(t.escapes for t in tallies)} escapes, "
          f"{sum(t.violations for t in tallies)} invariant violations")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
