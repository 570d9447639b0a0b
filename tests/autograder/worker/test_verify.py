"""The verifier on evidence written by the kernel-side code, without a kernel: points per rule, in seconds.

Evidence is recorded exactly as a graded cell records it (``cells.record`` into a folder), then
``autograder.worker.verify.verify`` decides every test against the course checkpoint, test data and its own run of
Part 4's recipe. Totals come from the registry.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as prune

from autograder.reference import solution
from autograder.worker.verify import RAN, TrustedData, verify
from ece662 import data_utils
from ece662.grading import cells, evidence, registry
from ece662.grading.registry import PART4
from ece662.compaction import remove_zero_filters
from ece662.pruning_helper import clone_model, load_model, model_path, prunable_layers, test_model, train_epoch

reference = solution("torch")


def part_points(part: str) -> float:
    return registry.parts()[part]


def prune_compounding(model, target):
    prune.global_unstructured([(layer, "weight") for _, layer in prunable_layers(model)],
                              pruning_method=prune.L1Unstructured, amount=0.1)


def prune_one_weight(model, target):
    prune.global_unstructured([(layer, "weight") for _, layer in prunable_layers(model)],
                              pruning_method=prune.L1Unstructured, amount=1)


def filters_without_bias(model, level):
    """Last year's Part 2: whole filters zeroed, their biases kept."""
    for _, layer in prunable_layers(model):
        if isinstance(layer, torch.nn.Conv2d):
            prune.ln_structured(layer, "weight", amount=level, n=2, dim=0)


def filters_kept_scaled(model, level):
    """The right filters zeroed, every kept filter multiplied by -3."""
    reference.prune_filters(model, level)
    with torch.no_grad():
        for _, layer in prunable_layers(model):
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight_orig.mul_(-3)


def _data():
    data = data_utils.get_CINIC10_data(verbose=False)
    return data, [data["X_test"], data["y_test"]], data["X_train"][:PART4.images], data["y_train"][:PART4.images]


def finetuned(one_shot):
    data, _, X, y = _data()
    model = clone_model(one_shot)
    reference.finetune(model, PART4.epochs, X, y, PART4.lr, PART4.momentum)
    return model


def gradual(part1=reference.prune_unstructured_to):
    data, _, X, y = _data()
    model = load_model(model_path("torch"))
    optimizer = torch.optim.SGD(model.parameters(), lr=PART4.lr, momentum=PART4.momentum)
    for epoch in range(PART4.epochs):
        train_epoch(model, optimizer, X, y, seed=epoch)
        if epoch < PART4.epochs - 1:
            part1(model, PART4.target * (epoch + 1) / (PART4.epochs - 1))
    return model


def namespace(part1=reference.prune_unstructured_to, part2=reference.prune_filters, part4=None, part5=None):
    """The objects a notebook would hold after Parts 1, 2 (and 4 and 5, given their two models) with these
    functions."""
    data, test_data, _, _ = _data()
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
    ns = {"mode": "torch", "test_data": test_data, "model": model, "prune_unstructured_to": part1,
          "prune_filters": part2, "unstructured_results": unstructured, "structured_results": structured}
    if part4 is not None:
        tuned, grad = part4
        ns.update(finetuned_model=tuned, gradual_model=grad, part4_results={
            "after_training": test_model(tuned, test_data), "during_training": test_model(grad, test_data)})
    if part5 is not None:
        ns.update(part5_start=part5[0], part5_model=part5[1])
    return ns


@pytest.fixture(scope="module")
def trusted(course_env):
    """The grader's data: one per module, so Part 4's recipe is run once per distinct start, as in a course."""
    return TrustedData(model_path("torch").parent, data_utils.dataset_root())


@pytest.fixture(scope="module")
def one_shot(course_env):
    model = load_model(model_path("torch"))
    reference.prune_unstructured_to(model, PART4.target)
    return model


@pytest.fixture(scope="module")
def honest_part4(one_shot):
    return finetuned(one_shot), gradual()


