"""The nbgrader course: where things live and the configuration every tool here shares.

The repository is an nbgrader course: ``assignment/<aid>/`` holds source
notebooks (solutions, hidden tests), ``release/<aid>/`` the generated student
versions. ``nbgrader_config.py`` at the top loads ``base_config()`` so plain
``nbgrader`` commands see the same settings.
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

from traitlets.config import Config

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
    return c


def private_exchange(c: Config, course: Path) -> None:
    """Give a throw-away course an exchange folder of its own: nbgrader's API checks the (system-wide) exchange
    on start-up and logs CRITICAL when it is missing, although these tools never use it."""
    (course / "exchange").mkdir(parents=True, exist_ok=True)
    c.Exchange.root = str(course / "exchange")


def generate_release(release_root: Path = REPO, gradebook: Path | None = None) -> Path:
    """Run ``nbgrader generate_assignment`` on ``assignment/`` into ``<release_root>/release/``.

    ``gradebook`` receives the assignment's cells (the template for grading);
    by default a throw-away database is used, so no ``gradebook.db`` appears
    in the repository. Returns the generated notebook's path.
    """
    from nbgrader.apps import NbGraderAPI

    ensure_tools_on_path()
    release_root = Path(release_root)
    with tempfile.TemporaryDirectory(prefix="ece662-release-") as tmp:
        course = Path(tmp)
        shutil.copytree(REPO / SOURCE_DIR / ASSIGNMENT, course / SOURCE_DIR / ASSIGNMENT,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        db = gradebook or course / "gradebook.db"
        config = base_config(course, db)
        private_exchange(config, course)
        api = NbGraderAPI(config=config)
        result = api.generate_assignment(ASSIGNMENT, force=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment failed:\n{result.get('error') or result.get('log')}")
        target = release_root / RELEASE_DIR / ASSIGNMENT
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(course / RELEASE_DIR / ASSIGNMENT, target)
    return target / NOTEBOOK
