"""The Gradescope autograder bundle: ``python -m autograder.gradescope build`` -> ``build/gradescope/autograder.zip``.

The zip holds, at its top, what Gradescope runs (``setup.sh`` once per image,
``run_autograder`` per submission) and:

* the grading code: the ``autograder`` modules the container imports (found by
  following imports; never the example submissions or the demo) and the
  ``ece662`` package;
* the course model at ``ece662/models/torch.model`` and the prepared data the
  notebook uses at its default settings at ``ece662/datasets/cinic-10/`` (the
  package's default places, so no variable is needed to find them): the
  first 5,000 test images and the training images Part 4 uses, as uint8
  arrays (``ece662.data_utils.save_prepared``). A dataset with fewer images
  than those defaults (a sample in ``CINIC10_DIR``) is refused unless
  ``allow_small_dataset`` (``--allow-small-dataset``): Gradescope would grade
  on other images than the students' notebooks use;
* the template gradebook, ``gradescope.json`` (settings), ``requirements.txt``
  (grading's Python packages; PyTorch is installed by ``autograder/gradescope/setup.py``)
  and ``SHA256SUMS`` of every other file, checked by ``setup.sh``.

No source or release notebook and no solution is shipped.
"""
import ast
import hashlib
import json
import re
import sys
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path

from autograder.gradescope.settings import SETTINGS_FILE, Settings
from autograder.gradescope.setup import CHECKSUMS
from autograder.nbgrader_course import REPO
from ece662.grading.registry import PART4

