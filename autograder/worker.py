"""Grade one submission in its own process: ``python -m autograder.worker JOB.json``.

The pipeline writes a job file per student and runs this module, so a crash,
a hang or a memory blow-up in one submission cannot touch the others. The
worker builds a private nbgrader course (a copy of the template gradebook,
the submission, no source notebooks), repairs what nbgrader cannot grade
(unknown or renamed cell ids), autogrades with ``LimitedExecute`` and the
sandboxed kernel, writes feedback without hidden tests, and saves
``result.json``.
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

from .course import ASSIGNMENT, NOTEBOOK, base_config, ensure_tools_on_path, private_exchange
from .execute import KERNEL_DIED_ERROR, TIME_LIMIT_ERROR, LimitedExecute
from .feedback import FEEDBACK_PREPROCESSORS
from .integrity import changed_files, fingerprint
from .sandbox import KERNEL_NAME, kernel_argv, write_kernelspec

NOTEBOOK_ID = Path(NOTEBOOK).stem
STATUS_GRADED, STATUS_TIMED_OUT, STATUS_CRASHED, STATUS_INVALID = "graded", "timed out", "crashed", "invalid notebook"
STATUS_TAMPERED = "tampered"


def template_cells(template_db: Path) -> tuple[dict, set]:
    """({grade_id: max points} of the graded cells, ids of all nbgrader cells), from the template gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{template_db}") as gb:
        nb = gb.find_notebook(NOTEBOOK_ID, ASSIGNMENT)
        points = {cell.name: cell.max_score for cell in nb.grade_cells}
        return points, set(points) | {cell.name for cell in nb.source_cells}