@pytest.fixture(scope="module")
def honest_part5(course_env):
    """Part 5 as the notebook builds it: the uniform choice, compact, and a copy trained with the recipe."""
    start = load_model(model_path("torch"))
    reference.keep_filters(start, (16, 32, 32))
    start = remove_zero_filters(start)
    return start, finetuned(start)


def grade(ns, folder, trusted, monkeypatch, tests=registry.TESTS):
    """Record every test's evidence as the grading kernel would, then verify; ({grade_id: points}, verdicts)."""
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setenv(evidence.ENV_DIR, str(folder))
    monkeypatch.setattr(cells, "_recorded", set())
    for test in tests:
        try:
            cells.run_test(test.grade_id, ns)
        except KeyError:
            pass  # a part the namespace does not have: nothing recorded, as in a notebook that stopped there
    verdicts = verify(folder, {t.grade_id: RAN for t in tests}, trusted)
    verdicts = {t.grade_id: verdicts[t.grade_id] for t in tests}
    return {t.grade_id: t.points if verdicts[t.grade_id].passed else 0 for t in tests}, verdicts


def points_of(points, part):
    return sum(v for g, v in points.items() if registry.part_of(g) == part)


def failures(verdicts):
    return {g: v.message for g, v in verdicts.items() if not v.passed}


def test_correct_work_gets_full_marks(tmp_path, monkeypatch, trusted, honest_part4, honest_part5):
    points, verdicts = grade(namespace(part4=honest_part4, part5=honest_part5), tmp_path / "evidence", trusted,
                             monkeypatch)
    assert failures(verdicts) == {}
    assert sum(points.values()) == registry.autograded_total()


def test_the_compounding_loop_keeps_six_of_ten(tmp_path, monkeypatch, trusted):
    points, verdicts = grade(namespace(part1=prune_compounding), tmp_path / "evidence", trusted, monkeypatch)
    assert points_of(points, "part1") == part_points("part1") - 4  # cumulative (3) and final model (1)
    assert "fraction of the weights STILL UNPRUNED" in verdicts["test_part1_cumulative"].message
    assert "(target - current)" not in verdicts["test_part1_cumulative"].message  # diagnoses, no code handed over


def test_a_one_weight_pruner_gets_nothing_for_part1(tmp_path, monkeypatch, trusted):
    points, verdicts = grade(namespace(part1=prune_one_weight), tmp_path / "evidence", trusted, monkeypatch)
    assert points_of(points, "part1") == 0
    assert "does not prune enough" in verdicts["test_part1_accuracies"].message
    assert points_of(points, "part2") == part_points("part2")


def test_a_filter_is_its_weights_and_its_bias(tmp_path, monkeypatch, trusted):
    points, verdicts = grade(namespace(part2=filters_without_bias), tmp_path / "evidence", trusted, monkeypatch)
    assert failures(verdicts).keys() == {"test_part2_scope"} | {t.grade_id for t in registry.TESTS
                                                                 if t.part in ("part4", "part5")}
    assert "its weights AND its bias" in verdicts["test_part2_scope"].message
    assert "bias[c]" in verdicts["test_part2_scope"].message


def test_kept_filters_must_keep_their_values(tmp_path, monkeypatch, trusted):
    """Zeroing the right filters earns the filter test only: scaled kept filters are no pruning to credit."""
    points, verdicts = grade(namespace(part2=filters_kept_scaled), tmp_path / "evidence", trusted, monkeypatch)
    assert points["test_part2_filters"] == registry.test("test_part2_filters").points
    assert points["test_part2_scope"] == points["test_part2_accuracies"] == 0
    assert "not zero differ from the course model's" in verdicts["test_part2_accuracies"].message


def test_part1_final_model_must_keep_its_values(tmp_path, monkeypatch, trusted):
    ns = namespace()
    with torch.no_grad():
        for p in ns["model"].parameters():
            p.mul_(0.5)  # halved after the sweep: still 80% zero, the same zeros
    points, verdicts = grade(ns, tmp_path / "evidence", trusted, monkeypatch,
                             tests=[t for t in registry.TESTS if t.part == "part1"])
    assert failures(verdicts).keys() == {"test_part1_final_model"}
    assert "not the course model with weights set to zero" in verdicts["test_part1_final_model"].message


