"""One student's grading job: the limits, what the worker may read and must not change, and running it.

``run_worker`` writes the job file (``jobs/<student>.json``) and runs an
``autograder.worker`` process on it under a hard wall-clock limit; the
pipeline (a whole course) and the Gradescope runner (one submission) both
grade through it. ``prepare_template`` builds the gradebook every job starts
from.
"""
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .course import ASSIGNMENT, NOTEBOOK, REPO, SOURCE_DIR, generate_release
from .results import STATUS_CRASHED, STATUS_TIMED_OUT, GradingResult
from .spare_workers import SpareWorkers
from .verify import KERNEL_GONE, VERIFIED

WORKER_SLACK_S = 180  # on top of the notebook limit: kernel start, nbgrader, feedback


@dataclass
class Limits:
    cell_timeout: int = 120
    notebook_timeout: int = 600
    memory_mb: int = 6144


def source_notebook() -> Path:
    return REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK


def prepare_template(out: Path) -> Path:
    """The template gradebook (assignment and its cells), regenerated when the source notebook changes."""
    digest = hashlib.sha256(source_notebook().read_bytes()).hexdigest()
    db, stamp = out / "template" / "gradebook.db", out / "template" / "source.sha256"
    if not (db.is_file() and stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(out / "template", ignore_errors=True)
        (out / "template").mkdir(parents=True)
        generate_release(out / "template", gradebook=db)
        stamp.write_text(digest)
    return db


def readable_paths() -> list[Path]:
    """What a sandboxed kernel may read besides Python: the ece662 package, data, data cache, model."""
    import ece662
    from ece662 import data_utils
    from ece662.paths import model_path

    data_utils.get_CINIC10_data(verbose=False)  # build the cache now: kernels only read it
    model = model_path("torch")
    if not model.is_file():
        raise FileNotFoundError(f"No course model at {model}: train it first (`make model`).")
    paths = {Path(ece662.__file__).resolve().parent, data_utils.dataset_root().resolve(),
             data_utils.cache_dir().resolve(), model.parent.resolve()}
    return sorted(paths)


def guarded_paths() -> list[Path]:
    """What a submission must not change: the ece662 package, the course model and the data cache."""
    import ece662
    from ece662 import data_utils
    from ece662.paths import model_path

    return [Path(ece662.__file__).resolve().parent, model_path("torch").resolve(), data_utils.cache_dir().resolve()]


def trusted_paths() -> dict:
    """The grader's own course model folder and dataset, for the verifier (never the kernel's view of them)."""
    from ece662 import data_utils
    from ece662.paths import model_path

    return {"model_dir": str(model_path("torch").parent.resolve()),
            "data_root": str(data_utils.dataset_root().resolve())}


def run_worker(student: str, submission: Path, out: Path, template_db: Path, readable, limits: Limits,
               sandbox: str, threads: int, store: Path | None = None, spares: SpareWorkers | None = None,
               kernel_slots: threading.Semaphore | None = None) -> GradingResult:
    """Grade one submission in an ``autograder.worker`` process (a waiting spare if there is one) under a hard
    wall-clock limit.

    ``sandbox``: how the kernel is contained, "bubblewrap" or "none"; ``store``: the folder of measurements
    and recipe runs the workers share (``autograder/measurements.py``);
    ``kernel_slots``: held from the start until this student's kernel is gone (single-threaded kernels) or
    verified (multi-threaded ones, whose thread teams stall when the verifier's threads compete for the
    cores), so the next notebook runs while this one is verified and its feedback written."""
    work, result_file = out / "work" / student, out / "results" / f"{student}.json"
    log, progress = out / "logs" / f"{student}.log", out / "jobs" / f"{student}.progress"
    release_on = KERNEL_GONE if threads == 1 else VERIFIED
    job = {"student": student, "submission": str(submission.resolve()), "workdir": str(work),
           "template_db": str(template_db), "sandbox": sandbox,
           "readable": [str(p) for p in readable], "store_dir": str(store or ""),
           "guarded": [str(p) for p in guarded_paths()], **trusted_paths(),
           "limits": asdict(limits), "result": str(result_file), "threads": threads, "log": str(log),
           "progress": str(progress)}
    for sub in ("jobs", "results", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    job_file = out / "jobs" / f"{student}.json"
    job_file.write_text(json.dumps(job, indent=1))
    result_file.unlink(missing_ok=True)
    progress.unlink(missing_ok=True)
    limit, queued = limits.notebook_timeout + WORKER_SLACK_S, time.monotonic()
    with kernel_slots or contextlib.nullcontext():
        deadline = time.monotonic() + limit
        waited = round(time.monotonic() - queued, 2)
        proc = spares.hand_over(job_file) if spares else None
        if proc is None:
            with open(log, "w") as log_handle:
                proc = subprocess.Popen([sys.executable, "-I", "-m", "autograder.worker", str(job_file)],
                                        stdout=log_handle, stderr=subprocess.STDOUT, start_new_session=True, cwd=out)
        while kernel_slots and proc.poll() is None and time.monotonic() < deadline and not (
                progress.is_file() and release_on in progress.read_text().splitlines()):
            time.sleep(0.05)
    result = _outcome(proc, deadline, result_file, log, student, sandbox, limit)
    result.phases["waiting_s"] = waited  # for a notebook slot, before the worker got the job
    return result


def _outcome(proc, deadline: float, result_file: Path, log: Path, student: str, sandbox: str,
             limit: int) -> GradingResult:
    """The worker's result once it exits (killed at ``deadline``), or why there is none."""
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        if not result_file.is_file():
            return GradingResult.failed(student, STATUS_TIMED_OUT, f"grading did not finish within {limit} s",
                                        sandbox=sandbox)
    if not result_file.is_file():
        tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
        return GradingResult.failed(student, STATUS_CRASHED, f"the grading worker failed (see {log}): {tail}",
                                    sandbox=sandbox)
    return GradingResult.load(result_file)
