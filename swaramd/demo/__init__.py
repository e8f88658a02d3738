"""`swaramd demo`: the real daemon, a simulated swaram service, and no hardware or key.

Entry points: `run_demo(argv)` for a whole command line, or `add_arguments(parser)`
with `run(args)` for a CLI sub-command. `python -m swaramd.demo` runs it too.
"""

from swaramd.demo.runner import add_arguments, run, run_demo

__all__ = ["add_arguments", "run", "run_demo"]
