"""The processes of a student's kernel: the CPU time they use, and their leftovers (adopted, then killed).

``kernel_cpu_seconds`` is the CPU time of a kernel's process tree, read from
``/proc``: what the kernel's time limits count (``autograder/worker/execute.py``),
since a machine's load stretches wall-clock time but not CPU time.

A notebook can start a detached process (double fork, ``setsid``) that
outlives its kernel and rewrites files after grading. The grading worker
makes itself a *child subreaper* (Linux), so every such orphan is re-parented
to it instead of to init, and ``kill_descendants`` kills the whole tree once
the notebook has run. Elsewhere both are no-ops (the bubblewrap sandbox kills
its PID namespace with the kernel anyway).
"""
import ctypes
import os
import signal
import sys
import time
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux); True if it worked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# fields of /proc/PID/stat after the command name: 0 state, 1 ppid, 11 utime, 12 stime, 13 cutime, 14 cstime
_PPID, _CPU = 1, slice(11, 15)


def _stats() -> dict[int, list[str]]:
    """{pid: the fields of /proc/PID/stat after the command name} of every process."""
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stats[int(entry.name)] = f.read().rsplit(b")", 1)[1].decode().split()
            except (OSError, IndexError):
                continue  # it exited meanwhile
    return stats


def _children(stats: dict[int, list[str]]) -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        tree.setdefault(int(fields[_PPID]), []).append(pid)
    return tree


def descendants(pid: int | None = None, stats: dict | None = None) -> list[int]:
    tree, found, todo = _children(_stats() if stats is None else stats), [], [pid or os.getpid()]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kernel_cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds used by process ``pid`` and its descendants, live or reaped (user + system time of each live
    process, its threads and the children it has waited for); None where there is no /proc or no such process.

    For a kernel, ``pid`` is the process its kernel manager started (in the bubblewrap sandbox: bwrap, whose
    descendants are the kernel and everything it started). A descendant that leaves the tree (a double fork
    outside a PID namespace) is no longer counted."""
    if pid is None or not Path("/proc/self/stat").exists():
        return None
    stats = _stats()
    if pid not in stats:
        return None
    ticks = sum(int(t) for p in [pid, *descendants(pid, stats)] if p in stats for t in stats[p][_CPU])
    return ticks / _TICKS_PER_S


def kill_descendants(rounds: int = 20) -> int:
    """SIGKILL every descendant of this process (and orphans it adopts meanwhile); returns how many."""
    if not Path("/proc/self/stat").exists():
        return 0
    killed = 0
    for _ in range(rounds):
        pids = descendants()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        while True:  # reap the zombies we now own
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
    return killed
