#!/bin/sh
# Makes sure the Debian / Raspberry Pi OS packages that swaramd's build and
# tests need are present. As root it installs what is missing; otherwise it
# prints the exact apt-get line to run and fails.
set -eu

PYTHON=${PYTHON:-python3}
need="portaudio19-dev libasound2-dev libasound2-plugins alsa-utils jackd2 systemd libspeexdsp1 espeak-ng"

# PyAudio compiles against the running Python's headers; venv needs ensurepip.
if ! "$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
    need="$need python3-dev"
fi
if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
    need="$need python3-venv"
fi
command -v cc >/dev/null 2>&1 || need="$need gcc"

missing=""
for pkg in $need; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $pkg" ;;
    esac
done
[ -z "$missing" ] && exit 0

line="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "swaramd needs these system packages:$missing" >&2
    echo "Run as root:  sudo sh -c '$line'" >&2
    exit 1
fi
echo "installing system packages:$missing" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
