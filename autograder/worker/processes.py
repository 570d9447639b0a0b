"""Leftover processes of a student's kernel: adopt them, then kill them before verifying.

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


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def descendants(pid: int | None = None) -> list[int]:
    tree, found, todo = _children(), [], [pid or os.getpid()]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


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
