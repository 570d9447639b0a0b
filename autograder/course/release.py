"""``make release``: the registry's points and the Part 4 and Part 5 settings written into the source notebook, and
``release/`` generated from it with nbgrader; the template gradebook every grading run starts from.

``ece662/grading/registry.py`` is the one place for points and settings: ``sync_with_registry`` writes each
graded cell's points, the notebook's points table and its ``part4_settings`` and ``part5_settings`` cells from it, and
``generate_release`` refuses a source notebook that is out of step (run ``make release``).
"""
import hashlib
import shutil
import tempfile
from pathlib import Path

from autograder.grading_folder import GRADEBOOK, GradingFolder
from autograder.nbgrader_course import (
    ASSIGNMENT,
    NOTEBOOK,
    RELEASE_DIR,
    REPO,
    SOURCE_DIR,
    base_config,
    ensure_tools_on_path,
    private_exchange,
)


def graded_cells(notebook: Path) -> dict[str, float]:
    """{grade_id: points} of the graded cells of a notebook, in order."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points", 0)
            for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")}


def points_table() -> str:
    """The notebook's "How this notebook is graded" heading and table, from ``ece662/grading/registry.py``."""
    from ece662.grading import registry

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
    """The notebook's ``part4_settings`` cell: Part 4's recipe as ``ece662/grading/registry.py`` states it."""
    from ece662.grading.registry import PART4

    return "\n".join([
        f"part4_images = {PART4.images}   # training images (the first n are class-balanced; fewer if the data has fewer)",
        f"part4_epochs = {PART4.epochs}      # epochs of each run",
        f"part4_target = {PART4.target}   # global sparsity of both Part 4 models (all Conv2d + Linear weights)",
        f"part4_lr, part4_momentum = {PART4.lr}, {PART4.momentum}   # each run: one SGD(lr=part4_lr, momentum=part4_momentum)",
        "X_part4, y_part4 = data['X_train'][:part4_images], data['y_train'][:part4_images]"])


def part5_settings_cell() -> str:
    """The notebook's ``part5_settings`` cell: Part 5's budget as ``ece662/grading/registry.py`` states it."""
    from ece662.grading.registry import PART5_BUDGET

    return f"part5_budget = {PART5_BUDGET}   # part5_model may need at most this fraction of the dense model's MACs"


TABLE_START, TABLE_END = "### How this notebook is graded", "\n\n"


def sync_with_registry(notebook: Path, write: bool = True) -> bool:
    """Write into the source notebook what ``ece662/grading/registry.py`` decides: each graded cell's points, the points
    table of the first cell and the Part 4 and Part 5 settings cells. Refuses a notebook whose graded cells are not the
    registry's. Returns whether the file differed (``write=False``: only whether it would change)."""
    import nbformat

    from ece662.grading import registry

    nb = nbformat.read(notebook, as_version=4)
    found = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    wanted = registry.points()
    if sorted(found) != sorted(wanted):
        raise RuntimeError(
            f"{notebook} and ece662/grading/registry.py name different graded cells (only in the notebook: "
            f"{sorted(set(found) - set(wanted))}; only in the registry: {sorted(set(wanted) - set(found))}): give "
            "each registry entry one graded cell with its grade id, and each graded cell a registry entry.")
    before = nbformat.writes(nb)
    for c in nb.cells:
        meta = c.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            meta["points"] = wanted[meta["grade_id"]]
        if c.get("id") == "part4_settings":
            c.source = part4_settings_cell()
        if c.get("id") == "part5_settings":
            c.source = part5_settings_cell()
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
        raise RuntimeError(f"{source} is out of date with ece662/grading/registry.py (points, points table or Part 4's "
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


def source_notebook() -> Path:
    return REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK


def prepare_template(out: Path) -> Path:
    """The template gradebook (assignment and its cells), regenerated when the source notebook changes."""
    digest = hashlib.sha256(source_notebook().read_bytes()).hexdigest()
    template = GradingFolder(out).template
    db, stamp = template / GRADEBOOK, template / "source.sha256"
    if not (db.is_file() and stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(template, ignore_errors=True)
        template.mkdir(parents=True)
        generate_release(template, gradebook=db)
        stamp.write_text(digest)
    return db
