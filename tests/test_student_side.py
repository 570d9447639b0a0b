"""The helpers the notebook calls around the graded code: clone_model, train_epoch, plots, latency."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from ece662 import data_utils, latency, plots
from ece662.model import SmallCNN
from ece662.pruning_helper import (
    clone_model,
    effective_weight,
    global_sparsity,
    layer_sparsity,
    load_model,
    prunable_layers,
    train_epoch,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _prune_globally(model, level):
    prune.global_unstructured([(m, "weight") for _, m in prunable_layers(model)], prune.L1Unstructured, amount=level)
    return model


def _zero_positions(model):
    return {name: effective_weight(m) == 0 for name, m in prunable_layers(model)}


def test_clone_keeps_masks_and_training_it_keeps_pruned_weights_zero(course_env):
    data = data_utils.get_CINIC10_data(verbose=False)
    original = _prune_globally(load_model(course_env), 0.8)  # pruned with gradients on: deepcopy would fail
    before = {k: v.clone() for k, v in original.state_dict().items()}
    clone = clone_model(original)
    assert all(prune.is_pruned(m) for _, m in prunable_layers(clone))
    assert all(torch.equal(clone.state_dict()[k], v) for k, v in before.items())
    zeros = _zero_positions(clone)
    optimizer = torch.optim.SGD(clone.parameters(), lr=0.05, momentum=0.9)
    train_epoch(clone, optimizer, data["X_train"], data["y_train"], batch_size=64)
    after = _zero_positions(clone)
    assert all(torch.equal(zeros[name], after[name]) for name in zeros)
    assert not torch.equal(clone.classifier[1].weight_orig, before["classifier.1.weight_orig"])
    assert all(torch.equal(original.state_dict()[k], v) for k, v in before.items())


def test_clone_of_a_dense_model_is_an_equal_independent_copy(course_env):
    original = load_model(course_env)
    clone = clone_model(original)
    assert isinstance(clone, SmallCNN) and not clone.training and not prune.is_pruned(clone)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(clone(x), original(x))
        clone.features[0].weight.zero_()
    assert original.features[0].weight.abs().sum() > 0


def test_clone_refuses_another_architecture():
    with pytest.raises(TypeError, match="course SmallCNN"):
        clone_model(nn.Sequential(nn.Linear(2, 2)))


def test_train_epoch_is_seeded_restores_the_mode_and_returns_the_mean_loss(tiny_root):
    data = data_utils.get_CINIC10_data(root=tiny_root, verbose=False)
    X, y = data["X_train"], data["y_train"]
    runs = []
    for seed in (5, 5, 6):
        torch.manual_seed(0)
        model = SmallCNN().eval()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        loss = train_epoch(model, optimizer, X, y, batch_size=100, seed=seed)
        assert not model.training and math.isfinite(loss) and 0 < loss < 5
        runs.append((loss, model.state_dict()))
    (loss_a, a), (loss_b, b), (_, c) = runs
    assert loss_a == loss_b and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_gradual_pruning_during_training_keeps_every_step(tiny_root):
    data = data_utils.get_CINIC10_data(root=tiny_root, verbose=False)
    torch.manual_seed(0)
    model = SmallCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    for epoch, target in enumerate((0.4, 0.6, 0.8)):
        train_epoch(model, optimizer, data["X_train"], data["y_train"], batch_size=100, seed=epoch)
        current = global_sparsity(model)
        with torch.no_grad():
            _prune_globally(model, (target - current) / (1 - current))
        assert global_sparsity(model) == pytest.approx(target, abs=1e-5)


def test_real_sample_pruned_training_learns_and_stays_sparse(sample_root, monkeypatch):
    monkeypatch.setattr(data_utils, "_active_dataset", data_utils.active_dataset())  # restored after the test
    data = data_utils.get_CINIC10_data(root=sample_root, verbose=False)
    torch.manual_seed(0)
    model = _prune_globally(SmallCNN(), 0.8)
    zeros = _zero_positions(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    losses = [train_epoch(model, optimizer, data["X_train"], data["y_train"], seed=epoch) for epoch in range(2)]
    assert losses[-1] < losses[0] < 2.4  # ln(10) = 2.30 is the loss of guessing
    assert all(torch.equal(zeros[n], z) for n, z in _zero_positions(model).items())


def test_wilson_interval_matches_the_textbook_values():
    low, high = plots.wilson_interval(0.5, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    low, high = plots.wilson_interval(0.41, 1000)  # the real sample: about +-3 points
    assert 0.379 < low < 0.381 and 0.440 < high < 0.442
    with pytest.raises(ValueError, match="positive number of test images"):
        plots.wilson_interval(0.5, 0)


def test_accuracy_plot_shows_scale_chance_baseline_and_noise_band():
    curves = {"unstructured": {0.2: 0.40, 0.8: 0.30}, "filters": {0.5: 0.2}}
    ax = plots.plot_accuracy(curves, baseline=0.42, n_test=1000, xlabel="fraction of all weights", title="T")
    assert ax.get_ylim() == (0, 1) and ax.get_xlabel() == "fraction of all weights" and ax.get_title() == "T"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["unstructured"].get_xdata()) == [0.0, 0.2, 0.8]
    assert list(lines["unstructured"].get_ydata()) == [0.42, 0.40, 0.30]
    assert lines["chance (10 classes)"].get_ydata()[0] == 0.1
    baseline = next(line for label, line in lines.items() if label.startswith("dense model"))
    assert baseline.get_ydata()[0] == 0.42 and baseline.get_linestyle() == "--"
    band = ax.patches[0].get_path().transformed(ax.patches[0].get_patch_transform()).vertices[:, 1]
    assert (band.min(), band.max()) == pytest.approx(plots.wilson_interval(0.42, 1000))


def test_layer_sparsity_bars_match_the_model(course_env):
    model = _prune_globally(load_model(course_env), 0.8)
    ax = plots.plot_layer_sparsity(model)
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx(list(layer_sparsity(model).values()))
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[3].startswith("classifier.1") and "524,288 weights" in labels[3]


def test_histogram_threshold_is_the_one_global_pruning_uses(course_env):
    dense = load_model(course_env)
    threshold = plots.plot_weight_histogram(dense, 0.8)
    ax = plt.gca()
    assert ax.get_xscale() == "log"
    assert any(list(line.get_xdata()) == [threshold, threshold] for line in ax.get_lines())
    pruned = _prune_globally(load_model(course_env), 0.8)
    for (_, d), (_, p) in zip(prunable_layers(dense), prunable_layers(pruned)):
        assert torch.equal(effective_weight(p) == 0, effective_weight(d).abs() <= threshold)


def test_summary_flags_spread_and_takes_speedups_within_rounds():
    steady = {"dense": [40, 41, 40, 42, 40, 41, 40], "small": [10, 10, 10, 11, 10, 10, 10]}
    summary = latency.summarize_rounds(steady, reference="dense")
    assert summary["dense"]["median_ms"] == 40 and summary["small"]["speedup"] == 4.0
    assert not any(s["noisy"] for s in summary.values()) and "WARNING" not in latency.latency_report(summary)
    busy = {"dense": [40, 80, 40, 90, 40, 85, 40], "small": [10, 20, 10, 22, 10, 21, 10]}  # load hits both
    summary = latency.summarize_rounds(busy, reference="dense")
    assert summary["dense"]["noisy"] and 3.9 < summary["small"]["speedup"] <= 4.1
    assert "WARNING: the timings of dense, small vary" in latency.latency_report(summary)


def test_compare_latency_times_every_model_every_round():
    models = {"wide": nn.Sequential(nn.Conv2d(3, 16, 3)), "narrow": nn.Sequential(nn.Conv2d(3, 2, 3))}
    summary = latency.compare_latency(models, batch_size=8, rounds=3)
    assert list(summary) == ["wide", "narrow"]
    assert all(len(s["rounds_ms"]) == 3 and s["min_ms"] > 0 for s in summary.values())
    assert summary["wide"]["speedup"] == 1.0
    with pytest.raises(ValueError, match="at least one model"):
        latency.compare_latency({})


def test_channels_last_batch_has_the_layout_test_model_feeds():
    x = latency.channels_last_batch(4)
    assert x.shape == (4, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    assert np.isfinite(x.numpy()).all()
