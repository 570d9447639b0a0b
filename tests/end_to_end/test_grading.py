"""Autograding through nbgrader: every example submission gets exactly the intended score.

One session-wide run of the grading pipeline grades all examples in
demo/examples.py (correct, wrong, tampering, hostile, invalid) with two
workers; the tests below read its results, CSV, feedback and gradebook.
"""
import csv
import importlib.util
import os
import re
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from autograder.course.pipeline import Limits, grade
from autograder.nbgrader_course import REPO
from autograder.worker.job import KERNEL_GONE, VERIFIED, Job, start_worker
from autograder.worker.results import GradingResult
from autograder.worker.sandbox import sandbox_unavailable_reason
from demo.examples import EXAMPLES, write_examples
from ece662.grading import registry
from ece662.grading.checks import MAX_RECIPE_DISTANCE

FULL = {t.grade_id: t.points for t in registry.TESTS}
PART1, PART2, PART4, PART5 = ({g for g in FULL if registry.part_of(g) == p}
                               for p in ("part1", "part2", "part4", "part5"))
LIMITS = Limits(cell_timeout=40, notebook_timeout=400, memory_mb=6144)

# Tests each example must FAIL (all other autograded tests must pass), and the status it must get.
EXPECTED = {
    "correct": (set(), "graded"),
    "correct_kthvalue_manual": (set(), "graded"),
    "correct_prune_remove": (set(), "graded"),
    # Part 4's recipe followed in other honest ways: each lands on the grader's run of it (see the test below)
    "correct_evaluates_each_epoch": (set(), "graded"),
    "correct_zeroes_after_each_step": (set(), "graded"),
    "correct_masks_gradients": (set(), "graded"),
    "correct_reprunes_after_remove": (set(), "graded"),
    "correct_other_thread_count": (set(), "graded"),
    "blank": (set(FULL), "graded"),
    # Part 4 prunes with Part 1's function, so the same mistake shows there too (a Part 4 model that is not
    # right credits no Part 4 accuracy either)
    "wrong_incremental_fraction": ({"test_part1_cumulative", "test_part1_final_model"} | PART4, "graded"),
    # one call on a fresh model lands on the target, so only the gradual schedule (two calls) overshoots
    "wrong_target_as_amount": ({"test_part1_cumulative", "test_part1_final_model", "test_part4_gradual",
                                "test_part4_accuracies"}, "graded"),
    # the gradual recipe prunes globally, as Part 1 asks
    "wrong_per_layer": ({"test_part1_global", "test_part1_final_model", "test_part4_gradual",
                         "test_part4_accuracies"}, "graded"),
    "wrong_structured_hits_linear": ({"test_part2_scope"}, "graded"),
    "wrong_structured_is_unstructured": (PART2, "graded"),
    "wrong_filter_bias_kept": ({"test_part2_scope"}, "graded"),
    "wrong_finetune_drops_masks": ({"test_part4_finetuned", "test_part4_accuracies"}, "graded"),
    "wrong_gradual_untrained": ({"test_part4_gradual", "test_part4_accuracies"}, "graded"),
    # a little less than the recipe (one batch fewer per epoch, both runs): neither model is the recipe's, and
    # Part 5 fine-tunes with the same `finetune` (the grader's run from the student's choice still reaches the baseline)
    "wrong_one_batch_fewer": (PART4 | {"test_part5_recipe"}, "graded"),
    # the recipe from another start than `one_shot_model` (a random 95% mask): the fine-tune earns nothing, the
    # gradual run its points
    "wrong_finetune_random_start": ({"test_part4_finetuned", "test_part4_accuracies"}, "graded"),
    # Part 5: the uniform choice is what the grader compares with; over the budget, the choice is not compared
    "correct_part5_uniform": (set(), "graded"),
    "wrong_part5_over_budget": ({"test_part5_budget", "test_part5_baseline"}, "graded"),
    # zeroed filters still cost their MACs, and a start with zero filters is not the course model cut down
    "wrong_part5_not_removed": (PART5, "graded"),
    # training more than the recipe, or on the test images: not the recipe's model, and the baseline test measures
    # the grader's own run from the student's start, which neither changes
    "wrong_part5_trained_longer": ({"test_part5_recipe"}, "graded"),
    "wrong_part5_trained_on_test": ({"test_part5_recipe"}, "graded"),
    # TensorFlow mode: the same mistakes in Parts 1, 2 and 5 lose the same points (Parts 4 and 5 left undone in the
    # Parts 1 and 2 ones)
    "tf_correct": (set(), "graded"),
    "tf_wrong_part5_trained_longer": ({"test_part5_recipe"}, "graded"),
    "tf_wrong_incremental_fraction": ({"test_part1_cumulative", "test_part1_final_model"} | PART4 | PART5, "graded"),
    "tf_wrong_per_layer": ({"test_part1_global", "test_part1_final_model"} | PART4 | PART5, "graded"),
    "tf_wrong_structured_hits_dense": ({"test_part2_scope"} | PART4 | PART5, "graded"),
    # the fake test_model stays defined, so every recorded accuracy after it is fake too
    "tamper_fake_test_model": ({"test_part1_accuracies", "test_part2_accuracies", "test_part4_accuracies"}, "graded"),
    # it replaces run_test itself, so no test cell records anything: nothing can be credited
    "tamper_patched_libraries": (set(FULL), "graded"),
    "tamper_hard_coded_results": ({"test_part1_accuracies"}, "graded"),
    "hostile_infinite_loop": (set(), "timed out"),
    "hostile_kills_kernel": (PART2, "crashed"),
    "hostile_memory_hog": (set(), "memory limit"),
    "hostile_deletes_test_cell": (set(), "graded"),
    "hostile_renames_grade_id": (set(), "graded"),
    "hostile_snoops": (set(), "graded"),
    "hostile_edits_model": (set(), "graded"),  # read-only in the sandbox; see the unsandboxed test below
    "invalid_corrupted_json": (set(FULL), "invalid notebook"),
    "invalid_not_a_notebook": (set(FULL), "invalid notebook"),
}


