"""The handout as a student gets it, once per framework: a fresh virtual environment made from that framework's
requirements file alone (pip may use its cache), a correct notebook run from the unpacked zip on the real CINIC-10
sample, ``python -m ece662.submit``, and the file it wrote graded by the pipeline: full points for the parts done.
The TensorFlow environment holds nothing of PyTorch, so its notebook runs with torch absent.

Slow (it installs PyTorch or TensorFlow, and Jupyter, from PyPI): only ``make test-handout`` runs it.
"""
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.course.handout import FOLDER, FRAMEWORKS, build
from autograder.course.pipeline import Limits, grade
from demo.examples import EXAMPLES
from ece662 import submit
from ece662.grading import registry
from test_handout import ran

pytestmark = pytest.mark.handout_venv
NOTEBOOKS = {"torch": EXAMPLES["correct"], "tensorflow": EXAMPLES["tf_correct"]}


def run(command: list, cwd: Path, env: dict, timeout: int) -> str:
    done = subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture
def models(request, course_env):
    """The course models the handout ships: torch, and tensorflow too for the TensorFlow run."""
    if request.node.callspec.params["mode"] == "tensorflow":
        request.getfixturevalue("tf_course_env")


@pytest.mark.parametrize("mode", list(FRAMEWORKS))
def test_a_fresh_venv_from_the_handout_runs_submits_and_is_graded(mode, models, sample_root, tmp_path, monkeypatch):
    with zipfile.ZipFile(build(tmp_path / "build")) as z:
        z.extractall(tmp_path)
    folder = tmp_path / FOLDER
    venv = tmp_path / "venv"
    python = str(venv / ("Scripts" if os.name == "nt" else "bin") / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("ECE662_MODEL_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{Path(python).parent}{os.pathsep}{env['PATH']}", CINIC10_DIR=str(sample_root),
               ECE662_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    start = time.monotonic()
    run([python, "-m", "pip", "install", "-q", "-r", FRAMEWORKS[mode]], folder, env, 3600)
    installed = time.monotonic() - start
    # the editable install: from any folder, ece662 is the unpacked folder's, and its model is found there
    found = run([python, "-c", f"import ece662.paths as p; print(p.model_path({mode!r}))"], tmp_path, env, 120).strip()
    assert Path(found) == folder / "ece662" / "models" / f"{mode}.model" and Path(found).is_file()
    frameworks = run([python, "-c", "import importlib.util as u; print([m for m in ('torch', 'torchvision', "
                      "'tensorflow') if u.find_spec(m)])"], tmp_path, env, 120)
    assert frameworks.strip() == ("['torch']" if mode == "torch" else "['tensorflow']")
    other = "tensorflow" if mode == "torch" else "torch"  # the notebook's setup cell with the other mode
    stop = subprocess.run([python, "-c", f"from ece662.frameworks import require; require({other!r})"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert stop.returncode == 1 and f"set mode = {mode!r} in the cell above" in stop.stderr, stop.stderr
    assert "dataset: CINIC-10 at" in run([python, "-m", "ece662.datasets", "info"], folder, env, 120)

    nbformat.write(ran(NOTEBOOKS[mode]()), folder / submit.NOTEBOOK)
    out = run([python, "-m", "ece662.submit"], folder, env, 1800)
    upload = Path(out.strip().splitlines()[-1])
    assert "No problems found." in out and upload == folder / submit.UPLOAD_DIR / submit.NOTEBOOK

    canvas = tmp_path / "submissions.zip"
    with zipfile.ZipFile(canvas, "w") as z:
        z.write(upload, f"doejane_4242_1001_{upload.name}")
    monkeypatch.setenv("CINIC10_DIR", str(sample_root))  # the grader grades on the data the student used
    (result,) = grade(canvas, tmp_path / "grading", workers=1, limits=Limits(), verbose=False)
    assert (result.student, result.status) == ("4242", "graded"), result.detail
    assert {t.grade_id: result.scores[t.grade_id] for t in registry.TESTS} == {
        t.grade_id: float(t.points) for t in registry.TESTS}
    size = sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"\n{mode}: the environment from {FRAMEWORKS[mode]}: {size / 2**30:.2f} GiB ({size / 1e9:.2f} GB), "
          f"pip install {installed:.0f} s")
