"""The verifier on evidence written by the kernel-side code, without a kernel: points per rule, in seconds.

Evidence is recorded exactly as a graded cell records it (``notebook_tests.record`` into a folder), then
``autograder.verify.verify`` decides every test against the course checkpoint and test data.
"""
import math

import pytest
import torch
import torch.nn.utils.prune as prune

from autograder.verify import RAN, TrustedData, verify
from ece662 import data_utils, evidence, notebook_tests, registry
from ece662.pruning_helper import global_sparsity, load_model, model_path, prunable_layers, test_model


def prune_to(model, target):
    params = [(layer, "weight") for _, layer in prunable_layers(model)]
    current = global_sparsity(model)
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured,
                              amount=max(0.0, (target - current) / (1 - current)))


def prune_compounding(model, target):
    prune.global_unstructured([(layer, "weight") for _, layer in prunable_layers(model)],
                              pruning_method=prune.L1Unstructured, amount=0.1)


def prune_one_weight(model, target):
    prune.global_unstructured([(layer, "weight") for _, layer in prunable_layers(model)],
                              pruning_method=prune.L1Unstructured, amount=1)


def prune_filters(model, level):
    for _, layer in prunable_layers(model):
        if isinstance(layer, torch.nn.Conv2d):
            prune.ln_structured(layer, "weight", amount=level, n=2, dim=0)


def namespace(part1=prune_to, part2=prune_filters):
    """The objects a notebook would hold after Parts 1 and 2 with these functions."""
    data = data_utils.get_CINIC10_data(verbose=False)
    test_data = [data["X_test"], data["y_test"]]
    model = load_model(model_path("torch"))
    unstructured = {}
    for level in registry.UNSTRUCTURED_LEVELS:
        part1(model, level)
        unstructured[level] = test_model(model, test_data)
    structured = {}
    for level in registry.STRUCTURED_LEVELS:
        fresh = load_model(model_path("torch"))
        part2(fresh, level)
        structured[level] = test_model(fresh, test_data)
    return {"mode": "torch", "test_data": test_data, "model": model, "prune_unstructured_to": part1,
            "prune_filters": part2, "unstructured_results": unstructured, "structured_results": structured}


PARTS_1_2 = [t for t in registry.TESTS if t.part in ("part1", "part2")]


