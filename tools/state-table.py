#!/usr/bin/env python3
"""Print the conversation's transition table (`TRANSITIONS`) as Markdown.

docs/design.md holds this output between its `state-table` markers, and
tests/test_docs.py checks that it still matches. After changing
`swaramd/core/conversation.py`, paste the new output there:

    python3 tools/state-table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swaramd.core.conversation import TRANSITIONS


def state_table() -> str:
    """One row per base state: each input it takes, and the state that input leads to."""
    lines = ["| state | input → next state |", "|---|---|"]
    for state, row in TRANSITIONS.items():
        moves = ", ".join(f"`{inp.value}` → `{nxt.value}`" for inp, nxt in row.items())
        lines.append(f"| `{state.value}` | {moves} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(state_table())
