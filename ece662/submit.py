"""``python -m ece662.submit [NOTEBOOK]``: check a notebook as the grader will see it, and write the file to upload.

Run it in the environment the notebook runs in (default NOTEBOOK: ``pruning.ipynb`` in the current folder). It
explains each problem it finds in one sentence, in two steps.

1. Without running anything, in a second or two, printed at once:

   * the file: there, a notebook (JSON in the notebook format), at most ``MAX_MB`` MB;
   * the graded cells: every grade id of ``ece662/grading/registry.py`` once, as an nbgrader graded cell, and every
     locked cell (the test cells among them) as handed out: nbgrader's checksum, which grading also checks before
     it puts the handed-out version back;
   * the written answers: none still empty or holding the template's ``YOUR ANSWER HERE``;
   * the outputs: a notebook in which no code cell has an output was saved before it was run (or cleared).

   This step imports nothing heavy (no kernel client, no framework), so it reports before any kernel starts.

2. The run: every cell, top to bottom, in a fresh kernel (``nbclient``), as in the student's own run (public
   checks), with a line per cell as it starts; each cell that fails.

Between the two it writes the notebook, byte for byte, to ``for-canvas/pruning.ipynb`` beside it, the file to
upload to the Canvas assignment, and it prints that path as its last line (unless the notebook cannot be read at
all). Exit code: 0 when it found no problem, 1 when it did.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .grading import registry

NOTEBOOK = registry.NOTEBOOK  # the assignment's notebook, as the grader names it
UPLOAD_DIR = "for-canvas"
MAX_MB = 10  # only large outputs make a notebook bigger, and grading needs none: it runs every cell again
CELL_TIMEOUT = 600  # seconds per cell in the check's run
ORIGINAL = "the handout zip's pruning.ipynb"
ANSWER_STUB = "YOUR ANSWER HERE"  # nbgrader's ClearSolutions.text_stub: an answer cell as handed out
ANSWER_HEADING = re.compile(r"\W*your answer\W*", re.IGNORECASE)  # the handed-out "**Your answer:**" line


@dataclass
class Report:
    problems: list = field(default_factory=list)  # one sentence each
    upload: Path | None = None  # the file to upload; None when the notebook could not be read


def nbgrader_checksum(cell) -> str:
    """nbgrader's checksum of a cell with nbgrader metadata (``nbgrader.utils.compute_checksum``)."""
    meta = cell["metadata"]["nbgrader"]
    grade, solution = meta.get("grade", False), meta.get("solution", False)
    locked = False if solution else True if grade else meta.get("locked", False)
    digest = hashlib.md5()
    for part in (cell["source"], cell["cell_type"], str(grade), str(solution), str(locked), meta["grade_id"]):
        digest.update(part.encode("utf-8"))
    if grade:
        digest.update(str(float(meta["points"])).encode("utf-8"))
    return digest.hexdigest()


def _nbgrader(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _label(index: int, cell) -> str:
    """How a student finds the cell, to start a sentence: its position and its grade id, or its first line."""
    gid = _nbgrader(cell).get("grade_id")
    if gid:
        return f"Cell {index} ('{gid}')"
    first = next((line.strip() for line in cell["source"].splitlines() if line.strip()), "empty")
    return f"Cell {index} (\"{first[:60]}{'...' if len(first) > 60 else ''}\")"


def _restore_hint(path: Path) -> str:
    checkpoint = path.parent / ".ipynb_checkpoints" / f"{path.stem}-checkpoint{path.suffix}"
    if checkpoint.is_file():
        return f"restore the copy Jupyter saved at {checkpoint}, or copy your code into a fresh copy of {ORIGINAL}"
    return f"copy your code into a fresh copy of {ORIGINAL}"


def _structure_problem(nb) -> str | None:
    """Why parsed JSON is not a notebook the checks can read, or None. The full schema (nbformat's) is checked
    after the checks that need no kernel, because importing nbformat takes a second or two."""
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return "it has no list of cells"
    if nb.get("nbformat") != 4:
        return f"notebook format {nb.get('nbformat')!r}, where Jupyter writes 4"
    for index, cell in enumerate(nb["cells"], 1):
        source = cell.get("source") if isinstance(cell, dict) else None
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw") or \
                not isinstance(cell.get("metadata", {}), dict) or not (
                    isinstance(source, str) or isinstance(source, list) and all(isinstance(s, str) for s in source)):
            return f"cell {index} is not a code, markdown or raw cell with text and metadata"
    return None


