"""A Gradescope autograder bundle from the same source notebook, for per-submission containers.

    python -m autograder.gradescope build [--out build/gradescope]   -> autograder.zip
    (inside the container) python3 -m autograder.gradescope run      -> /autograder/results/results.json

The bundle holds this project (``ece662``, ``autograder``, ``pyproject.toml``),
the template gradebook made from ``assignment/`` and the course model, but no
source or release notebook. ``setup.sh`` installs the project, downloads
CINIC-10 and builds its cache once, into the image. ``run_autograder`` grades
``/autograder/submission/*.ipynb`` with the same worker as the local pipeline:
in the bubblewrap sandbox where the container allows it, else unsandboxed with
the tamper guard (a notebook that edits the grading files scores zero). It
writes one test per autograded cell in Gradescope's results schema, with the
failure message but never the hidden test source. The two inline questions are
graded by hand on Gradescope and are not in it.
"""
import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

from .course import REPO
from .pipeline import Limits, prepare_template, readable_paths, run_worker
from .sandbox import sandbox_unavailable_reason
from .worker import template_cells

CACHE_DIR = "/autograder/cache"  # the CINIC-10 cache, built by setup.sh into the image

SETUP_SH = f"""#!/usr/bin/env bash
set -euo pipefail
cd /autograder/source
apt-get update -q && apt-get install -y -q python3-pip python3-venv bubblewrap
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q .
/autograder/venv/bin/python -m ece662.datasets download --root /autograder/source/ece662/datasets/cinic-10
ECE662_CACHE_DIR={CACHE_DIR} /autograder/venv/bin/python -c \
  "from ece662.data_utils import get_CINIC10_data; get_CINIC10_data(verbose=False)"
"""
RUN_AUTOGRADER = f"""#!/usr/bin/env bash
cd /autograder/source
ECE662_CACHE_DIR={CACHE_DIR} /autograder/venv/bin/python -m autograder.gradescope run
"""


def _add_script(z: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o100755 << 16  # a regular, executable file
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, text)


def build(out: Path) -> Path:
    """Write ``out/autograder.zip`` (setup.sh and run_autograder at the top, as Gradescope requires)."""
    from ece662.pruning_helper import model_path

    out.mkdir(parents=True, exist_ok=True)
    template = prepare_template(out / "work")
    archive = out / "autograder.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        _add_script(z, "setup.sh", SETUP_SH)
        _add_script(z, "run_autograder", RUN_AUTOGRADER)
        for name in ("pyproject.toml", "README.md"):
            z.write(REPO / name, name)
        for package in ("ece662", "autograder"):
            for path in sorted((REPO / package).rglob("*.py")):
                z.write(path, str(path.relative_to(REPO)))
        z.write(template, "gradebook.db")
        z.write(model_path("torch"), "ece662/models/torch.model")
    return archive


def _failure_messages(notebook: Path) -> dict:
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    messages = {}
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", [])
                  if o.get("output_type") == "error"]
        if gid and errors:
            messages[gid] = "\n".join(errors)
    return messages


def run(root: Path = Path("/autograder"), source: Path | None = None, limits: Limits = Limits()) -> dict:
    """Grade the one notebook in ``root/submission`` and write ``root/results/results.json``."""
    source = source or root / "source"
    notebooks = sorted((root / "submission").rglob("*.ipynb"))
    (root / "results").mkdir(parents=True, exist_ok=True)
    results_file = root / "results" / "results.json"
    if not notebooks:
        payload = {"score": 0, "output": "No .ipynb file was submitted: upload your pruning.ipynb.", "tests": []}
        results_file.write_text(json.dumps(payload, indent=1))
        return payload
    work = root / "work"
    template_db = source / "gradebook.db"
    cells, _ = template_cells(template_db)
    result = run_worker("submission", notebooks[0], work, template_db, readable_paths(), limits,
                        sandbox_unavailable_reason() is None, cells, threads=os.cpu_count() or 1)
    graded = result.get("graded_notebook")
    messages = _failure_messages(Path(graded)) if graded else {}
    tests = []
    for gid, max_score in result["max_scores"].items():
        if gid.endswith("_answer"):
            continue  # inline questions: graded by hand
        score = result["scores"].get(gid) or 0.0
        tests.append({"name": gid, "score": score, "max_score": max_score, "visibility": "visible",
                      "output": messages.get(gid, "passed" if score == max_score else "")})
    payload = {"score": sum(t["score"] for t in tests), "tests": tests,
               "output": f"status: {result['status']}. {result.get('detail', '')}".strip()}
    results_file.write_text(json.dumps(payload, indent=1))
    return payload


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the Gradescope autograder.zip")
    b.add_argument("--out", default=str(REPO / "build" / "gradescope"))
    sub.add_parser("run", help="grade /autograder/submission (inside a Gradescope container)")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(f"wrote {build(Path(args.out))}")
    else:
        run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
