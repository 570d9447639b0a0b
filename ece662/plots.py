"""The notebook's plots: accuracy against what pruning removes, per-layer sparsity and sensitivity, weight
magnitudes, and paired comparisons of models evaluated on the same test images.

Every accuracy difference is shown with a *paired* 95% interval: two models evaluated on the same images
differ only on the images where one is right and the other wrong, so the interval of their difference is much
tighter than two separate intervals would suggest. Functions take models of either framework and never import
torch for a Keras model. Each draws a figure and leaves showing it to the caller; the measuring ones return
their figures and print them as a table.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, PercentFormatter

from .frameworks import TORCH, canonical_state, framework_of, helpers
from . import budget
from .architecture import CHANNEL_MULTIPLE, CONV_LAYERS
from .paired import paired_interval
from .weights import count_macs, count_parameters

CHANCE_ACCURACY = 0.1  # ten balanced classes


def _axes(ax, figsize=(7, 4.2)):
    return ax if ax is not None else plt.subplots(figsize=figsize)[1]


def _percent_axes(ax, xlabel: str, ylabel: str, title: str, legend_loc: str) -> None:
    """Both axes as percentages, labels, title, a light grid and a small legend."""
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc=legend_loc)


def _layer_weights(model) -> list[tuple[str, str, np.ndarray]]:
    """(name, layer type, weights as numpy) of every prunable layer of a torch or Keras model (masks folded in)."""
    layers = []
    for name, layer in helpers(model).prunable_layers(model):
        if framework_of(model) == TORCH:
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


def points_formatter() -> FuncFormatter:
    """Tick labels for accuracy differences stored as fractions, in percentage points: 0.05 -> '+5'."""
    return FuncFormatter(lambda value, _: "0" if abs(value) < 1e-9 else f"{value * 100:+g}")


def plot_paired_comparison(models: dict, test_data, comparisons: list[tuple[str, str]], title: str):
    """Accuracy of each model (top) and, for each ``(a, b)`` of ``comparisons``, the accuracy of ``models[a]``
    minus that of ``models[b]`` with its paired 95% interval (bottom), all on the same test images. Prints both
    as tables; returns ``({name: accuracy}, {(a, b): (difference, low, high)})``."""
    correct = {name: correct_on(model, test_data) for name, model in models.items()}
    accuracies = {name: float(c.mean()) for name, c in correct.items()}
    differences = {(a, b): paired_interval(correct[a], correct[b]) for a, b in comparisons}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 0.42 * (len(models) + len(comparisons)) + 2.8),
                                      height_ratios=(len(models), len(comparisons)))
    ys = np.arange(len(models))[::-1]
    bars = top.barh(ys, list(accuracies.values()), color="tab:blue")
    top.bar_label(bars, labels=[f"{a:.1%}" for a in accuracies.values()], padding=2)
    top.axvline(CHANCE_ACCURACY, color="tab:red", linestyle=":")
    top.annotate("chance (10 classes)", (CHANCE_ACCURACY, 1), xycoords=("data", "axes fraction"), xytext=(0, 2),
                 textcoords="offset points", ha="center", va="bottom", color="tab:red", fontsize="small")
    top.set_yticks(ys, list(accuracies))
    top.set_xlim(0, min(1, max(accuracies.values()) * 1.2 + 0.02))
    top.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    top.set_xlabel(f"test accuracy ({len(test_data[1]):,} images)")
    ys = np.arange(len(comparisons))[::-1]
    table = np.array(list(differences.values()))
    bottom.errorbar(table[:, 0], ys, xerr=[table[:, 0] - table[:, 1], table[:, 2] - table[:, 0]], fmt="o",
                    capsize=4, color="tab:orange")
    for (d, low, high), y in zip(table, ys):
        bottom.annotate(f"{d * 100:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}]", (high, y), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize="small")
    bottom.axvline(0, color="black", linewidth=1)
    bottom.set_yticks(ys, [f"{a}  −  {b}" for a, b in comparisons])
    bottom.xaxis.set_major_formatter(points_formatter())
    bottom.set_xlabel("difference in test accuracy, percentage points (bars: paired 95% interval, same images)")
    pad = 0.1 * (max(table[:, 2].max(), 0) - min(table[:, 1].min(), 0)) + 0.005
    bottom.set_xlim(min(table[:, 1].min(), 0) - pad, max(table[:, 2].max(), 0) + 3 * pad)  # room for the labels
    bottom.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    width = max(len(name) for name in accuracies)
    print(f"{'model':{width}s} {'accuracy':>9s}")
    for name, acc in accuracies.items():
        print(f"{name:{width}s} {acc:9.1%}")
    width = max(len(f"{a} - {b}") for a, b in comparisons)
    print(f"\n{'difference':{width}s} {'points':>7s}  paired 95% interval")
    for (a, b), (d, low, high) in differences.items():
        print(f"{a + ' - ' + b:{width}s} {d * 100:+7.1f}  [{low * 100:+.1f}, {high * 100:+.1f}]")
    return accuracies, differences


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
    """For each labelled curve of ``measure_curve``: the accuracy (top row) and its difference from the dense model
    with the paired 95% interval (bottom row, zoomed so the intervals show), against the non-zero parameters left
    (left) and the multiply-accumulates left (right). Prints the figures as a table; returns the figure."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex="col", height_ratios=(3, 2))
    dense = next(iter(curves.values()))[0.0]["accuracy"]
    labels = ("non-zero parameters left (% of the dense model's)",
              "multiply-accumulates left per image, zeros skipped (% of the dense model's)")
    for column, (x, label) in enumerate(zip(("parameters", "macs"), labels)):
        top, bottom = axes[0, column], axes[1, column]
        for (name, curve), marker in zip(curves.items(), "osD^v"):
            levels = sorted(curve)
            xs = [curve[lv][x] for lv in levels]
            top.plot(xs, [curve[lv]["accuracy"] for lv in levels], marker=marker, label=name)
            differences = [curve[lv]["difference"] for lv in levels]
            err = [[curve[lv]["difference"] - curve[lv]["low"] for lv in levels],
                   [curve[lv]["high"] - curve[lv]["difference"] for lv in levels]]
            bottom.errorbar(xs, differences, yerr=err, marker=marker, capsize=3, label=name)
        top.axhline(dense, color="black", linestyle="--", linewidth=1, label=f"dense model ({dense:.1%})")
        top.axhline(CHANCE_ACCURACY, color="tab:red", linestyle=":", linewidth=1, label="chance (10 classes)")
        top.set_ylim(0, 1)
        top.yaxis.set_major_formatter(PercentFormatter(1.0))
        bottom.axhline(0, color="black", linestyle="--", linewidth=1)
        bottom.yaxis.set_major_formatter(points_formatter())
        bottom.set_xlim(1.02, 0)  # from the dense model (all left) towards nothing left
        bottom.xaxis.set_major_formatter(PercentFormatter(1.0))
        bottom.set_xlabel(label)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"test accuracy ({n_test:,} images)")
    axes[1, 0].set_ylabel("difference from the dense model\n(percentage points; bars: paired 95% interval)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize="small")
    fig.suptitle(title + "\nbottom: each model minus the dense model on the same images, zoomed in")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
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
    if framework_of(model) == TORCH:
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
    _percent_axes(ax, "fraction of THIS layer's weights set to zero (smallest |w| first; other layers untouched)",
                  f"test accuracy ({len(test_data[1]):,} images)", "Per-layer sensitivity: each layer pruned alone",
                  "lower left")
    fig.tight_layout()
    print(f"{'layer':14s}" + "".join(f"{level:>8.0%}" for level in levels))
    for name, row in table.items():
        print(f"{name:14s}" + "".join(f"{acc:8.1%}" for acc in row.values()))
    return table


def filter_sensitivity(load, keep_filters, images) -> dict:
    """Part 5's scan: {layer: {width: (MACs fraction, accuracy)}} when that conv layer alone keeps ``width`` filters
    (a multiple of 8, chosen by the student's ``keep_filters(model, keep)``) and the others all of theirs,
    measured on ``images`` ([X, y]); ``load()`` returns a fresh dense model."""
    scan = {}
    for index, layer in enumerate(CONV_LAYERS):
        scan[layer] = {}
        for width in range(CHANNEL_MULTIPLE, budget.FULL_WIDTHS[index], CHANNEL_MULTIPLE):
            widths = list(budget.FULL_WIDTHS)
            widths[index] = width
            model = load()
            keep_filters(model, widths)
            scan[layer][width] = (budget.macs_fraction(widths), float(correct_on(model, images).mean()))
    return scan


def plot_filter_sensitivity(scan: dict, dense_accuracy: float, part5_budget: float, n_images: int):
    """Part 5's scan as a plot (accuracy against MACs, a line per layer) and a table."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for (layer, row), marker in zip(scan.items(), "osD"):
        macs, accuracy = zip(*row.values())
        ax.plot([*macs, 1.0], [*accuracy, dense_accuracy], marker=marker, label=f"{layer} keeps 8, 16, ... filters")
        for width, (x, acc) in row.items():
            ax.annotate(str(width), (x, acc), textcoords="offset points", xytext=(0, 5), fontsize=7, ha="center")
    ax.axvline(part5_budget, color="tab:red", linestyle="--", linewidth=1, label=f"part5_budget ({part5_budget:.0%})")
    _percent_axes(ax, "MACs of the whole model, as a fraction of the dense model's",
                  f"accuracy ({n_images:,} validation images)",
                  "Filter sensitivity: one conv layer keeps fewer filters, the others all of theirs (no training)",
                  "lower right")
    fig.tight_layout()
    print(f"dense: {dense_accuracy:.1%}")
    for layer, row in scan.items():
        print(f"{layer}: " + ", ".join(f"{width} filters {acc:.1%} ({macs:.0%} MACs)"
                                      for width, (macs, acc) in row.items()))
