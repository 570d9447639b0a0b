"""Feedback hides the hidden tests (autograder/course/hidden_tests.py), one step at a time on a small notebook."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from autograder.course.hidden_tests import HideTestTracebacks


def _cell(source, grade: bool, outputs):
    cell = new_code_cell(source, outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": grade, "grade_id": "t" if grade else "c", "locked": grade,
                                 "solution": not grade, "points": 1 if grade else 0, "schema_version": 3}
    return cell


def test_a_test_cells_error_keeps_only_its_last_line_and_other_cells_are_untouched():
    trace = ["Traceback (most recent call last)", "  ### BEGIN HIDDEN TESTS\n  assert secret == 3",
             "AssertionError: wrong sparsity"]
    error = new_output("error", ename="AssertionError", evalue="wrong sparsity", traceback=trace)
    student = _cell("x = 1", False, [new_output("error", ename="ValueError", evalue="v", traceback=["a", "b"])])
    nb = new_notebook(cells=[new_markdown_cell("text"), _cell("run_test('t', globals())", True, [error]), student])
    HideTestTracebacks().preprocess(nb, {})
    assert nb.cells[1].outputs[0].traceback == ["AssertionError: wrong sparsity"]
    assert nb.cells[2].outputs[0].traceback == ["a", "b"]  # the student's own cell keeps its traceback
    nbformat.validate(nb)