def read_submission(path: Path):
    """(notebook, None) or (None, why it cannot be graded)."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # JSON errors, binary files, wrong schema...
        return None, f"{path.name} is not a readable Jupyter notebook ({type(exc).__name__}: {str(exc)[:200]})"
    if not nb.cells:
        return None, f"{path.name} holds no cells"
    return nb, None


def repair(nb, known: set) -> list[str]:
    """Strip nbgrader metadata naming unknown or duplicate grade ids (nbgrader re-adds the real test cells)."""
    notes, seen = [], set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta:
            continue
        gid = meta.get("grade_id")
        if gid not in known and (meta.get("grade") or meta.get("solution") or meta.get("locked")):
            cell.metadata.pop("nbgrader")
            notes.append(f"cell id '{gid}' is not part of the assignment (renamed?); the original cell was restored")
        elif gid in seen:
            cell.metadata.pop("nbgrader")
            notes.append(f"cell id '{gid}' appeared twice; the copy was ignored")
        seen.add(gid)
    return notes


def autograde_config(course: Path, db: Path, runtime: Path, limits: dict):
    c = base_config(course, db)
    private_exchange(c, course)
    c.CourseDirectory.source_directory = "source"  # empty: the kernel's course holds no source notebooks
    c.Autograde.autograde_preprocessors = [
        LimitedExecute if p.__name__ == "Execute" else p for p in _default_autograde_preprocessors()]
    c.LimitedExecute.timeout = limits["cell_timeout"]
    c.LimitedExecute.notebook_timeout = limits["notebook_timeout"]
    c.LimitedExecute.kernel_name = KERNEL_NAME
    c.LimitedExecute.startup_timeout = 120
    c.OverwriteCells.add_missing_cells = True
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(runtime / "kernel")
    c.KernelManager.connection_file = str(runtime / "connection.json")
    c.GenerateFeedback.preprocessors = FEEDBACK_PREPROCESSORS
    return c


def _default_autograde_preprocessors():
    from nbgrader.converters import Autograde

    return Autograde.class_traits()["autograde_preprocessors"].default()


def status_of(nb) -> tuple[str, str]:
    events = {o.get("ename") for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"}
    if KERNEL_DIED_ERROR in events:
        return STATUS_CRASHED, "the kernel died during a cell (os._exit, a crash or the memory limit)"
    if TIME_LIMIT_ERROR in events:
        return STATUS_TIMED_OUT, "the notebook ran past its time limit; cells after that were not run"
    if "CellTimeoutError" in events:
        return STATUS_TIMED_OUT, "a cell ran past the per-cell time limit and was interrupted"
    return STATUS_GRADED, ""


def grade_one(job: dict) -> dict:
    """Autograde ``job['submission']`` in a fresh private course under ``job['workdir']``; returns the result."""
    started = time.monotonic()
    student, submission, work = job["student"], Path(job["submission"]), Path(job["workdir"])
    cells, known_ids = template_cells(Path(job["template_db"]))
    result = {"student": student, "status": STATUS_GRADED, "detail": "", "scores": {}, "max_scores": cells,
              "sandboxed": job["sandbox"], "submission_sha256": hashlib.sha256(submission.read_bytes()).hexdigest()}
    nb, problem = read_submission(submission)
    if nb is None:
        result.update(status=STATUS_INVALID, detail=problem, scores={k: 0.0 for k in cells})
        return result
    notes = repair(nb, known_ids)

    if work.exists():
        shutil.rmtree(work)
    course = work / "course"
    submitted = course / "submitted" / student / ASSIGNMENT
    scratch = course / "autograded" / student / ASSIGNMENT
    for folder in (course / "source" / ASSIGNMENT, submitted, scratch):
        folder.mkdir(parents=True)
    nbformat.write(nb, submitted / NOTEBOOK)
    # The kernel's sockets live here: a Unix socket path may not exceed ~107 bytes, so this folder must not
    # grow with the output folder's depth or the student id.
    runtime = Path(tempfile.mkdtemp(prefix="ece662-kernel-"))
    before = fingerprint(job["guarded"])
    try:
        _autograde(result, course, scratch, runtime, job, notes)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    if changed := changed_files(before, fingerprint(job["guarded"])):
        result.update(status=STATUS_TAMPERED, scores={k: 0.0 if k.startswith("test_") else v
                                                      for k, v in result["scores"].items()},
                      detail=f"the notebook changed grading files, so its automatic tests count zero: "
                             f"{', '.join(changed[:5])}" + (f" and {len(changed) - 5} more" if len(changed) > 5 else ""))
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _autograde(result: dict, course: Path, scratch: Path, runtime: Path, job: dict, notes: list) -> None:
    """Run nbgrader's autograde and feedback on the prepared course; fills in ``result``."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    student, cells = result["student"], result["max_scores"]
    db = course / "gradebook.db"
    shutil.copy(job["template_db"], db)

    os.environ["OMP_NUM_THREADS"] = str(job["threads"])
    argv = kernel_argv(scratch, runtime, [Path(p) for p in job["readable"]], job["limits"]["memory_mb"],
                       job["sandbox"])
    write_kernelspec(course.parent / "jupyter", argv)
    os.environ["JUPYTER_PATH"] = str(course.parent / "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    ensure_tools_on_path()

    api = NbGraderAPI(config=autograde_config(course, db, runtime, job["limits"]))
    outcome = api.autograde(ASSIGNMENT, student, force=True, create=True)
    graded_nb = scratch / NOTEBOOK
    if not outcome["success"] or not graded_nb.is_file():
        log = (outcome.get("error") or outcome.get("log") or "")[-2000:]
        result.update(status=STATUS_CRASHED, detail="nbgrader could not autograde this notebook: " + log,
                      scores={k: 0.0 for k in cells})
        return
    result["graded_notebook"] = str(graded_nb)
    result["status"], result["detail"] = status_of(nbformat.read(graded_nb, as_version=4))
    result["detail"] = "; ".join(filter(None, [result["detail"], *notes]))
    with Gradebook(f"sqlite:///{db}") as gb:
        snb = gb.find_submission_notebook(NOTEBOOK_ID, ASSIGNMENT, student)
        for grade in snb.grades:
            result["scores"][grade.name] = None if grade.needs_manual_grade else float(grade.score)
    feedback = api.generate_feedback(ASSIGNMENT, student, force=True)
    html = course / "feedback" / student / ASSIGNMENT / (NOTEBOOK_ID + ".html")
    if feedback["success"] and html.is_file():
        result["feedback"] = str(html)


def main(argv=None) -> int:
    job_file = Path((argv or sys.argv[1:])[0])
    job = json.loads(job_file.read_text())
    result = grade_one(job)
    tmp = Path(job["result"]).with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, job["result"])
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The result is saved: leave now, without waiting for threads a dead kernel's client may have left behind.
    os._exit(code)
