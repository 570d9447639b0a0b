"""The helpers the notebook calls around the graded code: clone_model, train_epoch, plots, latency."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from ece662 import data_utils, latency, paired, plots
from ece662.model import SmallCNN
from ece662.pruning_helper import (
    accuracy, clone_model, effective_state_dict, effective_weight, global_sparsity, layer_sparsity, load_model,
    prunable_layers, train_epoch,
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


def test_paired_interval_counts_only_the_images_the_models_disagree_on():
    reference = np.array([True] * 50 + [False] * 50)
    assert paired.paired_interval(reference, reference) == (0.0, 0.0, 0.0)  # the same model: no noise at all
    better = reference.copy()
    better[50:60] = True  # right on 10 more images, wrong on none it got right
    difference, low, high = paired.paired_interval(better, reference)
    assert difference == pytest.approx(0.10) and 0.04 < low < 0.10 < high < 0.16
    # two models with the same accuracy that disagree on 40 images: an interval around 0, far wider
    swapped = reference.copy()
    swapped[:20], swapped[50:70] = False, True
    difference, low, high = paired.paired_interval(swapped, reference)
    assert difference == 0.0 and low < -0.1 and high > 0.1


def test_costs_count_non_zero_parameters_and_the_work_left(course_env):
    from ece662.compaction import remove_zero_filters
    from ece662.frameworks import canonical_state
    from ece662.weights import count_macs, count_parameters

    dense = canonical_state(load_model(course_env))
    assert count_parameters(dense)[0] == count_parameters(dense)[1] == 582_026
    assert count_macs(dense)[0] == count_macs(dense)[1] == 8_488_192  # 3x3 convs at 32, 16 and 8 pixels, 2 Linear
    filters = load_model(course_env)
    for _, layer in prunable_layers(filters):
        if isinstance(layer, nn.Conv2d):
            prune.ln_structured(layer, "weight", amount=0.5, n=2, dim=0)
            prune.custom_from_mask(layer, "bias", layer.weight_mask.flatten(1).any(1).float())
    zeroed, removed = canonical_state(filters), canonical_state(remove_zero_filters(filters))
    # a removed filter and the weights that read its (always zero) channel are skipped work in both models
    assert count_macs(zeroed)[1] == count_macs(removed)[1] <= count_macs(removed)[0] < count_macs(zeroed)[0]


def test_curves_measure_every_model_against_the_dense_one_on_the_same_images(course_env):
    data = data_utils.get_CINIC10_data(verbose=False)
    test_data = [data["X_test"], data["y_test"]]
    dense = load_model(course_env)
    models = {level: _prune_globally(load_model(course_env), level) for level in (0.5, 0.9)}
    curve = plots.measure_curve(models, dense, test_data)
    assert curve[0.0]["accuracy"] == pytest.approx(accuracy(dense, *test_data))
    for level, model in models.items():
        assert curve[level]["accuracy"] == pytest.approx(accuracy(model, *test_data))
        assert curve[level]["low"] <= curve[level]["difference"] <= curve[level]["high"]
        nonzero = sum(int((v != 0).sum()) for v in effective_state_dict(model).values())
        assert curve[level]["parameters"] == pytest.approx(nonzero / 582_026)
    fig = plots.plot_curves({"global": curve}, "T", len(test_data[1]))
    top, bottom = fig.axes[:2], fig.axes[2:]  # accuracy; its difference from dense with the paired interval
    for ax in top:
        line = next(line for line in ax.get_lines() if line.get_label() == "global")
        assert list(line.get_ydata()) == pytest.approx([curve[lv]["accuracy"] for lv in (0.0, 0.5, 0.9)])
        assert ax.get_ylim() == (0, 1)
    for ax in bottom:
        bars = next(c for c in ax.containers if c.get_label() == "global")
        assert list(bars.lines[0].get_ydata()) == pytest.approx([curve[lv]["difference"] for lv in (0.0, 0.5, 0.9)])
        lowest, highest = min(curve[lv]["low"] for lv in curve), max(curve[lv]["high"] for lv in curve)
        low, high = ax.get_ylim()  # zoomed to the intervals (and 0), so they can be seen
        assert low <= lowest <= highest <= high and high - low <= 1.2 * (max(highest, 0) - min(lowest, 0))


def test_layer_sensitivity_prunes_one_layer_at_a_time(course_env):
    data = data_utils.get_CINIC10_data(verbose=False)
    test_data = [data["X_test"], data["y_test"]]
    table = plots.layer_sensitivity(lambda: load_model(course_env), test_data, (0.0, 1.0))
    dense = accuracy(load_model(course_env), *test_data)
    assert list(table) == [name for name, _ in prunable_layers(load_model(course_env))]
    assert all(row[0.0] == pytest.approx(dense) for row in table.values())  # nothing pruned
    last = load_model(course_env)
    with torch.no_grad():
        last.classifier[4].weight.zero_()
    assert table["classifier.4"][1.0] == pytest.approx(accuracy(last, *test_data))


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


def test_torch_models_are_timed_on_the_layout_test_model_feeds():
    seen = []
    probe = nn.Sequential(nn.Conv2d(3, 2, 3))
    probe.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    latency.compare_latency({"probe": probe}, batch_size=4, rounds=1)
    assert seen and all(x.shape == (4, 3, 32, 32) for x in seen)
    assert all(x.is_contiguous(memory_format=torch.channels_last) and torch.isfinite(x).all() for x in seen)