SANDBOXED = sandbox_unavailable_reason() is None
NEEDS_SANDBOX = {"hostile_edits_model", "hostile_snoops"}
# without a sandbox the model-editing example would really change the model the others are graded with
GRADED_HERE = [n for n in EXAMPLES if n not in NEEDS_SANDBOX or SANDBOXED]


TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
GRADED_HERE = [n for n in GRADED_HERE if TENSORFLOW or not n.startswith("tf_")]


@pytest.fixture(scope="session")
def graded(course_env, tmp_path_factory, request):
    if TENSORFLOW:
        request.getfixturevalue("tf_course_env")  # tensorflow.model beside torch.model
    base = tmp_path_factory.mktemp("grading")
    write_examples(base / "submissions", GRADED_HERE)
    results = grade(base / "submissions", base / "out", workers=2, limits=LIMITS, verbose=True)
    return base, {r.student: r for r in results}


def test_every_example_is_covered():
    assert set(EXPECTED) == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_gets_exactly_its_points(graded, name):
    _, results = graded
    if name in NEEDS_SANDBOX and not SANDBOXED:
        pytest.skip(sandbox_unavailable_reason())
    if name.startswith("tf_") and not TENSORFLOW:
        pytest.skip("TensorFlow is not installed (pip install -e '.[tensorflow]')")
    failing, status = EXPECTED[name]
    result = results[name]
    assert result.status == status, result.detail
    expected = {gid: 0.0 if gid in failing else float(points) for gid, points in FULL.items()}
    messages = {gid: v.message for gid, v in result.verdicts.items() if not v.passed}
    assert {gid: result.scores.get(gid) for gid in FULL} == expected, (result.detail, messages)


def test_messages_explain_the_classic_mistakes(graded):
    base, _ = graded
    feedback = (base / "out" / "feedback" / "wrong_incremental_fraction.html").read_text()
    assert "STILL UNPRUNED" in feedback and "57%" in feedback
    assert "per-layer pruning" in (base / "out" / "feedback" / "wrong_per_layer.html").read_text()
    assert "Linear layer" in (base / "out" / "feedback" / "wrong_structured_hits_linear.html").read_text()
    assert "does not start where Part 4 says" in (base / "out" / "feedback" / "wrong_finetune_random_start.html"
                                                  ).read_text()


# Part 4 done honestly in every way the examples know, and runs a little cheaper than the recipe
HONEST_PART4 = ("correct", "correct_kthvalue_manual", "correct_prune_remove", "correct_evaluates_each_epoch",
                "correct_zeroes_after_each_step", "correct_masks_gradients", "correct_reprunes_after_remove",
                "correct_other_thread_count", "tf_correct")
OFF_RECIPE = ("wrong_one_batch_fewer",)
DISTANCE = re.compile(r"lies ([0-9.]+|inf)% of the recipe's own training step")


