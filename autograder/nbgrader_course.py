"""nbgrader, set up in one place: where the assignment lives and the settings of every nbgrader course here.

The repository is an nbgrader course: ``assignment/<aid>/`` holds the source
notebook (solutions, model answers), ``release/<aid>/`` the generated student
version; ``nbgrader_config.py`` at the top loads ``base_config()`` so plain
``nbgrader`` commands see the same settings. Grading builds two more kinds of
course from the same base: one private course per student for autograding
(``autograde_config``) and the grading output folder, which formgrader serves
(``graded_course_config``).
"""
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config

from autograder.worker.sandbox import KERNEL_NAME

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = "pruning"
NOTEBOOK = "pruning.ipynb"
SOURCE_DIR = "assignment"
RELEASE_DIR = "release"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def ensure_tools_on_path() -> None:
    """nbgrader runs ``alembic`` from PATH: make this interpreter's bin folder (the venv's) come first."""
    bindir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def base_config(root=REPO, db_path=None) -> Config:
    """nbgrader settings for a course rooted at ``root`` (gradebook at ``db_path`` if given)."""
    c = Config()
    c.CourseDirectory.course_id = "ece662"
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.source_directory = SOURCE_DIR
    c.CourseDirectory.release_directory = RELEASE_DIR
    if db_path is not None:
        c.CourseDirectory.db_url = f"sqlite:///{db_path}"
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.Autograde.autograde_preprocessors = autograde_preprocessors()
    return c


def autograde_preprocessors() -> list:
    """nbgrader's autograde steps with execution limited (LimitedExecute), the verifier's verdicts applied
    before scores are saved (ApplyVerdicts) and the graded notebook made inert (SanitizeNotebook): plain
    `nbgrader autograde` in this folder grades the same way."""
    from nbgrader.converters import Autograde

    from autograder.worker.execute import LimitedExecute
    from autograder.worker.sanitize import SanitizeNotebook
    from autograder.worker.verify import ApplyVerdicts

    steps = []
    for step in Autograde.class_traits()["autograde_preprocessors"].default():
        steps += [LimitedExecute, ApplyVerdicts] if step.__name__ == "Execute" else [step]
    return steps + [SanitizeNotebook]  # last: nbgrader scores unanswered questions on the cells as handed in


def private_exchange(c: Config, course: Path) -> None:
    """Give a throw-away course an exchange folder of its own: nbgrader's API checks the (system-wide) exchange
    on start-up and logs CRITICAL when it is missing, although these tools never use it."""
    (course / "exchange").mkdir(parents=True, exist_ok=True)
    c.Exchange.root = str(course / "exchange")


@dataclass(frozen=True)
class KernelPlaces:
    """Where a graded kernel works: its folder (its working directory), the evidence folder in it, and the folder
    of its sockets and connection file."""
    folder: Path
    evidence: Path
    runtime: Path


def autograde_config(course: Path, db: Path, kernel: KernelPlaces, job, report: Path, progress_fd: int = -1) -> Config:
    """One student's private course (``autograder/worker/grade.py``): limits, the contained kernel, the verifier's
    inputs (``job``: an ``autograder.worker.job.Job``) and where it reports."""
    c = base_config(course, db)
    private_exchange(c, course)
    c.CourseDirectory.source_directory = "source"  # empty: the kernel's course holds no source notebooks
    c.LimitedExecute.timeout = job.limits.cell_timeout
    c.LimitedExecute.notebook_timeout = job.limits.notebook_timeout
    c.LimitedExecute.backstop_factor = job.limits.backstop_factor
    c.LimitedExecute.kernel_name = KERNEL_NAME
    c.LimitedExecute.startup_timeout = 120
    c.LimitedExecute.kernel_cwd = str(kernel.folder)
    c.ApplyVerdicts.model_dir = job.model_dir
    c.ApplyVerdicts.data_root = job.data_root
    c.ApplyVerdicts.evidence_dir = str(kernel.evidence)
    c.ApplyVerdicts.sandbox = job.sandbox
    c.ApplyVerdicts.report_file = str(report)
    c.ApplyVerdicts.store_dir = job.store_dir
    c.ApplyVerdicts.progress_fd = progress_fd
    c.OverwriteCells.add_missing_cells = True
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(kernel.runtime / "kernel")
    c.KernelManager.connection_file = str(kernel.runtime / "connection.json")
    return c


def graded_course_config(root: Path) -> Config:
    """The grading output folder ``root`` as an nbgrader course (formgrader; nbgrader's own feedback goes to
    ``nbgrader_feedback/`` without hidden tests, ``feedback/`` holds the pages ``export`` writes)."""
    from autograder.course.hidden_tests import FEEDBACK_PREPROCESSORS

    root = Path(root).resolve()
    c = base_config(root, root / "gradebook.db")
    private_exchange(c, root)
    c.CourseDirectory.feedback_directory = "nbgrader_feedback"
    c.GenerateFeedback.preprocessors = FEEDBACK_PREPROCESSORS
    return c
