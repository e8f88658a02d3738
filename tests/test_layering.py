"""The core is pure (docs/design.md, "Layers"): it imports no I/O library and no adapter.

What `swaramd/core/` may import is an allow-list, so a new I/O dependency is
refused without anyone adding it to a deny-list first:

- the standard library, less the modules that do I/O or run other threads of
  control (sockets, event loops, subprocesses, signals, C calls);
- the pure libraries named in `PURE`: numpy, orjson and pybase64 (codecs),
  and PyYAML (the config parser);
- other `swaramd.core` modules, by absolute name (a relative import hides
  which layer a name comes from).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "swaramd" / "core"
PURE = {"numpy", "orjson", "pybase64", "yaml"}
IO_STDLIB = {"asyncio", "socket", "socketserver", "selectors", "select", "subprocess", "ssl",
             "signal", "ctypes", "multiprocessing", "concurrent", "http", "urllib.request",
             "ftplib", "smtplib", "mmap", "fcntl", "termios", "pty"}


def _top(name: str) -> str:
    return name.split(".")[0]


def _within(name: str, names: set[str]) -> bool:
    return any(name == n or name.startswith(n + ".") for n in names)


def refused_imports(source: str, filename: str = "<core>") -> set[str]:
    """The imports in `source` that a core module may not make, each as written."""
    bad: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                bad.add("." * node.level + (node.module or ""))
                continue
            names = [node.module or ""]
        else:
            continue
        for name in names:
            if name == "__future__" or _within(name, {"swaramd.core"}):
                continue
            if _top(name) in sys.stdlib_module_names and not _within(name, IO_STDLIB):
                continue
            if _top(name) in PURE:
                continue
            bad.add(name)
    return bad


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_only_pure_modules(path: Path) -> None:
    bad = refused_imports(path.read_text(), str(path))
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("line", [
    "import asyncio", "import websockets", "import pyaudio", "from gpiozero import Button",
    "import socket", "import soxr", "from swaramd.adapters import link", "import swaramd.daemon",
    "from swaramd import cli", "import subprocess", "from concurrent.futures import Future",
    "import ctypes", "from urllib.request import urlopen", "from . import protocol",
    "from .events import ErrorEvent", "from ..adapters import audio",
])
def test_the_check_refuses(line: str) -> None:
    assert refused_imports(line), line


@pytest.mark.parametrize("line", [
    "import numpy as np", "import orjson", "import pybase64", "import yaml",
    "from numpy.typing import NDArray", "from swaramd.core import protocol",
    "from swaramd.core.events import ErrorEvent", "import json", "import threading",
    "from urllib.parse import urlsplit", "from collections.abc import Mapping",
])
def test_the_check_allows(line: str) -> None:
    assert not refused_imports(line), line


def test_the_check_sees_core_modules() -> None:
    assert len(list(CORE.glob("*.py"))) >= 6
