#!/bin/bash
# guest-check.sh STEP: one step of tools/pi-check.sh, run as root inside the
# emulated userland, where /home/pi/swaramd is a copy of the checkout.
set -euo pipefail

readonly CLONE=/home/pi/swaramd
readonly KEY_FILE=/home/pi/swaram.key
readonly VENV=/opt/swaramd/venv
readonly SWARAMD=$VENV/bin/swaramd

case ${1:-} in
    install)
        # Each line of install.sh's output with the seconds since it started:
        # how the time splits between apt and pip.
        cd "$CLONE"
        ./install.sh --key-file "$KEY_FILE" 2>&1 | while IFS= read -r line; do
            printf '%5d s  %s\n' "$SECONDS" "$line"
        done
        ;;
    reinstall)
        cd "$CLONE"
        out=$(./install.sh --key-file "$KEY_FILE")
        printf '%s\n' "$out"
        [[ $out == *"nothing changed"* ]] || { echo "the second install.sh changed something" >&2; exit 1; }
        ;;
    check-config)
        # As the unit passes the key: systemd's copy in $CREDENTIALS_DIRECTORY.
        CREDENTIALS_DIRECTORY=/etc/swaramd "$SWARAMD" check-config
        systemctl is-enabled swaramd
        ;;
    devices)
        "$SWARAMD" devices
        ;;
    demo)
        cd /home/pi  # where it leaves its recording
        timeout -k 10 600 "$SWARAMD" demo
        ;;
    gpio)
        # No GPIO in the guest: say whether lgpio imports in the service's
        # virtualenv, and which factory gpiozero's own order (what
        # pin_factory: auto uses) takes first on a Pi.
        "$VENV/bin/python" - <<'PY'
import importlib
import importlib.metadata
import platform

try:
    import lgpio
except ImportError as exc:
    print(f"lgpio importable: no ({exc})")
else:
    print(f"lgpio importable: yes ({getattr(lgpio, '__file__', '?')})")
order = ["gpiozero.pins.lgpio", "gpiozero.pins.rpigpio", "gpiozero.pins.pigpio",
         "gpiozero.pins.native"]
usable = []
for name in order:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    usable.append(name.rsplit(".", 1)[1])
print(f"gpiozero {importlib.metadata.version('gpiozero')} on {platform.machine()}; backends that import: "
      f"{', '.join(usable)}")
print(f"pin_factory auto on a Pi: {usable[0] if usable else 'none'} "
      f"(gpiozero tries lgpio, rpigpio, pigpio, native in that order; a Pi 5 needs lgpio)")
PY
        ;;
    speexdsp)
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libspeexdsp1 >/dev/null
        dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' libspeexdsp1
        "$VENV/bin/python" -c 'import ctypes.util; print("ctypes finds", ctypes.util.find_library("speexdsp"))'
        ;;
    wakeword)
        start=$SECONDS
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install -q pymicro-wakeword
        echo "pip install pymicro-wakeword: $((SECONDS - start)) s"
        "$VENV/bin/pip" list 2>/dev/null | grep -i -E '^(pymicro-|numpy )'
        # One second of silence through the features and the bundled okay_nabu model.
        "$VENV/bin/python" - <<'PY'
from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

model = MicroWakeWord.from_builtin(Model.OKAY_NABU)
features = MicroWakeWordFeatures()
hits = [model.process_streaming(f) for f in features.process_streaming(bytes(32000))]
print(f"okay_nabu ran on 1 s of silence: {len(hits)} feature frames, detected: {any(hits)}")
PY
        ;;
    *)
        echo "guest-check.sh: unknown step '${1:-}'" >&2
        exit 2
        ;;
esac
