"""What decides a grade, in one list: a result and a stored measurement are valid for exactly these inputs.

* The code: every file of the installed ``ece662`` and ``autograder`` packages (``code_fingerprint``): their
  Python files and the files they read beside them, in every folder that is a Python package (so not
  ``__pycache__``, nor the dataset and model folders that may sit inside ``ece662/``).
* The course (``course_fingerprint``): the code, the source notebook, the course models' bytes (every framework's
  file in the model folder) and the dataset as its cache identifies it (``ece662.data_utils.data_fingerprint``).
* One submission's grading (``job_key``): the course, the submission's bytes, the limits and the sandbox.

Retraining a model, changing the data or the code regrades everyone into the same folder; an unchanged course
regrades no one. The store of measurements (``measurements.py``) starts afresh when the code changes; what it keeps
is keyed by the weights, images and course model it was measured on.
"""
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import ece662

PACKAGE_FOLDERS = [Path(ece662.__file__).resolve().parent, Path(__file__).resolve().parent.parent]
NOT_CODE = (".pyc", ".gz", ".part")  # compiled files; a dataset download beside ece662/datasets (and its .part)


def code_files() -> dict[str, Path]:
    """{"<package>/<path inside it>": file} for every file of the packages' folders."""
    files = {}
    for top in PACKAGE_FOLDERS:
        for folder, subfolders, names in os.walk(top):
            subfolders[:] = [d for d in subfolders if (Path(folder) / d / "__init__.py").is_file()]
            for name in names:
                if not name.startswith(".") and not name.endswith(NOT_CODE):
                    files[(Path(folder) / name).relative_to(top.parent).as_posix()] = Path(folder) / name
    return files


def _hash_files(h, files: dict) -> None:
    """Each file's label, size and bytes, in the labels' order."""
    for label, path in sorted(files.items()):
        data = path.read_bytes()
        h.update(f"{label}|{len(data)}|".encode())
        h.update(data)


def code_fingerprint() -> str:
    h = hashlib.sha256()
    _hash_files(h, code_files())
    return h.hexdigest()


def course_fingerprint(notebook: Path) -> str:
    """The code, the source ``notebook``, the course models and the dataset; computed once per grading run."""
    from ece662.data_utils import data_fingerprint
    from ece662.paths import SUPPORTED_MODES, model_path

    h = hashlib.sha256(f"code|{code_fingerprint()}|data|{data_fingerprint()}|".encode())
    models = {f"{mode} model": model_path(mode) for mode in SUPPORTED_MODES if model_path(mode).is_file()}
    _hash_files(h, {"source notebook": Path(notebook), **models})
    return h.hexdigest()


def job_key(submission: Path, course: str, limits, sandbox: str) -> str:
    """What one student's result is valid for: ``course`` (``course_fingerprint``), the submission, the limits (a
    dataclass) and the sandbox."""
    h = hashlib.sha256(f"{course}|{json.dumps([asdict(limits), sandbox])}|".encode())
    h.update(Path(submission).read_bytes())
    return h.hexdigest()