def _recipe_distances(result) -> dict:
    """{Part 4 model test: how far the model lies from the grader's run of the recipe}, from the verdicts."""
    return {gid: float(DISTANCE.search(result.verdicts[gid].message).group(1)) / 100
            for gid in ("test_part4_finetuned", "test_part4_gradual")}


def test_every_honest_way_to_follow_the_recipe_lands_on_it(graded):
    """Each honest way lands far inside the tolerance; a little less work than the recipe lands outside it."""
    _, results = graded
    table = {name: _recipe_distances(results[name]) for name in HONEST_PART4 + OFF_RECIPE if name in results}
    print("\nPart 4: distance from the grader's run of the recipe (fine-tuned, gradual)")
    for name, distances in table.items():
        print(f"  {name:32s} {distances['test_part4_finetuned']:.4f} {distances['test_part4_gradual']:.4f}")
    honest = max(d for name in HONEST_PART4 if name in table for d in table[name].values())
    assert honest < 0.01, table
    assert all(d > MAX_RECIPE_DISTANCE for name in OFF_RECIPE for d in table[name].values()), table


def test_graded_cells_show_only_verdicts(graded):
    """Nothing the kernel printed in a graded cell reaches the graded notebook or the feedback."""
    base, results = graded
    for name in ("correct", "wrong_per_layer", "tamper_patched_libraries"):
        html = (base / "out" / "feedback" / f"{name}.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in html and "Recorded for grading" not in html  # the kernel's output
        cells = nbformat.read(results[name].graded_notebook, as_version=4).cells
        for cell in cells:
            if registry.is_autograded(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")):
                verdict = results[name].verdicts[cell.metadata.nbgrader.grade_id]
                assert len(cell.outputs) == 1
                assert (cell.outputs[0].get("text") == "Test passed.\n") == verdict.passed
                assert verdict.passed or verdict.message in html.replace("&#39;", "'").replace("&quot;", '"')


def test_each_model_is_measured_and_each_recipe_trained_once_for_the_whole_course(graded):
    """Correct notebooks produce bit-identical models and start Part 4 from the same weights: in the sandbox the
    verifiers share one store, so each measurement and each recipe run is made once for the whole course."""
    base, results = graded
    correct = ("correct", "correct_kthvalue_manual", "correct_prune_remove", "correct_evaluates_each_epoch",
               "correct_zeroes_after_each_step", "correct_masks_gradients", "correct_reprunes_after_remove",
               "hostile_deletes_test_cell")  # not correct_other_thread_count: another thread count may differ
    made = sum(results[name].phases["measurements_made"] for name in correct)
    if not SANDBOXED:  # no shared store where a kernel could write it: each verifier measures for itself
        assert made == len(correct) * results["correct"].phases["measurements_made"] > 0
        return
    # Parts 1 and 2's accuracies, Part 4's two accuracies and two recipe runs, Part 5's two recipe runs (from the
    # student's start and from the uniform one), the two per-image correctness measurements and the dense accuracy
    per_notebook = len(registry.UNSTRUCTURED_LEVELS) + len(registry.STRUCTURED_LEVELS) + 2 + 2 + 5
    assert made == per_notebook, {name: results[name].phases for name in correct}
    # whichever verifier came first (the order differs between runs and machines) made them; the others reused
    assert all(results[name].phases["measurements_made"] + results[name].phases["measurements_reused"]
               >= per_notebook for name in correct), {name: results[name].phases for name in correct}
    (store,) = (base / "out" / "measurements").glob("*/")
    assert len(list(store.glob("*.safetensors"))) >= 2  # the recipe runs, kept for reruns


def test_the_worker_reports_on_its_pipe_when_the_kernel_is_gone_and_when_it_is_verified(graded, tmp_path):
    """The course run starts the next notebook on these events, without polling anything."""
    base, _ = graded
    job = Job.load(base / "out" / "jobs" / "blank.json")
    job = replace(job, workdir=str(tmp_path / "work"), result=str(tmp_path / "result.json"),
                  log=str(tmp_path / "log"))
    job.save(tmp_path / "job.json")
    with open(job.log, "w") as log:
        worker = start_worker(tmp_path, job.threads, tmp_path / "job.json", log)
    events = b""
    while chunk := os.read(worker.progress, 256):
        events += chunk
    worker.proc.wait(timeout=600)
    worker.close()
    assert events.decode().splitlines() == [KERNEL_GONE, VERIFIED]
    assert GradingResult.load(tmp_path / "result.json").job_key == job.key


def test_grades_csv(graded):
    base, _ = graded
    with open(base / "out" / "grades.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(GRADED_HERE)
    parts, auto = registry.parts(), f"autograded (/{registry.autograded_total():g})"
    for part in ("part1", "part2", "part4"):
        assert rows["correct"][f"{part} (/{parts[part]:g})"] == f"{parts[part]:g}"
    scope = registry.test("test_part2_scope").points
    assert rows["wrong_structured_hits_linear"][auto] == f"{registry.autograded_total() - scope:g}"
    assert rows["hostile_kills_kernel"]["status"] == "crashed"


def test_a_notebook_the_grader_did_not_finish_says_why_and_has_no_total(graded):
    """The looping cell stops at its CPU limit, the killed kernel says how it ended; neither is graded again alone
    (load explains neither), and grades.csv gives neither a total."""
    base, results = graded
    with open(base / "out" / "grades.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    died, looped = results["hostile_kills_kernel"], results["hostile_infinite_loop"]
    assert died.detail.startswith("the kernel exited with code 1 in cell") and not died.retry_alone
    assert "hit the cpu time limit" in looped.detail and "limit 40 s" in looped.detail and not looped.retry_alone
    for name in ("hostile_kills_kernel", "hostile_infinite_loop"):
        assert rows[name]["detail"] == results[name].detail[:300] and rows[name][f"total (/{registry.total():g})"] == ""


def test_merged_gradebook_holds_everyone_with_the_same_scores(graded):
    from nbgrader.api import Gradebook

    base, results = graded
    with Gradebook(f"sqlite:///{base / 'out' / 'gradebook.db'}") as gb:
        students = {s.id for s in gb.students}
        correct = gb.find_submission("pruning", "correct")
        score = correct.score
    graded_students = {n for n, r in results.items() if r.status != "invalid notebook"}
    assert graded_students <= students
    assert score == registry.autograded_total()


def test_sandbox_hides_solutions_gradebook_and_host(graded):
    if sandbox_unavailable_reason():
        pytest.skip(sandbox_unavailable_reason())
    base, results = graded
    graded_nb = Path(results["hostile_snoops"].graded_notebook)
    cells = nbformat.read(graded_nb, as_version=4).cells
    text = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)
    assert "READABLE: []" in text and "WRITABLE: []" in text and "GRADES CHANGED" not in text
    assert not (REPO / "HACKED").exists() and not (graded_nb.parent.parent / "HACKED").exists()
    con = sqlite3.connect(base / "out" / "gradebook.db")
    assert con.execute("SELECT COUNT(*) FROM grade WHERE manual_score = 100").fetchone()[0] == 0
    assert results["hostile_snoops"].sandbox == "bubblewrap"


def test_rerun_is_idempotent_and_regrades_only_what_changed(graded, capsys):
    base, results = graded
    subs, out = base / "submissions", base / "out"
    before = {p.name: p.read_text() for p in (out / "results").glob("*.json")}
    shutil.copy(subs / "correct.ipynb", subs / "wrong_per_layer.ipynb")  # the student resubmits a fix
    (subs / "blank.ipynb").unlink()  # and one submission is withdrawn
    again = {r.student: r for r in grade(subs, out, workers=2, limits=LIMITS, verbose=True)}
    assert "1 graded now" in capsys.readouterr().out
    assert again["wrong_per_layer"].autograded_score() == registry.autograded_total()
    assert "blank" not in again
    for name, text in before.items():
        if name not in ("wrong_per_layer.json", "blank.json"):
            assert (out / "results" / name).read_text() == text


def test_unsandboxed_tampering_is_detected(course_env, tmp_path, monkeypatch):
    models = tmp_path / "models"  # a copy: the example really appends to the model file
    models.mkdir()
    shutil.copy(course_env, models / "torch.model")
    monkeypatch.setenv("ECE662_MODEL_DIR", str(models))
    write_examples(tmp_path / "subs", ["hostile_edits_model", "correct"])
    results = {r.student: r for r in grade(tmp_path / "subs", tmp_path / "out", workers=1, limits=LIMITS,
                                           sandbox="off", verbose=False)}
    tampered = results["hostile_edits_model"]
    assert tampered.status == "tampered" and str(models / "torch.model") in tampered.detail
    assert tampered.autograded_score() == 0
    # graded first (one worker, sorted order), with the model intact: no false alarm
    assert results["correct"].status == "graded"
    assert results["correct"].autograded_score() == registry.autograded_total()
