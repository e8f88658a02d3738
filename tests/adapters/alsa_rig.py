"""A sound card made of ALSA user-space plugins, for the real PyAudio stack.

- `write_asoundrc`: an ALSA_CONFIG_PATH file of `type file` PCMs over a `type
  null` slave (capture reads an `infile`, playback writes a file; as fast as
  the CPU), and/or `type jack` PCMs for real-time pacing.
- `stereo_only_file_pcm`: the same, but a device that refuses mono.
- `card_pcm`: one device both ways (capture from a file, playback to another).
- `Jackd`: a private `jackd --no-realtime -d dummy` the test starts and stops
  itself, by pid, with a unique server name so parallel runs never meet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path


def file_pcm(name: str, *, infile: Path | None = None, outfile: Path | None = None,
             slave: str = "{ type null }") -> str:
    """A `type file` PCM over a null slave (never call a PCM `null`: PortAudio hides it)."""
    return f"pcm.{name} {_file_body(infile, outfile, slave)}"


def card_pcm(name: str, *, infile: Path, outfile: Path) -> str:
    """One card both ways, like a USB speakerphone: an `asym` of a capture `file` PCM that
    reads `infile` and a playback one that writes `outfile` (a `file` PCM also records
    what it captures, so the two directions need a PCM each to keep the files apart)."""
    return (f"pcm.{name} {{\n    type asym\n    capture.pcm {_file_body(infile, None)}\n"
            f"    playback.pcm {_file_body(None, outfile)}\n}}")


def _file_body(infile: Path | None, outfile: Path | None, slave: str = "{ type null }") -> str:
    lines = ["{", "    type file", f"    slave.pcm {slave}",
             f'    file "{outfile or os.devnull}"', '    format "raw"']
    if infile is not None:
        lines.append(f'    infile "{infile}"')
    return "\n".join([*lines, "}"])


# Two mono null PCMs bound as one: a `multi` fixes the channel count at its bindings.
_STEREO_ONLY_SLAVE = ("{ type multi slaves.a.pcm { type null } slaves.a.channels 1 "
                      "slaves.b.pcm { type null } slaves.b.channels 1 "
                      "bindings.0 { slave a channel 0 } bindings.1 { slave b channel 0 } }")


def stereo_only_file_pcm(name: str, *, infile: Path | None = None,
                         outfile: Path | None = None) -> str:
    """A `type file` PCM that takes two channels and nothing else, like many USB codecs.

    Its slave is a `type multi` of two mono null PCMs, which fixes the channel count at
    its two bindings: `arecord -c 1` on it fails with "Channels count non available".
    The files hold interleaved stereo. Capture only: PortAudio's callback streams never
    get a playback period from a `multi` of null PCMs (they do from `aplay`).
    """
    return file_pcm(name, infile=infile, outfile=outfile, slave=_STEREO_ONLY_SLAVE)


def jack_pcm(name: str, *, stereo: bool = False) -> str:
    """A `type jack` PCM wired to the dummy driver's system ports."""
    chans = (1, 2) if stereo else (1,)
    play = " ".join(f"{c - 1} system:playback_{c}" for c in chans)
    cap = " ".join(f"{c - 1} system:capture_{c}" for c in chans)
    return f"pcm.{name} {{ type jack playback_ports {{ {play} }} capture_ports {{ {cap} }} }}"


def write_asoundrc(path: Path, *pcms: str) -> Path:
    """Write an ALSA config holding only these PCMs (plus the `default` PortAudio needs)."""
    # PortAudio 19.6 aborts in BuildDeviceList when the config has no pcm.default.
    default = file_pcm("default")
    path.write_text("\n".join([*pcms, default]) + "\n", encoding="ascii")
    return path


class Jackd:
    """A private jackd on the dummy driver; `stop()` ends exactly the process it started."""

    def __init__(self, rate: int = 24_000, period: int = 480) -> None:
        self.name = f"swaramd-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.rate, self.period = rate, period
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a client needs to find this server and no other."""
        return {"JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1",
                "JACK_NO_AUDIO_RESERVATION": "1"}

    def start(self, timeout_s: float = 10.0) -> None:
        """Start jackd and wait (bounded) until it accepts clients."""
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            ["jackd", "--no-realtime", "-n", self.name, "--port-max", "32",
             "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}")
            probe = subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=5)
            if b"system:playback_1" in probe.stdout:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("jackd did not come up")

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): its clients stop getting callbacks."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw the server (SIGCONT)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Terminate, wait with a timeout, then kill: only this pid."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
