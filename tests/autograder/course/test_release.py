"""release/ is exactly what nbgrader generates from assignment/, and it gives nothing away."""
import json

import nbformat
import pytest

from autograder.course.release import generate_release
from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, REPO


def test_committed_release_is_regenerated_without_diff(tmp_path):
    fresh = generate_release(tmp_path)
    committed = REPO / "release" / ASSIGNMENT / NOTEBOOK
    assert sorted(p.name for p in fresh.parent.iterdir()) == sorted(p.name for p in committed.parent.iterdir())
    assert json.loads(fresh.read_text()) == json.loads(committed.read_text()), (
        "release/ differs from assignment/: run `make release` and commit release/")


def test_release_has_no_solutions_or_hidden_tests():
    text = (REPO / "release" / ASSIGNMENT / NOTEBOOK).read_text()
    for secret in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "Model answer", "Rubric", "(target - current)",
                   "ln_structured(layer, name='weight'", "clone_model(model)\nfinetune("):
        assert secret not in text


def test_student_cells_keep_the_code_markers_and_seed_calls():
    nb = nbformat.read(REPO / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    cells = {c.get("id"): c.source for c in nb.cells}
    for cid in ("part1_code", "part2_code", "part4_code"):
        assert cells[cid].startswith("# *****START OF YOUR CODE (DO NOT DELETE/MODIFY THIS LINE)*****")
        assert cells[cid].rstrip().endswith("# *****END OF YOUR CODE (DO NOT DELETE/MODIFY THIS LINE)*****")
        assert "raise NotImplementedError()" in cells[cid]
    setup = cells["setup"]
    for call in ("data = get_CINIC10_data()", "test_data = [data['X_test'], data['y_test']]",
                 "model = load_model(path, mode=mode)", "test_model(model, test_data, mode=mode)"):
        assert call in setup
    # the framework is chosen in a cell of its own, with no nbgrader metadata: autograde never restores it
    mode_cell = next(c for c in nb.cells if c.get("id") == "mode")
    assert mode_cell.source.startswith("mode = 'torch'") and "nbgrader" not in mode_cell.metadata
    assert "/work" not in json.dumps(nb) and "/home" not in json.dumps(nb)
    order = [c.get("id") for c in nb.cells]
    assert order.index("part1_code") < order.index("part2_code")


def test_graded_cells_are_the_registry_and_one_call_each():
    """Grade ids, points, the points table and Part 4's settings come from ece662/registry.py; a graded cell is
    one call into it."""
    from autograder.course.release import graded_cells, part4_settings_cell, sync_with_registry
    from ece662.grading import registry

    source = REPO / "assignment" / ASSIGNMENT / NOTEBOOK
    assert not sync_with_registry(source, write=False), "run `make release`"
    assert graded_cells(REPO / "release" / ASSIGNMENT / NOTEBOOK) == registry.points()
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if registry.is_autograded(gid):
            assert f'run_test("{gid}", globals())' in cell.source and len(cell.source.splitlines()) == 2
    assert f"({registry.total():g} points)" in nb.cells[0].source
    for part, points in registry.parts().items():
        assert f"| {points:g}" in nb.cells[0].source, part
    assert next(c for c in nb.cells if c.get("id") == "part4_settings").source == part4_settings_cell()


def test_reweighting_a_test_is_one_registry_edit_and_a_release(tmp_path, monkeypatch):
    """The registry is the one place for points: release writes them into the cell and the points table."""
    import shutil
    from dataclasses import replace

    from autograder.course.release import graded_cells, sync_with_registry
    from ece662.grading import registry

    copy = tmp_path / NOTEBOOK
    shutil.copy(REPO / "assignment" / ASSIGNMENT / NOTEBOOK, copy)
    tests = tuple(replace(t, points=t.points + 1) if t.grade_id == "test_part2_scope" else t for t in registry.TESTS)
    monkeypatch.setattr(registry, "TESTS", tests)
    assert sync_with_registry(copy)  # it changed the file
    assert graded_cells(copy)["test_part2_scope"] == next(t.points for t in tests if t.grade_id == "test_part2_scope")
    intro = nbformat.read(copy, as_version=4).cells[0].source
    part2 = sum(t.points for t in tests if t.part == "part2")
    assert f"({registry.total():g} points)" in intro and f"| {part2:g} |" in next(
        line for line in intro.splitlines() if line.startswith("| Part 2 |"))
    assert not sync_with_registry(copy)  # and is now in step


def test_a_notebook_whose_graded_cells_are_not_the_registrys_is_refused(tmp_path):
    from autograder.course.release import sync_with_registry

    nb = nbformat.read(REPO / "assignment" / ASSIGNMENT / NOTEBOOK, as_version=4)
    next(c for c in nb.cells if c.get("id") == "test_part2_scope").metadata.nbgrader.grade_id = "test_part2_other"
    nbformat.write(nb, tmp_path / NOTEBOOK)
    with pytest.raises(RuntimeError, match=r"only in the notebook: \['test_part2_other'\]"):
        sync_with_registry(tmp_path / NOTEBOOK)


def test_solution_runs_top_to_bottom_with_every_public_check_passing(course_env, tmp_path):
    """The source notebook, run as a student would run it: no error, and every graded cell says what it checked."""
    from demo.end_to_end import execute_solution
    from ece662.grading import registry

    executed, _ = execute_solution(tmp_path)
    nb = nbformat.read(executed, as_version=4)
    errors = [(c.get("id"), o.get("evalue")) for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.get("output_type") == "error"]
    assert errors == []
    printed = {c.get("id"): "".join(o.get("text", "") for o in c.outputs) for c in nb.cells if c.cell_type == "code"}
    for test in registry.TESTS:
        expected = "Checked when graded" if test.public_levels is None else "Public check passed"
        assert printed[test.grade_id].startswith(expected), (test.grade_id, printed[test.grade_id])
