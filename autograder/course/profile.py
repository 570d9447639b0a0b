"""The pruning profile of a course model, and whether it makes the notebook's premises true.

    python -m autograder profile [--mode torch|tensorflow]      (``make model`` runs it after training)

The notebook tells students what they will see; those sentences hold only for a
course model that behaves like the one they were measured on. The profile
measures, on the data ``get_CINIC10_data()`` finds (at the notebook's default
settings), the course model's accuracy against global sparsity up to 98% and
against the fraction of filters pruned, each layer's sensitivity when pruned
alone, and checks the premises the notebook states (``PREMISES``), each with
a paired 95% interval on the same test images. A retrained model that breaks
one gets a warning that names it: retrain, or change the notebook.
"""
import argparse
import sys
from dataclasses import dataclass

from autograder.reference import solution
from ece662.grading.registry import PART4, STRUCTURED_LEVELS

GLOBAL_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.98)
SENSITIVITY_LEVELS = (0.5, 0.9, 0.98)


@dataclass
class Premise:
    statement: str  # as the notebook states it
    holds: bool
    figures: str  # what was measured


def _points(interval) -> str:
    difference, low, high = interval
    return f"{difference * 100:+.1f} points, paired 95% interval [{low * 100:+.1f}, {high * 100:+.1f}]"


def premises(mode: str, data: dict) -> list[Premise]:
    """The notebook's premises about what students see, checked on the course model of ``mode`` and ``data``."""
    from ece662.compaction import remove_zero_filters  # either framework's model
    from ece662.frameworks import helpers
    from ece662.plots import correct_on, paired_interval

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
    return [
        Premise("Part 3: the model with 80% of its filters removed computes what the zeroed one does (the same "
                "predictions at every Part 2 level)", differ == 0,
                f"{differ} test images classified differently over the levels {list(STRUCTURED_LEVELS)}"),
        Premise(f"Part 4: one-shot pruning to part4_target = {PART4.target:.0%} loses accuracy, beyond the paired "
                "interval", drop[2] < 0, f"one-shot vs dense: {_points(drop)}"),
        Premise("Part 4: fine-tuning with the stated recipe wins accuracy back, beyond the paired interval",
                recovery[1] > 0, f"fine-tuned vs one-shot: {_points(recovery)}"),
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
    print("\nthe notebook's premises:")
    broken = []
    for premise in premises(mode, data):
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
