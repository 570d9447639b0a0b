"""``python -m autograder handout``: the one zip students get, ``build/handout/ece662-pruning.zip``.

Its folder ``ece662-pruning/`` holds:

* ``pruning.ipynb``, the student notebook (``release/pruning/pruning.ipynb``);
* ``ece662/``, the helpers the notebook imports, ``ece662/grading/`` included (its test cells call it): the
  package's ``.py`` files, so no ``__pycache__`` and no dataset;
* the course models, PyTorch and TensorFlow when there is one, taken from ``ece662.paths.model_path`` (which
  honours ``ECE662_MODEL_DIR``) and put where ``model_path`` finds them in the unpacked folder;
* ``pyproject.toml`` (the ``ece662`` package, installed in editable mode so the unpacked folder is what the
  notebook imports and where the dataset goes), ``requirements.txt`` (PyTorch mode),
  ``requirements-tensorflow.txt`` (TensorFlow mode, nothing of PyTorch) and ``environment.yml``, written from this
  repository's ``pyproject.toml``: its dependencies (what students need in either framework) and its ``torch`` and
  ``tensorflow`` extras;
* ``README.md`` for students (``handout_readme.md``, with the dataset's facts filled in from ``ece662.datasets``).

Nothing else: no solutions, hidden tests, grader, examples or tests.
"""
import tomllib
import zipfile
from pathlib import Path

from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, RELEASE_DIR, REPO
from ece662 import paths
from ece662.data_utils import DEFAULT_ROOT

FOLDER = "ece662-pruning"  # the zip's top folder, and the conda environment's name
CONDA_PYTHON = "3.11"  # has wheels of every requirement on Linux, Windows and Apple-silicon macOS
README_TEMPLATE = Path(__file__).with_name("handout_readme.md")


def default_out() -> Path:
    return REPO / "build" / "handout"


def _project() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _lines(*lines) -> bytes:
    return ("\n".join(lines) + "\n").encode()


FRAMEWORKS = {"torch": "requirements.txt", "tensorflow": "requirements-tensorflow.txt"}  # extra: its file


def setup_files() -> dict[str, bytes]:
    """pyproject.toml, one requirements file per framework and environment.yml of the handout."""
    project = _project()
    needs, extras = project["dependencies"], {name: project["optional-dependencies"][name] for name in FRAMEWORKS}
    quoted = lambda reqs: ", ".join(f'"{r}"' for r in reqs)  # TOML basic strings: the markers use single quotes
    requirements = {
        file: _lines(f"# Everything pruning.ipynb needs in {'PyTorch' if name == 'torch' else 'TensorFlow'} mode "
                     f"(mode = '{name}'). From this folder: pip install -r {file}",
                     *needs, *extras[name], "-e .  # this folder's ece662 package")
        for name, file in FRAMEWORKS.items()}
    return {
        "pyproject.toml": _lines(
            "# The ece662 helpers of this folder; each requirements file installs them in editable mode (-e .), so",
            "# `import ece662` is this folder's ece662/ and `python -m ece662.datasets download` writes into it.",
            "[build-system]", 'requires = ["setuptools>=68"]', 'build-backend = "setuptools.build_meta"', "",
            "[project]", f'name = "{FOLDER}-handout"', f'version = "{project["version"]}"',
            f'requires-python = "{project["requires-python"]}"', f"dependencies = [{quoted(needs)}]", "",
            "[project.optional-dependencies]", *(f"{name} = [{quoted(reqs)}]" for name, reqs in extras.items()), "",
            "[tool.setuptools.packages.find]", 'include = ["ece662*"]'),
        **requirements,
        "environment.yml": _lines(
            "# conda env create -f environment.yml, then: conda activate " + FOLDER,
            f"# (TensorFlow mode: change requirements.txt below to {FRAMEWORKS['tensorflow']} first)",
            f"name: {FOLDER}", "channels:", "  - conda-forge", "dependencies:", f"  - python={CONDA_PYTHON}",
            "  - pip", "  - pip:", f"      - -r {FRAMEWORKS['torch']}"),
    }


def _in_handout(path: Path) -> str:
    """Where a file of this repository goes in the unpacked handout."""
    return path.resolve().relative_to(REPO).as_posix()


def model_files() -> dict[str, Path]:
    """{place in the handout: file} of the course models: torch always, tensorflow when there is one."""
    found = {}
    for mode in paths.SUPPORTED_MODES:
        source = paths.model_path(mode)
        if source.is_file():
            found[_in_handout(paths.MODEL_DIR / source.name)] = source
        elif mode == "torch":
            raise FileNotFoundError(f"No course model at {source}: train it first (`make model`), or point "
                                    "ECE662_MODEL_DIR at the folder that holds torch.model.")
    return found


def readme(models: dict[str, Path]) -> bytes:
    """The students' README, with the dataset's facts and the handout's contents filled in."""
    from ece662.datasets.download import ARCHIVE_NAME, CINIC10_MD5, CINIC10_URL

    tensorflow = any(name.endswith("tensorflow.model") for name in models)
    return README_TEMPLATE.read_text().format(
        folder=FOLDER, conda_python=CONDA_PYTHON, url=CINIC10_URL, md5=CINIC10_MD5, archive=ARCHIVE_NAME,
        data_folder=_in_handout(DEFAULT_ROOT), archive_path=_in_handout(DEFAULT_ROOT.parent / ARCHIVE_NAME),
        models=", ".join(f"`{name}`" for name in models),
        tensorflow="" if tensorflow else " This handout has no TensorFlow model, so work in PyTorch.").encode()


def contents() -> dict[str, bytes]:
    """{path in the handout folder: bytes} of every file of the handout."""
    models = model_files()
    files = {NOTEBOOK: (REPO / RELEASE_DIR / ASSIGNMENT / NOTEBOOK).read_bytes(), "README.md": readme(models),
             **setup_files()}
    files.update({_in_handout(p): p.read_bytes() for p in sorted((REPO / "ece662").rglob("*.py"))})
    files.update({name: source.read_bytes() for name, source in models.items()})
    return files


def build(out: Path | None = None) -> Path:
    """Write ``<out>/ece662-pruning.zip`` (default ``build/handout/``) and return its path."""
    out = Path(out or default_out())
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{FOLDER}.zip"
    tmp = archive.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in sorted(contents().items()):
            info = zipfile.ZipInfo(f"{FOLDER}/{name}", date_time=(2020, 1, 1, 0, 0, 0))  # same input, same zip
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    tmp.replace(archive)
    return archive
