"""The notebook's plots: accuracy against what pruning removes, per-layer sparsity and sensitivity, weight
magnitudes, and paired comparisons of models evaluated on the same test images.

Every accuracy difference is shown with a *paired* 95% interval: two models evaluated on the same images
differ only on the images where one is right and the other wrong, so the interval of their difference is much
tighter than two separate intervals would suggest. Functions take models of either framework and never import
torch for a Keras model. Each draws a figure and leaves showing it to the caller; the measuring ones return
their figures and print them as a table.
"""
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import PercentFormatter

from .weights import canonical_state, count_macs, count_parameters, helpers, is_torch

CHANCE_ACCURACY = 0.1  # ten balanced classes
Z_95 = 1.959964


def _axes(ax, figsize=(7, 4.2)):
    return ax if ax is not None else plt.subplots(figsize=figsize)[1]


def _layer_weights(model) -> list[tuple[str, str, np.ndarray]]:
    """(name, layer type, weights as numpy) of every prunable layer of a torch or Keras model (masks folded in)."""
    layers = []
    for name, layer in helpers(model).prunable_layers(model):
        if is_torch(model):
            from .pruning_helper import effective_weight

            weight = effective_weight(layer).cpu().numpy()
        else:
            weight = layer.kernel.numpy()
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


def correct_on(model, test_data) -> np.ndarray:
    """Which test images ``model`` classifies right (per image: a paired comparison's input)."""
    X, y = test_data
    return helpers(model).predict(model, X) == np.asarray(y)


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
    correct = {name: correct_on(model, test_data) for name, model in models.items()}
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
    left.set_xlabel(f"test accuracy ({len(test_data[1]):,} images)")
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


def measure_curve(models: dict, dense, test_data) -> dict:
    """Each pruned model of ``models`` ({level: model}) against the ``dense`` one on the same test images:
    {level: {accuracy, difference, low, high (its paired 95% interval), parameters, macs (fractions of the
    dense model's that are left)}}, with the dense model's own figures under level 0."""
    dense_correct = correct_on(dense, test_data)
    dense_parameters, dense_macs = count_parameters(canonical_state(dense))[0], count_macs(canonical_state(dense))[0]
    curve = {0.0: {"accuracy": dense_correct.mean(), "difference": 0.0, "low": 0.0, "high": 0.0, "parameters": 1.0,
                   "macs": 1.0}}
    for level, model in models.items():
        correct, state = correct_on(model, test_data), canonical_state(model)
        difference, low, high = paired_interval(correct, dense_correct)
        curve[level] = {"accuracy": correct.mean(), "difference": difference, "low": low, "high": high,
                        "parameters": count_parameters(state)[1] / dense_parameters,
                        "macs": count_macs(state)[1] / dense_macs}
    return curve


def plot_curves(curves: dict, title: str, n_test: int):
    """Accuracy against the non-zero parameters left (left) and against the multiply-accumulates left (right)
    for each labelled curve of ``measure_curve``; error bars: the paired 95% interval of each model's difference
    from the dense model (the point at 100%). Prints the figures as a table."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    dense = next(iter(curves.values()))[0.0]["accuracy"]
    for ax, x, label in zip(axes, ("parameters", "macs"), (
            "non-zero parameters left (% of the dense model's)",
            "multiply-accumulates left per image, zeros skipped (% of the dense model's)")):
        for (name, curve), marker in zip(curves.items(), "osD^v"):
            levels = sorted(curve)
            xs = [curve[lv][x] for lv in levels]
            ys = [curve[lv]["accuracy"] for lv in levels]
            err = [[curve[lv]["difference"] - curve[lv]["low"] for lv in levels],
                   [curve[lv]["high"] - curve[lv]["difference"] for lv in levels]]
            ax.errorbar(xs, ys, yerr=err, marker=marker, capsize=3, label=name)
        ax.axhline(dense, color="black", linestyle="--", linewidth=1, label=f"dense model ({dense:.1%})")
        ax.axhline(CHANCE_ACCURACY, color="tab:red", linestyle=":", linewidth=1, label="chance (10 classes)")
        ax.set_xlim(1.02, 0)  # from the dense model (all left) towards nothing left
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test accuracy ({n_test:,} images)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize="small")
    fig.suptitle(title + "\nerror bars: paired 95% interval of the difference from the dense model, same images")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    print(f"{'curve':28s} {'level':>6s} {'accuracy':>9s} {'vs dense (paired 95%)':>27s} {'params left':>12s} "
          f"{'MACs left':>10s}")
    for name, curve in curves.items():
        for level in sorted(curve)[1:]:
            p = curve[level]
            versus = f"{p['difference'] * 100:+.1f} pts [{p['low'] * 100:+.1f}, {p['high'] * 100:+.1f}]"
            print(f"{name[:28]:28s} {level:6.0%} {p['accuracy']:9.1%} {versus:>27s} {p['parameters']:12.1%} "
                  f"{p['macs']:10.1%}")
    return fig


def _prune_one_layer(model, layer_index: int, level: float) -> None:
    """Zero the fraction ``level`` of smallest-|w| weights of one layer only (the others untouched)."""
    _, layer = helpers(model).prunable_layers(model)[layer_index]
    if is_torch(model):
        import torch

        with torch.no_grad():
            weight = layer.weight
            count = round(level * weight.numel())
            if count:
                threshold = weight.abs().flatten().kthvalue(count).values
                weight[weight.abs() <= threshold] = 0.0
        return
    kernel, *rest = layer.get_weights()
    count = round(level * kernel.size)
    if count:
        threshold = np.partition(np.abs(kernel).ravel(), count - 1)[count - 1]
        layer.set_weights([np.where(np.abs(kernel) <= threshold, 0.0, kernel), *rest])


def layer_sensitivity(load, test_data, levels) -> dict:
    """{layer: {level: accuracy when that layer alone loses its ``level`` smallest-|w| weights}}; ``load()``
    returns a fresh dense model."""
    dense = load()
    names = [name for name, _ in helpers(dense).prunable_layers(dense)]
    table = {}
    for index, name in enumerate(names):
        table[name] = {}
        for level in levels:
            model = load()
            _prune_one_layer(model, index, level)
            table[name][level] = correct_on(model, test_data).mean()
    return table


def plot_layer_sensitivity(load, test_data, levels=(0.5, 0.8, 0.9, 0.95)):
    """Per-layer sensitivity: the accuracy when ONE layer alone loses its ``level`` smallest-|w| weights, for
    each layer and level (``load()`` returns a fresh dense model). Prints the table; returns {layer: {level:
    accuracy}}."""
    dense = load()
    sizes = [w.size for _, _, w in _layer_weights(dense)]
    base = correct_on(dense, test_data).mean()
    table = layer_sensitivity(load, test_data, levels)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for (name, row), size, marker in zip(table.items(), sizes, "osD^v<>"):
        ax.plot([0, *levels], [base, *row.values()], marker=marker, label=f"{name} ({size:,} weights)")
    ax.axhline(CHANCE_ACCURACY, color="tab:red", linestyle=":", linewidth=1, label="chance (10 classes)")
    ax.set_ylim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("fraction of THIS layer's weights set to zero (smallest |w| first; other layers untouched)")
    ax.set_ylabel(f"test accuracy ({len(test_data[1]):,} images)")
    ax.set_title("Per-layer sensitivity: each layer pruned alone")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower left")
    fig.tight_layout()
    print(f"{'layer':14s}" + "".join(f"{level:>8.0%}" for level in levels))
    for name, row in table.items():
        print(f"{name:14s}" + "".join(f"{acc:8.1%}" for acc in row.values()))
    return table
