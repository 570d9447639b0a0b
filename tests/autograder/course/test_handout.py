"""The student handout (``python -m autograder handout``) and ``python -m ece662.submit`` in it.

The handout is built from the session's tiny course model and unpacked; a correct notebook is checked with
``submit`` from the unpacked folder (which imports that folder's ``ece662``) and the file it writes is graded
by the pipeline inside a Canvas bulk-download zip; broken notebooks get one sentence per problem. The same
handout in a fresh virtual environment made from its ``requirements.txt`` alone is ``tests/autograder/course/test_handout_venv.py``.
"""
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from autograder import cli
from autograder.course.handout import FOLDER, build
from autograder.course.pipeline import Limits, grade
from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, RELEASE_DIR, REPO, SOURCE_DIR
from demo.examples import _drop, _rename, correct, insert_after, release_notebook
from ece662 import submit
from ece662.data_utils import DEFAULT_ROOT, PREPARED_MARKER, get_CINIC10_data, save_prepared
from ece662.datasets.download import ARCHIVE_NAME, CINIC10_MD5, CINIC10_SPLIT_SIZE, CINIC10_URL
from ece662.grading import registry
from ece662.paths import model_path

SETUP_FILES = {"requirements.txt", "requirements-tensorflow.txt", "environment.yml", "pyproject.toml", "README.md"}
LIMITS = Limits(cell_timeout=60, notebook_timeout=400, memory_mb=6144)


@pytest.fixture(scope="module")
def handout(course_env, tmp_path_factory):
    """(the zip, the unpacked handout folder), built with the command staff run."""
    base = tmp_path_factory.mktemp("handout")
    assert cli.main(["handout", "--out", str(base / "build")]) == 0
    (archive,) = (base / "build").iterdir()  # exactly one file: the zip
    with zipfile.ZipFile(archive) as z:
        z.extractall(base / "unpacked")
    return archive, base / "unpacked" / FOLDER


def ran(nb):
    """The notebook as Jupyter saves it after a run: every code cell with an execution count."""
    for count, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), 1):
        cell.execution_count = count
    return nb


def _cell_numbers(nb) -> dict:
    """{cell id: the cell's number as Jupyter and ``ece662.submit`` count it} (the first cell of an id)."""
    numbers = {}
    for number, cell in enumerate(nb.cells, 1):
        numbers.setdefault(cell.get("id"), number)
    return numbers


def student_env(**changes) -> dict:
    """This session's environment as a student's shell has it: no ECE662_MODEL_DIR (the handout's models)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ECE662_MODEL_DIR", "PYTHONPATH", "NBGRADER_EXECUTION")}
    return {**env, **changes}


def test_the_zip_holds_the_notebook_the_helpers_the_models_and_the_setup_files_and_nothing_else(handout, course_env):
    archive, folder = handout
    with zipfile.ZipFile(archive) as z:
        names = {n.removeprefix(f"{FOLDER}/") for n in z.namelist()}
    helpers = {p.relative_to(REPO).as_posix() for p in (REPO / "ece662").rglob("*.py")}
    models = {f"ece662/models/{mode}.model" for mode in ("torch", "tensorflow") if model_path(mode).is_file()}
    assert "ece662/models/torch.model" in models  # tensorflow.model too when an earlier test made one
    assert names == {NOTEBOOK, *SETUP_FILES, *helpers, *models}
    assert not any("__pycache__" in n or n.startswith(("autograder", "tests", "demo", "assignment")) for n in names)
    assert (folder / NOTEBOOK).read_bytes() == (REPO / RELEASE_DIR / ASSIGNMENT / NOTEBOOK).read_bytes()
    assert "ece662/grading/cells.py" in names and "ece662/submit.py" in names and submit.NOTEBOOK == NOTEBOOK
    # model_path finds the handout's model in the unpacked folder, whose ece662 is the one imported from there
    found = subprocess.run([sys.executable, "-c", "from ece662.paths import model_path; print(model_path('torch'))"],
                           cwd=folder, env=student_env(), capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found) == folder / "ece662" / "models" / "torch.model"
    assert Path(found).read_bytes() == Path(course_env).read_bytes()


def test_a_tensorflow_model_is_shipped_when_there_is_one(tf_course_env, tmp_path):
    with zipfile.ZipFile(build(tmp_path)) as z:
        shipped = z.read(f"{FOLDER}/ece662/models/tensorflow.model")
    assert shipped == Path(tf_course_env).read_bytes()


def test_no_course_model_no_handout(tmp_path, monkeypatch):
    monkeypatch.setenv("ECE662_MODEL_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="No course model at .*torch.model: train it first"):
        build(tmp_path / "out")
    assert not (tmp_path / "out" / f"{FOLDER}.zip").exists()


def _solution_lines(notebook: Path) -> set[str]:
    """Lines between ### BEGIN SOLUTION and ### END SOLUTION in any cell (code, and the questions' model answers)."""
    lines, inside = set(), False
    for cell in nbformat.read(notebook, as_version=4).cells:
        for line in cell.source.splitlines():
            if "### BEGIN SOLUTION" in line or "### END SOLUTION" in line:
                inside = "BEGIN" in line
            elif inside:
                lines.add(line.strip())
    return lines


