"""Autograde every submission: parallel, limited, sandboxed, idempotent.

``grade(SUBMISSIONS, OUT)`` fills the grading output folder ``OUT`` (its layout: ``grading_folder.py``): the
grades and feedback pages (``publish.py``), an nbgrader course with every submission for formgrader's manual
grading (``python -m autograder formgrade OUT``; ``export`` turns it into final grades), what was collected,
each student's result and private course.

Concurrency: each student is graded by its own ``autograder.worker`` process
(``autograder/worker/job.py``) with its own copy of the template gradebook, so
SQLite never sees two writers; the per-student gradebooks are merged into
``gradebook.db`` at the end (nbgrader's rows have UUID keys, so they merge
without clashes). ``workers`` notebooks run at once, each with its share of
the cores; a finished notebook's verification overlaps the next notebook, whose
worker was started ahead (``autograder/course/spare_workers.py``); the grades and
feedback pages are written once, at the end, from every result.
In the sandbox, the verifiers share what they measure and the Part 4 recipe
runs they make (``autograder/worker/measurements.py``): each distinct set of
weights is measured, and each distinct start trained, once per course. A rerun skips
students whose submission and course are unchanged (what decides a grade: ``autograder/worker/fingerprint.py``);
an upload refused at intake is ``invalid upload``. It
rebuilds ``gradebook.db`` and ``grades.csv`` from all results, so regrading one
student (``only``) leaves the others as they were; manual scores and comments are kept
wherever what their grader judged did not change (``autograder/course/gradebook.py``).
A notebook whose grading stopped for a reason the machine may explain (a wall-clock
limit, a killed kernel or worker, an error of the grader's) is graded again at the
end of the run, alone; what stops it then is reported with the command that
regrades it.
"""
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from autograder.course.aggregate import finish, print_summary
from autograder.course.collect import collect
from autograder.course.formgrade import warn_if_served
from autograder.course.grades import save_grade_options
from autograder.course.release import prepare_template, source_notebook
from autograder.course.roster import read_roster
from autograder.course.spare_workers import SpareWorkers
from autograder.grading_folder import GradingFolder
from autograder.worker.cgroup import caps_for
from autograder.worker.fingerprint import course_fingerprint, job_key
from autograder.worker.job import Limits, new_job, readable_paths, run_worker
from autograder.worker.measurements import store_folder
from autograder.worker.results import STATUS_INVALID_UPLOAD, UNFINISHED, GradingResult
from autograder.worker.sandbox import AUTO, BUBBLEWRAP, NONE, OFF, ON, describe_bounds, sandbox_unavailable_reason


