#!/bin/bash
# install.sh: installs swaramd from this checkout on Raspberry Pi OS Bookworm or
# Debian 12: system packages, a virtualenv in /opt/swaramd, the
# config and key in /etc/swaramd, the systemd unit, then enable and start.
# Idempotent: a second run with the same inputs changes nothing. `--root DIR`
# stages the same files under DIR and leaves the running system alone.
# Run `./install.sh --help` for the options.
set -euo pipefail
umask 022

readonly PROG=install.sh
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly SRC
readonly SERVICE=swaramd
readonly SVC_USER=swaramd
readonly MIN_PYTHON=3.11
readonly MAX_KEY_BYTES=4096
# Runtime and build needs: PyAudio has no Linux wheels and compiles against
# PortAudio and the Python headers; venv needs ensurepip; alsa-utils gives
# aplay/arecord/alsamixer to check the sound card.
readonly APT_PACKAGES="python3 python3-venv python3-dev gcc libc6-dev portaudio19-dev alsa-utils libspeexdsp1"
# 32-bit ARM (armhf): PyPI has no armv7 wheels for numpy, PyYAML or soxr, and
# compiling numpy takes most of an hour on a Pi. There the virtualenv takes
# Debian's numpy and PyYAML through the system site-packages, and soxr
# compiles in minutes with g++, cmake and ninja.
readonly ARMHF_PACKAGES="python3-numpy python3-yaml g++ cmake ninja-build"

usage() {
    cat <<'EOF'
Usage: sudo ./install.sh [--key-file FILE] [--no-start]
       ./install.sh --root DIR [--key-file FILE] [--skip-venv]
       sudo ./install.sh --uninstall [--purge]

Installs swaramd from this checkout (Raspberry Pi OS Bookworm, Debian 12):
  apt packages, the system user swaramd, a virtualenv in /opt/swaramd/venv,
  /etc/swaramd/config.yaml (never replacing one you edited), the API key in
  /etc/swaramd/api_key (mode 0600, root), the unit swaramd.service; then
  enables and (re)starts the service. Running it again changes nothing unless
  the checkout, the key or the unit changed.

The API key comes from --key-file FILE, else one line on stdin when stdin is
not a terminal, else a prompt (not echoed). Given nothing (an empty line, or
</dev/null without a terminal), an existing key is kept; with no key there
yet, that is an error. The key is never printed.

Options:
  --key-file FILE  read the API key from FILE
  --no-start       enable the service but do not start or restart it now
  --python PATH    the Python to build the virtualenv with
                   (default /usr/bin/python3; with --root, python3 on PATH)
  --root DIR       stage the install under DIR (DIR/opt/swaramd,
                   DIR/etc/swaramd, DIR/etc/systemd/system): no apt, no user,
                   no systemctl; files belong to whoever runs it
  --skip-venv      with --root: leave out the virtualenv (faster, for tests)
  --uninstall      stop and disable the service, remove the unit and
                   /opt/swaramd; keep /etc/swaramd (config and key)
  --purge          with --uninstall: also remove /etc/swaramd,
                   /var/lib/swaramd and the swaramd user
  -h, --help       show this help

Exit status: 0 done, 1 failed, 2 bad usage.
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see --help)\n' "$PROG" "$*" >&2; exit 2; }

# ---------------------------------------------------------------- arguments

ROOT=""
ROOT_GIVEN=0
KEY_FILE=""
NO_START=0
SKIP_VENV=0
UNINSTALL=0
PURGE=0
PYTHON_BIN=""

