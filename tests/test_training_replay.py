"""Replaying train_epoch calls the grader already made (ece662/training_replay.py, autograder/premeasure.py)."""
import re

import nbformat
import numpy as np
import pytest
import torch
from torch.nn.utils import prune

from ece662 import evaluations, pruning_helper
from ece662.evaluations import EvaluationStore
from ece662.training_replay import call_key, outcome

from conftest import REPO


@pytest.fixture
def data(course_env):
    from ece662 import data_utils

    return data_utils.get_CINIC10_data(verbose=False)


def _pruned_model():
    from ece662.pruning_helper import load_model, model_path, prunable_layers

    model = load_model(model_path("torch"))
    prune.global_unstructured([(m, "weight") for _, m in prunable_layers(model)], prune.L1Unstructured, amount=0.6)
    return model


def _sgd(model, **settings):
    return torch.optim.SGD(model.parameters(), **dict(dict(lr=0.01, momentum=0.9), **settings))


def _no_training(*args, **kwargs):
    raise AssertionError("computed, where the grader's store held the answer")


def test_the_key_covers_every_input_and_refuses_calls_it_cannot_describe(data):
    X, y = data["X_train"][:64], data["y_train"][:64]
    model = _pruned_model()
    optimizer = _sgd(model)
    key = call_key(model, optimizer, X, y, 32, 0)
    assert key == call_key(model, optimizer, X.copy(), y.copy(), 32, 0)  # content, not identity

    def changed(edit):
        m = _pruned_model()
        o = _sgd(m)
        args = edit(m, o) or (X, y, 32, 0)
        return call_key(m, o, *args)

    pixel = X.copy()
    pixel[3, 4, 5, 1] ^= 1
    label = y.copy()
    label[0] = (label[0] + 1) % 10

    def bump_weight(m, o):
        with torch.no_grad():
            m.features[0].weight_orig[0, 0, 0, 0] += 1e-3

    def bump_mask(m, o):
        m.features[0].weight_mask[0, 0, 0, 0] = 1 - m.features[0].weight_mask[0, 0, 0, 0]

    def momentum_state(m, o):
        o.state[m.features[0].bias]["momentum_buffer"] = torch.ones_like(m.features[0].bias)

    def lr(m, o):
        o.param_groups[0]["lr"] = 0.02

    def dropout(m, o):
        next(x for x in m.modules() if isinstance(x, torch.nn.Dropout)).p = 0.3

    def train_mode(m, o):
        m.train()

    keys = [key, changed(lambda m, o: (pixel, y, 32, 0)), changed(lambda m, o: (X, label, 32, 0)),
            changed(lambda m, o: (X, y, 16, 0)), changed(lambda m, o: (X, y, 32, 1)), changed(bump_weight),
            changed(bump_mask), changed(momentum_state), changed(lr), changed(dropout), changed(train_mode)]
    assert None not in keys and len(set(keys)) == len(keys)

    hooked, patched = _pruned_model(), _pruned_model()
    hooked.classifier[1].register_forward_hook(lambda *a: None)
    patched.features[0].forward = lambda x: x
    refused = [call_key(model, torch.optim.Adam(model.parameters()), X, y, 32, 0),
               call_key(model, optimizer, X, y, 32, np.random.default_rng(0)),
               call_key(model, optimizer, X, y, 32, 0, scheduler=object()),
               call_key(model, optimizer, torch.from_numpy(X.copy()), y, 32, 0),
               call_key(model, _sgd(_pruned_model()), X, y, 32, 0),  # optimizer of another model
               call_key(hooked, _sgd(hooked), X, y, 32, 0), call_key(patched, _sgd(patched), X, y, 32, 0)]
    assert refused == [None] * len(refused)


