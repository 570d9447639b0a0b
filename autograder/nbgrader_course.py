"""The repository as an nbgrader course: where the assignment lives and the settings every course here starts from.

``assignment/<aid>/`` holds the source notebook (solutions, model answers),
``release/<aid>/`` the generated student version; ``nbgrader_config.py`` at the
top loads ``base_config()`` (and the autograde steps) so plain ``nbgrader``
commands see the same settings. Grading builds two more kinds of course from
the same base: one private course per student for autograding
(``autograder/worker/autograde_config.py``) and the grading output folder,
which formgrader serves (``autograder/course/formgrade.py``). The assignment's
id and notebook name live in ``ece662/grading/registry.py``.
"""
import os
import sys
from pathlib import Path

from traitlets.config import Config

from ece662.grading.registry import ASSIGNMENT, NOTEBOOK, NOTEBOOK_ID  # noqa: F401 (the course's identity)

REPO = Path(__file__).resolve().parent.parent
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
    return c


def private_exchange(c: Config, course: Path) -> None:
    """Give a throw-away course an exchange folder of its own: nbgrader's API checks the (system-wide) exchange
    on start-up and logs CRITICAL when it is missing, although these tools never use it."""
    (course / "exchange").mkdir(parents=True, exist_ok=True)
    c.Exchange.root = str(course / "exchange")
