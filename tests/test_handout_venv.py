"""The handout as a student gets it: a fresh virtual environment made from its requirements.txt alone (pip may use
its cache), a correct notebook run from the unpacked zip on the real CINIC-10 sample, ``python -m ece662.submit``,
and the file it wrote graded by the pipeline: full points for the parts done.

Slow (it installs PyTorch and Jupyter from PyPI): only ``make test-handout`` runs it.
"""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.course.handout import FOLDER, build
from autograder.course.pipeline import Limits, grade
from demo.examples import correct
from ece662 import submit
from ece662.grading import registry

pytestmark = pytest.mark.handout_venv


def run(command: list, cwd: Path, env: dict, timeout: int) -> str:
    done = subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def test_a_fresh_venv_from_the_handout_runs_submits_and_is_graded(course_env, sample_root, tmp_path, monkeypatch):
    with zipfile.ZipFile(build(tmp_path / "build")) as z:
        z.extractall(tmp_path)
    folder = tmp_path / FOLDER
    venv = tmp_path / "venv"
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("ECE662_MODEL_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", CINIC10_DIR=str(sample_root),
               ECE662_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "-r", "requirements.txt"], folder, env, 3600)
    # the editable install: from any folder, ece662 is the unpacked folder's, and its model is found there
    found = run([str(bin_dir / "python"), "-c", "import ece662.paths as p; print(p.model_path('torch'))"],
                tmp_path, env, 120).strip()
    assert Path(found) == folder / "ece662" / "models" / "torch.model" and Path(found).is_file()

    nbformat.write(correct(), folder / submit.NOTEBOOK)
    out = run([str(bin_dir / "python"), "-m", "ece662.submit"], folder, env, 1800)
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
    print(f"\nthe environment from requirements.txt: {size / 2**30:.2f} GiB in {venv}")