ENTRY_MODULES = ("autograder.gradescope.__main__", "autograder.gradescope.setup", "autograder.worker.__main__")
NOT_FOR_GRADING = {"torch", "torchvision", "jupyter", "canvasapi"}  # torch: installed apart; others: not used to grade
GRADING_EXTRAS = ["ipykernel", "safetensors"]  # the kernel and the evidence files
DATA_FOLDER = "ece662/datasets/cinic-10"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image. No dataset is downloaded:
# the model and the prepared data are in this bundle; only packages come from Debian and PyPI.
set -euo pipefail
cd /autograder/source
export DEBIAN_FRONTEND=noninteractive
export PIP_NO_CACHE_DIR=1   # no copy of every wheel left in the image
apt-get update -q
apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates util-linux passwd
rm -rf /var/lib/apt/lists/*
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m autograder.gradescope.setup
"""
RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, as root; the supervisor always leaves a results.json.
cd /autograder/source
/autograder/venv/bin/python -m autograder.gradescope supervise
code=$?
if [ ! -s /autograder/results/results.json ]; then
  printf '{"score": 0, "output": "The autograder failed before grading (exit code %s). Please tell the course staff.", "tests": []}\\n' "$code" > /autograder/results/results.json
fi
"""


def default_out() -> Path:
    return REPO / "build" / "gradescope"


def _module_file(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Modules named by the imports in ``path`` (relative ones resolved against ``module``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            stem = ".".join(filter(None, [base, node.module]))
            names.add(stem)
            names |= {f"{stem}.{alias.name}" for alias in node.names}
    return names


def grading_files() -> list[Path]:
    """The autograder modules the container imports (import closure of ENTRY_MODULES) and all of ece662."""
    todo, seen = list(ENTRY_MODULES), set()
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] not in ("autograder", "ece662"):
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        if path := _module_file(name):
            todo += sorted(_imports(path, name))
    files = {_module_file(n) for n in seen if n.startswith("autograder")} - {None}
    return sorted(files | set((REPO / "ece662").rglob("*.py")))


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;(]", requirement, maxsplit=1)[0].lower()


def requirements() -> tuple[str, list[str]]:
    """(the torch requirement, the other packages grading installs): the project's dependencies and its
    ``grading`` and ``torch`` extras as installed from pyproject.toml, less what grading does not use, plus the
    kernel's."""
    from importlib.metadata import requires

    deps = [r.split(";")[0].strip() for r in requires("ece662-pruning") or [] if _name(r) != "ece662-pruning" and
            ("extra ==" not in r or "extra == \"grading\"" in r or "extra == \"torch\"" in r)]
    torch = next(r for r in deps if _name(r) == "torch")
    kept = [r for r in deps if _name(r) not in NOT_FOR_GRADING]
    return torch, kept + [x for x in GRADING_EXTRAS if x not in map(_name, deps)]


def _add(z: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> str:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # same input, same zip
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, data)
    return f"{hashlib.sha256(data).hexdigest()}  {name}"


def check_dataset_size(counts: dict, allow_small: bool) -> None:
    """Refuse (or, when ``allow_small``, warn about) prepared data with fewer images than the notebook's defaults
    use: ``counts`` is {split: images} as shipped."""
    from ece662.data_utils import DEFAULT_NUM_TEST, dataset_root

    wanted = {"train": PART4.images, "test": DEFAULT_NUM_TEST}
    short = ", ".join(f"{counts.get(split, 0):,} {split} images of the notebook's {n:,}" for split, n in wanted.items()
                      if counts.get(split, 0) < n)
    if short and not allow_small:
        raise ValueError(f"the dataset at {dataset_root()} is smaller than the notebook's defaults ({short}), so "
                         "Gradescope would grade on other images than the students use: point CINIC10_DIR at the full "
                         "CINIC-10, or pass --allow-small-dataset to ship it anyway")
    if short:
        print(f"WARNING: the bundle ships a SMALLER dataset than the notebook's defaults ({short}): Gradescope's "
              "accuracies will differ from the students' own runs", file=sys.stderr, flush=True)


def build(out: Path, settings: Settings | None = None, train_images: int | None = None, val_images: int = 0,
          test_images: int | None = None, allow_small_dataset: bool = False) -> Path:
    """Write ``out/autograder.zip`` from this repository, its course model and the data in use; a dataset smaller
    than the notebook's defaults is refused unless ``allow_small_dataset``."""
    from autograder.course.release import prepare_template
    from ece662.data_utils import DEFAULT_NUM_TEST, PREPARED_MARKER, save_prepared
    from ece662.paths import model_path

    model = model_path("torch")
    if not model.is_file():
        raise FileNotFoundError(f"No course model at {model}: train it first (`make model`).")
    out.mkdir(parents=True, exist_ok=True)
    torch, others = requirements()
    settings = replace(settings or Settings(), torch_requirement=torch)
    template = prepare_template(out / "work")
    archive = out / "autograder.zip"
    with tempfile.TemporaryDirectory(prefix="ece662-bundle-") as tmp:
        prepared = save_prepared(Path(tmp) / "data", train_images if train_images is not None else
                                 PART4.images, val_images,
                                 test_images if test_images is not None else DEFAULT_NUM_TEST)
        check_dataset_size(json.loads((prepared / PREPARED_MARKER).read_text())["counts"], allow_small_dataset)
        contents = {str(p.relative_to(REPO)): p.read_bytes() for p in grading_files()}
        contents.update({f"{DATA_FOLDER}/{p.name}": p.read_bytes() for p in sorted(prepared.iterdir())})
        contents.update({"ece662/models/torch.model": model.read_bytes(), "gradebook.db": template.read_bytes(),
                         "requirements.txt": "\n".join(others).encode() + b"\n"})
    tmp_archive = archive.with_suffix(".tmp")
    with zipfile.ZipFile(tmp_archive, "w") as z:
        _add(z, "setup.sh", SETUP_SH.encode(), executable=True)
        _add(z, "run_autograder", RUN_AUTOGRADER.encode(), executable=True)
        contents[SETTINGS_FILE] = settings.to_json().encode()
        sums = [_add(z, name, data) for name, data in sorted(contents.items())]
        _add(z, CHECKSUMS, ("\n".join(sums) + "\n").encode())
    tmp_archive.replace(archive)
    return archive