def grade(ns, folder, tests=PARTS_1_2, monkeypatch=None):
    """Record every test's evidence as the grading kernel would, then verify; {grade_id: points}."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv(evidence.ENV_DIR, str(folder))
    monkeypatch.setattr(notebook_tests, "_recorded", set())
    for test in tests:
        notebook_tests.run_test(test.grade_id, ns)
    verdicts = verify(folder, {t.grade_id: RAN for t in tests}, TrustedData(model_path("torch").parent,
                                                                             data_utils.dataset_root()))
    verdicts = {t.grade_id: verdicts[t.grade_id] for t in tests}
    return {t.grade_id: t.points if verdicts[t.grade_id].passed else 0 for t in tests}, verdicts


def part_points(points, part):
    return sum(v for g, v in points.items() if registry.part_of(g) == part)


def test_correct_work_gets_full_marks(course_env, tmp_path, monkeypatch):
    points, verdicts = grade(namespace(), tmp_path / "evidence", monkeypatch=monkeypatch)
    assert all(v.passed for v in verdicts.values()), {g: v.message for g, v in verdicts.items() if not v.passed}
    assert sum(points.values()) == 20


def test_the_compounding_loop_keeps_six_of_ten(course_env, tmp_path, monkeypatch):
    points, verdicts = grade(namespace(part1=prune_compounding), tmp_path / "evidence", monkeypatch=monkeypatch)
    assert part_points(points, "part1") == 6
    assert "fraction of the weights STILL UNPRUNED" in verdicts["test_part1_cumulative"].message
    assert "(target - current)" not in verdicts["test_part1_cumulative"].message  # diagnoses, no code handed over


def test_a_one_weight_pruner_gets_nothing_for_part1(course_env, tmp_path, monkeypatch):
    points, verdicts = grade(namespace(part1=prune_one_weight), tmp_path / "evidence", monkeypatch=monkeypatch)
    assert part_points(points, "part1") == 0
    assert "does not prune enough" in verdicts["test_part1_accuracies"].message
    assert part_points(points, "part2") == 10


def test_cells_that_did_not_run_and_missing_evidence_score_zero(course_env, tmp_path, monkeypatch):
    folder = tmp_path / "evidence"
    grade(namespace(), folder, monkeypatch=monkeypatch)
    (folder / registry.PART2_RESULTS.filename).unlink()
    status = {t.grade_id: RAN for t in PARTS_1_2}
    status["test_part1_global"] = "it ran past the 120 s cell time limit and was interrupted"
    verdicts = verify(folder, status, TrustedData(model_path("torch").parent, data_utils.dataset_root()))
    assert not verdicts["test_part1_global"].passed and "time limit" in verdicts["test_part1_global"].message
    assert verdicts["test_part1_cumulative"].passed  # the same trace still credits the cells that ran
    assert not verdicts["test_part2_accuracies"].passed
    assert "`structured_results`: it was not recorded" in verdicts["test_part2_accuracies"].message


def test_recorded_accuracies_must_be_the_real_ones(course_env, tmp_path, monkeypatch):
    ns = namespace()
    ns["unstructured_results"] = {**ns["unstructured_results"], 0.5: ns["unstructured_results"][0.5] + 0.05}
    ns["structured_results"] = {k: float("nan") if k == 0.8 else v for k, v in ns["structured_results"].items()}
    points, verdicts = grade(ns, tmp_path / "evidence", monkeypatch=monkeypatch)
    assert points["test_part1_accuracies"] == 0 and "at 50% scores" in verdicts["test_part1_accuracies"].message
    assert points["test_part2_accuracies"] == 0 and "non-finite" in verdicts["test_part2_accuracies"].message
    assert sum(points.values()) == 15


def test_evidence_from_another_model_is_refused(course_env, tmp_path, monkeypatch):
    """A trace of a re-trained (or random) model does not match the grader's checkpoint."""
    ns = namespace()
    original_load = notebook_tests._fresh_model

    def other_model(mode):
        model = original_load(mode)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)
        return model

    monkeypatch.setattr(notebook_tests, "_fresh_model", other_model)
    points, verdicts = grade(ns, tmp_path / "evidence", monkeypatch=monkeypatch)
    assert points["test_part1_weights_only"] == 0 and "changed" in verdicts["test_part1_weights_only"].message
    assert points["test_part2_scope"] == 0


def test_results_are_read_as_plain_data(tmp_path):
    item = registry.PART1_RESULTS

    class Liar(float):
        def __eq__(self, other):
            return True

        def __sub__(self, other):
            return 0.0

    evidence.write_results(tmp_path, item, {0.1: Liar(0.5), "0.2": 0.4, 0.3: [1], 0.4: math.inf, 0.5: True})
    read = evidence.read_results(tmp_path, item)
    assert type(read[0.1]) is float and read[0.1] == 0.5
    assert read["0.2"] == 0.4  # a string key stays a string: it is not level 0.2
    assert all(isinstance(read[k], evidence.NotANumber) for k in (0.3, 0.4, 0.5))


@pytest.mark.parametrize("corrupt", ["header_size", "extra_tensor", "wrong_shape", "nan", "symlink"])
def test_malformed_model_evidence_fails_cleanly(course_env, tmp_path, corrupt):
    import json
    import os

    import numpy as np
    from safetensors.numpy import save_file

    item = registry.PART1_MODEL
    state = notebook_tests.canonical_state(load_model(model_path("torch")))
    shapes = {k: v.shape for k, v in state.items()}
    path = tmp_path / item.filename
    meta = {"format": evidence.FORMAT, "version": evidence.VERSION, "kind": "model", "source": "model",
            "framework": "torch"}
    if corrupt == "header_size":
        path.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    elif corrupt == "symlink":
        os.symlink("/dev/zero", path)
    else:
        if corrupt == "extra_tensor":
            state["payload"] = np.zeros(3, np.float32)
        if corrupt == "wrong_shape":
            state["classifier.4.weight"] = np.zeros((11, 128), np.float32)
        if corrupt == "nan":
            state["features.0.bias"][0] = np.nan
        save_file(state, str(path), metadata={k: str(v) for k, v in meta.items()})
    with pytest.raises(evidence.EvidenceError) as failure:
        evidence.read_model(tmp_path, item, shapes)
    assert json.dumps(str(failure.value))  # a plain message for the student