need_value() { [[ $# -ge 2 && -n $2 ]] || usage_error "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --root) need_value "$@"; ROOT=$2; ROOT_GIVEN=1; shift 2 ;;
        --root=*) ROOT=${1#*=}; ROOT_GIVEN=1; [[ -n $ROOT ]] || usage_error "--root needs a value"; shift ;;
        --key-file) need_value "$@"; KEY_FILE=$2; shift 2 ;;
        --key-file=*) KEY_FILE=${1#*=}; [[ -n $KEY_FILE ]] || usage_error "--key-file needs a value"; shift ;;
        --python) need_value "$@"; PYTHON_BIN=$2; shift 2 ;;
        --python=*) PYTHON_BIN=${1#*=}; [[ -n $PYTHON_BIN ]] || usage_error "--python needs a value"; shift ;;
        --no-start) NO_START=1; shift ;;
        --skip-venv) SKIP_VENV=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        *) usage_error "unknown argument: $1" ;;
    esac
done

((PURGE)) && ! ((UNINSTALL)) && usage_error "--purge goes with --uninstall"
((UNINSTALL)) && [[ -n $KEY_FILE ]] && usage_error "--key-file makes no sense with --uninstall"
((SKIP_VENV)) && ! ((ROOT_GIVEN)) && usage_error "--skip-venv is only for --root (the service needs its virtualenv)"

if ((ROOT_GIVEN)); then
    ROOT=$(realpath -m -- "$ROOT")
    [[ $ROOT != / ]] || usage_error "--root / is the running system: leave out --root"
fi

readonly OPT=$ROOT/opt/swaramd
readonly VENV=$OPT/venv
readonly STAMP=$VENV/.swaramd-install
readonly ETC=$ROOT/etc/swaramd
readonly CONFIG=$ETC/config.yaml
readonly KEY=$ETC/api_key
readonly UNIT_DIR=$ROOT/etc/systemd/system
readonly UNIT=$UNIT_DIR/$SERVICE.service
readonly STATE=$ROOT/var/lib/swaramd
readonly SHIPPED_CONFIG=$OPT/config.yaml  # the default as last installed: tells edited from not

real_system() { ! ((ROOT_GIVEN)); }
systemd_running() { [[ -d /run/systemd/system ]]; }

