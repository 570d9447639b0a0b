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
    c.Autograde.autograde_preprocessors = autograde_preprocessors()
    c.HTMLExporter.sanitize_html = True  # students' HTML and scripts are shown as text in feedback and formgrader
    return c


def autograde_preprocessors() -> list:
    """nbgrader's autograde steps with execution limited (LimitedExecute) and the verifier's verdicts applied
    before scores are saved (ApplyVerdicts): plain `nbgrader autograde` in this folder grades the same way."""
    from nbgrader.converters import Autograde

    from .execute import LimitedExecute
    from .verify import ApplyVerdicts

    steps = []
    for step in Autograde.class_traits()["autograde_preprocessors"].default():
        steps += [LimitedExecute, ApplyVerdicts] if step.__name__ == "Execute" else [step]
    return steps


def private_exchange(c: Config, course: Path) -> None:
    """Give a throw-away course an exchange folder of its own: nbgrader's API checks the (system-wide) exchange
    on start-up and logs CRITICAL when it is missing, although these tools never use it."""
    (course / "exchange").mkdir(parents=True, exist_ok=True)
    c.Exchange.root = str(course / "exchange")


def graded_cells(notebook: Path) -> dict[str, float]:
    """{grade_id: points} of the graded cells of a notebook, in order."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points", 0)
            for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")}


def check_against_registry(notebook: Path) -> None:
    """Refuse a source notebook whose graded cells (ids, points) differ from ``ece662/registry.py``."""
    from ece662 import registry

    found, wanted = graded_cells(notebook), registry.points()
    if found != wanted:
        diff = sorted(f"{gid}: notebook {found.get(gid)} vs registry {wanted.get(gid)}"
                      for gid in found.keys() | wanted.keys() if found.get(gid) != wanted.get(gid))
        raise RuntimeError(f"{notebook} disagrees with ece662/registry.py on its graded cells ({'; '.join(diff)}): "
                           "give the notebook's cells the registry's grade ids and points, or change the registry.")


def generate_release(release_root: Path = REPO, gradebook: Path | None = None) -> Path:
    """Run ``nbgrader generate_assignment`` on ``assignment/`` into ``<release_root>/release/``.

    ``gradebook`` receives the assignment's cells (the template for grading);
    by default a throw-away database is used, so no ``gradebook.db`` appears
    in the repository. Returns the generated notebook's path.
    """
    from nbgrader.apps import NbGraderAPI

    ensure_tools_on_path()
    check_against_registry(REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK)
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
