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
    return c


def autograde_preprocessors() -> list:
    """nbgrader's autograde steps with execution limited (LimitedExecute), the verifier's verdicts applied
    before scores are saved (ApplyVerdicts) and the graded notebook made inert (SanitizeNotebook): plain
    `nbgrader autograde` in this folder grades the same way."""
    from nbgrader.converters import Autograde

    from .execute import LimitedExecute
    from .sanitize import SanitizeNotebook
    from .verify import ApplyVerdicts

    steps = []
    for step in Autograde.class_traits()["autograde_preprocessors"].default():
        steps += [LimitedExecute, ApplyVerdicts] if step.__name__ == "Execute" else [step]
    return steps + [SanitizeNotebook]  # last: nbgrader scores unanswered questions on the cells as handed in


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


def points_table() -> str:
    """The notebook's "How this notebook is graded" heading and table, from ``ece662/registry.py``."""
    from ece662 import registry

    rows = []
    for part, points in registry.parts().items():
        tests = [t for t in registry.TESTS if t.part == part]
        if tests:
            label, what = f"Part {part.removeprefix('part')}", f"{registry.PART_TASKS[part]} ({len(tests)} automatic tests)"
            rows.append(f"| {label} | {what} | {points:g} |")
        else:
            label, _, what = next(q for q in registry.QUESTIONS if q.part == part).title.partition(": ")
            rows.append(f"| {label} | {what} | {points:g} (by hand) |")
    return "\n".join([f"### How this notebook is graded ({registry.total():g} points)", "",
                      "| part | what | points |", "| --- | --- | --- |", *rows])


def part4_settings_cell() -> str:
    """The notebook's ``part4_settings`` cell: Part 4's recipe as ``ece662/registry.py`` states it."""
    from ece662.registry import PART4

    return "\n".join([
        f"part4_images = {PART4.images}   # training images (the first n are class-balanced; fewer if the data has fewer)",
        f"part4_epochs = {PART4.epochs}      # epochs of each run",
        f"part4_target = {PART4.target}   # global sparsity of both Part 4 models (all Conv2d + Linear weights)",
        f"part4_lr, part4_momentum = {PART4.lr}, {PART4.momentum}   # each run: one SGD(lr=part4_lr, momentum=part4_momentum)",
        "X_part4, y_part4 = data['X_train'][:part4_images], data['y_train'][:part4_images]"])


TABLE_START, TABLE_END = "### How this notebook is graded", "\n\n"


def sync_with_registry(notebook: Path, write: bool = True) -> bool:
    """Write into the source notebook what ``ece662/registry.py`` decides: each graded cell's points, the points
    table of the first cell and Part 4's settings cell. Refuses a notebook whose graded cells are not the
    registry's. Returns whether the file differed (``write=False``: only whether it would change)."""
    import nbformat

    from ece662 import registry

    nb = nbformat.read(notebook, as_version=4)
    found = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    wanted = registry.points()
    if sorted(found) != sorted(wanted):
        raise RuntimeError(
            f"{notebook} and ece662/registry.py name different graded cells (only in the notebook: "
            f"{sorted(set(found) - set(wanted))}; only in the registry: {sorted(set(wanted) - set(found))}): give "
            "each registry entry one graded cell with its grade id, and each graded cell a registry entry.")
    before = nbformat.writes(nb)
    for c in nb.cells:
        meta = c.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            meta["points"] = wanted[meta["grade_id"]]
        if c.get("id") == "part4_settings":
            c.source = part4_settings_cell()
    intro = nb.cells[0]
    start = intro.source.index(TABLE_START)
    end = intro.source.find(TABLE_END, intro.source.index("| --- |", start))
    intro.source = intro.source[:start] + points_table() + (intro.source[end:] if end >= 0 else "")
    after = nbformat.writes(nb)
    if write and after != before:
        notebook.write_text(after)
    return after != before


def release() -> Path:
    """``make release``: write the registry's points and settings into the source notebook, then regenerate
    ``release/`` from it."""
    sync_with_registry(REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK)
    return generate_release()


def generate_release(release_root: Path = REPO, gradebook: Path | None = None) -> Path:
    """Run ``nbgrader generate_assignment`` on ``assignment/`` into ``<release_root>/release/``.

    ``gradebook`` receives the assignment's cells (the template for grading);
    by default a throw-away database is used, so no ``gradebook.db`` appears
    in the repository. Returns the generated notebook's path.
    """
    from nbgrader.apps import NbGraderAPI

    ensure_tools_on_path()
    source = REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK
    if sync_with_registry(source, write=False):
        raise RuntimeError(f"{source} is out of date with ece662/registry.py (points, points table or Part 4's "
                           "settings): run `make release`, which writes them into it, and commit both")
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
