"""One cgroup per kernel: its memory, processes and CPU capped as a group, made and removed by trusted code.

RLIMIT_AS bounds one process's address space, not what a kernel holds: memfd and
tmpfs pages, the page cache it fills and any number of child processes escape it.
A cgroup counts all of them together. The worker makes one for its kernel
(``kernel_cgroup``); the kernel's command line enters it before any student code
runs (``enter_argv``: ``python -I -m autograder.worker.cgroup enter FILE... -- CMD``,
so every restart of the kernel lands in it too); after the notebook the worker
kills whatever is left in it and removes it. A cgroup left by a worker that was
killed is removed by the next one (its name holds the worker's pid).

* cgroup v2 (unified): a child of the worker's own cgroup with ``memory.max`` (no
  swap, the whole group killed on OOM), ``pids.max`` and ``cpu.max``. v2 gives
  controllers only to cgroups without processes of their own, so where the
  grader's cgroup holds processes they are first moved into a leaf child
  (``ece662-grader``), the way a delegated subtree is used.
* cgroup v1 (memory and pids hierarchies, cpu where mounted): a child of the
  worker's cgroup in each, with ``memory.limit_in_bytes`` (and ``memsw``),
  ``pids.max`` and ``cpu.cfs_quota_us``.
* neither (no cgroup files, or not writable: most containers, Gradescope's
  included): ``unavailable_reason`` says why, and the kernel is bounded only by
  RLIMIT_AS per process, RLIMIT_NPROC per user (user mode) and its tmpfs sizes.
"""
import contextlib
import errno
import functools
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "ece662-kernel-"  # + the worker's PID namespace and pid + a random part
LEAF = "ece662-grader"  # v2: where the grader's own processes go so that its cgroup may have capped children
_PERIOD_US = 100_000
_CONTROLLERS = ("memory", "pids", "cpu")


@dataclass(frozen=True)
class Caps:
    """What one kernel and everything it starts may use together."""
    memory_bytes: int
    pids: int
    cpus: float

    def describe(self) -> str:
        return (f"memory {self.memory_bytes // 2**20} MB (all its processes: anonymous, memfd, tmpfs, page cache), "
                f"{self.pids} processes and threads, {self.cpus:g} CPU{'s' * (self.cpus != 1)}")


def caps_for(limits, threads: int) -> Caps:
    """The caps a job's ``Limits`` set (``cpus`` 0: one CPU per thread the kernel is given)."""
    return Caps(limits.memory_mb * 2**20, limits.pids, limits.cpus or max(1, threads))


def _own_cgroups() -> dict[str, str]:
    """{controller or "" (v2): this process's cgroup path}, from /proc/self/cgroup."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    return own


def _mounts() -> list[tuple[str, Path, str, set]]:
    """(mount root, mount point, fs type, options) of every cgroup mount."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, (fstype, _source, options) = left.split(), right.split()[:3]
        if fstype in ("cgroup", "cgroup2"):
            found.append((fields[3], Path(fields[4]), fstype, set(options.split(","))))
    return found


def _folder(mount_root: str, mount_point: Path, path: str) -> Path | None:
    """Where the cgroup ``path`` of a hierarchy appears under its mount (None if this mount does not show it)."""
    if path != mount_root and not path.startswith(mount_root.rstrip("/") + "/"):
        return None
    folder = mount_point / path[len(mount_root):].lstrip("/")
    return folder if folder.is_dir() else None


