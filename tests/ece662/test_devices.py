"""The helpers on a model moved to a GPU (CUDA, or Apple's MPS) give what they give on the CPU.

The GPU tests skip where there is none; each compares a helper's result on the device with its result on the
CPU for the same model and data. This file needs torch, numpy, safetensors and the ece662 package only (no
nbgrader, nh3 or TensorFlow), so it runs on any machine with a GPU.
"""
import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from ece662 import data_utils, latency
from ece662.compaction import remove_zero_filters
from ece662.devices import copy_to, model_device, on_cpu
from ece662.frameworks import canonical_state
from ece662.grading import cells, registry
from ece662.pruning_helper import (
    canonical_weights,
    clone_model,
    cpu_latency_ms,
    effective_weight,
    global_sparsity,
    load_model,
    predict,
    prunable_layers,
    save_model,
    test_model,
    train_epoch,
)

GPUS = [pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
        pytest.param("mps", marks=pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS device"))]


def prune_globally(model, level):
    prune.global_unstructured([(m, "weight") for _, m in prunable_layers(model)], prune.L1Unstructured, amount=level)
    return model


def prune_filters(model, level):
    for _, layer in prunable_layers(model):
        if isinstance(layer, nn.Conv2d):
            prune.ln_structured(layer, "weight", amount=level, n=2, dim=0)
            prune.custom_from_mask(layer, "bias", layer.weight_mask.flatten(1).any(1).float())
    return model


@pytest.fixture
def data(course_env):
    return data_utils.get_CINIC10_data(verbose=False)


def test_model_device_and_a_copy_that_deepcopy_refuses(course_env):
    model = prune_globally(load_model(course_env), 0.5)  # pruned with gradients on: deepcopy refuses it
    with pytest.raises(RuntimeError, match="deepcopy"):
        copy.deepcopy(model)
    assert model_device(model) == torch.device("cpu") == model_device(nn.Sequential())
    assert on_cpu(model) is model
    twin = copy_to(model, "cpu")
    assert twin is not model and all(prune.is_pruned(m) for _, m in prunable_layers(twin))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(twin(x), model(x))
        twin.features[0].weight_orig.zero_()
    assert model.features[0].weight_orig.abs().sum() > 0


@pytest.mark.parametrize("device", GPUS)
def test_test_model_and_predict_on_the_device(course_env, data, device):
    X, y = data["X_test"], data["y_test"]
    for prepare in (lambda m: m, lambda m: prune_globally(m, 0.8), lambda m: prune_filters(m, 0.5)):
        on_cpu_ = prepare(load_model(course_env))
        on_gpu = prepare(load_model(course_env).to(device))  # pruned where it is
        assert global_sparsity(on_gpu) == global_sparsity(on_cpu_)
        assert abs(test_model(on_gpu, [X, y]) - test_model(on_cpu_, [X, y])) * len(y) <= 1  # within one image
        assert (predict(on_gpu, X) != predict(on_cpu_, X)).sum() <= 1
        assert model_device(on_gpu).type == device


@pytest.mark.parametrize("device", GPUS)
def test_train_epoch_and_clone_model_on_the_device(course_env, data, device):
    losses, models = {}, {}
    for where in ("cpu", device):
        model = clone_model(prune_globally(load_model(course_env).to(where), 0.8))
        assert model_device(model).type == where
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        losses[where] = [train_epoch(model, optimizer, data["X_train"], data["y_train"], seed=e) for e in range(2)]
        models[where] = model
    assert not models[device].training and model_device(models[device]).type == device
    # dropout draws other random numbers on the device, so the losses are close, not equal
    assert np.allclose(losses[device], losses["cpu"], rtol=0.1), losses
    for (_, a), (_, b) in zip(prunable_layers(models["cpu"]), prunable_layers(models[device])):
        assert torch.equal(effective_weight(a) == 0, effective_weight(b).cpu() == 0)  # the masks held on both


@pytest.mark.parametrize("device", GPUS)
def test_remove_zero_filters_and_latency_on_the_device(course_env, data, device):
    cpu_small = remove_zero_filters(prune_filters(load_model(course_env), 0.8))
    gpu_model = prune_filters(load_model(course_env).to(device), 0.8)
    gpu_small = remove_zero_filters(gpu_model)
    assert model_device(gpu_small).type == device
    expected, found = canonical_weights(cpu_small), canonical_weights(gpu_small)
    assert expected.keys() == found.keys() and all(np.array_equal(expected[k], found[k]) for k in expected)
    assert abs(test_model(gpu_small, [data["X_test"], data["y_test"]])
               - test_model(cpu_small, [data["X_test"], data["y_test"]])) * len(data["y_test"]) <= 1
    assert cpu_latency_ms(gpu_small, batch_size=8, repeats=2) > 0
    summary = latency.compare_latency({"zeroed": gpu_model, "removed": gpu_small}, batch_size=8, rounds=2)
    assert all(s["min_ms"] > 0 for s in summary.values())
    assert model_device(gpu_model).type == model_device(gpu_small).type == device  # timed as CPU copies


@pytest.mark.parametrize("device", GPUS)
def test_save_load_and_evidence_from_the_device(course_env, device, tmp_path, monkeypatch):
    cpu_model = prune_globally(load_model(course_env), 0.8)
    gpu_model = prune_globally(load_model(course_env).to(device), 0.8)
    expected = canonical_state(cpu_model)
    reloaded = load_model(save_model(gpu_model, tmp_path / "pruned.model"))
    assert model_device(reloaded).type == "cpu" and global_sparsity(reloaded) == global_sparsity(cpu_model)
    for state in (canonical_state(gpu_model), canonical_state(reloaded)):
        assert all(np.array_equal(state[k], v) for k, v in expected.items())

    # a graded kernel records the model, and a trace of a function that prunes on the device, as CPU arrays
    from safetensors.numpy import load_file

    def pruning_on(where):
        def prune_unstructured_to(model, target):  # moves the fresh course model it gets, prunes it there
            model = model.to(where)
            current = global_sparsity(model)
            return prune_globally(model, max(0.0, (target - current) / (1 - current)))
        return prune_unstructured_to

    recorded = {}
    for where, model in (("cpu", cpu_model), (device, gpu_model)):
        monkeypatch.setattr(cells, "_recorded", set())
        monkeypatch.setenv("ECE662_EVIDENCE_DIR", str(tmp_path / where))
        namespace = {"model": model, "prune_unstructured_to": pruning_on(where), "mode": "torch"}
        cells.record(registry.test("test_part1_final_model"), namespace)
        cells.record(registry.test("test_part1_cumulative"), namespace)
        recorded[where] = {item.name: load_file(str(tmp_path / where / item.filename))
                           for item in (registry.PART1_MODEL, registry.PART1_TRACE)}
    for name, arrays in recorded["cpu"].items():
        assert arrays.keys() == recorded[device][name].keys()
        assert all(np.array_equal(v, recorded[device][name][k]) for k, v in arrays.items()), name