def read_notebook(path: Path, report: Report) -> tuple[bytes | None, dict | None]:
    """(the file's bytes, the notebook as a dict, each cell's source one string) or (None, None) with the reason in
    ``report``. Reads JSON only: nothing here imports nbformat."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        report.problems.append(f"{path} does not exist: pass your notebook's path, e.g. "
                               f"`python -m ece662.submit path/to/{NOTEBOOK}`.")
        return None, None
    except OSError as exc:
        report.problems.append(f"{path} cannot be read ({exc.strerror}): pass the path of your .ipynb file.")
        return None, None
    if len(raw) > MAX_MB * 2**20:
        report.problems.append(
            f"{path} is {len(raw) / 2**20:.1f} MB, more than {MAX_MB} MB, because of large outputs (images, printed "
            "arrays): clear them (Jupyter: Kernel > Restart Kernel and Clear Outputs of All Cells), save, and run "
            "this again.")
    try:
        nb = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        report.problems.append(f"{path} is not a text file, so not a notebook: pass your .ipynb file.")
        return None, None
    except json.JSONDecodeError as exc:
        report.problems.append(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}), so "
                               f"neither Jupyter nor the grader can open it: {_restore_hint(path)}.")
        return None, None
    if reason := _structure_problem(nb):
        report.problems.append(f"{path} is JSON but not a valid notebook ({reason}): {_restore_hint(path)}.")
        return None, None
    cells = [{**cell, "source": "".join(cell["source"])} for cell in nb["cells"]]
    return raw, {**nb, "cells": cells}


def validated(raw: bytes, path: Path, report: Report):
    """The notebook as nbformat reads it, or None with the reason in ``report`` (nbformat's schema)."""
    import nbformat

    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several types for a JSON file that is not a notebook
        reason = str(getattr(exc, "message", exc)).splitlines()[0][:200]
        report.problems.append(f"{path} is JSON but not a valid notebook ({reason}): {_restore_hint(path)}.")
        return None
    return nb


def graded_cell_problems(nb) -> list[str]:
    """Each registry grade id once, as a graded cell of its kind; every locked cell as handed out."""
    problems = []
    places = {}
    for index, cell in enumerate(nb["cells"], 1):
        if isinstance(gid := _nbgrader(cell).get("grade_id"), str):
            places.setdefault(gid, []).append(index)
    expected = {t.grade_id: ("test", "code") for t in registry.TESTS}
    expected.update({q.grade_id: (q.title.partition(":")[0], "markdown") for q in registry.QUESTIONS})
    for gid, (what, cell_type) in expected.items():
        found = places.get(gid, [])
        kind = f"test cell '{gid}'" if what == "test" else f"answer cell of {what} ('{gid}')"
        if not found:
            problems.append(f"The {kind} is missing (deleted, or its id changed): copy it back to its place from "
                            f"{ORIGINAL}.")
        elif len(found) > 1:
            problems.append(f"The {kind} appears {len(found)} times (cells {', '.join(map(str, found))}), because a "
                            "copied cell keeps its id: delete the copies and keep the one in its place.")
        else:
            cell = nb["cells"][found[0] - 1]
            if cell["cell_type"] != cell_type or _nbgrader(cell).get("grade") is not True:
                problems.append(f"Cell {found[0]} is no longer the graded {cell_type} cell '{gid}': copy the original "
                                f"back from {ORIGINAL}.")
    for index, cell in enumerate(nb["cells"], 1):
        meta = _nbgrader(cell)
        if not isinstance(meta.get("grade_id"), str) or meta.get("solution") or not (meta.get("grade") or
                                                                                  meta.get("locked")):
            continue  # not locked: the student's to edit
        try:
            changed = nbgrader_checksum(cell) != meta.get("checksum")
        except (KeyError, TypeError, ValueError):  # metadata edited into something nbgrader cannot hash
            changed = True
        if changed and registry.is_autograded(meta["grade_id"]):
            problems.append(f"The test cell '{meta['grade_id']}' (cell {index}) was changed, and grading runs the "
                            f"original test instead: copy it back unchanged from {ORIGINAL}.")
        elif changed:
            problems.append(f"{_label(index, cell)} is a locked cell of the handout but was changed, and grading "
                            "uses only the handed-out version of locked cells: undo the change (the original is in "
                            f"{ORIGINAL}) and put code of your own in a new cell.")
    return problems


def answer_problems(nb) -> list[str]:
    """Each written answer that is still empty or still holds the template's text."""
    problems = []
    for question in registry.QUESTIONS:
        found = [(index, cell) for index, cell in enumerate(nb["cells"], 1)
                 if _nbgrader(cell).get("grade_id") == question.grade_id and cell["cell_type"] == "markdown"]
        if len(found) != 1:
            continue  # missing or copied: graded_cell_problems says so
        (index, cell), name = found[0], question.title.partition(":")[0]
        lines = [line for line in cell["source"].replace(ANSWER_STUB, "").splitlines() if line.strip()]
        if lines and ANSWER_HEADING.fullmatch(lines[0]):
            lines = lines[1:]
        if not lines:
            problems.append(f"{name} is not answered: its answer cell (cell {index}) still reads "
                            f"\"{ANSWER_STUB}\" or is empty; write your answer there ({question.points:g} points, "
                            "graded by hand).")
        elif ANSWER_STUB in cell["source"]:
            problems.append(f"{name}'s answer (cell {index}) still holds the template's \"{ANSWER_STUB}\": delete "
                            "it, so that the grader reads your answer alone.")
    return problems


def output_problems(nb) -> list[str]:
    """A notebook in which no code cell ran: saved before it was run, or with its outputs cleared."""
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code" and cell["source"].strip()]
    if code and not any(cell.get("outputs") or cell.get("execution_count") for cell in code):
        return ["No code cell has an output, so this file was saved before its cells ran (or with its outputs "
                "cleared), and it may not be the notebook you worked in: open it in Jupyter, run every cell "
                "(Kernel > Restart Kernel and Run All Cells), save it, and run this again."]
    return []


def _first_line(text: str, limit: int = 300) -> str:
    line = next((x.strip() for x in str(text).splitlines() if x.strip()), "")
    return line if len(line) <= limit else line[:limit] + "..."


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _cell_error(index: int, cell, error: dict, timeout: int) -> str:
    name, value = error.get("ename", "Error"), _first_line(error.get("evalue", ""))
    gid = _nbgrader(cell).get("grade_id")
    if name == "KeyboardInterrupt":
        return (f"{_label(index, cell)} ran longer than {timeout} s and was stopped: make it faster, or "
                "give it more time with --timeout SECONDS.")
    if name == "NotImplementedError" and "raise NotImplementedError" in cell["source"]:
        return (f"{_label(index, cell)} still raises NotImplementedError: replace its "
                "`raise NotImplementedError()` lines with your code.")
    if name == "NotImplementedError":
        return (f"{_label(index, cell)} raised NotImplementedError: a function of yours that it calls is not "
                "written yet.")
    if gid and registry.is_autograded(gid):
        return _sentence(f"The public check of '{gid}' (cell {index}) failed: {name}: {value}")
    if name == "ModuleNotFoundError":
        file = "requirements-tensorflow.txt" if re.search(r"tensorflow|keras", value) else "requirements.txt"
        return (f"{_label(index, cell)} raised {name}: {value}: install {file} (`pip install -r {file}`) into the "
                "Python environment you run this command with, or set `mode` to the framework you installed.")
    return _sentence(f"{_label(index, cell)} raised {name}: {value}")


def _progress(nb, say):
    """nbclient hooks that say which cell starts (``[k/n] Cell i (...)``) and which one failed, as it happens."""
    total = sum(1 for cell in nb.cells if cell.cell_type == "code" and cell.source.strip())
    started = {"count": 0}

    def on_start(cell, cell_index):
        started.update(count=started["count"] + 1, index=cell_index + 1, cell=cell)
        say(f"[{started['count']:>{len(str(total))}}/{total}] {_label(cell_index + 1, cell)}")

    def on_done(cell, cell_index, execute_reply):
        content = (execute_reply or {}).get("content", {})
        if content.get("status") == "error":
            say(f"      failed ({content.get('ename', 'Error')}): the reason is in the list at the end")

    return started, on_start, on_done


def run_problems(nb, folder: Path, timeout: int = CELL_TIMEOUT, say=print) -> list[str]:
    """Run every cell of a copy of ``nb`` in a fresh kernel in ``folder``, saying which cell runs; one sentence per
    cell that fails."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    os.environ.pop("NBGRADER_EXECUTION", None)  # the student's run: public checks, as in Jupyter
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a copy: the outputs are not kept
    running, on_start, on_done = _progress(nb, say)
    client = NotebookClient(nb, timeout=timeout, interrupt_on_timeout=True, allow_errors=True,
                            kernel_name="python3", resources={"metadata": {"path": str(folder)}},
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no start-up warnings on the terminal
                            on_cell_execute=on_start, on_cell_executed=on_done)
    stopped = False
    try:
        client.execute()
    except KeyboardInterrupt:  # Ctrl+C where nbclient leaves it to Python (Windows)
        stopped = True
    except Exception as exc:  # the kernel died (a crash, exit(), or Ctrl+C: nbclient then stops the kernel itself)
        if "cell" not in running and not isinstance(exc, DeadKernelError):  # no kernel: jupyter or ipykernel missing
            return [(f"Could not run the notebook in a fresh Python kernel ({type(exc).__name__}: "
                     f"{_first_line(exc)}): install requirements.txt (`pip install -r requirements.txt`) into the "
                     "environment you run this with.")]
        stopped = True
    problems = [_cell_error(index, cell, errors[0], timeout) for index, cell in enumerate(nb.cells, 1)
                if cell.cell_type == "code" and not (stopped and index == running.get("index")) and
                (errors := [o for o in cell.get("outputs", []) if o.get("output_type") == "error"])]
    if stopped:
        where = f"{_label(running['index'], running['cell'])} did not finish" if "cell" in running else \
            "The run stopped before its first cell"
        problems.append(f"{where}: the Python kernel stopped (a crash or exit() in your code, or Ctrl+C), so the "
                        "cells from there on were not checked.")
    return problems


def write_upload(raw: bytes, notebook: Path) -> Path:
    """The file to upload: the notebook as it is, named as the assignment's notebook, in ``for-canvas/``."""
    target = notebook.parent / UPLOAD_DIR / NOTEBOOK
    if target.resolve() == notebook.resolve():
        return target
    target.parent.mkdir(exist_ok=True)
    tmp = target.with_name(f".{NOTEBOOK}.tmp")
    tmp.write_bytes(raw)
    tmp.replace(target)
    return target


def check(notebook, run: bool = True, timeout: int = CELL_TIMEOUT, say=print) -> Report:
    """Check ``notebook`` as the grader will see it, what needs no kernel first (said at once), then its run;
    write the file to upload unless it cannot be read."""
    path = Path(notebook)
    report = Report()
    raw, nb = read_notebook(path, report)
    if nb is None:
        return report
    say(f"{path}: a notebook of {len(raw) / 1024:,.0f} KB with {len(nb['cells'])} cells. Checking it without "
        "running it (the file, the test cells, the written answers, the outputs) ...")
    report.problems += graded_cell_problems(nb) + answer_problems(nb) + output_problems(nb)
    for problem in report.problems:
        say(f"  - {problem}")
    say(f"  {len(report.problems) or 'no'} problem{'' if len(report.problems) == 1 else 's'} found without running it")
    node = validated(raw, path, report)
    if node is None:
        return report
    report.upload = write_upload(raw, path)
    if run:
        say(f"The file to upload is written ({report.upload}). Running every cell in a fresh Python kernel, as your "
            "own run does: this takes as long as running the whole notebook yourself (Ctrl+C stops it) ...")
        start = time.monotonic()
        report.problems += run_problems(node, path.resolve().parent, timeout, say)
        say(f"  the run took {time.monotonic() - start:,.0f} s")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ece662.submit", description="Check your notebook as the grader "
                                     "will see it, and write the file to upload to Canvas.")
    parser.add_argument("notebook", nargs="?", default=NOTEBOOK, help="your notebook (default: %(default)s)")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, metavar="SECONDS",
                        help="how long a cell may run (default: %(default)s)")
    args = parser.parse_args(argv)
    report = check(args.notebook, timeout=args.timeout, say=lambda line: print(line, flush=True))
    if report.problems:
        print(f"\n{len(report.problems)} problem{'s' if len(report.problems) > 1 else ''} found:")
        for number, problem in enumerate(report.problems, 1):
            print(f"{number}. {problem}")
    else:
        print("\nNo problems found.")
    if report.upload is None:
        print("Nothing to upload was written: fix the problem above and run this again.")
    else:
        print(f"\nUpload this file to the assignment on Canvas{' (it has the problems above)' * bool(report.problems)}:"
              f"\n{report.upload.resolve()}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
