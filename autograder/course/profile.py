"""The pruning profile of a course model, and whether it makes the notebook's premises true.

    python -m autograder profile [--mode torch|tensorflow]      (``make model`` runs it after training)

The notebook tells students what they will see; those sentences hold only for a
course model that behaves like the one they were measured on. The profile
measures, on the data ``get_CINIC10_data()`` finds (at the notebook's default
settings), the course model's accuracy against global sparsity up to 98% and
against the fraction of filters pruned, each layer's sensitivity when pruned
alone, Part 5's compact models at ``PART5_BUDGET`` (the uniform choice and one
guided by the filter scan on validation images, before and after Part 4's
recipe), and checks the premises the notebook states (``premises``), each with
a paired 95% interval on the same test images. A retrained model that breaks
one gets a warning that names it: retrain, or change the notebook.
"""
import argparse
import sys
from dataclasses import dataclass

from autograder.reference import solution
from ece662.grading.registry import PART4, PART5_BUDGET, STRUCTURED_LEVELS

GLOBAL_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.98)
SENSITIVITY_LEVELS = (0.5, 0.9, 0.98)
SCAN_IMAGES = 1000  # Part 5's scan reads at most this many validation images (never the test images)


@dataclass
class Premise:
    statement: str  # as the notebook states it
    holds: bool
    figures: str  # what was measured


def _points(interval) -> str:
    difference, low, high = interval
    return f"{difference * 100:+.1f} points, paired 95% interval [{low * 100:+.1f}, {high * 100:+.1f}]"


def guided_widths(scan: dict, dense_accuracy: float, part5_budget: float) -> tuple[int, ...]:
    """Part 5's sensitivity-guided choice, read mechanically from ``filter_sensitivity``'s ``scan``: from the full
    widths, repeatedly take 8 filters from the conv layer whose next step in the scan loses the least accuracy per
    MAC it saves (MACs at the current widths), until the MACs fit ``part5_budget``."""
    from ece662 import budget
    from ece662.architecture import CHANNEL_MULTIPLE, CONV_LAYERS

    def accuracy(index, width):
        return dense_accuracy if width == budget.FULL_WIDTHS[index] else scan[CONV_LAYERS[index]][width][1]

    def cost(widths, index):  # accuracy lost per MACs fraction saved by layer ``index`` keeping 8 filters fewer
        fewer = list(widths)
        fewer[index] -= CHANNEL_MULTIPLE
        lost = accuracy(index, widths[index]) - accuracy(index, fewer[index])
        return lost / (budget.macs_fraction(widths) - budget.macs_fraction(fewer))

    widths = list(budget.FULL_WIDTHS)
    while budget.macs_fraction(widths) > part5_budget:
        layers = [index for index, width in enumerate(widths) if width > CHANNEL_MULTIPLE]
        if not layers:
            raise ValueError(f"no choice fits a budget of {part5_budget:.1%} of the dense model's MACs")
        widths[min(layers, key=lambda index: cost(widths, index))] -= CHANNEL_MULTIPLE
    return tuple(widths)


def part5(mode: str, data: dict, part5_budget: float = PART5_BUDGET) -> dict:
    """Part 5 on the course model of ``mode``: the uniform and the guided choice at ``part5_budget``, compact, before
    and after Part 4's recipe. Returns {"uniform", "guided": widths, "scan": the scan, "dense_val": the dense
    model's validation accuracy, "correct": {name: per-test-image correctness}, "seconds": {what: seconds}} with
    names dense, uniform, guided (before training) and uniform_tuned, guided_tuned. Each recipe runs once: a guided
    choice equal to the uniform one reuses its models (the same start, the same seeded recipe)."""
    import time

    from ece662 import budget
    from ece662.compaction import remove_zero_filters  # either framework's model
    from ece662.frameworks import helpers
    from ece662.plots import correct_on, filter_sensitivity

    reference, helper = solution(mode), helpers(mode)
    test = [data["X_test"], data["y_test"]]
    validation = [data["X_val"][:SCAN_IMAGES], data["y_val"][:SCAN_IMAGES]]
    X, y = data["X_train"][:PART4.images], data["y_train"][:PART4.images]

    def load():
        return helper.load_model(helper.model_path(mode), mode=mode)

    start = time.perf_counter()
    dense = load()
    scan = filter_sensitivity(load, reference.keep_filters, validation)
    dense_val = float(correct_on(dense, validation).mean())
    choices = {"uniform": budget.uniform_widths(part5_budget), "guided": guided_widths(scan, dense_val, part5_budget)}
    seconds = {"scan": time.perf_counter() - start}
    correct = {"dense": correct_on(dense, test)}
    for name, widths in choices.items():
        if name == "guided" and widths == choices["uniform"]:
            correct["guided"], correct["guided_tuned"] = correct["uniform"], correct["uniform_tuned"]
            break
        zeroed = load()
        reference.keep_filters(zeroed, widths)
        compact = remove_zero_filters(zeroed)
        correct[name] = correct_on(compact, test)
        start = time.perf_counter()
        reference.finetune(compact, PART4.epochs, X, y, PART4.lr, PART4.momentum)
        seconds[f"{name} recipe"] = time.perf_counter() - start
        correct[f"{name}_tuned"] = correct_on(compact, test)
    return {**choices, "scan": scan, "dense_val": dense_val, "correct": correct, "seconds": seconds}


