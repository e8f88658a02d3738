"""tools/pi-check.sh refuses bad usage before it needs root or starts anything; the check
itself (minutes of emulation) runs only through `make pi-check`, never here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "pi-check.sh"


def run(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=30, env={"PATH": "/usr/bin:/bin", "PI_CHECK_CACHE": str(cache)})


@pytest.mark.parametrize("args", [(), ("riscv64",), ("arm64", "armhf"), ("--arch=arm64",)])
def test_bad_usage_exits_2_with_one_line(args: tuple[str, ...], tmp_path: Path) -> None:
    proc = run(*args, cache=tmp_path / "cache")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "arm64" in proc.stderr and "armhf" in proc.stderr
    assert not (tmp_path / "cache").exists(), "bad usage created the cache"


def test_unknown_arch_is_named(tmp_path: Path) -> None:
    proc = run("amd64", cache=tmp_path)
    assert proc.returncode == 2
    assert "'amd64'" in proc.stderr


def test_bad_step_timeout_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "arm64"], capture_output=True, text=True,
                          timeout=30, env={"PATH": "/usr/bin:/bin", "PI_CHECK_CACHE": str(tmp_path),
                                           "PI_CHECK_STEP_TIMEOUT": "soon"})
    assert proc.returncode == 2
    assert "PI_CHECK_STEP_TIMEOUT" in proc.stderr


def test_help_names_the_steps_and_the_cache(tmp_path: Path) -> None:
    proc = run("--help", cache=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for word in ("arm64", "armhf", "install", "check-config", "devices", "demo", "PI_CHECK_CACHE"):
        assert word in proc.stdout


def test_make_target_passes_arch() -> None:
    proc = subprocess.run(["make", "-s", "-C", str(REPO), "pi-check", "ARCH=sparc"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "unknown ARCH 'sparc'" in proc.stderr