def _telling(lines: set[str]) -> set[str]:
    """The lines that give something away: not blank, a comment, an import, a signature, a block header or a
    docstring quote, and not in the notebook students get anyway (its recipe text names the training call)."""
    public = "\n".join(c.source for c in nbformat.read(REPO / RELEASE_DIR / ASSIGNMENT / NOTEBOOK, as_version=4).cells)
    return {line for line in lines if len(line) >= 12 and not line.endswith(":") and line not in public
            and not line.startswith(("#", "import ", "from ", "def ", '"""'))}


def _leaks(secrets: set[str], files: dict[str, str]) -> dict[str, list[str]]:
    return {name: sorted(s for s in secrets if s in text) for name, text in files.items()
            if any(s in text for s in secrets)}


def test_no_solution_and_nothing_of_the_reference_solution_in_any_file(handout):
    archive, _ = handout
    solutions = _telling(_solution_lines(REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK))
    reference_code = "\n".join(p.read_text() for p in sorted((REPO / "autograder" / "reference").glob("*.py")))
    reference = _telling({line.strip() for line in reference_code.splitlines()})
    assert len(solutions) > 30 and len(reference) > 20  # code and model answers, both frameworks
    with zipfile.ZipFile(archive) as z:
        files = {n: z.read(n).decode("utf-8", errors="replace") for n in z.namelist()}
    # the checker finds them where they are
    assert _leaks(solutions, {"source": (REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK).read_text()})
    assert _leaks(reference, {"reference": reference_code})
    assert _leaks(solutions | reference, files) == {}
    for word in ("Model answer", "Rubric", "BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
        assert not any(word in text for text in files.values()), word


def _requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_setup_files_are_the_projects_dependencies_and_one_framework_each(handout):
    _, folder = handout
    with open(REPO / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    needs, extras = project["dependencies"], project["optional-dependencies"]
    assert not any(re.match(r"(torch|tensorflow|keras)\b", r) for r in needs)  # the framework is an extra
    package = "-e .  # this folder's ece662 package"
    assert _requirement_lines(folder / "requirements.txt") == [*needs, *extras["torch"], package]
    assert _requirement_lines(folder / "requirements-tensorflow.txt") == [*needs, *extras["tensorflow"], package]
    assert "torch" not in "\n".join(_requirement_lines(folder / "requirements-tensorflow.txt"))
    everything = "\n".join((folder / name).read_text() for name in SETUP_FILES - {"README.md"})
    for grader_only in extras["grading"]:
        if not grader_only.startswith("ece662-pruning["):  # the grading extra's own framework
            assert re.split(r"[=<>]", grader_only)[0] not in everything
    with open(folder / "pyproject.toml", "rb") as f:
        own = tomllib.load(f)
    assert own["project"]["dependencies"] == needs
    assert own["project"]["optional-dependencies"] == {name: extras[name] for name in ("torch", "tensorflow")}
    assert own["tool"]["setuptools"]["packages"]["find"]["include"] == ["ece662*"]
    environment = (folder / "environment.yml").read_text()
    assert f"name: {FOLDER}" in environment and "      - -r requirements.txt" in environment


def test_the_readme_states_what_the_code_does(handout):
    from ece662.datasets.__main__ import main as datasets_main

    _, folder = handout
    readme = (folder / "README.md").read_text()
    assert not re.search(r"\{\w+\}", readme)  # every placeholder filled
    download = DEFAULT_ROOT.parent / ARCHIVE_NAME  # where the download command looks for a verified archive
    for fact in (CINIC10_URL, CINIC10_MD5, f"`{download.relative_to(REPO).as_posix()}`",
                 f"`{DEFAULT_ROOT.relative_to(REPO).as_posix()}`", "python -m ece662.datasets download --root DIR",
                 "--keep-archive", f"{submit.UPLOAD_DIR}/{submit.NOTEBOOK}", f"at most {submit.MAX_MB} MB",
                 "--index-url https://download.pytorch.org/whl/cpu", "pip install -r requirements-tensorflow.txt",
                 f"conda activate {FOLDER}", "python -m ece662.submit", "`ece662/models/torch.model`",
                 "brew install python@3.11", "py -3.11 -m venv .venv", '$env:CINIC10_DIR = "C:\\data\\cinic-10"',
                 f"tar -xzf {ARCHIVE_NAME} -C", f"tar -xf {ARCHIVE_NAME} -C", f"{CINIC10_SPLIT_SIZE:,}",
                 "Delete `.venv` and create it again", submit.ANSWER_STUB,
                 f"if not os.path.isfile(arrays + '/{PREPARED_MARKER}'):",
                 "save_prepared(arrays, None, None, None, root='/content/cinic-10')"):
        assert fact in readme, fact
    assert "move or rename the folder, run `pip install" not in " ".join(readme.split())  # a moved venv cannot
    with pytest.raises(SystemExit) as exit_:  # the options the README names exist
        datasets_main(["download", "--root", "x", "--keep-archive", "--help"])
    assert exit_.value.code == 0


def test_colabs_dataset_on_drive_is_the_same_dataset(tiny_root, tmp_path, monkeypatch):
    """The README's Colab cell: the whole dataset saved once as a prepared dataset, then read from there."""
    arrays = save_prepared(tmp_path / "drive" / "arrays", None, None, None, root=tiny_root)
    monkeypatch.setenv("CINIC10_DIR", str(arrays))
    from_drive, from_pngs = get_CINIC10_data(verbose=False), get_CINIC10_data(root=tiny_root, verbose=False)
    for key in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        assert np.array_equal(from_drive[key], from_pngs[key]), key
    assert (arrays / PREPARED_MARKER).is_file() and not from_drive["root"].startswith(str(tiny_root))


def test_datasets_info_says_when_a_split_is_smaller_than_cinic10(tiny_root, sample_root, monkeypatch):
    from ece662.datasets.__main__ import describe

    monkeypatch.setenv("CINIC10_DIR", str(sample_root))
    lines = describe().splitlines()
    assert lines[0] == f"dataset: CINIC-10 at {sample_root}" and lines[1].startswith("images: train ")
    assert lines[2].startswith(f"NOTE: smaller than CINIC-10, which has {CINIC10_SPLIT_SIZE:,} images in each split")
    monkeypatch.setenv("CINIC10_DIR", str(tiny_root))  # synthetic: its name says it is not CINIC-10
    assert describe().splitlines()[0].startswith("dataset: synthetic (not CINIC-10)") and "NOTE" not in describe()


def test_nbgrader_checksum_is_nbgraders(handout):
    from nbgrader.utils import compute_checksum

    _, folder = handout
    nb = nbformat.read(folder / NOTEBOOK, as_version=4)
    cells = [c for c in nb.cells if "nbgrader" in c.metadata]
    assert len(cells) > 30
    for cell in cells:
        assert submit.nbgrader_checksum(cell) == compute_checksum(cell)
        if cell.metadata.nbgrader.get("locked"):
            assert submit.nbgrader_checksum(cell) == cell.metadata.nbgrader["checksum"]
    cells[0].source += " "
    assert submit.nbgrader_checksum(cells[0]) == compute_checksum(cells[0]) != cells[0].metadata.nbgrader["checksum"]


def test_submit_a_correct_notebook_then_grade_its_file_in_a_canvas_zip(handout, tmp_path):
    _, folder = handout
    nbformat.write(ran(correct()), folder / NOTEBOOK)
    run = subprocess.run([sys.executable, "-m", "ece662.submit"], cwd=folder, env=student_env(),
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    upload = Path(lines[-1])
    assert "No problems found." in lines and upload == folder / submit.UPLOAD_DIR / NOTEBOOK
    assert upload.read_bytes() == (folder / NOTEBOOK).read_bytes()
    canvas = tmp_path / "submissions.zip"  # Canvas names a file <name>[_late]_<user id>_<submission id>_<file name>
    with zipfile.ZipFile(canvas, "w") as z:
        z.write(upload, f"doejane_4242_1001_{upload.name}")
    (result,) = grade(canvas, tmp_path / "out", workers=1, limits=LIMITS, verbose=False)
    assert (result.student, result.status) == ("4242", "graded"), result.detail
    assert result.scores == {**{t.grade_id: float(t.points) for t in registry.TESTS},  # every part done: full points
                             **{q.grade_id: None for q in registry.QUESTIONS}}  # the answers wait for a grader


def test_submit_explains_each_problem_in_one_sentence(handout):
    _, folder = handout
    nb = insert_after(_rename(_drop(release_notebook(), "test_part1_global"), "test_part2_scope", "my_test"),
                      "setup", "raise ValueError('my own mistake')")
    next(c for c in nb.cells if c.get("id") == "test_part4_gradual").source += "\nprint('edited')"
    next(c for c in nb.cells if c.get("id") == "setup").source += "\nprint('edited')"
    nbformat.write(nb, folder / "broken.ipynb")
    said = []
    report = submit.check(folder / "broken.ipynb", say=said.append)
    n = _cell_numbers(nb)
    expected = [
        "The test cell 'test_part1_global' is missing",
        "The test cell 'test_part2_scope' is missing",
        f"Cell {n['my_test']} ('my_test') is a locked cell of the handout but was changed",
        f"Cell {n['setup']} ('setup') is a locked cell of the handout but was changed",
        f"The test cell 'test_part4_gradual' (cell {n['test_part4_gradual']}) was changed, and grading runs the "
        "original test instead",
        f"Cell {n['setup'] + 1} (\"raise ValueError('my own mistake')\") raised ValueError: my own mistake.",
        f"Cell {n['part1_code']} ('part1_code') still raises NotImplementedError: replace its "
        "`raise NotImplementedError()` lines",
        f"Cell {n['part1_sweep']} ('part1_sweep') raised NotImplementedError: a function of yours that it calls is "
        "not written yet.",
        f"The public check of 'test_part1_cumulative' (cell {n['test_part1_cumulative']}) failed: AssertionError: ",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in report.problems), (start, report.problems)
    for problem in report.problems:  # one sentence each
        assert "\n" not in problem and re.fullmatch(r"[A-Z].*[.!?]", problem) and len(problem) < 400, problem
    assert report.upload == folder / submit.UPLOAD_DIR / NOTEBOOK  # unfinished work can still be handed in
    # the run says each code cell as it starts, and a failure as it happens
    code = [index for index, c in enumerate(nb.cells, 1) if c.cell_type == "code" and c.source.strip()]
    progress = [line for line in said if re.match(r"\[ ?\d+/\d+\] ", line)]
    assert [int(re.search(r"Cell (\d+)", line)[1]) for line in progress] == code
    failing = said.index(next(line for line in progress if f"] Cell {n['setup'] + 1} (" in line))  # raise ValueError(...)
    assert said[failing + 1] == "      failed (ValueError): the reason is in the list at the end"


def test_submit_on_files_that_are_no_notebook(tmp_path, capsys):
    text = nbformat.writes(correct())
    (tmp_path / "cut.ipynb").write_text(text[:2000])
    assert submit.main([str(tmp_path / "cut.ipynb")]) == 1
    out = capsys.readouterr().out
    assert re.search(r"cut\.ipynb is not valid JSON \(line \d+, column \d+: .*\), so neither Jupyter nor the grader "
                     r"can open it: copy your code into a fresh copy of the handout zip's pruning\.ipynb\.", out)
    assert out.strip().endswith("Nothing to upload was written: fix the problem above and run this again.")
    assert not (tmp_path / submit.UPLOAD_DIR).exists()
    checkpoint = tmp_path / ".ipynb_checkpoints" / "cut-checkpoint.ipynb"
    checkpoint.parent.mkdir()
    checkpoint.write_text(text)
    assert f"restore the copy Jupyter saved at {checkpoint}" in submit.check(tmp_path / "cut.ipynb").problems[0]
    (tmp_path / "other.ipynb").write_text(json.dumps({"cells": "none"}))
    assert "is JSON but not a valid notebook" in submit.check(tmp_path / "other.ipynb").problems[0]
    assert "does not exist" in submit.check(tmp_path / "missing.ipynb").problems[0]


def test_submit_checks_size_and_duplicated_cells_without_running(tmp_path):
    nb = correct()
    test_cell = next(c for c in nb.cells if c.get("id") == "test_part2_filters")
    nb.cells.append(nbformat.from_dict(json.loads(json.dumps(test_cell))))  # pasted twice
    nb.cells[-1].id = "pasted"
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", text="x" * (submit.MAX_MB * 2**20))]
    nbformat.write(nb, tmp_path / NOTEBOOK)
    report = submit.check(tmp_path / NOTEBOOK, run=False, say=lambda _: None)
    assert len(report.problems) == 2, report.problems
    assert re.match(rf".*{NOTEBOOK} is \d+\.\d MB, more than {submit.MAX_MB} MB, because of large outputs",
                    report.problems[0])
    assert report.problems[1].startswith(
        f"The test cell 'test_part2_filters' appears 2 times (cells {_cell_numbers(nb)['test_part2_filters']}, "
        f"{len(nb.cells)})")
    assert submit.graded_cell_problems(release_notebook()) == []  # the notebook as handed out has none


def test_submit_reports_what_needs_no_kernel_before_a_kernel_starts(tmp_path):
    nb = ran(correct())
    next(c for c in nb.cells if c.get("id") == "test_part2_scope").source += "\nprint('edited')"
    next(c for c in nb.cells if c.get("id") == "q3_answer").source = f"**Your answer:**\n\n{submit.ANSWER_STUB}"
    nbformat.write(nb, tmp_path / NOTEBOOK)
    # the run replaced by a probe that says which heavy modules the check had imported by then
    probe = ("import sys; from ece662 import submit; submit.run_problems = lambda *a, **k: print('KERNEL STARTS NOW', "
             "[m for m in ('nbclient', 'jupyter_client', 'torch', 'tensorflow') if m in sys.modules]) or []; "
             "sys.exit(submit.main())")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=student_env(), capture_output=True,
                         text=True, timeout=120)
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"{NOTEBOOK}: a notebook of") and "without running it" in lines[0]
    before = "\n".join(lines[:lines.index("KERNEL STARTS NOW []")])
    n = _cell_numbers(nb)
    assert f"  - The test cell 'test_part2_scope' (cell {n['test_part2_scope']}) was changed, and grading runs the " \
        "original" in before
    assert f"  - Inline Question 3 is not answered: its answer cell (cell {n['q3_answer']}) still reads" in before
    assert "2 problems found without running it" in before
    assert run.returncode == 1 and (tmp_path / submit.UPLOAD_DIR / NOTEBOOK).read_bytes() == \
        (tmp_path / NOTEBOOK).read_bytes()


def test_submit_flags_unanswered_questions_template_text_and_a_notebook_never_run(tmp_path):
    from nbgrader.preprocessors import ClearSolutions

    assert submit.ANSWER_STUB == ClearSolutions.class_traits()["text_stub"].default_value
    nb = correct()  # saved without outputs
    answers = {c.get("id"): c for c in nb.cells if c.get("id") in ("q1_answer", "q2_answer", "q3_answer")}
    answers["q1_answer"].source = "**Your answer:**\n\n"  # template text deleted, nothing written
    answers["q2_answer"].source = f"**Your answer:**\n\n{submit.ANSWER_STUB}\n\nFlat, then it drops."
    nbformat.write(nb, tmp_path / NOTEBOOK)
    problems = submit.check(tmp_path / NOTEBOOK, run=False, say=lambda _: None).problems
    assert [p.split(":")[0] for p in problems] == ["Inline Question 1 is not answered",
                                                   f"Inline Question 2's answer (cell {_cell_numbers(nb)['q2_answer']}) "
                                                   "still holds the template's "
                                                   "\"YOUR ANSWER HERE\"", "No code cell has an output, so this file "
                                                   "was saved before its cells ran (or with its outputs cleared), and "
                                                   "it may not be the notebook you worked in"]
    nbformat.write(ran(correct()), tmp_path / NOTEBOOK)
    assert submit.check(tmp_path / NOTEBOOK, run=False, say=lambda _: None).problems == []
