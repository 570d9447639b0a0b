"""release/ is exactly what nbgrader generates from assignment/, and it gives nothing away."""
import json

import nbformat

from autograder.course import ASSIGNMENT, NOTEBOOK, REPO, generate_release


def test_committed_release_is_regenerated_without_diff(tmp_path):
    fresh = generate_release(tmp_path)
    committed = REPO / "release" / ASSIGNMENT / NOTEBOOK
    assert sorted(p.name for p in fresh.parent.iterdir()) == sorted(p.name for p in committed.parent.iterdir())
    assert json.loads(fresh.read_text()) == json.loads(committed.read_text()), (
        "release/ differs from assignment/: run `make release` and commit release/")


def test_release_has_no_solutions_or_hidden_tests():
    text = (REPO / "release" / ASSIGNMENT / NOTEBOOK).read_text()
    for secret in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "Model answer", "Rubric", "(target - current)",
                   "ln_structured(layer, name='weight'", "UNSTRUCTURED_LEVELS"):
        assert secret not in text


def test_student_cells_keep_the_code_markers_and_seed_calls():
    nb = nbformat.read(REPO / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    cells = {c.get("id"): c.source for c in nb.cells}
    for cid in ("part1_code", "part2_code"):
        assert cells[cid].startswith("# *****START OF YOUR CODE (DO NOT DELETE/MODIFY THIS LINE)*****")
        assert cells[cid].rstrip().endswith("# *****END OF YOUR CODE (DO NOT DELETE/MODIFY THIS LINE)*****")
        assert "raise NotImplementedError()" in cells[cid]
    setup = cells["setup"]
    for call in ("data = get_CINIC10_data()", "test_data = [data['X_test'], data['y_test']]", "mode = 'torch'",
                 "model = load_model(path, mode=mode)", "test_model(model, test_data, mode=mode)"):
        assert call in setup
    assert "/work" not in json.dumps(nb) and "/home" not in json.dumps(nb)
    order = [c.get("id") for c in nb.cells]
    assert order.index("part1_code") < order.index("part2_code")


def test_points_add_up_to_what_the_notebook_announces():
    nb = nbformat.read(REPO / "assignment" / ASSIGNMENT / NOTEBOOK, as_version=4)
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
              for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    part1 = sum(v for k, v in points.items() if k.startswith("test_part1"))
    part2 = sum(v for k, v in points.items() if k.startswith("test_part2"))
    assert (part1, part2, points["q1_answer"], points["q2_answer"]) == (10, 10, 5, 5)
    assert "(30 points)" in nb.cells[0].source
