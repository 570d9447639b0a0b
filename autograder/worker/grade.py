"""Grade one submission in a process of its own: ``python -I -m autograder.worker [--progress-fd N] JOB.json``.

A crash, a hang or a memory blow-up in one submission cannot touch the
others. The worker builds a private nbgrader course (a copy of the template
gradebook, the submission, no source notebooks), repairs what nbgrader cannot
grade (unknown or renamed cell ids, metadata nbgrader's validation refuses)
and autogrades with the steps of ``autograder/worker/autograde_config.py``: the
contained kernel runs the notebook in its scratch folder
(``autograder/worker/scratch.py``), ``KillLeftovers`` kills what it left
running, ``ApplyVerdicts`` decides every autograded test from the recorded
evidence (``autograder/worker/verify.py``), and the graded notebook is made inert
(``autograder/worker/sanitize.py``). The scores it decided are written into
the student's gradebook and into the ``GradingResult``, once.
"""
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from autograder.grading_folder import GRADEBOOK, PRIVATE_COURSE
from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, NOTEBOOK_ID, ensure_tools_on_path
from autograder.worker.autograde_config import KernelPlaces, autograde_config, autograde_preprocessors
from autograder.worker.cgroup import caps_for, kernel_cgroup
from autograder.worker.execute import EVENT_CPU, EVENT_DIED, EVENT_MEMORY, EVENT_NOTEBOOK, EVENT_WALL, signal_of
from autograder.worker.integrity import changed_files, fingerprint
from autograder.worker.job import Job
from autograder.worker.processes import become_subreaper
from autograder.worker.results import (
    STATUS_CRASHED,
    STATUS_GRADED,
    STATUS_INVALID,
    STATUS_MEMORY,
    STATUS_TAMPERED,
    STATUS_TIMED_OUT,
    GradingResult,
)
from autograder.worker.sandbox import kernel_argv, write_kernelspec
from autograder.worker.sanitize import strip_metadata
from autograder.worker.scratch import PREFIX, private_tmpfs, remove_tree, unmount
from autograder.worker.verify import RunReport
from ece662.grading import registry
from ece662.grading.evidence import ENV_DIR


def known_cells(template_db: Path) -> dict[str, dict]:
    """{grade id: its nbgrader metadata} for every nbgrader cell of the assignment, from the template gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{template_db}") as gb:
        nb = gb.find_notebook(NOTEBOOK_ID, ASSIGNMENT)
        points = {cell.name: cell.max_score for cell in nb.grade_cells}
        solutions = {cell.name for cell in nb.solution_cells}
        cells = {}
        for cell in nb.source_cells:
            cells[cell.name] = {"grade": cell.name in points, "grade_id": cell.name, "locked": cell.locked,
                                "schema_version": 3, "solution": cell.name in solutions, "task": False}
            if cell.name in points:
                cells[cell.name]["points"] = points[cell.name]
        return cells


def read_submission(path: Path):
    """(notebook, None) or (None, why it cannot be graded). Only what grading reads is kept of it
    (``sanitize.strip_metadata``), so that no tag, attachment or title of the student's can fail nbgrader."""
    try:
        nb = nbformat.read(path, as_version=4)
        strip_metadata(nb)
        nbformat.validate(nb)
    except Exception as exc:  # JSON errors, binary files, wrong schema...
        return None, f"{path.name} is not a readable Jupyter notebook ({type(exc).__name__}: {str(exc)[:200]})"
    if not nb.cells:
        return None, f"{path.name} holds no cells"
    return nb, None