def shared_store(out: Path, sandbox: str) -> Path | None:
    """The folder of measurements and recipe runs the workers share (``autograder/worker/measurements.py``): only in
    the bubblewrap sandbox, where no kernel can see it (without a sandbox a kernel could write into it)."""
    if sandbox != BUBBLEWRAP:
        return None
    folder = store_folder(GradingFolder(out).measurements)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def grade(submissions, out, workers: int = 2, limits: Limits = Limits(), sandbox: str = AUTO,
          force: bool = False, name_pattern: str | None = None, verbose: bool = True,
          roster=None, match=(), only: str | None = None) -> list[GradingResult]:
    """Autograde everything in ``submissions`` (folder or zip) into ``out``; returns the results.

    ``name_pattern``: how file names name students (default: Canvas or ``<student_id>.ipynb``, see
    ``autograder/course/collect.py``); ``roster``: the Canvas gradebook export, for names and missing students;
    ``match``: "FILE=ID" hand matches, remembered in ``out``; ``only``: grade this student (again) and no
    one else."""
    started = time.monotonic()
    out = Path(out).resolve()
    folder = GradingFolder(out)
    folder.make()
    warn_if_served(out)
    if roster:
        read_roster(roster)  # a bad roster is refused before any grading
    with tqdm(total=3, desc="set-up", unit="step", disable=not verbose) as setup:
        setup.set_postfix_str("collecting submissions")
        collection = collect(Path(submissions), folder.collected, name_pattern, match, folder.hand_matches)
        found = collection.files()
        if not found:
            raise ValueError(f"no submissions found in {submissions}" + (
                f": no file name names a student ({', '.join(collection.unmatched[:5])}); pass --name-pattern, "
                "or --match FILE=ID for each" if collection.unmatched else ""))
        reason = sandbox_unavailable_reason()
        if sandbox == ON and reason:
            raise RuntimeError(f"--sandbox on, but {reason}")
        use_sandbox = BUBBLEWRAP if sandbox != OFF and reason is None else NONE
        setup.update()
        setup.set_postfix_str("template gradebook (nbgrader generate_assignment)")
        template_db = prepare_template(out)
        setup.update()
        setup.set_postfix_str("data cache and course model")
        readable = readable_paths()
        setup.update()
    store = shared_store(out, use_sandbox)
    save_grade_options(out, _grade_options(submissions, out, limits, sandbox, name_pattern))

    course = course_fingerprint(source_notebook())  # what decides every grade (autograder/worker/fingerprint.py)
    todo, results = [], _kept_results(out, found, only) if only else {}
    for student, path in found.items():
        if only and student != only:
            continue
        if problem := collection.submissions[student].problem:  # an upload refused at intake: nothing to run
            results[student] = GradingResult.failed(student, STATUS_INVALID_UPLOAD, problem)
            results[student].save(folder.result(student))
            continue
        key = job_key(path, course, limits, use_sandbox)
        previous = folder.result(student)
        if not force and not only and previous.is_file():
            cached = GradingResult.load(previous)
            if cached.job_key == key:
                results[student] = cached
                continue
        todo.append((student, path, key))

    threads = max(1, (os.cpu_count() or 1) // workers)  # kernels share the cores: no oversubscription
    spares = SpareWorkers(out, workers, threads, len(todo)) if todo else None
    try:
        kernel_slots = threading.Semaphore(max(1, workers))  # notebooks running at once
        with ThreadPoolExecutor(2 * max(1, workers)) as pool, \
                tqdm(total=len(todo), desc="grading", unit="nb", disable=not verbose) as bar:
            jobs = [new_job(s, p, folder, template_db, k, limits, use_sandbox, threads, readable, store)
                    for s, p, k in todo]
            futures = {pool.submit(run_worker, job, folder, spares, kernel_slots): job.student for job in jobs}
            for future in as_completed(futures):
                results[futures[future]] = future.result()  # the worker saved it in results/
                bar.update(1)
    finally:
        if spares:
            spares.close()
    _regrade_alone(jobs, results, folder, verbose)

    outcome = finish(out, collection, {s: results[s] for s in found if s in results}, template_db, roster)
    if verbose:
        print_summary(outcome, collection, out, use_sandbox == BUBBLEWRAP, reason, time.monotonic() - started,
                      len(todo), describe_bounds(caps_for(limits, threads), use_sandbox))
    return [results[s] for s in sorted(found) if s in results]


def _kept_results(out: Path, found: dict, only: str) -> dict:
    """For ``only``: every other student's result as it is (refused if ``only`` handed in nothing)."""
    if only not in found:
        raise ValueError(f"--only {only}: no submission of that student (students: {', '.join(sorted(found)[:10])}"
                         + (", ..." if len(found) > 10 else "") + ")")
    saved = {s: GradingFolder(out).result(s) for s in found if s != only}
    return {s: GradingResult.load(path) for s, path in saved.items() if path.is_file()}


def _grade_options(submissions, out: Path, limits: Limits, sandbox: str, name_pattern: str | None) -> list[str]:
    """The ``grade`` options that grade as this run does (roster and hand matches are remembered in ``out``)."""
    options, default = [str(Path(submissions).resolve()), "--out", str(out)], Limits()
    for flag, value, usual in (("--cell-timeout", limits.cell_timeout, default.cell_timeout),
                               ("--notebook-timeout", limits.notebook_timeout, default.notebook_timeout),
                               ("--memory-mb", limits.memory_mb, default.memory_mb)):
        options += [flag, str(value)] if value != usual else []
    options += ["--sandbox", sandbox] if sandbox != AUTO else []
    return options + (["--name-pattern", name_pattern] if name_pattern else [])


def _regrade_alone(jobs: list, results: dict, folder: GradingFolder, verbose: bool) -> None:
    """Grade again, one at a time and with no other notebook running, each notebook whose grading stopped for a
    reason the machine may explain (``GradingResult.retry_alone``); the new result counts."""
    again = [job for job in jobs if results[job.student].status in UNFINISHED and results[job.student].retry_alone]
    for job in tqdm(again, desc="regrading alone", unit="nb", disable=not verbose or not again):
        result = run_worker(job, folder)
        if result.status in UNFINISHED:
            result.detail += "; the same when graded again alone"
            result.save(Path(job.result))
        results[job.student] = result