def print_part5(figures: dict, part5_budget: float = PART5_BUDGET) -> None:
    """Part 5's figures of ``part5``, as the profile prints them."""
    from ece662 import budget
    from ece662.paired import paired_interval

    correct = figures["correct"]
    print(f"\nPart 5 at part5_budget = {part5_budget:.0%} of the dense model's MACs (compact models; test accuracy, "
          f"paired 95% intervals):")
    print(f"  dense            {correct['dense'].mean():6.1%}")
    for name in ("uniform", "guided"):
        widths = figures[name]
        print(f"  {name:8s} {str(widths):14s} {budget.macs_fraction(widths):4.0%} MACs: before the recipe "
              f"{correct[name].mean():6.1%}, after {correct[name + '_tuned'].mean():6.1%}")
    for a, b in (("guided", "uniform"), ("guided_tuned", "uniform_tuned"), ("uniform_tuned", "dense"),
                 ("guided_tuned", "dense")):
        print(f"  {a} vs {b}: {_points(paired_interval(correct[a], correct[b]))}")
    _, low, high = paired_interval(correct["guided_tuned"], correct["uniform_tuned"])
    verdict = "beats" if low > 0 else "loses to" if high < 0 else "is within the paired interval of"
    print(f"  after the recipe the guided choice {verdict} the uniform one"
          + (" (the same widths)" if figures["guided"] == figures["uniform"] else ""))
    print("  seconds: " + ", ".join(f"{what} {s:.1f}" for what, s in figures["seconds"].items()))