def repair(nb, known: dict) -> list[str]:
    """Strip nbgrader metadata naming unknown or duplicate grade ids (nbgrader re-adds the real test cells), and
    give every known cell the assignment's flags and points back (changed flags make nbgrader refuse the file)."""
    notes, seen = [], set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if not isinstance(meta, dict):
            cell.get("metadata", {}).pop("nbgrader", None)
            continue
        gid = meta.get("grade_id")
        if gid in known and gid not in seen and any(meta.get(k) != v for k, v in known[gid].items()):
            cell.metadata.nbgrader = dict(known[gid])
            notes.append(f"cell '{gid}' had its nbgrader settings changed; they were restored")
        elif gid not in known and (meta.get("grade") or meta.get("solution") or meta.get("locked")):
            cell.metadata.pop("nbgrader")
            notes.append(f"cell id '{gid}' is not part of the assignment (renamed?); the original cell was restored")
        elif gid in seen:
            cell.metadata.pop("nbgrader")
            notes.append(f"cell id '{gid}' appeared twice; the copy was ignored")
        seen.add(gid)
    return notes


def machine_may_explain(event: dict) -> bool:
    """Whether the machine (its load, its memory) may have caused ``event``: a wall-clock limit or a kernel killed
    by a signal (the OOM killer?) may; a CPU time limit and a kernel's own exit may not."""
    if event["event"] == EVENT_DIED:
        return event.get("exit_code") is None or signal_of(event["exit_code"]) != 0
    return event["event"] == EVENT_WALL or event["event"] == EVENT_NOTEBOOK and event.get("wall_clock", False)


def status_of(events: list, memory_mb: int) -> tuple[str, str, bool]:
    """(status, detail, whether the machine may explain it) from the events LimitedExecute recorded (in this
    process, not from kernel output)."""
    def first(kind):
        return next((e for e in events if e["event"] == kind), None)

    retry = any(machine_may_explain(e) for e in events)
    died, memory = [e for e in events if e["event"] == EVENT_DIED], first(EVENT_MEMORY)
    if memory and not died:
        return STATUS_MEMORY, f"memory limit {memory_mb} MB reached in cell {memory['cell']}", retry
    if died:
        again = f" (and {len(died) - 1} more time{'s' if len(died) > 2 else ''})" if len(died) > 1 else ""
        return STATUS_CRASHED, (f"{died[0]['cause']} in cell {died[0]['cell']}{again}; the kernel was restarted "
                                "and grading went on"), retry
    if e := first(EVENT_NOTEBOOK):
        return STATUS_TIMED_OUT, (f"the notebook used up {e['limit']} at cell {e['cell']} ({e['cpu_s']:g} s of CPU "
                                  f"time in {e['wall_s']:g} s); later cells were not run"), retry
    if e := first(EVENT_CPU):
        return STATUS_TIMED_OUT, (f"cell {e['cell']} hit the cpu time limit ({e['cpu_s']:g} s of CPU time in "
                                  f"{e['wall_s']:g} s; limit {e['cpu_limit_s']:g} s) and was interrupted"), retry
    if e := first(EVENT_WALL):
        return STATUS_TIMED_OUT, (f"cell {e['cell']} ran past the {e['wall_limit_s']:g} s wall-clock backstop "
                                  f"({e['cpu_s']:g} s of CPU time: it sleeps or waits, or the machine is very busy) "
                                  "and was interrupted"), retry
    return STATUS_GRADED, "", retry


