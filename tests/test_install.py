"""install.sh staged with `--root`: the layout and modes, a real virtualenv that runs, a second
run that changes nothing, an edited config that survives, the key's three sources (never
echoed), and --uninstall / --purge. It never runs install.sh without --root: that would install
on this machine."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import select
import shutil
import stat
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Distinctive, so a leak into install.sh's output cannot hide.
KEY = "swaram_test_7c1e9a40b2d5f863"
OTHER_KEY = "swaram_test_other_51ab0c9e"
SOURCES = ("install.sh", "pyproject.toml", "README.md", "config.yaml", "systemd", "swaramd")
VENV_TIMEOUT_S = 240  # a cold pip cache builds PyAudio and downloads numpy
QUICK_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen copy of the checkout: the working tree may be edited while the tests run."""
    return copy_checkout(tmp_path_factory.mktemp("checkout"))


def copy_checkout(dest: Path) -> Path:
    dest.mkdir(exist_ok=True)
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def install(checkout: Path, root: Path, *args: str, key: str | None = None,
            timeout: float = QUICK_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Runs `install.sh --root ROOT ARGS`, with `key` (or nothing) on stdin."""
    proc = subprocess.run(
        ["bash", str(checkout / "install.sh"), "--root", str(root), *args],
        input="" if key is None else key + "\n", capture_output=True, text=True,
        timeout=timeout, cwd=checkout)
    for secret in (KEY, OTHER_KEY):
        assert secret not in proc.stdout + proc.stderr, "install.sh printed the key"
    return proc


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def failed(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one-line error of a run that had to fail with `code`."""
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root: type, mode, owner, mtime and content hash."""
    tree: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath, name)
            st = path.lstat()
            head = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns)
            if stat.S_ISLNK(st.st_mode):
                tree[str(path.relative_to(root))] = (*head, os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                tree[str(path.relative_to(root))] = (*head, digest)
            else:
                tree[str(path.relative_to(root))] = head
    return tree


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_key(tmp: Path, text: str, name: str = "key") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- a real virtualenv


@pytest.fixture(scope="module")
def installed(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full staged install, virtualenv included (pip from the frozen checkout)."""
    tmp = tmp_path_factory.mktemp("installed")
    key_file = write_key(tmp, KEY + "\n")
    root = tmp / "root"
    ok(install(checkout, root, "--key-file", str(key_file), "--python", sys.executable,
               timeout=VENV_TIMEOUT_S))
    return root


@pytest.mark.timeout(VENV_TIMEOUT_S + 30)
def test_layout_and_modes(installed: Path, checkout: Path) -> None:
    etc, opt = installed / "etc/swaramd", installed / "opt/swaramd"
    unit = installed / "etc/systemd/system/swaramd.service"
    assert mode(etc) == 0o750
    assert mode(etc / "config.yaml") == 0o640
    assert (etc / "config.yaml").read_bytes() == (checkout / "config.yaml").read_bytes()
    assert mode(etc / "api_key") == 0o600
    assert (etc / "api_key").stat().st_uid == os.geteuid()
    assert (etc / "api_key").read_text() == KEY + "\n"
    assert mode(unit) == 0o644
    assert unit.read_bytes() == (checkout / "systemd/swaramd.service").read_bytes()
    assert (opt / "README.md").read_bytes() == (checkout / "README.md").read_bytes()
    assert mode(opt / "config.yaml") == 0o644  # the shipped default, to tell edits apart
    assert os.access(opt / "venv/bin/swaramd", os.X_OK)
    assert not (etc / "config.yaml.dist").exists()
    assert not (installed / "var").exists()  # StateDirectory= makes /var/lib/swaramd


@pytest.mark.timeout(VENV_TIMEOUT_S + 30)
def test_every_path_the_unit_names_is_installed(installed: Path) -> None:
    unit = (installed / "etc/systemd/system/swaramd.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) run -c (\S+)$", unit, re.M)
    credential = re.search(r"^LoadCredential=api_key:(\S+)$", unit, re.M)
    docs = re.search(r"^Documentation=file://(\S+)$", unit, re.M)
    assert exec_start and credential and docs
    assert os.access(installed / exec_start[1].lstrip("/"), os.X_OK)
    for path in (exec_start[2], credential[1], docs[1]):
        assert (installed / path.lstrip("/")).is_file(), path


@pytest.mark.timeout(VENV_TIMEOUT_S + 30)
def test_installed_swaramd_runs(installed: Path, checkout: Path) -> None:
    venv = installed / "opt/swaramd/venv"
    version = re.search(r'__version__ = "(.+)"', (checkout / "swaramd/__init__.py").read_text())
    assert version
    proc = subprocess.run([str(venv / "bin/swaramd"), "--version"], capture_output=True,
                          text=True, timeout=QUICK_TIMEOUT_S)
    assert proc.returncode == 0 and proc.stdout.strip() == f"swaramd {version[1]}"
    # PyAudio was compiled against PortAudio, and the key reaches swaramd the unit's way.
    ok(subprocess.run([str(venv / "bin/python"), "-c", "import pyaudio, gpiozero, soxr"],
                      capture_output=True, text=True, timeout=QUICK_TIMEOUT_S))
    etc = installed / "etc/swaramd"
    proc = ok(subprocess.run(
        [str(venv / "bin/swaramd"), "check-config", "-c", str(etc / "config.yaml")],
        capture_output=True, text=True, timeout=QUICK_TIMEOUT_S,
        env={**os.environ, "CREDENTIALS_DIRECTORY": str(etc)}))
    assert "OK" in proc.stdout


@pytest.mark.timeout(VENV_TIMEOUT_S + 30)
def test_second_run_changes_nothing(installed: Path, checkout: Path, tmp_path: Path) -> None:
    before = snapshot(installed)
    key_file = write_key(tmp_path, KEY + "\n")
    proc = ok(install(checkout, installed, "--key-file", str(key_file),
                      "--python", sys.executable))
    assert "nothing changed" in proc.stdout
    assert snapshot(installed) == before
    # No key given at all keeps the one there.
    proc = ok(install(checkout, installed, "--python", sys.executable))
    assert "nothing changed" in proc.stdout
    assert snapshot(installed) == before


@pytest.mark.timeout(VENV_TIMEOUT_S + 30)
def test_an_invalid_config_fails_the_install(installed: Path, checkout: Path) -> None:
    config = installed / "etc/swaramd/config.yaml"
    good = config.read_bytes()
    try:
        config.write_text(good.decode().replace("voice: mal-female", "voice: robot"))
        proc = install(checkout, installed, "--python", sys.executable)
        assert proc.returncode == 1
        assert f"{config}:" in proc.stderr and "session.voice" in proc.stderr
        assert config.read_text().count("voice: robot") == 1  # left as it was
    finally:
        config.write_bytes(good)
    ok(install(checkout, installed, "--python", sys.executable))


@pytest.mark.timeout(VENV_TIMEOUT_S + 30)
def test_a_config_naming_a_wake_word_gets_the_engine(installed: Path, checkout: Path) -> None:
    config = installed / "etc/swaramd/config.yaml"
    venv = installed / "opt/swaramd/venv"
    good = config.read_bytes()
    try:
        config.write_text(good.decode().replace("wake_word: none", "wake_word: okay_nabu"))
        proc = ok(install(checkout, installed, "--python", sys.executable,
                          timeout=VENV_TIMEOUT_S))
        assert "with the wake word engine" in proc.stdout
        ok(subprocess.run([str(venv / "bin/python"), "-c", "import pymicro_wakeword"],
                          capture_output=True, text=True, timeout=QUICK_TIMEOUT_S))
    finally:
        config.write_bytes(good)
    ok(install(checkout, installed, "--python", sys.executable, timeout=VENV_TIMEOUT_S))


# ---------------------------------------------------------------- staged without the venv


def test_edited_config_survives(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    ok(install(checkout, root, "--skip-venv", key=KEY))
    config = root / "etc/swaramd/config.yaml"
    edited = config.read_text().replace("voice: mal-female", "voice: mal-male")
    config.write_text(edited)
    config.chmod(0o640)
    proc = ok(install(checkout, root, "--skip-venv"))
    assert "kept your edited" in proc.stdout
    assert config.read_text() == edited
    dist = root / "etc/swaramd/config.yaml.dist"
    assert dist.read_bytes() == (checkout / "config.yaml").read_bytes()
    assert mode(dist) == 0o640
    before = snapshot(root)
    ok(install(checkout, root, "--skip-venv"))
    assert snapshot(root) == before


def test_unedited_config_follows_a_new_default(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path / "checkout")
    root = tmp_path / "root"
    ok(install(checkout, root, "--skip-venv", key=KEY))
    shipped = checkout / "config.yaml"
    shipped.write_text(shipped.read_text().replace("idle_timeout_s: 20", "idle_timeout_s: 30"))
    ok(install(checkout, root, "--skip-venv"))
    assert (root / "etc/swaramd/config.yaml").read_bytes() == shipped.read_bytes()
    assert not (root / "etc/swaramd/config.yaml.dist").exists()


def test_key_from_stdin_replaces_and_is_kept(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    key = root / "etc/swaramd/api_key"
    ok(install(checkout, root, "--skip-venv", key=f"  {KEY}  "))
    assert key.read_text() == KEY + "\n" and mode(key) == 0o600
    ok(install(checkout, root, "--skip-venv", key=OTHER_KEY))
    assert key.read_text() == OTHER_KEY + "\n" and mode(key) == 0o600
    key.chmod(0o644)  # someone loosened it: the next run tightens it again
    ok(install(checkout, root, "--skip-venv"))
    assert key.read_text() == OTHER_KEY + "\n" and mode(key) == 0o600
    # --key-file wins over stdin.
    ok(install(checkout, root, "--skip-venv", "--key-file",
               str(write_key(tmp_path, KEY)), key=OTHER_KEY))
    assert key.read_text() == KEY + "\n"


@pytest.mark.parametrize(("how", "error"), [
    ("empty-file", "is empty"),
    ("blank-file", "is empty"),
    ("no-stdin", "no API key given"),
    ("two-words", "must be one word"),
    ("two-lines", "must be one word"),
    ("missing-file", "cannot read key file"),
])
def test_bad_keys_are_refused_before_anything_changes(
        checkout: Path, tmp_path: Path, how: str, error: str) -> None:
    root = tmp_path / "root"
    args, key = {
        "empty-file": (["--key-file", str(write_key(tmp_path, "", "empty"))], None),
        "blank-file": (["--key-file", str(write_key(tmp_path, " \n\n", "blank"))], None),
        "no-stdin": ([], None),
        "two-words": ([], f"{KEY} {OTHER_KEY}"),
        "two-lines": (["--key-file", str(write_key(tmp_path, f"{KEY}\n{OTHER_KEY}\n", "two"))],
                      None),
        "missing-file": (["--key-file", str(tmp_path / "nowhere")], None),
    }[how]
    line = failed(install(checkout, root, "--skip-venv", *args, key=key))
    assert line.startswith("install.sh: error: ") and error in line
    assert not root.exists()


def test_the_prompt_does_not_echo_the_key(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        ["bash", str(checkout / "install.sh"), "--root", str(root), "--skip-venv"],
        stdin=slave, stdout=slave, stderr=slave, cwd=checkout, start_new_session=True)
    seen = b""
    try:
        deadline = time.monotonic() + QUICK_TIMEOUT_S
        while b"API key" not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 4096)
        while termios.tcgetattr(slave)[3] & termios.ECHO:  # read -s has turned echo off
            assert time.monotonic() < deadline, "echo stayed on"
            time.sleep(0.01)
        os.write(master, (KEY + "\n").encode())
        os.close(slave)
        slave = -1
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=QUICK_TIMEOUT_S) == 0, seen
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert KEY.encode() not in seen
    assert (root / "etc/swaramd/api_key").read_text() == KEY + "\n"


def test_uninstall_keeps_config_and_key_and_purge_removes_them(
        checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    ok(install(checkout, root, "--skip-venv", key=KEY))
    (root / "opt/swaramd/venv/bin").mkdir(parents=True)  # stands in for the virtualenv
    (root / "var/lib/swaramd").mkdir(parents=True)
    (root / "var/lib/swaramd/volume").write_text("55\n")
    etc = root / "etc/swaramd"
    config = (etc / "config.yaml").read_bytes()

    proc = ok(install(checkout, root, "--uninstall"))
    assert "kept" in proc.stdout
    assert not (root / "opt/swaramd").exists()
    assert not (root / "etc/systemd/system/swaramd.service").exists()
    assert (etc / "config.yaml").read_bytes() == config
    assert (etc / "api_key").read_text() == KEY + "\n" and mode(etc / "api_key") == 0o600
    assert (root / "var/lib/swaramd/volume").exists()
    before = snapshot(root)
    ok(install(checkout, root, "--uninstall"))
    assert snapshot(root) == before

    # A reinstall finds the kept key and config: no key needed, nothing to merge.
    ok(install(checkout, root, "--skip-venv"))
    assert (etc / "config.yaml").read_bytes() == config
    assert not (etc / "config.yaml.dist").exists()

    ok(install(checkout, root, "--uninstall", "--purge"))
    assert not etc.exists()
    assert not (root / "var/lib/swaramd").exists()
    assert not (root / "opt/swaramd").exists()
    ok(install(checkout, root, "--uninstall", "--purge"))


@pytest.mark.parametrize("link", ["etc", "etc/swaramd", "etc/systemd", "opt",
                                  "etc/swaramd/api_key", "etc/swaramd/config.yaml"])
def test_root_refuses_symbolic_links_inside_it(checkout: Path, tmp_path: Path, link: str) -> None:
    """A link inside DIR would send the key, config and unit (or a chmod) outside DIR."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir(mode=0o700)
    os.chmod(outside, 0o700)  # whatever the umask
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    if link.endswith(("api_key", "config.yaml")):
        (outside / "file").write_text("precious\n")
        os.chmod(outside / "file", 0o644)
        (root / link).symlink_to(outside / "file")
    else:
        (root / link).symlink_to(outside)
    before, before_root = snapshot(outside), snapshot(root)
    error = failed(install(checkout, root, "--skip-venv", key=KEY))
    assert error == (f"install.sh: error: {root / link} is a symbolic link: with --root "
                     f"nothing under {root} may be one (it would write outside)")
    assert snapshot(outside) == before and mode(outside) == 0o700
    assert snapshot(root) == before_root  # refused before anything was written


def test_root_refuses_a_linked_install_dir_and_keeps_its_mode(checkout: Path,
                                                              tmp_path: Path) -> None:
    root, private = tmp_path / "root", tmp_path / "private"
    private.mkdir()
    os.chmod(private, 0o700)
    (root / "opt").mkdir(parents=True)
    (root / "opt/swaramd").symlink_to(private)
    failed(install(checkout, root, "--skip-venv", key=KEY))
    assert mode(private) == 0o700 and list(private.iterdir()) == []
    assert not (root / "etc").exists()
    failed(install(checkout, root, "--uninstall"))
    assert private.is_dir()


@pytest.mark.parametrize(("args", "code", "text"), [
    (["--help"], 0, "Usage:"),
    (["--root", "ROOT", "--bogus"], 2, "unknown argument: --bogus"),
    (["--root", "ROOT", "--purge"], 2, "--purge goes with --uninstall"),
    (["--root", "ROOT", "--key-file"], 2, "--key-file needs a value"),
    (["--root", "ROOT", "--uninstall", "--key-file", "k"], 2, "--key-file makes no sense"),
    # Without --root: these must stop at the arguments. (Were that broken, the real install
    # would still stop before any change, at "no API key given", with stdin empty.)
    (["--skip-venv"], 2, "--skip-venv is only for --root"),
    (["--root", "/"], 2, "--root / is the running system"),
])
def test_usage(checkout: Path, tmp_path: Path, args: list[str], code: int, text: str) -> None:
    args = [str(tmp_path / "root") if arg == "ROOT" else arg for arg in args]
    proc = subprocess.run(["bash", str(checkout / "install.sh"), *args], input="",
                          capture_output=True, text=True, timeout=QUICK_TIMEOUT_S)
    assert proc.returncode == code, proc.stderr
    assert text in (proc.stdout if code == 0 else failed(proc, code))
    assert not (tmp_path / "root").exists()
