"""The kernel's cgroup (autograder/worker/cgroup.py): caps from Limits, what they stop, and that none is left behind."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.worker import cgroup
from autograder.worker.job import Limits

needs_cgroup = pytest.mark.skipif(cgroup.unavailable_reason() is not None,
                                  reason=str(cgroup.unavailable_reason()))

HOG = """
import os, signal, time
kids = []
try:
    for _ in range(100):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        kids.append(pid)
except OSError:
    pass
print("started", len(kids), flush=True)
for kid in kids:
    os.kill(kid, signal.SIGKILL)
    os.waitpid(kid, 0)
grab = os.memfd_create("grab")
for mib in range(1024):
    os.write(grab, b"x" * 2**20)
    print("held", mib + 1, flush=True)
"""


def test_caps_come_from_limits():
    assert cgroup.caps_for(Limits(memory_mb=300, pids=7), threads=3) == cgroup.Caps(300 * 2**20, 7, 3)
    assert cgroup.caps_for(Limits(cpus=0.5), threads=3).cpus == 0.5


@needs_cgroup
def test_a_kernel_cgroup_caps_processes_and_memory_and_is_removed():
    caps = cgroup.Caps(256 * 2**20, 16, 1)
    with cgroup.kernel_cgroup(caps) as group:
        done = subprocess.run(cgroup.enter_argv(group) + [sys.executable, "-c", HOG], capture_output=True,
                              text=True, timeout=120)
        lines = done.stdout.split("\n")
        assert done.returncode == -9, done.stderr[-500:]  # killed by the OOM killer
        assert 0 < int(lines[0].split()[1]) < 16
        assert int([line for line in lines if line.startswith("held")][-1].split()[1]) < 256
        assert group.oom_kills() >= 1
        folders = list(group.folders.values())
    assert not any(folder.exists() for folder in folders)


@needs_cgroup
def test_the_cgroup_of_a_killed_worker_is_removed_by_the_next():
    """A worker killed mid-notebook leaves its kernel's cgroup and a process in it: the next worker removes both."""
    worker = subprocess.Popen([sys.executable, "-c", """
import subprocess, sys
from autograder.worker import cgroup
group = cgroup.create(cgroup.Caps(2**30, 64, 1))
subprocess.Popen(cgroup.enter_argv(group) + ["/bin/sleep", "300"])
print(group.folders["pids"], flush=True)
sys.stdin.read()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    folder = Path(worker.stdout.readline().strip())
    for _ in range(100):
        if (folder / "cgroup.procs").read_text().split():
            break
        time.sleep(0.05)
    (sleeper,) = map(int, (folder / "cgroup.procs").read_text().split())
    worker.kill()
    worker.wait()
    with cgroup.kernel_cgroup(cgroup.Caps(2**30, 64, 1)):
        assert not folder.exists()
    assert not _running(sleeper)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
