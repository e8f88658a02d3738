"""The command line: exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swaramd.adapters.control import serve_control
from swaramd.cli import main
from swaramd.core.status import Status

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(body)
    return path


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "api_key"
    path.write_text("swaram_test_key_123456789\n")
    return path


def test_check_config_ok(tmp_path, key_file, capsys):
    cfg = write_config(tmp_path, f"server:\n  api_key_file: {key_file}\n")
    assert main(["check-config", "-c", str(cfg)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize(("body", "expected"), [
    ("audio:\n  frame_ms: [\n", ":3: not valid YAML"),
    ("audio:\n  frame_ms: x\n", ":2: audio.frame_ms: must be a whole number"),
    ("audio:\n  colour: red\n", ":2: audio.colour: unknown key"),
    ("server:\n  url: ws://swaram.example/v1\n", ":2: server.url: ws:// is unencrypted"),
    ("server:\n  api_key_file: /nonexistent/key\n", ":2: server.api_key_file: key file"),
])
def test_check_config_problems_exit_78_with_file_and_line(tmp_path, capsys, body, expected):
    cfg = write_config(tmp_path, body)
    assert main(["check-config", "-c", str(cfg)]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith(f"{cfg}:") for line in err)
    assert any(expected in line for line in err), err


def _wav(path: Path, rate: int = 24_000, channels: int = 1) -> Path:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * channels * 480))
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _text(path: Path) -> Path:
    path.write_text("not a WAV file\n")
    return path


@pytest.mark.parametrize(("setup", "expected"), [
    (lambda d: (d / "absent.wav", d / "out.wav"), ".wav does not exist"),
    (lambda d: (_wav(d / "in.wav", rate=16_000), d / "out.wav"),
     ".wav must be 24000 Hz mono 16-bit, is 16000 Hz, 1 channel(s), 16-bit"),
    (lambda d: (_text(d / "text.wav"), d / "out.wav"), ".wav is not a PCM WAV file"),
    (lambda d: (_wav(d / "in.wav"), d / "no" / "out.wav"),
     ":6: audio.wav_output: "),
    (lambda d: (_wav(d / "in.wav"), d), ":6: audio.wav_output: "),
    (lambda d: (_fifo(d / "in.wav"), d / "out.wav"), "in.wav is not a regular file"),
    (lambda d: (_wav(d / "in.wav"), _fifo(d / "out.fifo")), ":6: audio.wav_output: "),
])
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_bad_wav_files_exit_78_before_anything_opens(tmp_path, key_file, capsys, setup,
                                                     expected, command):
    wav_in, wav_out = setup(tmp_path)
    cfg = write_config(tmp_path, f"server:\n  api_key_file: {key_file}\naudio:\n"
                                 f"  backend: wav\n  wav_input: {wav_in}\n"
                                 f"  wav_output: {wav_out}\n"
                                 f"control:\n  socket: {tmp_path / 'c.sock'}\n")
    assert main([command, "-c", str(cfg)]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{cfg}:"), err
    assert expected in err[0], err
    if "wav_input" in err[0]:
        assert f"{cfg}:5: audio.wav_input: {wav_in}" in err[0]
    assert not (tmp_path / "c.sock").exists()      # nothing was opened
    assert not (tmp_path / "out.wav").exists()


def test_good_wav_files_pass_check_config(tmp_path, key_file, capsys):
    cfg = write_config(tmp_path, f"server:\n  api_key_file: {key_file}\naudio:\n"
                                 f"  backend: wav\n  wav_input: {_wav(tmp_path / 'in.wav')}\n"
                                 f"  wav_output: {tmp_path / 'out.wav'}\n")
    assert main(["check-config", "-c", str(cfg)]) == 0
    assert "audio wav" in capsys.readouterr().out


async def test_run_without_gpio_names_the_key_and_its_line(tmp_path, key_file):
    """`run` with `pin_factory: auto` where gpiozero finds no GPIO: 78, and the line to fix."""
    cfg = write_config(tmp_path, f"server:\n  api_key_file: {key_file}\ngpio:\n"
                                 f"  pin_factory: auto\n"
                                 f"control:\n  socket: {tmp_path / 'c.sock'}\n")
    code, _, err = await _run("run", "-c", str(cfg),
                              env={"GPIOZERO_PIN_FACTORY": "no-such-factory"})
    assert code == 78, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"{cfg}:4: gpio.pin_factory: auto found no usable GPIO"), err
    assert "no-such-factory" in lines[-1] and "Traceback" not in err


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_control_socket_path_holding_a_file_is_78_and_the_file_is_kept(tmp_path, key_file,
                                                                         capsys, command):
    victim = tmp_path / "notes.txt"
    victim.write_text("precious\n")
    cfg = write_config(tmp_path, f"server:\n  api_key_file: {key_file}\n"
                                 f"gpio:\n  pin_factory: none\n"
                                 f"control:\n  socket: {victim}\n")
    assert main([command, "-c", str(cfg)]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{cfg}:6: control.socket: {victim} exists and is not a socket; swaramd "
                   f"will not replace it"]
    assert victim.read_text() == "precious\n"


def test_a_config_that_is_a_fifo_is_78_not_a_hang(tmp_path, capsys):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    assert main(["check-config", "-c", str(fifo)]) == 78
    assert capsys.readouterr().err.strip() == f"{fifo}: is not a regular file"


def test_missing_config_file_is_78(tmp_path, capsys):
    assert main(["check-config", "-c", str(tmp_path / "nope.yaml")]) == 78
    assert "no such config file" in capsys.readouterr().err


def test_config_search_order(tmp_path, key_file, monkeypatch, capsys):
    cfg = write_config(tmp_path, f"server:\n  api_key_file: {key_file}\n")
    monkeypatch.setenv("SWARAMD_CONFIG", str(cfg))
    assert main(["check-config"]) == 0
    assert str(cfg) in capsys.readouterr().out


def test_status_without_a_daemon_exits_1(tmp_path, capsys):
    cfg = write_config(tmp_path, f"control:\n  socket: {tmp_path / 'c.sock'}\n")
    assert main(["status", "-c", str(cfg)]) == 1
    assert "is swaramd running" in capsys.readouterr().err


async def test_status_prints_one_json_object(tmp_path):
    sock = tmp_path / "c.sock"
    cfg = write_config(tmp_path, f"control:\n  socket: {sock}\n")
    status = Status(started_at=time.monotonic())
    async with serve_control(sock, lambda: status.snapshot(time.monotonic())):
        proc = await _run("status", "-c", str(cfg))
    assert proc[0] == 0
    reply = json.loads(proc[1])
    assert reply["state"] == "idle" and reply["connected"] is False


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "swaramd", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    try:
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode(), err.decode()


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("swaramd")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "swaramd" in proc.stdout


def test_check_config_warns_when_auto_will_find_no_gpio(tmp_path, key_file, monkeypatch, capsys):
    from swaramd.adapters import panel

    monkeypatch.setattr(panel, "GPIO_CHIPS", str(tmp_path / "dev" / "gpiochip*"))
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    cfg = write_config(tmp_path, f"server:\n  api_key_file: {key_file}\n"
                                 f"gpio:\n  pin_factory: auto\n")
    assert main(["check-config", "-c", str(cfg)]) == 0
    out, err = capsys.readouterr()
    assert "OK" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{cfg}:4: gpio.pin_factory: warning: "), err
    assert "no GPIO chip" in lines[0] and "exit 78" in lines[0]
    assert "pin_factory: none" in lines[0] and "pin_factory: mock" in lines[0]

    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "gpiochip0").touch()
    assert main(["check-config", "-c", str(cfg)]) == 0
    assert capsys.readouterr().err == ""


def test_missing_config_says_where_it_looked(tmp_path, monkeypatch, capsys):
    from swaramd import cli

    monkeypatch.setattr(cli, "SYSTEM_CONFIG", tmp_path / "etc" / "config.yaml")
    monkeypatch.delenv("SWARAMD_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["check-config"]) == 78
    assert capsys.readouterr().err.strip() == (
        f"config.yaml: no such config file (looked for -c FILE (not given), $SWARAMD_CONFIG "
        f"(not set), {tmp_path / 'etc' / 'config.yaml'} and ./config.yaml (in {tmp_path}))")
    monkeypatch.setenv("SWARAMD_CONFIG", str(tmp_path / "env.yaml"))
    assert main(["check-config"]) == 78
    assert capsys.readouterr().err.strip() == \
        f"{tmp_path / 'env.yaml'}: no such config file (named by $SWARAMD_CONFIG)"
    assert main(["check-config", "-c", "given.yaml"]) == 78
    assert capsys.readouterr().err.strip() == "given.yaml: no such config file (given with -c)"


def test_a_relative_key_path_says_what_it_is_relative_to(tmp_path, monkeypatch, capsys):
    cfg = write_config(tmp_path, "server:\n  api_key_file: keys/api_key\n")
    monkeypatch.chdir(tmp_path)
    assert main(["check-config", "-c", str(cfg)]) == 78
    assert capsys.readouterr().err.strip() == (
        f"{cfg}:2: server.api_key_file: key file keys/api_key does not exist (a relative path "
        f"is taken from the working directory, {tmp_path})")


def test_run_under_systemd_says_a_config_error_stops_restarts(tmp_path, monkeypatch, capsys):
    cfg = write_config(tmp_path, "audio:\n  frame_ms: 3\n")
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef")
    assert main(["run", "-c", str(cfg)]) == 78
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == f"{cfg}:2: audio.frame_ms: must be from 10 to 200 (got 3)"
    assert len(lines) == 2 and "does not restart swaramd until it is fixed" in lines[1], lines
    monkeypatch.delenv("INVOCATION_ID")
    assert main(["run", "-c", str(cfg)]) == 78  # by hand: the problem line alone
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_devices_without_a_sound_card_says_so(monkeypatch, capsys):
    from swaramd.adapters import audio_devices

    monkeypatch.setattr(audio_devices, "list_devices", lambda: [])
    assert main(["devices"]) == 0
    assert capsys.readouterr().out.startswith("no sound card found")
