"""The Gradescope bundle: its layout, and run_autograder's logic on a fake /autograder folder."""
import json
import zipfile

from autograder.examples import write_examples
from autograder.gradescope import build, run
from autograder.pipeline import Limits


def test_bundle_has_gradescope_layout(course_env, tmp_path):
    archive = build(tmp_path / "gs")
    names = set(zipfile.ZipFile(archive).namelist())
    assert {"setup.sh", "run_autograder", "pyproject.toml", "gradebook.db", "ece662/models/torch.model",
            "ece662/checks.py", "autograder/worker.py"} <= names
    assert not any(n.startswith(("assignment/", "release/", "tests/")) for n in names)  # no solutions shipped
    for script in ("setup.sh", "run_autograder"):
        assert zipfile.ZipFile(archive).getinfo(script).external_attr >> 16 & 0o111, f"{script} is not executable"


def test_run_autograder_writes_results_json(course_env, tmp_path):
    root = tmp_path / "autograder"
    with zipfile.ZipFile(build(tmp_path / "gs")) as z:
        z.extractall(root / "source")
    write_examples(root / "submission", ["wrong_structured_hits_linear"])
    payload = run(root, limits=Limits(cell_timeout=40, notebook_timeout=400))
    saved = json.loads((root / "results" / "results.json").read_text())
    assert saved == payload
    tests = {t["name"]: t for t in saved["tests"]}
    assert set(tests) == {"test_part1_cumulative", "test_part1_global", "test_part1_weights_only",
                          "test_part1_final_model", "test_part1_accuracies", "test_part2_filters",
                          "test_part2_scope", "test_part2_accuracies"}
    assert saved["score"] == 18 and tests["test_part2_scope"]["score"] == 0
    assert "Linear layer" in tests["test_part2_scope"]["output"]
    assert all(t["visibility"] == "visible" and "max_score" in t for t in saved["tests"])
    assert saved["output"].startswith("status: graded")
    assert "BEGIN HIDDEN TESTS" not in json.dumps(saved) and "STRUCTURED_LEVELS" not in json.dumps(saved)


def test_run_autograder_without_a_notebook(tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "answers.pdf").write_bytes(b"%PDF")
    payload = run(root)
    assert payload["score"] == 0 and "No .ipynb" in payload["output"]
