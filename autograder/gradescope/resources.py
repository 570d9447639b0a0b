"""The CPU and memory a grading container was given, read from its cgroup (v1 or v2), and OOM kills seen.

Gradescope gives each submission a container with a CPU quota (0.5 vCPU by
default) and a memory limit (768 MB by default); ``os.cpu_count()`` shows the
host's cores, not the quota. Everything here returns None where the
information is not available (no cgroup files, macOS).
"""
import math
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_UNLIMITED = 2**60  # v1 reports "no limit" as a huge number


def _cgroup_dirs(controller: str) -> list[Path]:
    """Folders holding this process's cgroup files for ``controller``: v1 first, then v2."""
    dirs = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return dirs
    for line in lines:
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",")
        rel = path.lstrip("/")
        if controller in names:
            dirs += [CGROUP_ROOT / controller / rel, CGROUP_ROOT / ",".join(names) / rel]
        elif controllers == "":
            dirs += [CGROUP_ROOT / rel, CGROUP_ROOT / "unified" / rel]
    dirs += [CGROUP_ROOT / controller, CGROUP_ROOT]  # a container whose own cgroup is mounted as the root
    return [d for d in dirs if d.is_dir()]


def _read(controller: str, *names: str) -> str | None:
    for folder in _cgroup_dirs(controller):
        for name in names:
            try:
                return (folder / name).read_text().strip()
            except OSError:
                continue
    return None


def cpu_quota() -> float | None:
    """CPUs this cgroup may use (0.5 for half a CPU), or None if unlimited."""
    if (v2 := _read("cpu", "cpu.max")) is not None:
        quota, _, period = v2.partition(" ")
        return None if quota == "max" else int(quota) / int(period or 100000)
    quota, period = _read("cpu", "cpu.cfs_quota_us"), _read("cpu", "cpu.cfs_period_us")
    if quota is None or period is None or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def usable_cpus() -> int:
    """Cores this process may run on (affinity), bounded by the cgroup's CPU quota; at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cpu_quota()
    return max(1, min(cores, math.floor(quota))) if quota else cores


def memory_limit_bytes() -> int | None:
    """This cgroup's memory limit, or None if unlimited."""
    value = _read("memory", "memory.max", "memory.limit_in_bytes")
    if value is None or value == "max" or int(value) >= _UNLIMITED:
        return None
    return int(value)


def memory_peak_bytes() -> int | None:
    """Highest memory use this cgroup has seen (v1 max_usage, v2 memory.peak where the kernel has it)."""
    value = _read("memory", "memory.peak", "memory.max_usage_in_bytes")
    return int(value) if value is not None else None


def oom_kills() -> int | None:
    """How many processes the OOM killer has killed in this cgroup so far."""
    text = _read("memory", "memory.events", "memory.oom_control")
    if text is None:
        return None
    fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
    return int(fields["oom_kill"]) if "oom_kill" in fields else None


@dataclass
class Resources:
    """A snapshot of the container's limits, for reports."""
    cpus: int
    cpu_quota: float | None
    memory_limit: int | None
    oom_kills: int | None
    memory_peak: int | None

    @classmethod
    def now(cls) -> "Resources":
        return cls(usable_cpus(), cpu_quota(), memory_limit_bytes(), oom_kills(), memory_peak_bytes())

    def describe(self) -> str:
        cpu = f"{self.cpu_quota:g} vCPU quota" if self.cpu_quota else "no CPU quota"
        memory = f"{self.memory_limit / 2**20:.0f} MiB limit" if self.memory_limit else "no memory limit"
        peak = f", peak {self.memory_peak / 2**20:.0f} MiB" if self.memory_peak else ""
        return f"{cpu} ({self.cpus} thread{'s' * (self.cpus > 1)}), {memory}{peak}"
