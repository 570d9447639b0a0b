"""Worker processes started ahead of their job, so a student's grading does not wait for Python's imports.

A spare is ``python -I -m autograder.worker --wait``: it imports nbgrader,
torch and the verifier (about 3 s of a cold start), then waits for one line
on its stdin, the path of its job file, and grades that job exactly as a
worker started with the path does. The pipeline keeps one spare per worker
slot and starts a replacement as soon as one is handed a job, so the imports
overlap the grading of the student before. A spare has never run a job, so
each student still gets a fresh process of its own.
"""
import os
import subprocess
import sys
import threading
from pathlib import Path


class SpareWorkers:
    """Up to ``count`` waiting worker processes for ``jobs`` jobs, started in ``cwd`` with ``threads`` threads
    for torch."""

    def __init__(self, cwd: Path, count: int, threads: int, jobs: int):
        self.cwd = Path(cwd)
        count = min(count, jobs)
        self._more = jobs - count  # replacements still worth starting
        self.env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        self.log = self.cwd / "logs" / "spare-workers.log"  # import errors of spares that never got a job
        self._lock = threading.Lock()
        self._waiting = [self._start() for _ in range(count)]

    def _start(self) -> subprocess.Popen:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            return subprocess.Popen([sys.executable, "-I", "-m", "autograder.worker", "--wait"], stdin=subprocess.PIPE,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.cwd,
                                    env=self.env, text=True)

    def hand_over(self, job_file: Path) -> subprocess.Popen | None:
        """A spare now grading ``job_file`` (a replacement is started), or None if none is alive."""
        with self._lock:
            if not self._waiting:
                return None
            proc = self._waiting.pop(0)
            if self._more > 0:
                self._more -= 1
                self._waiting.append(self._start())
        try:
            proc.stdin.write(f"{job_file}\n")
            proc.stdin.close()
            return proc
        except OSError:  # it died while importing (why is in the spares' log): the caller starts a worker cold
            proc.wait()
            return None

    def close(self) -> None:
        """Let the spares no job needs exit (end of input), and wait for them."""
        with self._lock:
            for proc in self._waiting:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            for proc in self._waiting:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
            self._waiting = []
