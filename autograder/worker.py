"""Grade one submission in its own process: ``python -I -m autograder.worker JOB.json``.

The pipeline writes a job file per student and runs this module, so a crash,
a hang or a memory blow-up in one submission cannot touch the others. The
worker builds a private nbgrader course (a copy of the template gradebook,
the submission, no source notebooks), repairs what nbgrader cannot grade
(unknown or renamed cell ids), autogrades with ``LimitedExecute`` and the
contained kernel, then ``ApplyVerdicts`` kills what the kernel left running
and decides every autograded test from the recorded evidence
(``autograder/verify.py``); the graded notebook is made inert
(``autograder/sanitize.py``). It saves the ``GradingResult``; the feedback
pages are written from the graded notebooks afterwards
(``autograder/final_feedback.py``).
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from ece662 import registry
from ece662.evidence import ENV_DIR

from .course import ASSIGNMENT, NOTEBOOK, base_config, ensure_tools_on_path, private_exchange
from .integrity import changed_files, fingerprint
from .processes import become_subreaper
from .results import (STATUS_CRASHED, STATUS_GRADED, STATUS_INVALID, STATUS_MEMORY, STATUS_TAMPERED,
                      STATUS_TIMED_OUT, GradingResult, Verdict)
from .sandbox import KERNEL_NAME, kernel_argv, write_kernelspec
from .sanitize import strip_metadata
from .scratch import PREFIX, private_tmpfs, remove_tree, unmount

NOTEBOOK_ID = Path(NOTEBOOK).stem


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


def autograde_config(course: Path, db: Path, runtime: Path, job: dict, report: Path):
    c = base_config(course, db)
    private_exchange(c, course)
    c.CourseDirectory.source_directory = "source"  # empty: the kernel's course holds no source notebooks
    limits = job["limits"]
    c.LimitedExecute.timeout = limits["cell_timeout"]
    c.LimitedExecute.notebook_timeout = limits["notebook_timeout"]
    c.LimitedExecute.kernel_name = KERNEL_NAME
    c.LimitedExecute.startup_timeout = 120
    c.LimitedExecute.kernel_cwd = job["kernel_dir"]
    c.ApplyVerdicts.model_dir = job["model_dir"]
    c.ApplyVerdicts.data_root = job["data_root"]
    c.ApplyVerdicts.evidence_dir = job["evidence_dir"]
    c.ApplyVerdicts.sandbox = job["sandbox"]
    c.ApplyVerdicts.report_file = str(report)
    c.ApplyVerdicts.store_dir = job.get("store_dir", "")
    c.ApplyVerdicts.progress_file = job.get("progress", "")
    c.OverwriteCells.add_missing_cells = True
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(runtime / "kernel")
    c.KernelManager.connection_file = str(runtime / "connection.json")
    return c


def status_of(events: list, memory_mb: int) -> tuple[str, str]:
    """(status, detail) from the events LimitedExecute recorded (in this process, not from kernel output)."""
    def cells(kind):
        return ", ".join(dict.fromkeys(e["cell"] for e in events if e["event"] == kind))

    if cells("memory") and not cells("kernel died"):
        return STATUS_MEMORY, f"memory limit {memory_mb} MB reached in cell {cells('memory')}"
    if cells("kernel died"):
        return STATUS_CRASHED, (f"the kernel died in cell {cells('kernel died')} (os._exit, a crash or the memory "
                                "limit); it was restarted and grading went on")
    if cells("time limit"):
        return STATUS_TIMED_OUT, f"the notebook ran past its time limit at cell {cells('time limit')}; later cells " \
                                 "were not run"
    if cells("cell timeout"):
        return STATUS_TIMED_OUT, f"cell {cells('cell timeout')} ran past the per-cell time limit and was interrupted"
    return STATUS_GRADED, ""


def grade_one(job: dict, scratch: Path | None = None) -> GradingResult:
    """Autograde ``job['submission']`` in a fresh private course under ``job['workdir']``; the kernel writes only
    in ``scratch`` (a private tmpfs, see ``autograder/scratch.py``) or, without one, in a temporary folder."""
    started = time.monotonic()
    student, submission, work = job["student"], Path(job["submission"]), Path(job["workdir"])
    common = dict(sandbox=job["sandbox"], submission=str(submission),
                  submission_sha256=hashlib.sha256(submission.read_bytes()).hexdigest())
    nb, problem = read_submission(submission)
    if nb is None:
        return GradingResult.failed(student, STATUS_INVALID, problem, **common)
    notes = repair(nb, known_cells(Path(job["template_db"])))

    remove_tree(work)  # an earlier run's folder
    course = work / "course"
    submitted = course / "submitted" / student / ASSIGNMENT
    for folder in (course / "source" / ASSIGNMENT, submitted):
        folder.mkdir(parents=True)
    nbformat.write(nb, submitted / NOTEBOOK)
    # The kernel's folder, evidence and sockets (a Unix socket path may not exceed ~107 bytes, so they never
    # live under the output folder, whose depth is the instructor's).
    root = scratch or Path(tempfile.mkdtemp(prefix=PREFIX))
    kernel_dir, runtime = root / "notebook", root / "runtime"
    kernel_dir.mkdir()
    runtime.mkdir()
    job = dict(job, kernel_dir=str(kernel_dir), evidence_dir=str(kernel_dir / "evidence"))
    before = fingerprint(job["guarded"])
    result = GradingResult(student, **common)
    result.phases["setup_s"] = round(time.monotonic() - started, 2)
    try:
        _autograde(result, course, runtime, job, notes)
    finally:
        if scratch is None:
            remove_tree(root)  # a plain folder; a private tmpfs is dropped with this process (see main)
    if changed := changed_files(before, fingerprint(job["guarded"])):
        result.status = STATUS_TAMPERED
        result.scores.update({t.grade_id: 0.0 for t in registry.TESTS})
        result.detail = ("the notebook changed grading files, so its automatic tests count zero: "
                         + ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else ""))
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _autograde(result: GradingResult, course: Path, runtime: Path, job: dict, notes: list) -> None:
    """Run nbgrader's autograde (execution, verification, scores) and feedback; fills in ``result``."""
    from nbgrader.apps import NbGraderAPI

    student = result.student
    db = course / "gradebook.db"
    shutil.copy(job["template_db"], db)

    os.environ["OMP_NUM_THREADS"] = str(job["threads"])
    os.environ[ENV_DIR] = job["evidence_dir"]
    argv = kernel_argv(Path(job["kernel_dir"]), runtime, [Path(p) for p in job["readable"]],
                       job["limits"]["memory_mb"], job["sandbox"])
    write_kernelspec(course.parent / "jupyter", argv)
    os.environ["JUPYTER_PATH"] = str(course.parent / "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    ensure_tools_on_path()

    report = course.parent / "run-report.json"
    api = NbGraderAPI(config=autograde_config(course, db, runtime, job, report))
    phase = time.monotonic()
    outcome = api.autograde(ASSIGNMENT, student, force=True, create=True)
    result.phases["autograde_s"] = round(time.monotonic() - phase, 2)
    graded_nb = course / "autograded" / student / ASSIGNMENT / NOTEBOOK
    if not outcome["success"] or not graded_nb.is_file() or not report.is_file():
        print("nbgrader could not autograde:", outcome.get("error") or outcome.get("log"), flush=True)  # the log
        result.status = STATUS_CRASHED
        result.detail = "nbgrader could not autograde this notebook (the grading log has the details)"
        result.scores = {t.grade_id: 0.0 for t in registry.TESTS}
        return
    run = json.loads(report.read_text())
    result.graded_notebook = str(graded_nb)
    result.verdicts = {gid: Verdict(**v) for gid, v in run["verdicts"].items()}
    result.phases.update(run["timing"])
    result.status, detail = status_of(run["events"], job["limits"]["memory_mb"])
    result.detail = "; ".join(filter(None, [detail, *notes]))
    result.scores = trusted_scores(db, student, result.verdicts)


def trusted_scores(db: Path, student: str, verdicts: dict) -> dict:
    """Scores decided here, written back over anything the kernel may have written into its gradebook.

    Autograded tests: their points if the verifier passed them, else 0. Hand-graded questions: 0 when nbgrader
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
                passed = grade.name in verdicts and verdicts[grade.name].passed
                grade.auto_score, grade.needs_manual_grade = (float(points[grade.name]) if passed else 0.0), False
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

    from ece662 import checks, pruning_helper  # noqa: F401

    from . import recipe, reference  # noqa: F401

    from . import course

    course.autograde_preprocessors()


def main(argv=None) -> int:
    """``JOB.json``: grade it. ``--wait``: a spare (``autograder/spare_workers.py``): import, then read the job
    file's path from stdin and grade it, with output from then on in the job's log."""
    argv = sys.argv[1:] if argv is None else argv
    scratch = private_tmpfs()  # first, while this process has a single thread
    become_subreaper()  # orphans of the kernel become ours, so they can be killed before verification
    try:
        if argv == ["--wait"]:
            preload()
            job_file = sys.stdin.readline().strip()
            if not job_file:
                return 0  # no job came: the run is over
            job = json.loads(Path(job_file).read_text())
            log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            for fd in (1, 2):
                os.dup2(log, fd)
        else:
            job = json.loads(Path(argv[0]).read_text())
        grade_one(job, scratch).save(Path(job["result"]))
        return 0
    finally:
        if scratch is not None:
            unmount(scratch)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The result is saved: leave now, without waiting for threads a dead kernel's client may have left behind.
    os._exit(code)