def _noise_and_temperature(model):
    """No training: 1e-5 relative noise on every kept weight and the last layer scaled (a 'temperature')."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(p * 1e-5 * torch.randn(p.shape, generator=generator))
        model.classifier[4].weight.mul_(1.3)
        model.classifier[4].bias.mul_(1.3)
    return model


def _last_layer_only(model):
    """Only the last Linear layer trained, on 8 batches."""
    _, _, X, y = _data()
    for p in model.parameters():
        p.requires_grad_(False)
    last = list(model.classifier)[-1]
    for p in last.parameters():
        p.requires_grad_(True)
    train_epoch(model, torch.optim.SGD(last.parameters(), lr=PART4.lr, momentum=PART4.momentum), X[:1024],
                y[:1024], seed=0)
    return model


def _dense_then_pruned():
    """'Gradual' done as dense training with the recipe, then one prune to the target after it."""
    _, _, X, y = _data()
    model = load_model(model_path("torch"))
    reference.finetune(model, PART4.epochs, X, y, PART4.lr, PART4.momentum)
    reference.prune_unstructured_to(model, PART4.target)
    return model


def _one_epoch(one_shot):
    _, _, X, y = _data()
    model = clone_model(one_shot)
    reference.finetune(model, 1, X, y, PART4.lr, PART4.momentum)
    return model


def _random_start():
    """The recipe's fine-tuning from a random 95% mask of the course model, not from `one_shot_model`."""
    _, _, X, y = _data()
    torch.manual_seed(0)
    model = load_model(model_path("torch"))
    for _, layer in prunable_layers(model):
        prune.random_unstructured(layer, "weight", amount=PART4.target)
    reference.finetune(model, PART4.epochs, X, y, PART4.lr, PART4.momentum)
    return model


def _pruned_at_once():
    """Gradual pruning with the whole target pruned after the first epoch: another schedule."""
    return gradual(lambda model, level: reference.prune_unstructured_to(model, PART4.target))


