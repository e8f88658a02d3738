"""The systemd unit: `systemd-analyze verify` says nothing, the hardening scores <= 1.5, no core
dumps, and restarts that never give up, never hot-loop and stop on a config error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "swaramd.service"


def staged_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's swaramd (verify checks it exists)."""
    exe = Path(sys.executable).with_name("swaramd")
    text = UNIT.read_text().replace("/opt/swaramd/venv/bin/swaramd", str(exe))
    assert str(exe) in text
    path = tmp_path / "swaramd.service"
    path.write_text(text)
    return path


def test_verify_is_silent(tmp_path):
    proc = subprocess.run(["systemd-analyze", "verify", str(staged_unit(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "" and proc.stdout.strip() == "", \
        proc.stderr


def test_hardening_exposure_at_most_1_5(tmp_path):
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=15",
                           str(staged_unit(tmp_path))], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    level = re.search(r"Overall exposure level for swaramd\.service: (\d+\.\d)", proc.stdout)
    assert level is not None and float(level.group(1)) <= 1.5


def test_unit_keeps_the_contract():
    text = UNIT.read_text()
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30", "LimitCORE=0",
                 "SupplementaryGroups=audio gpio", "LoadCredential=api_key:/etc/swaramd/api_key",
                 "RuntimeDirectory=swaramd", "StateDirectory=swaramd",
                 "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes",
                 "Wants=network-online.target sound.target"):
        assert line in text.splitlines(), line


def settings() -> dict[str, list[str]]:
    """Every `Key=value` of the unit, values in order (a key may repeat)."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_restarts_forever_at_a_pace_that_cannot_hot_loop():
    s = settings()
    assert s["Restart"] == ["always"]
    # No start limit: a crash loop must not end as a unit failed for good.
    assert s.get("StartLimitIntervalSec") == ["0"] and "StartLimitBurst" not in s
    pace = s["RestartSec"][-1]
    assert pace.endswith("s") or pace.isdigit(), pace
    assert float(pace.rstrip("s")) >= 2, pace


def test_a_config_error_stops_restarts():
    assert "78" in " ".join(settings().get("RestartPreventExitStatus", [])).split()


def test_no_core_dumps():
    assert settings().get("LimitCORE") == ["0"]
