"""The core is pure (DESIGN §1, STYLE.md): it never imports I/O libraries or adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "swaramd" / "core"
FORBIDDEN = {"asyncio", "websockets", "pyaudio", "gpiozero", "socket", "soxr", "swaramd.adapters",
             "swaramd.daemon", "swaramd.cli", "selectors", "subprocess", "pymicro_wakeword"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_forbidden(path):
    bad = {m for m in imported_modules(path)
           if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_check_sees_core_modules():
    assert len(list(CORE.glob("*.py"))) >= 6
