"""The docs name what exists: files, functions, and the conversation's current table."""

from __future__ import annotations

import ast
import re
import runpy
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# `swaramd/adapters/link.py`, `swaramd/adapters/link.py:Link.send_text`, `config.yaml`...
_PATH = re.compile(r"`((?:swaramd|tests|tools|bench|systemd|docs)/[\w./-]+)(?::([\w.]+))?`")
# `open_audio()`, `AudioEngine.flush()`: a call without a path
_CALL = re.compile(r"`([A-Za-z_][\w.]*)\(\)`")


def _code_spans(path: Path) -> str:
    """The text with fenced code blocks removed (they hold commands and output, not names)."""
    return re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)


@cache
def _definitions(path: Path) -> frozenset[str]:
    """Qualified names defined in a Python file: functions, classes, methods, assignments."""
    names: set[str] = set()

    def walk(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(prefix + node.name)
                if isinstance(node, ast.ClassDef):
                    walk(node.body, prefix + node.name + ".")
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(prefix + t.id for t in targets if isinstance(t, ast.Name))

    walk(ast.parse(path.read_text(encoding="utf-8")).body, "")
    return frozenset(names)


@cache
def _all_definitions() -> frozenset[str]:
    names: set[str] = set()
    for path in [*(ROOT / "swaramd").rglob("*.py"), *(ROOT / "tools").glob("*.py")]:
        for name in _definitions(path):
            names.add(name)
            names.add(name.rsplit(".", 1)[-1])
    return frozenset(names)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_a_doc_names_exists(doc):
    missing = []
    for path, name in _PATH.findall(_code_spans(doc)):
        target = ROOT / path.rstrip("/")
        if not target.exists():
            missing.append(path)
        elif name and name not in _definitions(target):
            missing.append(f"{path}:{name}")
    assert not missing, f"{doc.name} names what does not exist: {missing}"


def test_every_function_design_md_calls_exists():
    names = _all_definitions()
    missing = [call for call in _CALL.findall(_code_spans(DESIGN))
               if call not in names and call.rsplit(".", 1)[-1] not in names]
    assert not missing, f"design.md names functions that do not exist: {missing}"


def test_the_checks_see_references():
    text = _code_spans(DESIGN)
    assert len(_PATH.findall(text)) > 40
    assert len(_CALL.findall(text)) > 10


def test_design_md_state_table_matches_transitions():
    state_table = runpy.run_path(str(ROOT / "tools" / "state-table.py"))["state_table"]
    text = DESIGN.read_text(encoding="utf-8")
    found = re.search(r"<!-- state-table: begin -->\n(.*?)<!-- state-table: end -->", text,
                      flags=re.DOTALL)
    assert found, "docs/design.md lost its state-table markers"
    assert found.group(1) == state_table(), (
        "docs/design.md's state table is stale: paste the output of tools/state-table.py")
