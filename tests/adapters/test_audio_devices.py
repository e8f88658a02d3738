"""Device listing and choosing, through the real PortAudio with an ALSA config of our own."""

from __future__ import annotations

from pathlib import Path

import pytest

from swaramd.adapters.audio_devices import (
    AudioDevice,
    find_device,
    format_devices,
    list_devices,
)
from swaramd.core.errors import AudioDeviceError
from tests.adapters.alsa_rig import file_pcm, write_asoundrc


def test_lists_the_configured_pcms_quietly(alsa_env: pytest.MonkeyPatch, tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    conf = write_asoundrc(tmp_path / "asound.conf", file_pcm("swaram_mic"), file_pcm("swaram_spk"))
    alsa_env.setenv("ALSA_CONFIG_PATH", str(conf))
    devices = list_devices()
    names = [d.name for d in devices]
    assert "swaram_mic" in names and "swaram_spk" in names
    mic = devices[names.index("swaram_mic")]
    assert mic.input_channels > 0 and mic.default_rate > 0
    text = format_devices(devices)
    assert text.startswith("Inputs:\n") and "\nOutputs:\n" in text and "swaram_spk" in text
    assert capfd.readouterr().err == ""          # ALSA/JACK probing noise silenced


DEVICES = [AudioDevice(0, "USB PnP Sound Device: Audio (hw:1,0)", "ALSA", 1, 0, 48_000),
           AudioDevice(1, "snd_rpi_hifiberry_dac: HiFiBerry DAC (hw:2,0)", "ALSA", 0, 2, 44_100),
           AudioDevice(2, "default", "ALSA", 128, 128, 44_100)]


@pytest.mark.parametrize(("spec", "direction", "index"), [
    ("usb", "input", 0), ("HIFIBERRY", "output", 1), (0, "input", 0),
    ("default", "input", 2), ("default", "output", 2),
])
def test_find_device(spec: str | int, direction: str, index: int) -> None:
    assert find_device(DEVICES, spec, direction, None).index == index  # type: ignore[arg-type]


def test_no_match_lists_what_there_is() -> None:
    with pytest.raises(AudioDeviceError) as err:
        find_device(DEVICES, "hifiberry", "input", None)
    assert "USB PnP" in str(err.value) and "HiFiBerry" not in str(err.value)
    with pytest.raises(AudioDeviceError):
        find_device(DEVICES, 1, "input", None)     # index 1 has no input channels
