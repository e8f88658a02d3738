"""`python -m swaramd.demo`: the same as `swaramd demo`."""

import sys

from swaramd.demo.runner import run_demo

sys.exit(run_demo())