def test_a_replayed_epoch_leaves_exactly_what_training_leaves(data, tmp_path, monkeypatch):
    X, y = data["X_train"][:200], data["y_train"][:200]
    store = EvaluationStore(tmp_path)
    trained, replayed = _pruned_model(), _pruned_model()
    trained_opt, replayed_opt = _sgd(trained), _sgd(replayed)
    losses = []
    for epoch in range(2):
        key = call_key(trained, trained_opt, X, y, 64, epoch)
        losses.append(pruning_helper.train_epoch(trained, trained_opt, X, y, batch_size=64, seed=epoch))
        store.put_sealed(key, outcome(trained, trained_opt, losses[-1]))
    rng_after_training = torch.get_rng_state()
    torch.manual_seed(123)  # replay must restore the RNG state training leaves

    monkeypatch.setenv(evaluations.ENV_DIR, str(tmp_path))
    monkeypatch.setattr(pruning_helper, "_batches", _no_training)
    for epoch in range(2):
        assert pruning_helper.train_epoch(replayed, replayed_opt, X, y, batch_size=64, seed=epoch) == losses[epoch]
    assert torch.equal(torch.get_rng_state(), rng_after_training)
    for (name, a), (_, b) in zip(trained.state_dict().items(), replayed.state_dict().items()):
        assert torch.equal(a, b), name
    for (name, a), (_, b) in zip(trained.named_parameters(), replayed.named_parameters()):
        assert torch.equal(a.grad, b.grad), name
        assert torch.equal(trained_opt.state[a]["momentum_buffer"], replayed_opt.state[b]["momentum_buffer"]), name
    for layer in (0, 3, 6):  # the weight pruning's hook computed in the last forward pass, which pruning ranks by
        assert torch.equal(trained.features[layer].weight, replayed.features[layer].weight)
    assert not replayed.training  # the model's mode is what train_epoch leaves: restored

    with pytest.raises(AssertionError, match="computed"):  # a third epoch was never sealed: it trains
        pruning_helper.train_epoch(replayed, replayed_opt, X, y, batch_size=64, seed=2)
    with pytest.raises(AssertionError, match="computed"):  # inputs it cannot hash: it trains, raising nothing else
        pruning_helper.train_epoch(replayed, replayed_opt, X, y, batch_size=np.int64(64), seed=0)
    half = _pruned_model().bfloat16()  # numpy has no bfloat16: the key cannot be computed
    with pytest.raises(AssertionError, match="computed"):
        pruning_helper.train_epoch(half, _sgd(half), X, y, batch_size=64, seed=0)
    monkeypatch.delenv(evaluations.ENV_DIR)
    with pytest.raises(AssertionError, match="computed"):  # outside grading nothing is looked up
        pruning_helper.train_epoch(_pruned_model(), _sgd(_pruned_model()), X, y, batch_size=64, seed=0)


def test_sealed_entries_open_only_with_their_secret(tmp_path):
    store = EvaluationStore(tmp_path)
    content = b"trained weights " * 100
    store.put_sealed("the inputs' hash", content)
    (entry,) = list(tmp_path.iterdir())
    raw = entry.read_bytes()
    assert "the inputs" not in entry.name and raw != content and b"trained" not in raw
    assert store.get_sealed("the inputs' hash") == content
    assert store.get_sealed("another hash") is None and EvaluationStore().get_sealed("the inputs' hash") is None


def _solution_cells(*cell_ids) -> str:
    """The source notebook's code (solutions in) of ``cell_ids``, in notebook order, IPython magics left out."""
    nb = nbformat.read(REPO / "assignment" / "pruning" / "pruning.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.get("id") in cell_ids]
    assert len(code) == len(cell_ids)
    return "\n".join(re.sub(r"^%.*$", "", source, flags=re.M) for source in code)


def test_the_notebooks_solution_finds_every_part1_and_part4_result_premeasured(course_env, tiny_root, tmp_path,
                                                                               monkeypatch):
    """The recipe the pipeline trains before grading is the one the notebook asks for: run by a graded kernel,
    the solution of Parts 1 and 4 neither evaluates nor trains anything itself."""
    import matplotlib

    from autograder.premeasure import measure_references

    matplotlib.use("Agg")
    measure_references(tmp_path, course_env.parent, tiny_root)
    monkeypatch.setenv(evaluations.ENV_DIR, str(tmp_path))
    monkeypatch.setattr(pruning_helper, "_batches", _no_training)
    namespace = {}
    exec(_solution_cells("mode", "setup", "part1_levels", "part1_code", "part4_settings", "part4_code"), namespace)
    assert namespace["part4_results"]["after_training"] > 0
