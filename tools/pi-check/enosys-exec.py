#!/usr/bin/env python3
"""enosys-exec.py COMMAND [ARG...]: runs COMMAND with statx, faccessat2, openat2
and clone3 answering ENOSYS, through a seccomp filter that every process below
it inherits.

Debian 12's proot (5.1.0) passes these newer system calls to the kernel without
translating their paths, so inside the guest `stat`, `[ -x FILE ]` and `ls -l`
see the host's files. With the calls refused, glibc falls back to the older
ones (fstatat, faccessat, openat, clone), which proot does translate.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

# Host architecture -> (AUDIT_ARCH_*, {name: number}).
ARCHES = {
    "x86_64": (0xC000003E, {"statx": 332, "openat2": 437, "clone3": 435, "faccessat2": 439}),
    "aarch64": (0xC00000B7, {"statx": 291, "openat2": 437, "clone3": 435, "faccessat2": 439}),
}

BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
ENOSYS = 38
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


def program(audit_arch: int, numbers: list[int]) -> bytes:
    """A classic BPF program: the listed calls return ENOSYS, anything else runs."""
    n = len(numbers)
    insns = [(BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
             (BPF_JEQ_K, 0, n + 1, audit_arch),  # another ABI: allow
             (BPF_LD_W_ABS, 0, 0, 0)]  # seccomp_data.nr
    for i, nr in enumerate(numbers):
        insns.append((BPF_JEQ_K, n - i, 0, nr))  # match: jump to the ENOSYS return
    insns.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    insns.append((BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS))
    return b"".join(struct.pack("HBBI", *insn) for insn in insns)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: enosys-exec.py COMMAND [ARG...]")
    machine = platform.machine()
    if machine not in ARCHES:
        sys.exit(f"enosys-exec.py: no system call table for a {machine} host")
    audit_arch, table = ARCHES[machine]
    code = program(audit_arch, sorted(table.values()))
    buf = ctypes.create_string_buffer(code, len(code))
    prog = struct.pack("HxxxxxxQ", len(code) // 8, ctypes.addressof(buf))
    prog_buf = ctypes.create_string_buffer(prog, len(prog))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    if os.geteuid() != 0 and libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit(f"enosys-exec.py: PR_SET_NO_NEW_PRIVS: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog_buf), 0, 0) != 0:
        sys.exit(f"enosys-exec.py: seccomp filter refused: {os.strerror(ctypes.get_errno())}")
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    except OSError as exc:
        sys.exit(f"enosys-exec.py: cannot run {sys.argv[1]}: {exc.strerror}")


if __name__ == "__main__":
    main()