# Temporary files and directories, removed on any exit.
CLEANUP=()
cleanup() { ((${#CLEANUP[@]})) && rm -rf -- "${CLEANUP[@]}"; return 0; }
trap cleanup EXIT

CHANGED=0       # anything the running service would need a restart for
UNIT_CHANGED=0  # the unit file itself (needs daemon-reload)

# ---------------------------------------------------------------- helpers

# owner_of USER:GROUP: the owner to set on the running system; nothing with --root.
owner_of() { real_system && printf '%s' "$1"; return 0; }

# ensure_dir PATH MODE [OWNER:GROUP]: create it or fix its mode and owner.
ensure_dir() {
    local path=$1 mode=$2 owner
    owner=$(owner_of "${3:-root:root}")
    if [[ ! -d $path ]]; then
        mkdir -p -- "$path"
        say "created $path"
    fi
    if [[ $(stat -c %a -- "$path") != "$mode" ]]; then
        chmod -- "$mode" "$path"
    fi
    if [[ -n $owner && $(stat -c %U:%G -- "$path") != "$owner" ]]; then
        chown -- "$owner" "$path"
    fi
}

# put_file SRC DEST MODE [OWNER:GROUP]: copy SRC over DEST unless DEST already
# has the same bytes, mode and owner (then DEST is not touched at all).
# Returns 0 when it wrote, 1 when DEST was already right.
put_file() {
    local src=$1 dest=$2 mode=$3 owner tmp
    owner=$(owner_of "${4:-root:root}")
    if [[ -f $dest ]] && cmp -s -- "$src" "$dest"; then
        if [[ $(stat -c %a -- "$dest") != "$mode" ]]; then
            chmod -- "$mode" "$dest"
            say "fixed the mode of $dest ($mode)"
        fi
        if [[ -n $owner && $(stat -c %U:%G -- "$dest") != "$owner" ]]; then
            chown -- "$owner" "$dest"
            say "fixed the owner of $dest ($owner)"
        fi
        return 1
    fi
    tmp=$(mktemp -- "$dest.XXXXXX")
    CLEANUP+=("$tmp")
    cp -- "$src" "$tmp"
    chmod -- "$mode" "$tmp"
    [[ -z $owner ]] || chown -- "$owner" "$tmp"
    mv -f -- "$tmp" "$dest"
    say "installed $dest"
    return 0
}

# refuse_links PATH...: with --root, no part of PATH below DIR may be a symbolic
# link: mkdir, chmod, cp and rm would follow it and change files outside DIR.
refuse_links() {
    real_system && return 0
    local path part cur
    local -a parts
    for path in "$@"; do
        cur=$ROOT
        IFS=/ read -r -a parts <<<"${path#"$ROOT"/}"
        for part in "${parts[@]}"; do
            cur=$cur/$part
            if [[ -L $cur ]]; then
                die "$cur is a symbolic link: with --root nothing under $ROOT may be one (it would write outside)"
            fi
            [[ -e $cur ]] || break
        done
    done
}

trim() {
    local s=$1
    s=${s#"${s%%[![:space:]]*}"}
    s=${s%"${s##*[![:space:]]}"}
    printf '%s' "$s"
}

# ---------------------------------------------------------------- the key

NEW_KEY=""  # held only in this variable; never printed, never in argv

# Sets NEW_KEY from --key-file, stdin or a prompt; empty when none was given.
read_key() {
    local raw=""
    if [[ -n $KEY_FILE ]]; then
        [[ -f $KEY_FILE && -r $KEY_FILE ]] || die "cannot read key file $KEY_FILE"
        (($(stat -L -c %s -- "$KEY_FILE") <= MAX_KEY_BYTES)) || die "key file $KEY_FILE is too big to be a key"
        raw=$(<"$KEY_FILE")
        NEW_KEY=$(trim "$raw")
        [[ -n $NEW_KEY ]] || die "key file $KEY_FILE is empty"
    elif [[ -t 0 ]]; then
        if [[ -s $KEY ]]; then
            printf 'swaram API key (Enter keeps the current one): ' >&2
        else
            printf 'swaram API key: ' >&2
        fi
        IFS= read -r -s raw || true
        printf '\n' >&2
        NEW_KEY=$(trim "$raw")
    else
        IFS= read -r raw || true
        NEW_KEY=$(trim "$raw")
    fi
    if [[ -z $NEW_KEY && ! -s $KEY ]]; then
        die "no API key given: use --key-file FILE, pipe it on stdin, or run in a terminal"
    fi
    if [[ $NEW_KEY =~ [[:space:]] ]]; then
        die "the API key must be one word (it holds spaces or more than one line)"
    fi
    (("${#NEW_KEY}" <= MAX_KEY_BYTES)) || die "the API key is too long"
}

# Writes NEW_KEY to the key file (0600, root) unless it already holds it.
install_key() {
    local owner current tmp
    owner=$(owner_of root:root)
    if [[ -f $KEY ]]; then
        current=$(trim "$(<"$KEY")")
        if [[ -z $NEW_KEY || $current == "$NEW_KEY" ]]; then
            if [[ $(stat -c %a -- "$KEY") != 600 ]]; then
                chmod 600 -- "$KEY"
                say "fixed the mode of $KEY (600)"
            fi
            if [[ -n $owner && $(stat -c %U:%G -- "$KEY") != "$owner" ]]; then
                chown -- "$owner" "$KEY"
                say "fixed the owner of $KEY ($owner)"
            fi
            [[ -n $NEW_KEY ]] || say "kept the API key in $KEY"
            return 0
        fi
    fi
    tmp=$(umask 077 && mktemp -- "$KEY.XXXXXX")
    CLEANUP+=("$tmp")
    printf '%s\n' "$NEW_KEY" >"$tmp"
    chmod 600 -- "$tmp"
    [[ -z $owner ]] || chown -- "$owner" "$tmp"
    mv -f -- "$tmp" "$KEY"
    say "installed the API key in $KEY (mode 600)"
    CHANGED=1
}

# ---------------------------------------------------------------- the config

# Installs the shipped config.yaml as /etc/swaramd/config.yaml when there is
# none, or when the one there is the previously shipped default (not edited).
# An edited config is kept; the new default goes beside it as config.yaml.dist.
install_config() {
    local shipped=$SRC/config.yaml owner=root:$SVC_USER
    if [[ ! -e $CONFIG ]]; then
        put_file "$shipped" "$CONFIG" 640 "$owner" || true
        CHANGED=1
    elif cmp -s -- "$shipped" "$CONFIG"; then
        put_file "$shipped" "$CONFIG" 640 "$owner" || true  # fixes mode/owner only
    elif [[ -f $SHIPPED_CONFIG ]] && cmp -s -- "$SHIPPED_CONFIG" "$CONFIG"; then
        put_file "$shipped" "$CONFIG" 640 "$owner" || true
        say "  (you had not edited it: updated to the new default)"
        CHANGED=1
    else
        say "kept your edited $CONFIG"
        if put_file "$shipped" "$CONFIG.dist" 640 "$owner"; then
            say "  (the new default is beside it: diff $CONFIG.dist $CONFIG)"
        fi
    fi
    put_file "$shipped" "$SHIPPED_CONFIG" 644 || true
}

# ---------------------------------------------------------------- system parts

pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == *"install ok installed"* ]]
}

VENV_SYSTEM_SITE=0
EXTRA_PACKAGES=()
# Raspberry Pi OS ships gpiozero's lgpio backend as python3-lgpio (plain
# Debian 12 has no such package; pip then installs the lgpio wheel); the venv
# sees it through system site-packages. On armhf the venv also takes numpy
# and PyYAML from Debian.
detect_system_packages() {
    if pkg_installed python3-lgpio || apt-cache show python3-lgpio >/dev/null 2>&1; then
        VENV_SYSTEM_SITE=1
        EXTRA_PACKAGES+=(python3-lgpio)
    fi
    case $(dpkg --print-architecture) in
        armhf | armel)
            VENV_SYSTEM_SITE=1
            read -r -a EXTRA_PACKAGES <<<"${EXTRA_PACKAGES[*]} $ARMHF_PACKAGES"
            ;;
    esac
}

# The config names a wake word (conversation.wake_word): the venv gets the engine.
wants_wake_word() {
    [[ -f $CONFIG ]] \
        && grep -Eq '^[[:space:]]+wake_word:[[:space:]]*["'"'"']?(okay_nabu|hey_jarvis|hey_mycroft|alexa)' \
            -- "$CONFIG"
}

install_packages() {
    local pkg missing=()
    local -a want
    read -r -a want <<<"$APT_PACKAGES ${EXTRA_PACKAGES[*]}"
    # 32-bit Pi OS: the wake word's feature extractor has no wheel and builds with g++.
    if wants_wake_word && [[ $(uname -m) == armv* ]]; then want+=(g++); fi
    for pkg in "${want[@]}"; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    say "installing system packages: ${missing[*]}"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

ensure_user() {
    # The unit names these groups; systemd refuses to start it (216/GROUP)
    # when one is missing, as gpio is on plain Debian.
    local group
    for group in audio gpio; do
        if ! getent group "$group" >/dev/null; then
            groupadd --system "$group"
            say "created the system group $group"
        fi
    done
    getent group "$SVC_USER" >/dev/null || groupadd --system "$SVC_USER"
    if ! getent passwd "$SVC_USER" >/dev/null; then
        useradd --system --gid "$SVC_USER" --no-create-home --home-dir /var/lib/swaramd \
            --shell /usr/sbin/nologin --comment "swaramd voice appliance" "$SVC_USER"
        say "created the system user $SVC_USER"
    fi
}

# ---------------------------------------------------------------- the venv

choose_python() {
    if [[ -z $PYTHON_BIN ]]; then
        if real_system; then PYTHON_BIN=/usr/bin/python3; else PYTHON_BIN=python3; fi
    fi
    command -v -- "$PYTHON_BIN" >/dev/null || die "no Python at $PYTHON_BIN (see --python)"
    "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON_BIN is older than Python $MIN_PYTHON"
    "$PYTHON_BIN" -c 'import venv, ensurepip' 2>/dev/null \
        || die "$PYTHON_BIN cannot make a virtualenv: install python3-venv"
}

# A digest of everything that goes into the wheel: a change reinstalls.
source_digest() {
    (
        cd -- "$SRC"
        find pyproject.toml swaramd -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
    )
}

install_venv() {
    local interp want have="" build extras=""
    interp=$("$PYTHON_BIN" -c 'import sys; print(sys.executable, "%d.%d.%d" % sys.version_info[:3])')
    wants_wake_word && extras="[wakeword]"
    want="python=$interp system-site=$VENV_SYSTEM_SITE source=$(source_digest) extras=$extras"
    [[ -f $STAMP ]] && have=$(<"$STAMP")
    if [[ $have == "$want" && -x $VENV/bin/swaramd ]]; then
        return 0
    fi
    if [[ ${have%% source=*} != "${want%% source=*}" || ! -x $VENV/bin/python ]]; then
        say "creating the virtualenv $VENV"
        local -a flags=(--clear)
        ((VENV_SYSTEM_SITE)) && flags+=(--system-site-packages)
        "$PYTHON_BIN" -m venv "${flags[@]}" "$VENV" || die "could not create the virtualenv $VENV"
    fi
    # Build from a copy so the checkout gets no build/ or egg-info owned by root.
    build=$(mktemp -d)
    CLEANUP+=("$build")
    mkdir -- "$build/src"
    cp -- "$SRC/pyproject.toml" "$SRC/README.md" "$build/src/"
    tar -C "$SRC" --exclude=__pycache__ --exclude='*.pyc' -cf - swaramd | tar -C "$build/src" -xf -
    say "installing swaramd${extras:+ with the wake word engine} into $VENV (pip)"
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$VENV/bin/python" -m pip install -q "$build/src$extras" || die "pip install into $VENV failed (see above)"
    printf '%s\n' "$want" >"$STAMP"
    CHANGED=1
}

# Validates the installed config and key with the installed swaramd; the key is
# read the way the unit passes it ($CREDENTIALS_DIRECTORY/api_key).
check_config() {
    local out
    if ! out=$(CREDENTIALS_DIRECTORY=$ETC "$VENV/bin/swaramd" check-config -c "$CONFIG" 2>&1); then
        printf '%s\n' "$out" >&2
        die "$CONFIG has problems (above): fix it, then run install.sh again"
    fi
    # Warnings (pin_factory auto on a machine with no GPIO) do not stop the install.
    grep -F ': warning: ' <<<"$out" >&2 || true
}

# ---------------------------------------------------------------- systemd

start_service() {
    if ! systemd_running; then
        if ! systemctl is-enabled --quiet "$SERVICE" 2>/dev/null; then
            systemctl enable --quiet "$SERVICE" || die "systemctl enable $SERVICE failed"
        fi
        say "systemd is not running here: $SERVICE is enabled and starts at the next boot"
        return 0
    fi
    if ((UNIT_CHANGED)); then
        systemctl daemon-reload
    fi
    if ! systemctl is-enabled --quiet "$SERVICE" 2>/dev/null; then
        systemctl enable --quiet "$SERVICE" || die "systemctl enable $SERVICE failed"
        say "enabled $SERVICE (starts at boot)"
    fi
    if ((NO_START)); then
        if ! systemctl is-active --quiet "$SERVICE"; then
            say "not started (--no-start): systemctl start $SERVICE"
        elif ((CHANGED)); then
            say "not restarted (--no-start): systemctl restart $SERVICE"
        fi
        return 0
    fi
    if systemctl is-active --quiet "$SERVICE"; then
        if ((CHANGED)); then
            systemctl restart "$SERVICE" || die "$SERVICE did not restart: journalctl -u $SERVICE -e"
            say "restarted $SERVICE"
        fi
    else
        systemctl start "$SERVICE" || die "$SERVICE did not start: journalctl -u $SERVICE -e"
        say "started $SERVICE: journalctl -u $SERVICE -f shows its log"
    fi
}

# ---------------------------------------------------------------- install

check_sources() {
    local f
    for f in pyproject.toml README.md config.yaml systemd/swaramd.service swaramd/__init__.py; do
        [[ -f $SRC/$f ]] || die "$SRC/$f is missing: run install.sh from a swaramd checkout"
    done
}

check_system() {
    [[ $(id -u) -eq 0 ]] || die "run it as root (sudo ./install.sh), or stage it with --root DIR"
    if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
        die "this installer needs apt (Raspberry Pi OS Bookworm or Debian 12)"
    fi
    command -v systemctl >/dev/null || die "this installer needs systemd (systemctl not found)"
    local codename=""
    # shellcheck disable=SC1091  # the running system's, not ours to check
    [[ -r /etc/os-release ]] && codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
    [[ $codename == bookworm ]] || warn "made for Bookworm (Debian 12); this is ${codename:-unknown}"
}

do_install() {
    check_sources
    refuse_links "$OPT/README.md" "$SHIPPED_CONFIG" "$STAMP" "$CONFIG" "$CONFIG.dist" "$KEY" "$UNIT"
    if real_system; then
        check_system
        detect_system_packages
    fi
    read_key  # before anything changes: a bad key leaves the system as it was
    if real_system; then
        install_packages
        ensure_user
    fi
    ensure_dir "$OPT" 755
    ensure_dir "$ETC" 750 "root:$SVC_USER"
    ensure_dir "$UNIT_DIR" 755
    install_config
    install_key
    NEW_KEY=""
    put_file "$SRC/README.md" "$OPT/README.md" 644 || true
    if put_file "$SRC/systemd/swaramd.service" "$UNIT" 644; then
        UNIT_CHANGED=1
        CHANGED=1
    fi
    if ! ((SKIP_VENV)); then
        choose_python
        install_venv
        check_config
    fi
    if real_system; then
        start_service
    fi
    if ((CHANGED)); then
        say "swaramd is installed${ROOT:+ under $ROOT}"
    else
        say "swaramd is installed${ROOT:+ under $ROOT}; nothing changed"
    fi
}

# ---------------------------------------------------------------- uninstall

remove() {
    local path=$1
    if [[ -e $path || -L $path ]]; then
        rm -rf -- "$path"
        say "removed $path"
    fi
}

do_uninstall() {
    refuse_links "$UNIT" "$OPT" "$ETC" "$STATE"
    if real_system; then
        [[ $(id -u) -eq 0 ]] || die "run it as root (sudo ./install.sh --uninstall)"
        if command -v systemctl >/dev/null; then
            if systemd_running; then
                systemctl disable --now --quiet "$SERVICE" 2>/dev/null || true
                systemctl reset-failed "$SERVICE" 2>/dev/null || true
            elif [[ -f $UNIT ]]; then
                systemctl disable --quiet "$SERVICE" 2>/dev/null || true
            fi
        fi
    fi
    local had_unit=0
    [[ -f $UNIT ]] && had_unit=1
    remove "$UNIT"
    if real_system && ((had_unit)) && systemd_running; then
        systemctl daemon-reload
    fi
    remove "$OPT"
    if ((PURGE)); then
        remove "$ETC"
        remove "$STATE"
        if real_system && getent passwd "$SVC_USER" >/dev/null; then
            userdel "$SVC_USER" || die "could not remove the user $SVC_USER"
            say "removed the system user $SVC_USER"
        fi
        if real_system && getent group "$SVC_USER" >/dev/null; then
            groupdel "$SVC_USER" || true
        fi
    elif [[ -d $ETC ]]; then
        say "kept $ETC (config and key); --uninstall --purge removes it"
    fi
    say "swaramd is uninstalled${ROOT:+ from $ROOT}"
}

if ((UNINSTALL)); then
    do_uninstall
else
    do_install
fi
