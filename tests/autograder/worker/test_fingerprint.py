"""A result is valid for exactly what decided it (``autograder/worker/fingerprint.py``): a model's bytes, the data
the cache was built from, a file of ``ece662/`` or ``autograder/`` change the course's fingerprint, and with it every
job key and the store's folder; an unchanged course keeps them. No grading here: seconds."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autograder.worker import fingerprint
from autograder.worker.fingerprint import code_files, code_fingerprint, course_fingerprint, job_key
from autograder.worker.job import Limits
from autograder.worker.measurements import store_folder
from ece662 import data_utils

REPO = Path(__file__).resolve().parents[3]


def write_dataset(root: Path) -> Path:
    """One 32x32 PNG per class and split, its folders dated a minute back (so the cache's listing stamp holds)."""
    for split in data_utils.SPLIT_FOLDERS.values():
        for label, cls in enumerate(data_utils.CLASSES):
            (root / split / cls).mkdir(parents=True)
            Image.fromarray(np.full((32, 32, 3), label * 20, np.uint8)).save(root / split / cls / "0.png")
    old = os.stat(root).st_mtime - 60
    for folder in [root, *root.rglob("*")]:
        if folder.is_dir():
            os.utime(folder, (old, old))
    return root


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course of its own under ``tmp_path``: a copy of the code, a dataset, a cache, a model folder and a source
    notebook."""
    for label, path in code_files().items():
        (tmp_path / "code" / label).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tmp_path / "code" / label)
    monkeypatch.setattr(fingerprint, "PACKAGE_FOLDERS", [tmp_path / "code" / top.name
                                                         for top in fingerprint.PACKAGE_FOLDERS])
    monkeypatch.setenv("CINIC10_DIR", str(write_dataset(tmp_path / "data")))
    monkeypatch.setenv("ECE662_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ECE662_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(data_utils, "_active_dataset", data_utils.active_dataset())  # restored afterwards
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "torch.model").write_bytes(b"torch weights")
    (tmp_path / "models" / "tensorflow.model").write_bytes(b"keras weights")
    (tmp_path / "source.ipynb").write_text("{}")
    return tmp_path


def test_the_code_is_every_file_of_both_packages_but_caches_and_models():
    files = code_files()
    for package in ("ece662", "autograder"):
        sources = {p.relative_to(REPO).as_posix() for p in (REPO / package).rglob("*.py")}
        assert sources <= set(files), sources - set(files)
    assert "autograder/course/handout_readme.md" in files
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or f.startswith("ece662/models/")]


def test_a_model_the_data_or_the_notebook_changes_the_course(course):
    notebook, model = course / "source.ipynb", course / "models" / "torch.model"
    first = course_fingerprint(notebook)
    assert course_fingerprint(notebook) == first  # unchanged: regrades no one
    data_utils.get_CINIC10_data(verbose=False)  # builds the cache and its listing stamp
    assert (data_utils._cache_folder(data_utils.dataset_root()) / data_utils.LISTING_STAMP).is_file()
    assert course_fingerprint(notebook) == first  # the same data, read from the stamp instead of a listing

    model.write_bytes(b"retrained torch weights")
    retrained = course_fingerprint(notebook)
    (course / "models" / "tensorflow.model").write_bytes(b"retrained keras weights")
    both_retrained = course_fingerprint(notebook)
    shutil.copy(course / "data" / "test" / "cat" / "0.png", course / "data" / "test" / "cat" / "1.png")
    more_data = course_fingerprint(notebook)
    notebook.write_text('{"cells": []}')
    assert len({first, retrained, both_retrained, more_data, course_fingerprint(notebook)}) == 5


def test_a_prepared_dataset_is_known_by_its_arrays(course, monkeypatch):
    prepared = data_utils.save_prepared(course / "prepared", 10, 10, 10)
    monkeypatch.setenv("CINIC10_DIR", str(prepared))
    first = data_utils.data_fingerprint()
    assert data_utils.data_fingerprint() == first
    labels = np.load(prepared / "test-y.npy")
    np.save(prepared / "test-y.npy", labels[::-1])
    assert data_utils.data_fingerprint() != first


def test_a_file_of_ece662_changes_the_code_the_course_and_the_store(course, tmp_path):
    code, course_print = code_fingerprint(), course_fingerprint(course / "source.ipynb")
    folder = store_folder(tmp_path / "measurements")
    (tmp_path / "code" / "ece662" / "grading" / "cells.py").write_text("# changed\n", encoding="utf-8")
    changed = code_fingerprint()
    assert changed != code and course_fingerprint(course / "source.ipynb") != course_print
    assert store_folder(tmp_path / "measurements") != folder
    (tmp_path / "code" / "ece662" / "models").mkdir()  # not a package folder: data, not code
    (tmp_path / "code" / "ece662" / "models" / "torch.model").write_bytes(b"weights")
    (tmp_path / "code" / "ece662" / "__pycache__").mkdir()
    (tmp_path / "code" / "ece662" / "__pycache__" / "paths.cpython-311.pyc").write_bytes(b"compiled")
    assert code_fingerprint() == changed


def test_a_job_key_covers_the_course_the_submission_the_limits_and_the_sandbox(tmp_path):
    notebook = tmp_path / "alice.ipynb"
    notebook.write_text("{}")
    key = job_key(notebook, "course", Limits(), "bubblewrap")
    assert job_key(notebook, "course", Limits(), "bubblewrap") == key
    others = {job_key(notebook, "retrained course", Limits(), "bubblewrap"),
              job_key(notebook, "course", Limits(cell_timeout=30), "bubblewrap"),
              job_key(notebook, "course", Limits(), "none")}
    notebook.write_text('{"cells": []}')
    others.add(job_key(notebook, "course", Limits(), "bubblewrap"))
    assert len(others) == 4 and key not in others