def _v2_base(folder: Path) -> Path:
    """The v2 cgroup under which kernels' cgroups go, with the memory, pids (and cpu) controllers enabled."""
    base = folder.parent if folder.name == LEAF else folder
    wanted = [c for c in _CONTROLLERS if c in (base / "cgroup.controllers").read_text().split()]
    if not {"memory", "pids"} <= set(wanted):
        raise OSError(errno.ENOTSUP, f"cgroup v2 {base} lacks the memory or pids controller")
    if set(wanted) <= set((base / "cgroup.subtree_control").read_text().split()):
        return base
    leaf = base / LEAF
    leaf.mkdir(exist_ok=True)
    for _ in range(50):  # processes may fork while they are moved
        pids = (base / "cgroup.procs").read_text().split()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):  # gone meanwhile
                (leaf / "cgroup.procs").write_text(pid)
    (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
    return base


def _bases() -> tuple[int, dict[str, Path]]:
    """(cgroup version, {controller: folder under which this process may make a child})."""
    own, mounts = _own_cgroups(), _mounts()
    for root, point, fstype, _ in mounts:
        if fstype == "cgroup2" and "" in own and (folder := _folder(root, point, own[""])):
            if {"memory", "pids"} <= set((folder / "cgroup.controllers").read_text().split()):
                base = _v2_base(folder)
                return 2, {c: base for c in _CONTROLLERS if (base / f"{c}.max").exists()}
    bases = {}
    for root, point, fstype, options in mounts:
        for controller in _CONTROLLERS:
            if fstype == "cgroup" and controller in options and controller in own and controller not in bases:
                if folder := _folder(root, point, own[controller]):
                    bases[controller] = folder
    if not {"memory", "pids"} <= set(bases):
        raise OSError(errno.ENOTSUP, "no cgroup v2 with memory and pids controllers, nor cgroup v1 memory and "
                                     "pids hierarchies")
    return 1, bases


@dataclass(frozen=True)
class KernelCgroup:
    """A kernel's cgroup: one folder (v2) or one per controller (v1)."""
    version: int
    folders: dict  # controller -> Path
    caps: Caps

    def procs_files(self) -> list[Path]:
        return [folder / "cgroup.procs" for folder in dict.fromkeys(self.folders.values())]

    def oom_kills(self) -> int:
        """Processes the OOM killer killed in this cgroup because it reached its memory cap."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        with contextlib.suppress(OSError):
            fields = dict(line.split() for line in (self.folders["memory"] / name).read_text().splitlines()
                          if len(line.split()) == 2)
            return int(fields.get("oom_kill", 0))
        return 0

    def remove(self) -> None:
        """Kill every process in the cgroup, then remove it."""
        _kill_and_remove(list(dict.fromkeys(self.folders.values())))


def _kill_and_remove(folders: list[Path], rounds: int = 100) -> None:
    for _ in range(rounds):
        pids = set()
        for folder in folders:
            with contextlib.suppress(OSError):
                pids.update(map(int, (folder / "cgroup.procs").read_text().split()))
        if not pids:
            break
        with contextlib.suppress(OSError):
            (folders[0] / "cgroup.kill").write_text("1")  # v2, Linux 5.14+: all at once, forks included
        for pid in pids - {0}:  # 0: a process of another PID namespace (and kill(0) would hit our own group)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    for folder in folders:
        for _ in range(rounds):
            try:
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # busy until the last killed process has exited
                time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; not a pid: leave it alone
        pass
    return True


def _owner_prefix() -> str:
    """The start of the names of this process's kernel cgroups: pids are only known within a PID namespace."""
    return f"{PREFIX}{os.stat('/proc/self/ns/pid').st_ino}-"


def remove_stale(bases: dict[str, Path]) -> int:
    """Remove the kernel cgroups of workers of this PID namespace that are gone (killed before they cleaned up)."""
    stale, mine = {}, _owner_prefix()
    for base in dict.fromkeys(bases.values()):
        for folder in base.glob(f"{mine}*"):
            owner = folder.name[len(mine):].split("-")[0]
            if folder.is_dir() and owner.isdigit() and not _alive(int(owner)):
                stale.setdefault(folder.name, []).append(folder)
    for folders in stale.values():
        _kill_and_remove(folders)
    return len(stale)


def _write_caps(group: KernelCgroup) -> None:
    caps, folders = group.caps, group.folders
    memory, pids, cpu = folders["memory"], folders["pids"], folders.get("cpu")
    (pids / "pids.max").write_text(str(caps.pids))
    quota = int(caps.cpus * _PERIOD_US)
    if group.version == 2:
        (memory / "memory.max").write_text(str(caps.memory_bytes))
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            with contextlib.suppress(OSError):
                (memory / name).write_text(value)
        if cpu:
            (cpu / "cpu.max").write_text(f"{quota} {_PERIOD_US}")
        return
    (memory / "memory.limit_in_bytes").write_text(str(caps.memory_bytes))
    with contextlib.suppress(OSError):  # where swap is accounted: none beyond the cap
        (memory / "memory.memsw.limit_in_bytes").write_text(str(caps.memory_bytes))
    if cpu:
        (cpu / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(quota))


def create(caps: Caps) -> KernelCgroup:
    """A new capped cgroup for one kernel (OSError where this machine allows none)."""
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOTSUP, f"no cgroups on {sys.platform}")
    version, bases = _bases()
    remove_stale(bases)
    name = f"{_owner_prefix()}{os.getpid()}-{secrets.token_hex(4)}"
    group = KernelCgroup(version, {c: base / name for c, base in bases.items()}, caps)
    try:
        for folder in dict.fromkeys(group.folders.values()):
            folder.mkdir()
        _write_caps(group)
    except OSError:
        group.remove()
        raise
    return group


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None if kernels get a capped cgroup here (one is made and removed to find out), else why not."""
    try:
        create(Caps(2**30, 64, 1)).remove()
    except OSError as exc:
        return f"no cgroup per kernel ({exc})"
    return None


def version() -> int | None:
    """The cgroup version kernels get here, or None."""
    return _bases()[0] if unavailable_reason() is None else None


@contextlib.contextmanager
def kernel_cgroup(caps: Caps):
    """A capped cgroup for a kernel while the block runs (None where none can be made), removed afterwards."""
    try:
        group = create(caps)
    except OSError as exc:
        print(f"kernel runs without a cgroup: {exc}", flush=True)  # the worker's log
        group = None
    try:
        yield group
    finally:
        if group:
            group.remove()


def enter_argv(group: KernelCgroup | None) -> list[str]:
    """The kernel command's first step: move itself into ``group``, then exec the rest (nothing without one)."""
    if group is None:
        return []
    return [sys.executable, "-I", "-m", "autograder.worker.cgroup", "enter",
            *map(str, group.procs_files()), "--"]


def describe(caps: Caps) -> str:
    """One line for reports: the cgroup kernels get here and its caps, or why there is none."""
    if (reason := unavailable_reason()) is None:
        return f"cgroup v{version()} per kernel: {caps.describe()}"
    return reason


def main(argv: list[str]) -> None:
    """``enter FILE... -- COMMAND...``: write this process's pid into each cgroup.procs FILE, then exec."""
    if len(argv) < 3 or argv[0] != "enter" or "--" not in argv:
        sys.exit("usage: python -m autograder.worker.cgroup enter CGROUP_PROCS_FILE... -- COMMAND...")
    split = argv.index("--")
    for procs in argv[1:split]:
        Path(procs).write_text(str(os.getpid()))
    os.execv(argv[split + 1], argv[split + 1:])


if __name__ == "__main__":
    main(sys.argv[1:])
