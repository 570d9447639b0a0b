"""The notebook's plots: accuracy against pruning level, per-layer sparsity, weight magnitudes.

Each function draws into ``ax`` (a new figure if None) and leaves showing it to the caller.
"""
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import PercentFormatter

from .pruning_helper import effective_weight, prunable_layers

CHANCE_ACCURACY = 0.1  # ten balanced classes
Z_95 = 1.959964


def wilson_interval(accuracy: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (an accuracy measured on ``n`` images)."""
    if n <= 0:
        raise ValueError(f"n must be a positive number of test images; got {n}")
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def _axes(ax, figsize=(7, 4.2)):
    return ax if ax is not None else plt.subplots(figsize=figsize)[1]


def plot_accuracy(curves: dict, baseline: float, n_test: int, xlabel: str, title: str, ax=None):
    """Test accuracy against pruning level for one or more labelled curves ``{label: {level: accuracy}}``.

    Each curve starts at level 0 with the dense model's ``baseline``. The y-axis runs from 0 to 1, with the
    chance line (10%), the dense baseline (dashed) and the band of test-set noise around it: the 95% Wilson
    interval for an accuracy of ``baseline`` measured on ``n_test`` images. An accuracy inside the band is
    within what another ``n_test`` test images could show for the dense model. Returns the Axes.
    """
    ax = _axes(ax)
    low, high = wilson_interval(baseline, n_test)
    ax.axhspan(low, high, color="tab:gray", alpha=0.2,
               label=f"test-set noise: 95% Wilson interval, n = {n_test:,} ({low:.1%} - {high:.1%})")
    ax.axhline(baseline, color="black", linestyle="--", linewidth=1, label=f"dense model ({baseline:.1%})")
    ax.axhline(CHANCE_ACCURACY, color="tab:red", linestyle=":", linewidth=1, label="chance (10 classes)")
    for (label, points), marker in zip(curves.items(), "osD^v<>"):
        levels = sorted(points)
        xs = ([0.0] if 0 not in points else []) + levels
        ys = ([baseline] if 0 not in points else []) + [points[level] for level in levels]
        ax.plot(xs, ys, marker=marker, label=label)
    ax.set_ylim(0, 1)
    ax.set_xlim(left=0)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"test accuracy ({n_test:,} images)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    return ax


def _layer_weights(model) -> list[tuple[str, str, np.ndarray]]:
    """(name, layer type, weights as numpy) of every prunable layer of a torch or Keras model (masks folded in)."""
    layers = []
    for name, layer in prunable_layers(model):
        weight = effective_weight(layer).numpy() if isinstance(layer, torch.nn.Module) else layer.kernel.numpy()
        layers.append((name, type(layer).__name__, weight))
    return layers


def plot_layer_sparsity(model, ax=None):
    """Bars of each Conv2d/Linear layer's fraction of zero weights, labelled with the layer's weight count."""
    ax = _axes(ax)
    names, fractions, counts = [], [], []
    for name, kind, weight in _layer_weights(model):
        names.append(f"{name}\n{kind}\n{weight.size:,} weights")
        fractions.append(float((weight == 0).mean()))
        counts.append(weight.size)
    overall = sum(f * c for f, c in zip(fractions, counts)) / sum(counts)
    bars = ax.bar(range(len(names)), fractions, color="tab:blue")
    ax.bar_label(bars, labels=[f"{f:.1%}" for f in fractions], padding=2)
    ax.axhline(overall, color="black", linestyle="--", linewidth=1, label=f"all layers together: {overall:.1%}")
    ax.set_xticks(range(len(names)), names, fontsize="small")
    ax.set_ylim(0, 1.08)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("fraction of the layer's weights that are zero")
    ax.set_title("Sparsity of each layer")
    ax.legend(fontsize="small", loc="upper left")
    return ax


def global_threshold(model, level: float) -> float:
    """The largest |w| that global magnitude pruning at ``level`` zeroes (``round(level * N)`` smallest of all N)."""
    magnitudes = np.concatenate([np.abs(w).ravel() for _, _, w in _layer_weights(model)])
    count = round(level * magnitudes.size)
    return float(np.partition(magnitudes, count - 1)[count - 1]) if count else 0.0


def plot_weight_histogram(model, level: float, ax=None) -> float:
    """Histogram of |w| of each Conv2d/Linear layer (log x-axis) with the threshold of global pruning at ``level``.

    Each layer's curve is the fraction of *its* weights per bin, so the small conv layers show beside the
    large Linear layer; the legend gives the fraction of each layer below the threshold, i.e. the layer's
    sparsity after global pruning at ``level``. Zeros (from earlier pruning) are left out. Returns the threshold.
    """
    ax = _axes(ax)
    threshold = global_threshold(model, level)
    layers = [(name, np.abs(w).ravel()) for name, _, w in _layer_weights(model)]
    nonzero = np.concatenate([w[w > 0] for _, w in layers])
    low = np.quantile(nonzero, 0.001)
    bins = np.logspace(np.log10(low), np.log10(nonzero.max()), 60)
    for name, w in layers:
        kept = np.clip(w[w > 0], low, None)
        ax.hist(kept, bins=bins, weights=np.full(len(kept), 1 / len(w)), histtype="step", linewidth=1.5,
                label=f"{name} ({len(w):,} weights): {(w <= threshold).mean():.1%} at or below")
    total = sum(len(w) for _, w in layers)
    ax.axvline(threshold, color="black", linestyle="--",
               label=f"global threshold for {level:.0%}: |w| = {threshold:.3g} ({round(level * total):,} of {total:,})")
    ax.set_xscale("log")
    ax.set_xlabel("|w| (log scale; the first bin also holds all smaller magnitudes)")
    ax.set_ylabel("fraction of the layer's weights")
    ax.set_title("Weight magnitudes per layer and the global pruning threshold")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15))
    return threshold


def paired_interval(correct: np.ndarray, reference: np.ndarray, z: float = Z_95) -> tuple[float, float, float]:
    """(difference, low, high) of the accuracy of ``correct`` minus that of ``reference``, both per-image
    correctness on the SAME images: a 95% interval for paired proportions, which only the images the two
    models disagree on can widen (much tighter than two separate intervals)."""
    correct, reference = np.asarray(correct, bool), np.asarray(reference, bool)
    n = len(correct)
    gained, lost = int((correct & ~reference).sum()), int((~correct & reference).sum())
    diff = (gained - lost) / n
    half = z * math.sqrt(max(gained + lost - (gained - lost) ** 2 / n, 0.0)) / n
    return diff, diff - half, diff + half


def plot_paired_comparison(models: dict, test_data, reference: str, title: str):
    """Accuracy of each model (left) and its difference from ``models[reference]`` with a paired 95% interval
    (right), all on the same test images. Returns ``{name: (accuracy, difference, low, high)}`` and prints it."""
    from .pruning_helper import predict

    X, y = test_data
    correct = {name: predict(model, X) == np.asarray(y) for name, model in models.items()}
    table = {name: (c.mean(), *paired_interval(c, correct[reference])) for name, c in correct.items()}
    names = list(models)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.6 * len(names) + 1.8), sharey=True)
    ys = np.arange(len(names))[::-1]
    accs = [table[n][0] for n in names]
    bars = left.barh(ys, accs, color="tab:blue")
    left.bar_label(bars, labels=[f"{a:.1%}" for a in accs], padding=2)
    left.axvline(CHANCE_ACCURACY, color="tab:red", linestyle=":", label="chance (10 classes)")
    left.set_yticks(ys, names)
    left.set_xlim(0, min(1, max(accs) * 1.25 + 0.02))
    left.xaxis.set_major_formatter(PercentFormatter(1.0))
    left.set_xlabel(f"test accuracy ({len(y):,} images)")
    left.legend(fontsize="small", loc="lower right")
    others = [n for n in names if n != reference]
    diffs = np.array([table[n][1:] for n in others])
    oy = np.array([ys[names.index(n)] for n in others])
    right.errorbar(diffs[:, 0], oy, xerr=[diffs[:, 0] - diffs[:, 1], diffs[:, 2] - diffs[:, 0]], fmt="o",
                   capsize=4, color="tab:orange", label="paired 95% interval")
    for (d, low, high), yy in zip(diffs, oy):
        right.annotate(f"{d * 100:+.1f} pts", (high, yy), xytext=(4, 0), textcoords="offset points", va="center",
                       fontsize="small")
    right.axvline(0, color="black", linewidth=1)
    right.xaxis.set_major_formatter(PercentFormatter(1.0))
    right.set_xlabel(f"difference from '{reference}' (percentage points)")
    low_x, high_x = diffs[:, 1].min(), diffs[:, 2].max()
    pad = 0.15 * (high_x - low_x) + 0.01
    right.set_xlim(min(low_x, 0) - pad, max(high_x, 0) + 2 * pad)  # room for the labels
    right.legend(fontsize="small", loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    print(f"{'model':32s} {'accuracy':>9s} {'vs ' + reference:>28s}")
    for name in names:
        acc, d, low, high = table[name]
        versus = "" if name == reference else f"{d * 100:+6.1f} pts [{low * 100:+.1f}, {high * 100:+.1f}]"
        print(f"{name:32s} {acc:9.1%} {versus:>28s}")
    return table
