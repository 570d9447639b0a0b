"""One student's grading job: what the worker gets (``Job``), and running it in a process of its own.

``run_worker`` saves the job (``jobs/<student>.json``) and runs ``python -I -m
autograder.worker`` on it under a hard wall-clock limit (``worker_wall_limit``: a
backstop, since the kernel's limits count CPU time); the worker writes the
student's ``GradingResult`` once, where the job says. The worker reports on a
pipe when the kernel is gone and when the notebook is verified, so the course
run can start the next notebook then. The course pipeline and the Gradescope
runner both grade through here.
"""
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.grading_folder import GradingFolder
from autograder.worker.results import STATUS_CRASHED, STATUS_TIMED_OUT, GradingResult

WORKER_SLACK_S = 180  # on top of the notebook limit: kernel start, nbgrader, verification (on a quiet machine)
KERNEL_GONE, VERIFIED = "kernel gone", "verified"  # progress events, in this order


@dataclass(frozen=True)
class Limits:
    """A kernel's limits, the one type the course run, the worker and Gradescope share: CPU seconds per cell and
    per notebook (the CPU time of the kernel's process tree, which load does not stretch), each with a wall-clock
    backstop ``backstop_factor`` times longer (for cells that sleep or wait), and the kernel's memory (its
    cgroup's cap where one can be made, else its address space)."""
    cell_timeout: int = 120
    notebook_timeout: int = 600
    memory_mb: int = 6144
    backstop_factor: int = 5
    pids: int = 512  # processes and threads of one kernel together (its cgroup, where there is one)
    cpus: float = 0  # CPUs one kernel may use at once (its cgroup); 0: one per thread it is given


def worker_wall_limit(limits: Limits) -> int:
    """Wall-clock seconds after which a grading worker is killed: its notebook's backstop plus the slack, scaled
    alike (a busy machine slows kernel start, nbgrader and verification as much as the kernel)."""
    return (limits.notebook_timeout + WORKER_SLACK_S) * limits.backstop_factor


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to grade one submission (paths as strings: the job is saved as JSON)."""
    student: str
    submission: str
    key: str  # what the result is valid for (autograder/worker/fingerprint.py: job_key)
    workdir: str  # the student's private nbgrader course
    template_db: str
    result: str  # where the worker writes the GradingResult
    log: str
    sandbox: str  # how the kernel is contained (autograder/worker/sandbox.py)
    threads: int
    model_dir: str  # the grader's own course models and data, for the verifier
    data_root: str
    limits: Limits = field(default_factory=Limits)
    readable: tuple = ()  # what the bubblewrap sandbox shows the kernel besides Python
    guarded: tuple = ()  # what the notebook must not change (the tamper guard)
    store_dir: str = ""  # measurements and recipe runs shared with the other workers, if any

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Job":
        data = json.loads(Path(path).read_text())
        return cls(**dict(data, limits=Limits(**data["limits"]), readable=tuple(data["readable"]),
                          guarded=tuple(data["guarded"])))


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


def new_job(student: str, submission: Path, folder: GradingFolder, template_db: Path, key: str, limits: Limits,
            sandbox: str, threads: int, readable=(), store: Path | None = None) -> Job:
    """The job of grading ``submission`` into the output ``folder`` with the grader's own model and data."""
    from ece662 import data_utils
    from ece662.paths import model_path

    for sub in (folder.jobs, folder.results, folder.logs):
        sub.mkdir(parents=True, exist_ok=True)
    return Job(student=student, submission=str(Path(submission).resolve()), key=key,
               workdir=str(folder.work(student)), template_db=str(template_db),
               result=str(folder.result(student)), log=str(folder.log(student)),
               sandbox=sandbox, threads=threads, model_dir=str(model_path("torch").parent.resolve()),
               data_root=str(data_utils.dataset_root().resolve()), limits=limits,
               readable=tuple(map(str, readable)), guarded=tuple(map(str, guarded_paths())),
               store_dir=str(store or ""))


@dataclass
class WorkerProcess:
    """A running ``autograder.worker`` and the read end of its progress pipe."""
    proc: subprocess.Popen
    progress: int  # a file descriptor

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.progress)


def start_worker(cwd: Path, threads: int, job_file: Path | None = None, log=None) -> WorkerProcess:
    """``python -I -m autograder.worker JOB`` (or, without a job, a spare that waits for one on its stdin)."""
    read_end, write_end = os.pipe()
    args = [sys.executable, "-I", "-m", "autograder.worker", "--progress-fd", str(write_end)]
    try:
        proc = subprocess.Popen(args + ([str(job_file)] if job_file else ["--wait"]), pass_fds=(write_end,),
                                stdin=None if job_file else subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=cwd, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    finally:
        os.close(write_end)
    return WorkerProcess(proc, read_end)


def _wait_for(worker: WorkerProcess, event: str, deadline: float) -> None:
    """Until the worker reports ``event``, exits, or the deadline passes."""
    seen = b""
    while event.encode() not in seen.split(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([worker.progress], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return
        chunk = os.read(worker.progress, 256)
        if not chunk:
            return  # the worker exited
        seen += chunk


def run_worker(job: Job, folder: GradingFolder, spares=None, kernel_slots: threading.Semaphore | None = None) -> GradingResult:
    """Grade ``job`` in a worker process (a waiting spare if there is one) under a hard wall-clock limit.

    ``kernel_slots`` is held from the start until this student's kernel is gone (single-threaded kernels) or
    verified (multi-threaded ones, whose thread teams stall when the verifier's threads compete for the
    cores), so the next notebook runs while this one is verified."""
    job_file = folder.job(job.student)
    job.save(job_file)
    Path(job.result).unlink(missing_ok=True)
    release_on = KERNEL_GONE if job.threads == 1 else VERIFIED
    limit, queued = worker_wall_limit(job.limits), time.monotonic()
    with kernel_slots or contextlib.nullcontext():
        deadline = time.monotonic() + limit
        waited = round(time.monotonic() - queued, 2)
        worker = spares.hand_over(job_file) if spares else None
        if worker is None:
            with open(job.log, "w") as log:
                worker = start_worker(folder.root, job.threads, job_file, log)
        if kernel_slots:
            _wait_for(worker, release_on, deadline)
    try:
        result = _outcome(worker.proc, deadline, job, limit)
    finally:
        worker.close()
    result.phases["waiting_s"] = waited  # for a notebook slot, before the worker got the job
    return result


def _outcome(proc, deadline: float, job: Job, limit: int) -> GradingResult:
    """The result the worker wrote once it exits (killed at ``deadline``), or, written here, why there is none."""
    result_file, log = Path(job.result), Path(job.log)
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
    if result_file.is_file():
        return GradingResult.load(result_file)
    if time.monotonic() >= deadline:
        failed = GradingResult.failed(job.student, STATUS_TIMED_OUT, f"grading did not finish within {limit} s "
                                      "of wall-clock time and was stopped", sandbox=job.sandbox, job_key=job.key,
                                      retry_alone=True)
    else:
        tail = log.read_text(errors="replace")[-1500:] if log.is_file() else ""
        failed = GradingResult.failed(job.student, STATUS_CRASHED,
                                      f"the grading worker stopped with exit code {proc.returncode} before writing "
                                      f"a result (see {log}): {tail}", sandbox=job.sandbox, job_key=job.key,
                                      retry_alone=True)
    failed.save(result_file)
    return failed
