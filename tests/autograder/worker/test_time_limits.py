"""The kernel's limits count CPU time, so a busy machine does not move them; every way a kernel ends is named.

``LimitedExecute`` runs small fixture notebooks on a plain Python kernel (as nbgrader's own preprocessor tests
do): a cell that needs 2 s of CPU under a 4 s CPU limit runs to the end while busy processes make it take
several times that in wall-clock time; a cell that loops forever is stopped after its CPU budget, one that
sleeps by the wall-clock backstop; a killed kernel and one that does not start say why.
"""
import json
import subprocess
import sys
import time

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder.worker.execute import (
    CPU_LIMIT_ERROR,
    EVENT_CPU,
    EVENT_DIED,
    EVENT_NOTEBOOK,
    EVENT_WALL,
    KernelStartError,
    LimitedExecute,
)
from autograder.worker.grade import status_of
from autograder.worker.results import STATUS_CRASHED, STATUS_TIMED_OUT
from ece662.grading import registry

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {seconds}:\n    pass\n"
GRADED = [t.grade_id for t in registry.TESTS]  # fixture cells borrow these ids so that their status is recorded


def notebook(*sources):
    cells = [new_code_cell(source) for source in sources]
    for cell, grade_id in zip(cells, GRADED):
        cell.metadata["nbgrader"] = {"grade_id": grade_id, "grade": True, "solution": False, "locked": True,
                                     "points": 1, "schema_version": 3}
    return new_notebook(cells=cells)


def run(nb, tmp_path, **limits):
    executor = LimitedExecute(kernel_name="python3", **limits)
    _, resources = executor.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    return resources


@pytest.fixture
def busy_machine():
    """Eight processes that spin as fast as they can beside the kernel (on 2 cores: each gets a fraction). Each
    is a session of its own: the kernel is one too, and Linux's autogroup shares the CPU between sessions, so hogs
    in one session would leave the kernel a whole core."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"], start_new_session=True) for _ in range(8)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_a_busy_machine_does_not_stop_a_cell_within_its_cpu_limit(tmp_path, busy_machine):
    resources = run(notebook(BURN.format(seconds=2)), tmp_path, timeout=4, notebook_timeout=60, backstop_factor=20)
    cell_id = GRADED[0]
    wall, = resources["ece662_timing"]["cells_s"].values()
    cpu, = resources["ece662_timing"]["cells_cpu_s"].values()
    assert resources["ece662_cell_status"][cell_id] == "ran", resources["ece662_events"]
    assert 2 <= cpu < 4 < wall  # a wall-clock limit of 4 s would have stopped it


def test_a_looping_cell_stops_at_its_cpu_budget_and_a_sleeping_one_at_the_backstop(tmp_path):
    nb = notebook("while True:\n    pass", "import time\ntime.sleep(1000)", "print('still graded')")
    resources = run(nb, tmp_path, timeout=1, notebook_timeout=60, backstop_factor=6)
    status, events = resources["ece662_cell_status"], resources["ece662_events"]
    assert [e["event"] for e in events] == [EVENT_CPU, EVENT_WALL], events
    loop, sleep = events
    assert 1 <= loop["cpu_s"] < 2 and loop["cpu_limit_s"] == 1
    assert 6 <= sleep["wall_s"] < 20 and sleep["cpu_s"] < 0.5 and sleep["wall_limit_s"] == 6
    assert "cpu time limit" in status[GRADED[0]] and "wall-clock backstop" in status[GRADED[1]]
    assert status[GRADED[2]] == "ran"
    assert any(o.get("ename") == CPU_LIMIT_ERROR for o in nb.cells[0].outputs)
    verdict, detail, retry = status_of(events, 1024)
    assert verdict == STATUS_TIMED_OUT and retry  # the wall-clock backstop may be the machine's doing
    assert status_of([loop], 1024) == (STATUS_TIMED_OUT, f"cell {loop['cell']} hit the cpu time limit "
                                       f"({loop['cpu_s']:g} s of CPU time in {loop['wall_s']:g} s; limit 1 s) and "
                                       "was interrupted", False)  # a CPU limit is not


def test_the_notebook_cpu_budget_is_shared_by_its_cells(tmp_path):
    nb = notebook(BURN.format(seconds=1.5), BURN.format(seconds=1.5), "x = 1")
    resources = run(nb, tmp_path, timeout=10, notebook_timeout=2, backstop_factor=10)
    events, status = resources["ece662_events"], resources["ece662_cell_status"]
    assert [e["event"] for e in events] == [EVENT_CPU, EVENT_NOTEBOOK], events
    assert events[0]["cpu_limit_s"] < 1 and events[1]["limit"] == "its 2 s of CPU time"
    assert status[GRADED[0]] == "ran" and status[GRADED[2]].startswith("not run, the notebook used up")
    assert status_of(events, 1024)[1].startswith(f"the notebook used up its 2 s of CPU time at cell {nb.cells[2].id}")


def test_a_killed_kernel_says_how_it_ended(tmp_path):
    nb = notebook("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
                  "import os, sys\nsys.__stderr__.write('about to leave\\n'); sys.__stderr__.flush()\nos._exit(3)",
                  "x = 1")
    resources = run(nb, tmp_path, timeout=30, notebook_timeout=120)
    died = [e for e in resources["ece662_events"] if e["event"] == EVENT_DIED]
    assert [e["cause"] for e in died] == ["the kernel was killed by signal 9 (memory limit?)",
                                          "the kernel exited with code 3 (its stderr ends: about to leave)"]
    assert resources["ece662_cell_status"][GRADED[2]] == "ran"
    status, detail, retry = status_of(resources["ece662_events"], 1024)
    assert status == STATUS_CRASHED and detail.startswith("the kernel was killed by signal 9 (memory limit?) in cell")
    assert retry  # a SIGKILL may be the OOM killer's, reaching for another notebook's memory
    assert not status_of([died[1]], 1024)[2]  # an exit code is the notebook's own doing


def test_a_kernel_that_hangs_at_start_says_so(tmp_path, monkeypatch):
    """(One that exits at start: tests/autograder/worker/test_unfinished.py, through the whole grading path.)"""
    spec = tmp_path / "jupyter" / "kernels" / "hangs"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [sys.executable, "-c", "import time; time.sleep(60)"],
                                                  "language": "python", "display_name": "hangs"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    started = time.monotonic()
    with pytest.raises(KernelStartError, match="^the kernel did not start within 3 s$"):
        LimitedExecute(kernel_name="hangs", startup_timeout=3).preprocess(notebook("x = 1"), {"metadata": {}})
    assert time.monotonic() - started < 30
