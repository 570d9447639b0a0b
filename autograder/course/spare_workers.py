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
import threading
from pathlib import Path

from autograder.grading_folder import GradingFolder
from autograder.worker.job import WorkerProcess, start_worker


class SpareWorkers:
    """Up to ``count`` waiting workers for ``jobs`` jobs, started in ``cwd`` with ``threads`` threads for torch."""

    def __init__(self, cwd: Path, count: int, threads: int, jobs: int):
        self.cwd, self.threads = Path(cwd), threads
        count = min(count, jobs)
        self._more = jobs - count  # replacements still worth starting
        self.log = GradingFolder(self.cwd).spare_workers_log  # import errors of spares that never got a job
        self._lock = threading.Lock()
        self._waiting = [self._start() for _ in range(count)]

    def _start(self) -> WorkerProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            return start_worker(self.cwd, self.threads, log=log)

    def hand_over(self, job_file: Path) -> WorkerProcess | None:
        """A spare now grading ``job_file`` (a replacement is started), or None if none is alive."""
        with self._lock:
            if not self._waiting:
                return None
            worker = self._waiting.pop(0)
            if self._more > 0:
                self._more -= 1
                self._waiting.append(self._start())
        try:
            worker.proc.stdin.write(f"{job_file}\n")
            worker.proc.stdin.close()
            return worker
        except OSError:  # it died while importing (why is in the spares' log): the caller starts a worker cold
            worker.proc.wait()
            worker.close()
            return None

    def close(self) -> None:
        """Let the spares no job needs exit (end of input), and wait for them."""
        with self._lock:
            for worker in self._waiting:
                try:
                    worker.proc.stdin.close()
                except OSError:
                    pass
            for worker in self._waiting:
                try:
                    worker.proc.wait(timeout=30)
                except Exception:
                    os.killpg(worker.proc.pid, 9)
                    worker.proc.wait()
                worker.close()
            self._waiting = []
