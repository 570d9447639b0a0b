"""The kernel's folder (autograder/worker/scratch.py): capped while the kernel writes, dropped without a walk after."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.worker.scratch import remove_tree

TMPFS_PROBE = """
import json, os, sys
from autograder.worker.scratch import private_tmpfs, unmount
folder = private_tmpfs(size=8 * 2**20, files=100)
if folder is None:
    print(json.dumps(None))
    sys.exit()
files = written = 0
try:
    for i in range(1000):
        open(folder / f"f{i}", "w").close()
        files += 1
except OSError:
    pass
try:
    with open(folder / "big", "wb") as f:
        for _ in range(64):
            f.write(b"x" * 2**20)
            written += 1
except OSError:
    pass
print(json.dumps({"folder": str(folder), "files": files, "mib": written}), flush=True)
sys.stdin.readline()  # the parent looks at the folder from outside meanwhile
unmount(folder)
"""


def test_private_tmpfs_caps_files_and_bytes_and_is_seen_by_no_one_else():
    probe = subprocess.Popen([sys.executable, "-c", TMPFS_PROBE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parents[3])
    report = json.loads(probe.stdout.readline())
    if report is None:
        probe.communicate("\n")
        pytest.skip("this system cannot give a process a private tmpfs (no mount or user namespaces)")
    folder = Path(report["folder"])
    try:
        assert report["files"] < 100 and report["mib"] < 8
        assert list(folder.iterdir()) == []  # outside the worker's namespace: an empty mount point
    finally:
        probe.communicate("\n", timeout=30)
    assert probe.returncode == 0 and not folder.exists()


def _hostile_tree(top: Path, outside: Path) -> None:
    """What a kernel can leave: a tree deeper than Python's recursion limit, many files, links out, a FIFO,
    folders it made unreadable."""
    top.mkdir()
    here = os.getcwd()
    os.chdir(top)
    try:
        for _ in range(3000):
            os.mkdir("d")
            os.chdir("d")
    finally:
        os.chdir(here)
    for i in range(20_000):
        (top / f"f{i}").touch()
    (top / "link").symlink_to(outside)
    (top / "dirlink").symlink_to(outside.parent, target_is_directory=True)
    os.mkfifo(top / "fifo")
    (top / "locked" / "inner").mkdir(parents=True)
    (top / "locked" / "inner" / "file").touch()
    (top / "locked" / "inner").chmod(0)
    (top / "locked").chmod(0o500)


def test_remove_tree_takes_any_tree_and_follows_no_link(tmp_path):
    outside = tmp_path / "keep" / "grader-file"
    outside.parent.mkdir()
    outside.write_text("the grader's")
    _hostile_tree(tmp_path / "leftover", outside)
    remove_tree(tmp_path / "leftover")
    assert not (tmp_path / "leftover").exists()
    assert outside.read_text() == "the grader's"
    remove_tree(tmp_path / "leftover")  # gone already: nothing to do


def test_remove_tree_removes_a_link_not_its_target(tmp_path):
    target = tmp_path / "target"
    (target / "inner").mkdir(parents=True)
    (tmp_path / "link").symlink_to(target, target_is_directory=True)
    remove_tree(tmp_path / "link")
    assert not (tmp_path / "link").is_symlink() and (target / "inner").is_dir()
