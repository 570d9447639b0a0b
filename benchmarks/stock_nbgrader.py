"""The timing peer of P4d: stock nbgrader, with its own defaults, autograding the same submissions.

The bench builds a throw-away course folder whose ``nbgrader_config.py`` names
only the course folders and ``Execute.timeout = 120`` (not this repository's
``nbgrader_config.py``, which installs this project's preprocessors), generates the assignment from ``assignment/``, and times
``nbgrader autograde`` and ``nbgrader generate_feedback`` as subprocesses in
the bench's environment (same data, cache and model). Nothing verifies the
evidence its test cells record, so its scores mean nothing: it is a timing
peer only.
"""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, REPO, SOURCE_DIR

STOCK_CONFIG = """c = get_config()  # noqa: F821 (provided by nbgrader)
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.Execute.timeout = 120
"""


def nbgrader(course: Path, *args: str) -> float:
    """Run ``nbgrader ARGS`` in ``course`` with this interpreter; returns its wall time in seconds."""
    bindir = str(Path(sys.executable).parent)  # nbgrader runs alembic from PATH
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"stock `nbgrader {' '.join(args)}` failed in {course} (exit {run.returncode}); "
                           f"its log ends:\n{(run.stdout + run.stderr)[-2000:]}")
    return seconds


def build_course(course: Path, submissions: dict[str, Path]) -> None:
    """A fresh plain course in ``course``: the source notebook, its generated release and gradebook, and
    ``submitted/<student>/<assignment>/<notebook>`` for each submission."""
    shutil.rmtree(course, ignore_errors=True)
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    shutil.copy(REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK, source / NOTEBOOK)
    (course / "nbgrader_config.py").write_text(STOCK_CONFIG.format(root=str(course)))
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    for student, path in submissions.items():
        target = course / "submitted" / student / ASSIGNMENT / NOTEBOOK
        target.parent.mkdir(parents=True)
        shutil.copy(path, target)


def time_stock_grading(course: Path, submissions: dict[str, Path]) -> dict:
    """Seconds of stock ``nbgrader autograde`` and ``generate_feedback`` over ``submissions`` in a new course
    (building it is not timed, like our pipeline's template)."""
    build_course(course, submissions)
    autograde_s = nbgrader(course, "autograde", ASSIGNMENT)
    feedback_s = nbgrader(course, "generate_feedback", ASSIGNMENT)
    graded = list((course / "autograded").glob(f"*/{ASSIGNMENT}/{NOTEBOOK}"))
    pages = list((course / "feedback").glob(f"*/{ASSIGNMENT}/*.html"))
    if len(graded) != len(submissions) or len(pages) != len(submissions):
        raise RuntimeError(f"stock nbgrader in {course} autograded {len(graded)} and gave feedback on {len(pages)} "
                           f"of {len(submissions)} submissions; read its autograded/ and feedback/ folders")
    return {"autograde_s": autograde_s, "feedback_s": feedback_s, "total_s": autograde_s + feedback_s}