def premises(mode: str, data: dict, part5_figures: dict | None = None) -> list[Premise]:
    """The notebook's premises about what students see, checked on the course model of ``mode`` and ``data``
    (``part5_figures``: ``part5(mode, data)`` when the caller has it already)."""
    from ece662.compaction import remove_zero_filters  # either framework's model
    from ece662.frameworks import helpers
    from ece662.paired import paired_interval
    from ece662.plots import correct_on

    reference, helper = solution(mode), helpers(mode)
    test = [data["X_test"], data["y_test"]]
    X, y = data["X_train"][:PART4.images], data["y_train"][:PART4.images]

    def load():
        return helper.load_model(helper.model_path(mode), mode=mode)

    differ = 0
    for level in STRUCTURED_LEVELS:
        zeroed = load()
        reference.prune_filters(zeroed, level)
        differ += int((helper.predict(zeroed, test[0]) != helper.predict(remove_zero_filters(zeroed), test[0])).sum())
    dense, one_shot = load(), load()
    reference.prune_unstructured_to(one_shot, PART4.target)
    tuned = helper.clone_model(one_shot)
    reference.finetune(tuned, PART4.epochs, X, y, PART4.lr, PART4.momentum)
    right = {name: correct_on(model, test) for name, model in (("dense", dense), ("one_shot", one_shot),
                                                             ("tuned", tuned))}
    drop = paired_interval(right["one_shot"], right["dense"])
    recovery = paired_interval(right["tuned"], right["one_shot"])
    part5_figures = part5_figures or part5(mode, data)
    compact, widths = part5_figures["correct"], f"guided {part5_figures['guided']}, uniform {part5_figures['uniform']}"
    guided_vs_uniform = paired_interval(compact["guided_tuned"], compact["uniform_tuned"])
    uniform_vs_dense = paired_interval(compact["uniform_tuned"], compact["dense"])
    return [
        Premise("Part 3: the model with 80% of its filters removed computes what the zeroed one does (the same "
                "predictions at every Part 2 level)", differ == 0,
                f"{differ} test images classified differently over the levels {list(STRUCTURED_LEVELS)}"),
        Premise(f"Part 4: one-shot pruning to part4_target = {PART4.target:.0%} loses accuracy, beyond the paired "
                "interval", drop[2] < 0, f"one-shot vs dense: {_points(drop)}"),
        Premise("Part 4: fine-tuning with the stated recipe wins accuracy back, beyond the paired interval",
                recovery[1] > 0, f"fine-tuned vs one-shot: {_points(recovery)}"),
        Premise(f"Part 5: at part5_budget = {PART5_BUDGET:.0%}, after the recipe the sensitivity-guided choice and the "
                "uniform one end within the paired interval of each other",
                guided_vs_uniform[1] <= 0 <= guided_vs_uniform[2],
                f"guided vs uniform after the recipe: {_points(guided_vs_uniform)} ({widths})"),
        Premise(f"Part 5: at part5_budget = {PART5_BUDGET:.0%}, the uniform compact model after the recipe is within "
                "the paired interval of the dense model", uniform_vs_dense[1] <= 0 <= uniform_vs_dense[2],
                f"uniform after the recipe vs dense: {_points(uniform_vs_dense)}"),
    ]


def profile(mode: str, data: dict) -> list[Premise]:
    """Print the course model's pruning profile and its premises; returns (and warns about) those it breaks."""
    from ece662.frameworks import helpers
    from ece662.plots import layer_sensitivity, measure_curve

    reference, helper = solution(mode), helpers(mode)
    test = [data["X_test"], data["y_test"]]

    def load():
        return helper.load_model(helper.model_path(mode), mode=mode)

    dense = load()
    print(f"Pruning profile of {helper.model_path(mode)} ({mode}), {len(test[1]):,} test images")
    for name, prune, levels in (("global unstructured", reference.prune_unstructured_to, GLOBAL_LEVELS),
                                ("filters", reference.prune_filters, STRUCTURED_LEVELS)):
        models = {}
        for level in levels:
            models[level] = load()
            prune(models[level], level)
        curve = measure_curve(models, dense, test)
        print(f"\n{name}: level, accuracy, vs dense (paired 95%), non-zero parameters left, MACs left")
        for level in levels:
            p = curve[level]
            print(f"  {level:4.0%}  {p['accuracy']:6.1%}  {p['difference'] * 100:+5.1f} pts "
                  f"[{p['low'] * 100:+.1f}, {p['high'] * 100:+.1f}]  {p['parameters']:6.1%}  {p['macs']:6.1%}")
    print(f"\nper-layer sensitivity (accuracy with one layer pruned alone; dense {curve[0.0]['accuracy']:.1%}):")
    for layer, row in layer_sensitivity(load, test, SENSITIVITY_LEVELS).items():
        print(f"  {layer:14s}" + "".join(f"  {level:.0%}: {acc:5.1%}" for level, acc in row.items()))
    compact = part5(mode, data)
    print_part5(compact)
    print("\nthe notebook's premises:")
    broken = []
    for premise in premises(mode, data, compact):
        print(f"  [{'holds' if premise.holds else 'BROKEN'}] {premise.statement}: {premise.figures}")
        if not premise.holds:
            broken.append(premise)
    for premise in broken:
        print(f"WARNING: this course model breaks a premise the notebook states ({premise.statement}; "
              f"{premise.figures}): retrain it (`make model`) or change the notebook before releasing it.",
              file=sys.stderr)
    return broken


def main(argv=None) -> int:
    from ece662 import data_utils

    parser = argparse.ArgumentParser(prog="python -m autograder profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("torch", "tensorflow"), default="torch")
    args = parser.parse_args(argv)
    return 1 if profile(args.mode, data_utils.get_CINIC10_data()) else 0