FORGERIES = {  # name: (finetuned_model, gradual_model) from the honest pair, and the tests they must fail
    "noise_and_temperature": (lambda h, o: (_noise_and_temperature(clone_model(o)),
                                            _noise_and_temperature(clone_model(o))),
                              {"test_part4_finetuned", "test_part4_gradual"}),
    "last_layer_only": (lambda h, o: (_last_layer_only(clone_model(o)), h[1]), {"test_part4_finetuned"}),
    "gradual_is_the_finetuned_model": (lambda h, o: (h[0], clone_model(h[0])), {"test_part4_gradual"}),
    "dense_training_then_one_prune": (lambda h, o: (h[0], _dense_then_pruned()), {"test_part4_gradual"}),
    "one_epoch_instead_of_three": (lambda h, o: (_one_epoch(o), h[1]), {"test_part4_finetuned"}),
    "pruned_all_at_once": (lambda h, o: (h[0], _pruned_at_once()), {"test_part4_gradual"}),
    "finetuned_from_a_random_mask": (lambda h, o: (_random_start(), h[1]), {"test_part4_finetuned"}),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_part4_forgeries_earn_nothing_for_the_model_they_fake(name, tmp_path, monkeypatch, trusted, honest_part4,
                                                              one_shot):
    build, faked = FORGERIES[name]
    part4 = [t for t in registry.TESTS if t.part == "part4"]
    points, verdicts = grade(namespace(part4=build(honest_part4, one_shot)), tmp_path / "evidence", trusted,
                             monkeypatch, tests=part4)
    assert failures(verdicts).keys() == faked | {"test_part4_accuracies"}
    assert all("recipe" in verdicts[g].message for g in faked)


def test_a_forward_pass_between_epochs_changes_nothing(honest_part4):
    """``train_epoch`` leaves a pruned layer's ``weight`` as its last step made it, so evaluating the model before
    each pruning step (a forward pass) gives the very same gradual model: every honest way ranks the same weights."""
    _, test_data, _, _ = _data()

    def evaluate_then_prune(model, target):
        test_model(model, test_data)
        reference.prune_unstructured_to(model, target)

    plain, evaluated = cells.canonical_state(honest_part4[1]), cells.canonical_state(gradual(evaluate_then_prune))
    assert all(np.array_equal(plain[k], evaluated[k]) for k in plain)


def test_part4_is_compared_with_the_recipe_only_when_graded(one_shot, honest_part4, capsys, monkeypatch):
    """A student's own run checks the zeros of Part 4 and says what is left for grading."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    forged = _noise_and_temperature(clone_model(one_shot))
    ns = namespace(part4=(forged, honest_part4[1]))
    cells.run_test("test_part4_finetuned", ns)
    assert "compared with the grader's own run of the recipe when graded" in capsys.readouterr().out


def test_recipe_runs_once_per_distinct_start(trusted, honest_part4, tmp_path, monkeypatch):
    """Every correct notebook starts Part 4 from the same weights: the grader trains the recipe once for them."""
    made = trusted.store.made
    grade(namespace(part4=honest_part4), tmp_path / "evidence", trusted, monkeypatch,
          tests=[t for t in registry.TESTS if t.part == "part4"])
    assert trusted.store.made == made  # this module's first correct notebook already ran both


def test_cells_that_did_not_run_and_missing_evidence_score_zero(tmp_path, monkeypatch, trusted):
    folder = tmp_path / "evidence"
    parts_1_2 = [t for t in registry.TESTS if t.part in ("part1", "part2")]
    grade(namespace(), folder, trusted, monkeypatch, tests=parts_1_2)
    (folder / registry.PART2_RESULTS.filename).unlink()
    status = {t.grade_id: RAN for t in parts_1_2}
    status["test_part1_global"] = "it ran past the 120 s cell time limit and was interrupted"
    verdicts = verify(folder, status, trusted)
    assert not verdicts["test_part1_global"].passed and "time limit" in verdicts["test_part1_global"].message
    assert verdicts["test_part1_cumulative"].passed  # the same trace still credits the cells that ran
    assert not verdicts["test_part2_accuracies"].passed
    assert "`structured_results`: it was not recorded" in verdicts["test_part2_accuracies"].message


def test_recorded_accuracies_must_be_the_real_ones(tmp_path, monkeypatch, trusted):
    ns = namespace()
    ns["unstructured_results"] = {**ns["unstructured_results"], 0.5: ns["unstructured_results"][0.5] + 0.05}
    ns["structured_results"] = {k: float("nan") if k == 0.8 else v for k, v in ns["structured_results"].items()}
    parts_1_2 = [t for t in registry.TESTS if t.part in ("part1", "part2")]
    points, verdicts = grade(ns, tmp_path / "evidence", trusted, monkeypatch, tests=parts_1_2)
    assert points["test_part1_accuracies"] == 0 and "at 50% scores" in verdicts["test_part1_accuracies"].message
    assert points["test_part2_accuracies"] == 0 and "non-finite" in verdicts["test_part2_accuracies"].message
    assert failures(verdicts).keys() == {"test_part1_accuracies", "test_part2_accuracies"}


def test_evidence_from_another_model_is_refused(tmp_path, monkeypatch, trusted):
    """A trace of a re-trained (or random) model does not match the grader's checkpoint."""
    ns = namespace()
    original_load = cells._fresh_model

    def other_model(mode):
        model = original_load(mode)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)
        return model

    monkeypatch.setattr(cells, "_fresh_model", other_model)
    points, verdicts = grade(ns, tmp_path / "evidence", trusted, monkeypatch,
                             tests=[t for t in registry.TESTS if t.part in ("part1", "part2")])
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

    from safetensors.numpy import save_file

    item = registry.PART1_MODEL
    state = cells.canonical_state(load_model(model_path("torch")))
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
