"""test_model and the sparsity/size helpers, with and without pruning re-parametrisation."""
import numpy as np
import pytest
import torch
import torch.nn.utils.prune as prune

from ece662 import data_utils
from ece662.pruning_helper import (
    accuracy,
    count_parameters,
    effective_state_dict,
    global_sparsity,
    layer_sparsity,
    load_model,
    model_size_bytes,
    prunable_layers,
    test_model,
)


@pytest.fixture
def model(course_env):
    return load_model(course_env)


@pytest.fixture
def data(course_env):
    return data_utils.get_CINIC10_data(verbose=False)


def reference_accuracy(model, X, y):
    mean = torch.tensor(data_utils.CINIC10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(data_utils.CINIC10_STD).view(1, 3, 1, 1)
    x = (torch.from_numpy(np.array(X)).permute(0, 3, 1, 2).float() / 255 - mean) / std
    with torch.no_grad():
        return (model.eval()(x).argmax(1).numpy() == np.asarray(y)).mean()


def test_test_model_prints_and_returns_the_accuracy(model, data, capsys):
    acc = test_model(model, [data["X_test"], data["y_test"]], mode="torch")
    assert acc == pytest.approx(reference_accuracy(model, data["X_test"], data["y_test"]), abs=1 / 400)
    assert capsys.readouterr().out.strip() == f"Test Acc: {acc:.4f}"


def test_test_model_is_deterministic_and_restores_training_mode(model, data):
    model.train()
    a = accuracy(model, data["X_test"], data["y_test"])
    assert model.training
    assert accuracy(model, data["X_test"], data["y_test"], batch_size=7) == a


def test_test_model_rejects_wrong_input(model):
    with pytest.raises(ValueError, match="uint8 images shaped"):
        test_model(model, [np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4, int)])
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        test_model(model, [np.zeros((4, 32, 32, 3), np.uint8), np.zeros(3, int)])
    with pytest.raises(TypeError, match="use mode='torch'"):  # a torch model evaluated in TensorFlow mode
        test_model(model, [np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, int)], mode="tensorflow")


def test_sparsity_reads_masks_even_when_weight_is_stale(model):
    layers = prunable_layers(model)
    assert [type(m).__name__ for _, m in layers] == ["Conv2d"] * 3 + ["Linear"] * 2
    assert global_sparsity(model) == 0
    prune.global_unstructured([(m, "weight") for _, m in layers], prune.L1Unstructured, amount=0.3)
    # after pruning, .weight is only refreshed by the next forward; the helpers must not depend on it
    for _, m in layers:
        m.weight = m.weight_orig.detach().clone()
    assert global_sparsity(model) == pytest.approx(0.3, abs=1e-5)
    per_layer = layer_sparsity(model)
    sizes = {n: m.weight_orig.numel() for n, m in layers}
    assert sum(per_layer[n] * sizes[n] for n in sizes) / sum(sizes.values()) == pytest.approx(0.3, abs=1e-5)
    assert len(set(round(v, 3) for v in per_layer.values())) > 1  # global pruning: layers differ


def test_sparsity_after_prune_remove_and_parameter_counts(model):
    total = count_parameters(model)
    assert total == 582_026
    prune.global_unstructured([(m, "weight") for _, m in prunable_layers(model)], prune.L1Unstructured, amount=0.5)
    assert count_parameters(model) == total  # masks are not parameters of the computation
    weights = sum(m.weight_orig.numel() for _, m in prunable_layers(model))
    assert count_parameters(model, nonzero_only=True) == total - round(0.5 * weights)
    for _, m in prunable_layers(model):
        prune.remove(m, "weight")
    assert global_sparsity(model) == pytest.approx(0.5, abs=1e-5)
    state = effective_state_dict(model)
    assert not any(k.endswith(("_orig", "_mask")) for k in state)


def test_model_size_is_the_dense_size_whether_or_not_masked(model):
    dense = model_size_bytes(model)
    assert 2_200_000 < dense < 2_500_000  # 582k float32 parameters
    prune.global_unstructured([(m, "weight") for _, m in prunable_layers(model)], prune.L1Unstructured, amount=0.8)
    assert model_size_bytes(model) == pytest.approx(dense, rel=0.01)
