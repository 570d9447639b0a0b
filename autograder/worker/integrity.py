"""Detect a submission that changed the grading files it could reach.

Without a sandbox (macOS, Windows, a Gradescope container) a student's kernel
can write to the ``ece662`` package, the course model or the data cache, and
so change how its own tests (and later students') are checked. The worker
fingerprints those files before and after running a notebook; any difference
marks the submission as tampered. Inside the bubblewrap sandbox they are
read-only and nothing changes.
"""
import hashlib
from pathlib import Path

HASHED_UP_TO_BYTES = 4 * 2**20  # larger files (the data cache) are compared by size and modification time


def _fingerprint_file(path: Path) -> tuple:
    stat = path.stat()
    if stat.st_size > HASHED_UP_TO_BYTES:
        return stat.st_size, stat.st_mtime_ns
    return stat.st_size, hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(roots) -> dict[str, tuple]:
    """{file: fingerprint} of every file under ``roots`` (folders or files); caches and bytecode skipped."""
    prints = {}
    for root in map(Path, roots):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".lock":
                continue
            try:
                prints[str(path)] = _fingerprint_file(path)
            except OSError:
                prints[str(path)] = ("unreadable",)
    return prints


def changed_files(before: dict, after: dict) -> list[str]:
    """Files added, removed or modified between two fingerprints."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
