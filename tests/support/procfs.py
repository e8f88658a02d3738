"""A process's CPU time and memory from /proc (Linux), for the tests and the benches."""

from __future__ import annotations

import os

MEMORY_KEYS = ("VmRSS", "RssAnon", "RssFile", "RssShmem")


def memory_kb(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, RssAnon (private memory), RssFile and RssShmem of `pid`, in kB."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in MEMORY_KEYS:
                out[key] = int(value.split()[0])
    return out


def peak_memory_kb(peak: dict[str, int], pid: int | str = "self") -> dict[str, int]:
    """`memory_kb(pid)` now, each figure raised to its value in `peak` if that was higher."""
    return {key: max(value, peak.get(key, value)) for key, value in memory_kb(pid).items()}


def rss_anon_kb(pid: int | str = "self") -> int:
    """Private memory of `pid` (kB)."""
    kb = memory_kb(pid).get("RssAnon")
    if kb is None:
        raise AssertionError("no RssAnon")
    return kb


def _cpu_s(stat_path: str) -> tuple[str, float]:
    """(name, utime + stime in seconds) from a /proc `stat` file."""
    with open(stat_path, encoding="ascii") as f:
        stat = f.read()
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    return name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | str = "self") -> float:
    """utime + stime of every thread of `pid`, in seconds (10 ms ticks)."""
    return _cpu_s(f"/proc/{pid}/stat")[1]


def threads_cpu_s(pid: int | str = "self") -> dict[str, float]:
    """CPU seconds (utime + stime) of each thread of `pid`, keyed `name[tid]`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name, seconds = _cpu_s(f"/proc/{pid}/task/{tid}/stat")
        except OSError:          # the thread ended meanwhile
            continue
        out[f"{name}[{tid}]"] = seconds
    return out
