"""LimitedExecute (autograder/worker/execute.py) on small notebooks, as nbgrader's own tests run Execute: a quick
notebook runs as it would under Execute, and a cell stopped by a limit is marked so that nbgrader scores it zero
while the cells that ran keep their marks. (The limits' clocks and kernel deaths: tests/autograder/worker/test_time_limits.py.)"""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from nbgrader.utils import determine_grade

from autograder.worker.execute import CPU_LIMIT_ERROR, EVENT_CPU, EVENT_NOTEBOOK, TIME_LIMIT_ERROR, LimitedExecute
from ece662.grading import registry

TESTS = [t.grade_id for t in registry.TESTS]
LOOP = "while True:\n    pass"


def _graded(source, grade_id):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "solution": False,
                                 "points": 1, "schema_version": 3}
    return cell


def _run(nb, tmp_path, **limits):
    _, resources = LimitedExecute(kernel_name="python3", **limits).preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    return resources


def test_a_quick_notebook_runs_and_its_tests_keep_full_marks(tmp_path):
    not_run = _graded("raise SystemExit('run when graded')", registry.NOT_RUN_WHEN_GRADED[0])
    nb = new_notebook(cells=[new_markdown_cell("text"), new_code_cell("x = 1 + 1"),
                             _graded("print(x)", TESTS[0]), not_run])
    resources = _run(nb, tmp_path, timeout=5, notebook_timeout=10)
    _, answer, test, _ = nb.cells
    assert (answer.execution_count, test.execution_count) == (1, 2)
    assert test.outputs == [new_output("stream", name="stdout", text="2\n")] and determine_grade(test) == (1, 1)
    assert not_run.outputs == [new_output("stream", name="stdout", text="Not run when graded.\n")]
    assert resources["ece662_cell_status"] == {TESTS[0]: "ran"} and resources["ece662_events"] == []
    nbformat.validate(nb)


def test_cells_stopped_by_a_limit_score_zero_and_the_others_keep_their_marks(tmp_path):
    """Each cell may use 1 s of CPU time, the notebook 2 s: the first loop is stopped at its own limit, the
    second at what the notebook has left, and the last cell is not run."""
    nb = new_notebook(cells=[_graded(source, gid) for source, gid in zip([LOOP, "print('ran')", LOOP, "x = 1"],
                                                                           TESTS)])
    resources = _run(nb, tmp_path, timeout=1, notebook_timeout=2, backstop_factor=20)
    stopped, ran, used_up, skipped = nb.cells
    assert [e["event"] for e in resources["ece662_events"]] == [EVENT_CPU, EVENT_CPU, EVENT_NOTEBOOK]
    assert stopped.outputs[-1].ename == used_up.outputs[-1].ename == CPU_LIMIT_ERROR
    assert [o.ename for o in skipped.outputs] == [TIME_LIMIT_ERROR] and skipped.execution_count is None
    assert [determine_grade(cell)[0] for cell in nb.cells] == [0, 1, 0, 0]
    assert resources["ece662_cell_status"][TESTS[1]] == "ran"
    nbformat.validate(nb)
