#!/bin/bash
# tools/pi-check.sh ARCH: installs and runs swaramd inside an emulated Debian 12
# (Bookworm) userland for ARCH (arm64 or armhf), as a Raspberry Pi owner would:
# install.sh from a copy of this checkout (system packages, the virtualenv, the
# unit, the config, the key), then `swaramd check-config`, `devices` and `demo`.
# One line per step with its wall time; the first failing step is named and
# the check exits 1. Run `tools/pi-check.sh --help` for the details.
set -euo pipefail

readonly PROG=pi-check
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly HERE
readonly REPO=${HERE%/tools}
readonly SOURCES=(install.sh pyproject.toml README.md config.yaml systemd swaramd)
readonly SUITE=bookworm
readonly KEY="swaram_pi_check_0000000000000000"  # a dummy: nothing connects with it

usage() {
    cat <<'EOF2'
Usage: tools/pi-check.sh ARCH        (or: make pi-check ARCH=ARCH)

ARCH is arm64 (64-bit Raspberry Pi OS) or armhf (32-bit). Needs root, and the
host packages proot, qemu-user-static and debootstrap; no binfmt_misc.

Builds (once) a Debian 12 userland for ARCH with what Raspberry Pi OS Lite has
before install.sh (python3, systemd, procps, sudo) and keeps it in
$PI_CHECK_CACHE/ARCH (default /var/tmp/swaramd-pi/ARCH), with the downloaded
.deb files and pip's cache. Every run starts from that userland, copies this
checkout to /home/pi/swaramd and runs there, under qemu through proot:
  install        ./install.sh --key-file FILE (apt, user, venv, unit, config, key)
  reinstall      the same again: must change nothing
  check-config   swaramd check-config
  devices        swaramd devices (there are no sound cards in the guest)
  demo           swaramd demo (the daemon against the simulated service)
  gpio           whether lgpio imports, and what pin_factory auto uses on a Pi
  speexdsp       apt-get install libspeexdsp1
  wakeword       pip install pymicro-wakeword into the virtualenv
then prints the disk used. PI_CHECK_REBUILD=1 rebuilds the userland;
PI_CHECK_MIRROR sets the Debian mirror (default http://deb.debian.org/debian);
PI_CHECK_STEP_TIMEOUT bounds each step in seconds (default 3600).

Exit status: 0 all steps passed, 1 a step failed, 2 bad usage.
EOF2
}

say() { printf '%s %s: %s\n' "$PROG" "${ARCH:-?}" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$PROG" "$*" >&2; exit 2; }

# ---------------------------------------------------------------- arguments

[[ $# -eq 1 ]] || usage_error "give one ARCH: arm64 or armhf"
case $1 in
    -h | --help) usage; exit 0 ;;
    arm64) ARCH=arm64; QEMU=qemu-aarch64-static ;;
    armhf) ARCH=armhf; QEMU=qemu-arm-static ;;
    *) usage_error "unknown ARCH '$1': arm64 or armhf" ;;
esac
readonly ARCH QEMU

