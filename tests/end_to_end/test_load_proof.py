"""Same work, same grade on a busy machine (``make test-load``; slow, not in ``make test``).

The same notebooks are graded three times into separate folders: once with the default limits to measure what
their cells need, then with a cell limit twice the largest cell's CPU time (and a notebook limit twice the
largest notebook's), once on the quiet machine and once beside 12 processes that spin on every core. The
kernel's limits count CPU time, so the loaded run takes several times longer in wall-clock time yet must give
the same grades.csv, every notebook ``graded``. Prints the figures.
"""
import csv
import math
import os
import subprocess
import sys
import time

import pytest

from autograder.course.pipeline import Limits, grade
from demo.examples import write_examples

pytestmark = pytest.mark.load_proof
NAMES = ["correct", "wrong_structured_hits_linear", "wrong_incremental_fraction"]
BUSY_PROCESSES = 12


def grade_rows(out):
    """grades.csv's rows without the detail column (it holds no score)."""
    with open(out / "grades.csv") as f:
        return {row["student_id"]: {k: v for k, v in row.items() if k != "detail"} for row in csv.DictReader(f)}


def timed_grade(submissions, out, limits):
    started = time.monotonic()
    results = grade(submissions, out, workers=2, limits=limits, verbose=False)
    return results, time.monotonic() - started


def describe(results, seconds):
    cells = [(max(r.phases["cells_cpu_s"].values()), max(r.phases["cells_s"].values())) for r in results]
    return (f"{seconds:.0f} s; largest cell per notebook (CPU s / wall s): "
            + ", ".join(f"{cpu:.1f}/{wall:.1f}" for cpu, wall in cells))


def test_a_busy_machine_gives_the_same_grades(course_env, tmp_path):
    submissions = tmp_path / "submissions"
    write_examples(submissions, NAMES)
    measured, seconds = timed_grade(submissions, tmp_path / "measured", Limits())
    print(f"\n{os.cpu_count()} cores; default limits: {describe(measured, seconds)}")
    cell = max(max(r.phases["cells_cpu_s"].values()) for r in measured)
    notebook = max(sum(r.phases["cells_cpu_s"].values()) for r in measured)
    limits = Limits(cell_timeout=max(2, math.ceil(2 * cell)), notebook_timeout=max(10, math.ceil(2 * notebook)))
    print(f"tight limits: --cell-timeout {limits.cell_timeout} --notebook-timeout {limits.notebook_timeout}")

    quiet, seconds = timed_grade(submissions, tmp_path / "quiet", limits)
    print(f"quiet: {describe(quiet, seconds)}")
    busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(BUSY_PROCESSES)]
    try:
        loaded, seconds = timed_grade(submissions, tmp_path / "loaded", limits)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"beside {BUSY_PROCESSES} busy processes: {describe(loaded, seconds)}")

    for results in (quiet, loaded):
        assert {r.student: r.status for r in results} == dict.fromkeys(NAMES, "graded"), [r.detail for r in results]
    assert grade_rows(tmp_path / "loaded") == grade_rows(tmp_path / "quiet")
