#!/bin/sh
# guest-base.sh MIRROR: run inside a fresh Debian 12 userland (under proot) to
# make it what a Raspberry Pi OS Bookworm Lite image already has before
# install.sh: apt sources with updates and security, the host's certificate
# authorities, python3, procps and systemd (not running).
set -eu
mirror=$1
export DEBIAN_FRONTEND=noninteractive

sources() {
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    [ "$1" = no-security ] || echo "deb http://deb.debian.org/debian-security bookworm-security main"
}
sources with-security >/etc/apt/sources.list
# Downloaded packages stay in the cache bound over /var/cache/apt/archives.
rm -f /etc/apt/apt.conf.d/docker-clean
echo 'APT::Keep-Downloaded-Packages "true";' >/etc/apt/apt.conf.d/10pi-check-keep
echo 'Acquire::Retries "3";' >/etc/apt/apt.conf.d/10pi-check-retries
# apt's download methods run as the user _apt; under proot they cannot run
# apt-key. A Pi does not need this.
echo 'APT::Sandbox::User "root";' >/etc/apt/apt.conf.d/10pi-check-sandbox

# systemd's package runs systemd-tmpfiles, which crashes proot (an assertion in
# its path code). The /bin path is the one dpkg knows; /usr/bin is replaced at
# unpack. A booted Pi runs the real one; here there is nothing to boot.
dpkg-divert --local --rename --divert /bin/systemd-tmpfiles.real --add /bin/systemd-tmpfiles
printf '#!/bin/sh\nexit 0\n' >/usr/bin/systemd-tmpfiles
chmod 755 /usr/bin/systemd-tmpfiles

# A mirror in mid-sync (or a stale cache in front of it) fails the update with
# "File has unexpected size": try again, then do without the security suite.
if ! apt-get update -qq; then
    sleep 20
    if ! apt-get update -qq; then
        echo "pi-check warning: apt-get update failed twice; bookworm-security left out of this userland" >&2
        sources no-security >/etc/apt/sources.list
        apt-get update -qq
    fi
fi
apt-get install -y -qq --no-install-recommends \
    ca-certificates systemd procps python3 sudo >/dev/null
apt-get install -y -qq -f >/dev/null

# The host's own certificate authorities (a proxy that inspects TLS signs with
# one): pip trusts the system bundle through /etc/pip.conf.
if [ -d /tmp/pi-check-ca ] && ls /tmp/pi-check-ca/*.crt >/dev/null 2>&1; then
    cp /tmp/pi-check-ca/*.crt /usr/local/share/ca-certificates/
    update-ca-certificates >/dev/null
fi
rm -rf /tmp/pi-check-ca
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >/etc/pip.conf
echo raspberrypi >/etc/hostname