readonly MIRROR=${PI_CHECK_MIRROR:-http://deb.debian.org/debian}
readonly STEP_TIMEOUT=${PI_CHECK_STEP_TIMEOUT:-3600}
[[ $STEP_TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage_error "PI_CHECK_STEP_TIMEOUT must be whole seconds"
CACHE=${PI_CHECK_CACHE:-/var/tmp/swaramd-pi}/$ARCH
readonly CACHE
readonly PRISTINE=$CACHE/userland.tar  # the userland before install.sh
readonly GUEST=$CACHE/root             # this run's copy
readonly LOGS=$CACHE/logs

[[ $(id -u) -eq 0 ]] || die "run it as root (debootstrap and the guest's apt need it)"
for tool in proot "$QEMU" debootstrap timeout flock unshare; do
    command -v "$tool" >/dev/null \
        || die "$tool not found: apt-get install proot qemu-user-static debootstrap"
done
HOST_PYTHON=$(command -v python3) || die "python3 not found on this host"
readonly HOST_PYTHON

mkdir -p -- "$CACHE" "$LOGS" "$CACHE/apt-archives/partial" "$CACHE/pip-cache"
exec 9>"$CACHE/.lock"
flock -n 9 || die "another pi-check for $ARCH is using $CACHE"

# ---------------------------------------------------------------- processes

CHILD=""  # the one step running now, stopped by its pid on any exit

stop_child() {
    [[ -n $CHILD ]] || return 0
    if kill -0 "$CHILD" 2>/dev/null; then
        # The step's shell, and timeout below it: timeout passes it on to its
        # process group (proot, which takes its tracees with it).
        pkill -TERM -P "$CHILD" 2>/dev/null || true
        kill -TERM "$CHILD" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$CHILD" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$CHILD" 2>/dev/null || true
    fi
    wait "$CHILD" 2>/dev/null || true
    CHILD=""
}
trap stop_child EXIT
trap 'stop_child; exit 130' INT
trap 'stop_child; exit 143' TERM

TOTAL_START=$SECONDS

# step NAME COMMAND...: runs COMMAND (output to LOGS/NAME.log), prints one line
# with its time, and stops the check naming NAME when it fails.
step() {
    local name=$1 rc=0 started elapsed
    shift
    started=$(date +%s.%N)
    "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if ((rc == 124)); then
        say "$(printf '%-13s FAILED: still running after %s s (PI_CHECK_STEP_TIMEOUT)' "$name" "$elapsed")"
    elif ((rc != 0)); then
        say "$(printf '%-13s FAILED (exit %d) after %s s' "$name" "$rc" "$elapsed")"
    fi
    if ((rc != 0)); then
        tail -n 25 -- "$LOGS/$name.log" | sed 's/^/    /' >&2
        die "$ARCH: step $name failed; its whole output is in $LOGS/$name.log"
    fi
    say "$(printf '%-13s ok %8s s' "$name" "$elapsed")"
}

# guest COMMAND...: runs COMMAND inside the guest as root, under qemu through
# proot, with a clean environment, within the step time bound. proot passes
# mount(2) through, and the guest runs as root with the host's /dev bound in:
# in a private mount namespace, a guest's `umount /dev/pts` (debootstrap, dpkg
# scripts) cannot unmount the host's.
guest() {
    timeout -k 10 "$STEP_TIMEOUT" \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            HOME=/root LANG=C.UTF-8 TERM=dumb PIP_ROOT_USER_ACTION=ignore \
        nice -n 19 "${IONICE[@]}" \
        unshare --mount --propagation private \
        "$HOST_PYTHON" "$HERE/pi-check/enosys-exec.py" \
        proot -q "$QEMU" -r "$GUEST" -w / \
            -b /dev -b /proc -b /sys "${CACHE_BINDS[@]}" \
            "$@"
}
# The downloaded .deb files and pip's cache outlive each run's copy of the userland.
CACHE_BINDS=(-b "$CACHE/apt-archives:/var/cache/apt/archives"
             -b "$CACHE/pip-cache:/root/.cache/pip")
IONICE=()
command -v ionice >/dev/null && IONICE=(ionice -c3)

# ---------------------------------------------------------------- the userland

debootstrap_first() {
    rm -rf -- "$GUEST"
    nice -n 19 "${IONICE[@]}" debootstrap --arch="$ARCH" --foreign --variant=minbase \
        "$SUITE" "$GUEST" "$MIRROR"
    # In a container debootstrap leaves /proc a symlink; proot binds over a directory.
    rm -rf -- "$GUEST/proc"
    mkdir -m 555 -- "$GUEST/proc"
}

debootstrap_second() {
    cp -- /etc/resolv.conf "$GUEST/etc/resolv.conf"
    # Its packages wait in the userland's own /var/cache/apt/archives.
    CACHE_BINDS=()
    guest /debootstrap/debootstrap --second-stage
}

base_packages() {
    cp -- /etc/resolv.conf "$GUEST/etc/resolv.conf"
    install -m 755 -- "$HERE/pi-check/guest-base.sh" "$GUEST/tmp/guest-base.sh"
    mkdir -p -- "$GUEST/tmp/pi-check-ca"
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp -- /usr/local/share/ca-certificates/*.crt "$GUEST/tmp/pi-check-ca/"
    fi
    guest /bin/sh /tmp/guest-base.sh "$MIRROR"
    rm -f -- "$GUEST/tmp/guest-base.sh"
}

pack_userland() {
    tar -C "$GUEST" --numeric-owner -cf "$PRISTINE.tmp" .
    mv -f -- "$PRISTINE.tmp" "$PRISTINE"
}

unpack_userland() {
    rm -rf -- "$GUEST"
    mkdir -- "$GUEST"
    tar -C "$GUEST" --numeric-owner -xf "$PRISTINE"
    cp -- /etc/resolv.conf "$GUEST/etc/resolv.conf"
}

copy_checkout() {
    local dest=$GUEST/home/pi/swaramd
    mkdir -p -- "$dest"
    (cd -- "$REPO" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - "${SOURCES[@]}") \
        | tar -C "$dest" -xf -
    install -m 755 -- "$HERE/pi-check/guest-check.sh" "$GUEST/home/pi/guest-check.sh"
    (umask 077 && printf '%s\n' "$KEY" >"$GUEST/home/pi/swaram.key")
}

# ---------------------------------------------------------------- the check

# build_stage NAME FUNCTION: one stage of building the userland, skipped when
# an earlier run that stopped later already did it.
build_stage() {
    [[ -f $CACHE/.$1.done ]] && { say "$(printf '%-13s done before' "$1")"; return 0; }
    step "$@"
    touch -- "$CACHE/.$1.done"
}

if [[ -n ${PI_CHECK_REBUILD:-} || ! -f $PRISTINE ]]; then
    [[ -z ${PI_CHECK_REBUILD:-} && -f $CACHE/.debootstrap-1.done ]] \
        || rm -f -- "$PRISTINE" "$CACHE"/.*.done
    build_stage debootstrap-1 debootstrap_first
    build_stage debootstrap-2 debootstrap_second
    build_stage base-packages base_packages
    step save-userland pack_userland
    rm -f -- "$CACHE"/.*.done
fi
grep -h 'pi-check warning:' -- "$LOGS"/base-packages.log 2>/dev/null | sed "s/^pi-check /$PROG $ARCH: /" || true
step unpack unpack_userland
step copy-checkout copy_checkout
for check in install reinstall check-config devices demo gpio speexdsp wakeword; do
    step "$check" guest /bin/bash /home/pi/guest-check.sh "$check"
done
for check in install gpio speexdsp wakeword; do
    sed 's/^/    /' -- "$LOGS/$check.log"
done
say "disk: userland before install $(du -sh --apparent-size -- "$PRISTINE" | cut -f1)," \
    "after $(du -sh -- "$GUEST" | cut -f1), /opt/swaramd $(du -sh -- "$GUEST/opt/swaramd" | cut -f1)"
say "all steps passed in $((SECONDS - TOTAL_START)) s"