def grade_one(job: Job, scratch: Path | None = None, progress_fd: int = -1) -> GradingResult:
    """Autograde ``job.submission`` in a fresh private course under ``job.workdir``; the kernel writes only in
    ``scratch`` (a private tmpfs) or, without one, in a temporary folder removed afterwards."""
    started = time.monotonic()
    common = dict(sandbox=job.sandbox, submission=job.submission, job_key=job.key,
                  submission_sha256=hashlib.sha256(Path(job.submission).read_bytes()).hexdigest())
    nb, problem = read_submission(Path(job.submission))
    if nb is None:
        return GradingResult.failed(job.student, STATUS_INVALID, problem, **common)
    notes = repair(nb, known_cells(Path(job.template_db)))

    work = Path(job.workdir)
    remove_tree(work)  # an earlier run's folder
    course = work / PRIVATE_COURSE
    submitted = course / "submitted" / job.student / ASSIGNMENT
    for folder in (course / "source" / ASSIGNMENT, submitted):
        folder.mkdir(parents=True)
    nbformat.write(nb, submitted / NOTEBOOK)
    # The kernel's folder, evidence and sockets (a Unix socket path may not exceed ~107 bytes, so they never
    # live under the output folder, whose depth is the instructor's).
    root = scratch or Path(tempfile.mkdtemp(prefix=PREFIX))
    kernel = KernelPlaces(root / "notebook", root / "notebook" / "evidence", root / "runtime")
    kernel.folder.mkdir()
    kernel.runtime.mkdir()
    before = fingerprint(job.guarded)
    result = GradingResult(job.student, **common)
    result.phases["setup_s"] = round(time.monotonic() - started, 2)
    try:
        with kernel_cgroup(caps_for(job.limits, job.threads)) as group:  # the kernel's capped share
            report = _autograde(job, course, kernel, progress_fd, group)
    finally:
        if scratch is None:
            remove_tree(root)  # a plain folder; a private tmpfs is dropped with this process (see main)
    graded = course / "autograded" / job.student / ASSIGNMENT / NOTEBOOK
    if not isinstance(report, RunReport) or not graded.is_file():
        why = report if isinstance(report, str) else "it wrote no graded notebook"
        result.status, result.detail = STATUS_CRASHED, f"nbgrader could not autograde this notebook: {why}"
        result.scores, result.retry_alone = {t.grade_id: 0.0 for t in registry.TESTS}, True
        return result
    result.graded_notebook, result.verdicts, result.figures = str(graded), report.verdicts, report.figures
    result.phases.update(report.timing)
    result.status, detail, result.retry_alone = status_of(report.events, job.limits.memory_mb)
    result.detail = "; ".join(filter(None, [detail, *notes]))
    if changed := changed_files(before, fingerprint(job.guarded)):
        result.status = STATUS_TAMPERED
        result.detail = ("the notebook changed grading files, so its automatic tests count zero: "
                         + ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else ""))
    passed = {gid for gid, v in report.verdicts.items() if v.passed and result.status != STATUS_TAMPERED}
    result.scores = trusted_scores(course / GRADEBOOK, job.student, passed)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _autograde(job: Job, course: Path, kernel: KernelPlaces, progress_fd: int, group=None) -> RunReport | str:
    """nbgrader's autograde (execution, verification, scores) of the submitted notebook; the verifier's report,
    or why nbgrader failed (one line)."""
    from nbgrader.apps import NbGraderAPI

    db = course / GRADEBOOK
    shutil.copy(job.template_db, db)
    os.environ["OMP_NUM_THREADS"] = str(job.threads)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the kernel runs on the CPU, as the grader's run of Part 4's recipe
    os.environ[ENV_DIR] = str(kernel.evidence)
    argv = kernel_argv(kernel.folder, kernel.runtime, [Path(p) for p in job.readable], job.limits.memory_mb,
                       job.sandbox, group)
    write_kernelspec(course.parent / "jupyter", argv)
    os.environ["JUPYTER_PATH"] = str(course.parent / "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(kernel.runtime)
    ensure_tools_on_path()
    report = course.parent / "run-report.json"
    api = NbGraderAPI(config=autograde_config(course, db, kernel, job, report, progress_fd))
    started = time.monotonic()
    outcome = api.autograde(ASSIGNMENT, job.student, force=True, create=True)
    if not outcome["success"] or not report.is_file():
        print("nbgrader could not autograde; its log:", outcome.get("log", ""), outcome.get("error", ""), sep="\n",
              flush=True)
        return swallowed_exception(outcome.get("log", "")) or "nbgrader stopped without an error (see the log)"
    run = RunReport.load(report)
    if group and group.oom_kills():  # the kernel deaths were its cgroup's memory cap
        run.events = [dict(e, event=EVENT_MEMORY) if e["event"] == EVENT_DIED else e for e in run.events]
    run.timing["autograde_s"] = round(time.monotonic() - started, 2)
    return run


def swallowed_exception(log: str) -> str:
    """The exception that ends the last traceback in nbgrader's log, in one line ("" if there is none): nbgrader
    logs the traceback of what failed, then raises only "Please see the above traceback". (Its log indents the
    lines after a record's first by 4 spaces.)"""
    _, found, block = log.rpartition("Traceback (most recent call last):")
    exception = []
    for line in block.splitlines()[1:] if found else []:
        line = line.removeprefix("    ")
        if exception and (not line.strip() or line.startswith("[")):  # its end, or the next log record
            break
        if line.strip() and not line[0].isspace():  # not a frame or its code
            exception.append(line.strip())
    return re.sub(r"^[\w.]+\.(?=\w+:)", "", " ".join(exception))[:400]  # KernelStartError, not a.b.KernelStartError


def trusted_scores(db: Path, student: str, passed: set) -> dict:
    """Scores decided here, written over anything the kernel may have written into its gradebook: the numbers
    the merged gradebook, formgrader and ``grades.csv`` all read.

    Autograded tests: their points if they are in ``passed``, else 0. Hand-graded questions: 0 when nbgrader
    found them unanswered, else waiting for a grader. Manual scores, extra credit and comments are cleared and
    the cells' points restored from the registry (only graders set them, in the merged gradebook)."""
    from nbgrader.api import Gradebook

    points, scores = registry.points(), {}
    with Gradebook(f"sqlite:///{db}") as gb:
        for cell in gb.find_notebook(NOTEBOOK_ID, ASSIGNMENT).grade_cells:
            cell.max_score = points.get(cell.name, 0)
        snb = gb.find_submission_notebook(NOTEBOOK_ID, ASSIGNMENT, student)
        for grade in snb.grades:
            grade.manual_score = grade.extra_credit = None
            if registry.is_autograded(grade.name):
                grade.auto_score = float(points[grade.name]) if grade.name in passed else 0.0
                grade.needs_manual_grade = False
                scores[grade.name] = grade.auto_score
            elif grade.auto_score == 0 and not grade.needs_manual_grade:
                scores[grade.name] = 0.0  # unanswered
            else:
                grade.auto_score, grade.needs_manual_grade, scores[grade.name] = None, True, None
        for comment in snb.comments:
            comment.manual_comment = None
        gb.db.commit()
    return scores


def preload() -> None:
    """Import what grading a job needs (a spare worker does this before its job arrives)."""
    import nbgrader.apps  # noqa: F401
    import torch  # noqa: F401 (the verifier's)

    from autograder import reference  # noqa: F401
    from autograder.worker import recipe  # noqa: F401
    from ece662 import pruning_helper  # noqa: F401
    from ece662.grading import checks  # noqa: F401

    autograde_preprocessors()  # the steps' modules


def main(argv=None) -> int:
    """``[--progress-fd N] JOB.json``: grade it. ``[--progress-fd N] --wait``: a spare
    (``autograder/course/spare_workers.py``): import, then read the job file's path from stdin and grade it,
    with output from then on in the job's log. The progress pipe gets "kernel gone" and "verified"."""
    argv = list(sys.argv[1:] if argv is None else argv)
    scratch = private_tmpfs()  # first, while this process has a single thread
    become_subreaper()  # orphans of the kernel become ours, so they can be killed before verification
    progress_fd = -1
    if argv[:1] == ["--progress-fd"]:
        progress_fd, argv = int(argv[1]), argv[2:]
    try:
        if argv == ["--wait"]:
            preload()
            job_file = sys.stdin.readline().strip()
            if not job_file:
                return 0  # no job came: the run is over
            job = Job.load(job_file)
            log = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            for fd in (1, 2):
                os.dup2(log, fd)
        else:
            job = Job.load(argv[0])
        grade_one(job, scratch, progress_fd).save(Path(job.result))
        return 0
    finally:
        if scratch is not None:
            unmount(scratch)
