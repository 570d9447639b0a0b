"""Autograde every submission: parallel, limited, sandboxed, idempotent.

``grade(SUBMISSIONS, OUT)`` writes under ``OUT``:

* ``grades.csv``: one row per student (points per part and question, total, status) or unmatched file;
* ``feedback/<student>.html``: feedback without the hidden tests;
* ``gradebook.db`` and ``autograded/``: an nbgrader course with every submission, for formgrader's
  manual grading (``python -m autograder formgrade OUT``); ``export`` turns it into final grades;
* ``submissions.json``, ``results/<student>.json`` and ``work/<student>/``: what was collected, each
  student's result and private course.

Concurrency: each student is graded by its own ``autograder.worker`` process
with its own copy of the template gradebook, so SQLite never sees two writers;
the per-student gradebooks are merged into ``gradebook.db`` at the end
(nbgrader's rows have UUID keys, so they merge without clashes). A rerun skips
students whose submission, source notebook and limits are unchanged, and
rebuilds ``gradebook.db`` and ``grades.csv`` from all results, so regrading one
student leaves the others as they were; manual scores and comments are kept
wherever the answer did not change (``autograder.aggregate``).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .aggregate import finish, print_summary
from .collect import collect
from .course import ASSIGNMENT, NOTEBOOK, REPO, SOURCE_DIR, generate_release
from .results import STATUS_CRASHED, STATUS_TIMED_OUT, GradingResult
from .roster import read_roster
from .sandbox import sandbox_unavailable_reason

WORKER_SLACK_S = 180  # on top of the notebook limit: kernel start, nbgrader, feedback
GRADING_CODE = [REPO / "ece662" / name for name in ("checks.py", "registry.py", "evidence.py")] + [
    REPO / "autograder" / "verify.py"]  # how grading decides: a change regrades everyone


@dataclass
class Limits:
    cell_timeout: int = 120
    notebook_timeout: int = 600
    memory_mb: int = 6144


def _source_notebook() -> Path:
    return REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK


def prepare_template(out: Path) -> Path:
    """The template gradebook (assignment and its cells), regenerated when the source notebook changes."""
    digest = hashlib.sha256(_source_notebook().read_bytes()).hexdigest()
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


def _job_key(submission: Path, limits: Limits, sandbox: str) -> str:
    h = hashlib.sha256(submission.read_bytes())
    for path in (_source_notebook(), *GRADING_CODE):  # a change to how grading decides regrades everyone
        h.update(path.read_bytes())
    h.update(json.dumps([asdict(limits), sandbox]).encode())
    return h.hexdigest()


def trusted_paths() -> dict:
    """The grader's own course model folder and dataset, for the verifier (never the kernel's view of them)."""
    from ece662 import data_utils
    from ece662.paths import model_path

    return {"model_dir": str(model_path("torch").parent.resolve()),
            "data_root": str(data_utils.dataset_root().resolve())}


def run_worker(student: str, submission: Path, out: Path, template_db: Path, readable, limits: Limits,
               sandbox: str, threads: int) -> GradingResult:
    """Grade one submission in an ``autograder.worker`` process under a hard wall-clock limit.

    ``sandbox``: how the kernel is contained, "bubblewrap" or "none"."""
    work, result_file = out / "work" / student, out / "results" / f"{student}.json"
    job = {"student": student, "submission": str(submission.resolve()), "workdir": str(work),
           "template_db": str(template_db), "sandbox": sandbox, "readable": [str(p) for p in readable],
           "guarded": [str(p) for p in guarded_paths()], **trusted_paths(),
           "limits": asdict(limits), "result": str(result_file), "threads": threads}
    for sub in ("jobs", "results", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    job_file = out / "jobs" / f"{student}.json"
    job_file.write_text(json.dumps(job, indent=1))
    result_file.unlink(missing_ok=True)
    log = out / "logs" / f"{student}.log"
    limit = limits.notebook_timeout + WORKER_SLACK_S
    with open(log, "w") as log_handle:
        proc = subprocess.Popen([sys.executable, "-I", "-m", "autograder.worker", str(job_file)], stdout=log_handle,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=out)
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            if not result_file.is_file():
                return GradingResult.failed(student, STATUS_TIMED_OUT, f"grading did not finish within {limit} s",
                                            sandbox=sandbox)
    if not result_file.is_file():
        tail = log.read_text(errors="replace")[-1500:]
        return GradingResult.failed(student, STATUS_CRASHED, f"the grading worker failed (see {log}): {tail}",
                                    sandbox=sandbox)
    return GradingResult.load(result_file)


def grade(submissions, out, workers: int = 2, limits: Limits = Limits(), sandbox: str = "auto",
          force: bool = False, name_pattern: str | None = None, verbose: bool = True,
          roster=None) -> list[GradingResult]:
    """Autograde everything in ``submissions`` (folder or zip) into ``out``; returns the results.

    ``name_pattern``: how file names name students (default: Canvas or ``<student_id>.ipynb``, see
    ``autograder.collect``); ``roster``: the Canvas gradebook export, for names and missing students."""
    started = time.monotonic()
    out = Path(out).resolve()
    for sub in ("results", "jobs", "logs", "feedback", "work"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    if roster:
        read_roster(roster)  # a bad roster is refused before any grading
    collection = collect(Path(submissions), out / "collected", name_pattern)
    found = collection.files()
    if not found:
        raise ValueError(f"no submissions found in {submissions}" + (
            f": no file name names a student ({', '.join(collection.unmatched[:5])}); pass --name-pattern"
            if collection.unmatched else ""))
    reason = sandbox_unavailable_reason()
    if sandbox == "on" and reason:
        raise RuntimeError(f"--sandbox on, but {reason}")
    use_sandbox = "bubblewrap" if sandbox != "off" and reason is None else "none"
    template_db = prepare_template(out)
    readable = readable_paths()

    todo, results = [], {}
    for student, path in found.items():
        key = _job_key(path, limits, use_sandbox)
        previous = out / "results" / f"{student}.json"
        if not force and previous.is_file():
            cached = GradingResult.load(previous)
            if cached.job_key == key:
                results[student] = cached
                continue
        todo.append((student, path, key))

    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(todo), desc="grading", unit="nb", disable=not verbose) as bar:
        threads = max(1, (os.cpu_count() or 1) // workers)  # kernels share the cores: no oversubscription
        futures = {pool.submit(run_worker, s, p, out, template_db, readable, limits, use_sandbox, threads):
                   (s, k) for s, p, k in todo}
        for future in as_completed(futures):
            student, key = futures[future]
            result = future.result()
            result.job_key = key
            result.save(out / "results" / f"{student}.json")
            results[student] = result
            bar.update(1)

    outcome = finish(out, collection, {s: results[s] for s in found}, template_db, roster)
    if verbose:
        print_summary(outcome, collection, out, use_sandbox == "bubblewrap", reason, time.monotonic() - started,
                      len(todo))
    return [results[s] for s in sorted(found)]
