"""The outcome checks behind every autograded test (one function per ``registry.GradedTest.check``).

A check reads a ``Context``: the course model's original weights, the
evidence items the notebook recorded (a pruning function's trace, a model's
weights, a results dict), how to measure the accuracy of weights, and, when
graded, Part 4's recipe as the grader computes it. It verifies *what* the
student's code produced, never *how*, and raises ``AssertionError`` with a
message addressed to the student. The same functions run in two places:

* when graded, in the grader process (``autograder/worker/verify.py``), on evidence
  files, against the grader's own checkpoint, test data and recipe runs;
* in a student's own run, in the kernel (``ece662/grading/cells.py``), on the
  live objects, at the registry's public levels and without the recipe:
  immediate feedback.

All weights are float32 numpy arrays in the canonical layout (see
``ece662/grading/evidence.py``), so the checks are the same for PyTorch and Keras
submissions, and a TensorFlow-mode kernel never imports torch for them.
"""
import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .. import budget
from ..frameworks import TENSORFLOW, display_names
from ..paired import paired_interval
from . import registry
from .registry import COMPACT, FINAL_SPARSITY, FINETUNED, GRADUAL, PART4, PART5_BUDGET

ACCURACY_TOLERANCE = 0.0025  # recorded vs re-evaluated accuracy (a few images of 5000; frameworks differ slightly)
# Part 4 against the grader's own run of the recipe, per tensor: |student - recipe| / |recipe - start|. Measured on
# the real sample at 95%: honest runs with other thread counts 0.024 at most (torch and TensorFlow); the nearest
# run that is not the recipe (a new optimizer each epoch) 0.31, the forgeries 0.75 or more.
MAX_RECIPE_DISTANCE = 0.1
# ... and of the zero patterns: honest runs agree on 99.98%, runs with another schedule on 97.6% at most.
MIN_ZEROS_AGREEMENT = 0.995


@dataclass
class Trace:
    """A pruning function called at each level: the levels completed, the weights after each, its error."""
    levels: list
    states: list
    error: str = ""


class Context:
    """The inputs of the checks: ``original`` weights, recorded ``items``, ``problems`` with items, how to
    measure the accuracy of weights, ``recipe(kind, start)``: the weights Part 4's recipe gives from ``start``,
    and ``correct(state)``: which of the grader's test images the weights classify right (both None in a
    student's own run, where Parts 4 and 5 are compared with the recipe only when graded)."""

    def __init__(self, original: dict, items: dict, problems: dict, accuracy: Callable[[dict], float],
                 recipe: Callable[[str, dict], dict] | None = None, framework: str = "torch",
                 correct: Callable[[dict], np.ndarray] | None = None):
        self.original, self.items, self.problems = original, items, problems
        self._accuracy, self.recipe, self.correct = accuracy, recipe, correct
        self.framework = framework
        self.figures: dict = {}  # what the grader measured for the class pages (Part5Point)
        self.keras = framework == TENSORFLOW
        self._layer_names = display_names(framework)  # canonical layer -> the name the student's framework uses
        self.weights = "Conv2D and Dense kernels" if self.keras else "Conv2d and Linear weights"
        self.linear = "Dense" if self.keras else "Linear"
        self.convs = [k[:-7] for k, v in original.items() if k.endswith(".weight") and v.ndim == 4]
        self.linears = [k[:-7] for k, v in original.items() if k.endswith(".weight") and v.ndim == 2]

    def _item(self, item):
        if item.name in self.problems or item.name not in self.items:  # a problem wins over a loaded item
            what = f"the trace of `{item.source}`" if item.kind == "trace" else f"`{item.source}`"
            problem = self.problems.get(item.name, "was not recorded")
            raise AssertionError(f"Grading could not use {what}: it {problem}.")
        return self.items[item.name]

    def name(self, key: str) -> str:
        """A canonical layer or parameter name as the student knows it (Keras: conv1, fc1, ...)."""
        layer, dot, param = key.rpartition(".") if key.endswith((".weight", ".bias")) else (key, "", "")
        shown = self._layer_names.get(layer, layer)
        return f"{shown} ({param})" if dot and shown != layer else f"{shown}{dot}{param}"

    def filter_word(self) -> str:
        """What a filter is, in the student's framework."""
        return "`kernel[..., c]` and `bias[c]`" if self.keras else "`weight[c]` and `bias[c]`"

    def trace(self, item) -> Trace:
        return self._item(item)

    def state(self, item) -> dict:
        return self._item(item)

    def results(self, item) -> dict:
        return self._item(item)

    def accuracy(self, state: dict) -> float:
        return self._accuracy(state)


def _per_filter(array: np.ndarray) -> np.ndarray:
    """A conv weight (or mask) as one row per output filter."""
    return array.reshape(len(array), -1)


def _weights(ctx: Context) -> list[str]:
    return ctx.convs + ctx.linears


def _zeros_and_total(state: dict, layers) -> tuple[int, int]:
    ws = [state[f"{n}.weight"] for n in layers]
    return sum(int((w == 0).sum()) for w in ws), sum(w.size for w in ws)


def _sparsity(state: dict, layers) -> float:
    zeros, total = _zeros_and_total(state, layers)
    return zeros / total


def _complete(trace: Trace, item) -> Trace:
    if trace.error:
        raise AssertionError(f"Calling {item.source}: {trace.error}")
    return trace


def _require_pruning(ctx: Context, trace: Trace, item):
    """No credit for a function that prunes (almost) nothing or (almost) everything: each level reaches half
    its target and keeps at least a hundredth of the weights it should keep."""
    _complete(trace, item)
    for level, state in zip(trace.levels, trace.states):
        observed = _sparsity(state, _weights(ctx))
        if observed < level / 2:
            raise AssertionError(
                f"After {item.source}(model, {level}) only {observed:.2%} of the {ctx.weights} are zero "
                f"(target {level:.0%}): your function does not prune enough to be checked further.")
        if observed > 1 - (1 - level) / 100:
            raise AssertionError(
                f"After {item.source}(model, {level}) {observed:.2%} of the {ctx.weights} are zero "
                f"(target {level:.0%}): your function prunes (almost) everything, so it cannot be checked further.")


# ---------------------------------------------------------------- Part 1: global unstructured pruning

def _compounding_hint(ctx: Context, observed: list[float], levels) -> str:
    repeated = [1 - (1 - levels[0]) ** (k + 1) for k in range(len(observed))]
    compounded = [1 - math.prod(1 - t for t in levels[: k + 1]) for k in range(len(observed))]
    if len(observed) > 1 and all(abs(o - r) < 0.01 for o, r in zip(observed, repeated)):
        if ctx.keras:
            return (f" {observed[-1]:.0%} instead of {levels[len(observed) - 1]:.0%}: zeroing the same fraction of "
                    "the weights STILL NON-ZERO at every step compounds. Count the target as a fraction of ALL "
                    "kernel weights, the zeros already there included.")
        return (f" {observed[-1]:.0%} instead of {levels[len(observed) - 1]:.0%}: a float `amount` in "
                "torch.nn.utils.prune is a fraction of the weights STILL UNPRUNED, so the same fraction at every "
                "step compounds (PyTorch's documentation does not say so; the Part 1 hint does).")
    if len(observed) > 1 and all(abs(o - c) < 0.01 for o, c in zip(observed, compounded)):
        if ctx.keras:
            return (" The steps compound: each step zeroed its target fraction of the weights still non-zero, not "
                    "of all weights, so it overshoots.")
        return (" The steps compound: a float `amount` is a fraction of the weights still unpruned, not of all "
                "weights, so passing the cumulative target as `amount` overshoots.")
    return ""


def cumulative_sparsity(ctx: Context):
    """After each step exactly round(target * N) of all Conv2d/Linear (Conv2D/Dense) weights are zero."""
    item = registry.PART1_TRACE
    trace = _complete(ctx.trace(item), item)
    layers = _weights(ctx)
    observed = [_sparsity(s, layers) for s in trace.states]
    for level, state in zip(trace.levels, trace.states):
        zeros, total = _zeros_and_total(state, layers)
        if abs(zeros - level * total) > len(layers):  # per-step rounding: a weight per layer at most
            raise AssertionError(
                f"After pruning to {level:.0%} the model has {zeros / total:.2%} of its {ctx.weights} at "
                f"zero ({zeros} of {total}); expected {round(level * total)}. Sparsities after each step: "
                + ", ".join(f"{o:.1%}" for o in observed) + "." + _compounding_hint(ctx, observed, trace.levels))


def _threshold_violation(ctx: Context, pruned: dict) -> str | None:
    """Message if some kept weight is smaller in |w| than some pruned one (across all layers)."""
    pruned_max, kept_min, where = -1.0, math.inf, {}
    for n in _weights(ctx):
        w0, w1 = np.abs(ctx.original[f"{n}.weight"]), pruned[f"{n}.weight"]
        zeroed, kept = (w1 == 0) & (w0 != 0), w1 != 0
        if zeroed.any() and (m := float(w0[zeroed].max())) > pruned_max:
            pruned_max, where["pruned"] = m, n
        if kept.any() and (m := float(w0[kept].min())) < kept_min:
            kept_min, where["kept"] = m, n
    if pruned_max > kept_min:
        return (f"layer '{ctx.name(where['kept'])}' kept a weight with |w| = {kept_min:.4g} while layer "
                f"'{ctx.name(where['pruned'])}' "
                f"lost one with |w| = {pruned_max:.4g}")
    return None


def global_threshold(ctx: Context):
    """At each step the zeroed weights are the globally smallest |w| (one threshold over all layers)."""
    item = registry.PART1_TRACE
    trace = ctx.trace(item)
    _require_pruning(ctx, trace, item)
    for level, state in zip(trace.levels, trace.states):
        if problem := _threshold_violation(ctx, state):
            raise AssertionError(
                f"At {level:.0%} the zeroed weights are not the globally smallest: {problem}. Global pruning ranks "
                f"ALL {ctx.weights} together by |w|, so layers end with different sparsities; pruning "
                "each layer by the same fraction (per-layer pruning) is not what was asked.")


def _not_a_pruning(ctx: Context, state: dict) -> str | None:
    """Why ``state`` is not the course model with some values set to zero (a non-zero value changed), or None:
    the condition for crediting the accuracy of a pruned model."""
    for key, before in ctx.original.items():
        kept = state[key] != 0
        if not np.array_equal(state[key][kept], before[kept]):
            return f"values of '{ctx.name(key)}' that are not zero differ from the course model's"
    return None


def _changed_besides_zeros(ctx: Context, state: dict) -> str | None:
    """What ``state`` changed besides setting weights to zero (a bias, or a kept weight's value), or None."""
    for key, before in ctx.original.items():
        after = state[key]
        if key.endswith(".bias") and not np.array_equal(after, before):
            return f"the bias '{ctx.name(key)}' changed: unstructured pruning here prunes weights only"
        kept = after != 0
        if key.endswith(".weight") and not np.array_equal(after[kept], before[kept]):
            return f"weights of '{ctx.name(key)}' that were not pruned changed value: pruning only sets weights to zero"
    return None


def only_weights_changed(ctx: Context):
    """Biases untouched and kept weights keep their original values."""
    item = registry.PART1_TRACE
    trace = ctx.trace(item)
    _require_pruning(ctx, trace, item)
    for level, state in zip(trace.levels, trace.states):
        if problem := _changed_besides_zeros(ctx, state):
            raise AssertionError(f"At {level:.0%} {problem}.")


def _check_sparsity(ctx: Context, state: dict, target: float, what: str):
    layers = _weights(ctx)
    zeros, total = _zeros_and_total(state, layers)
    if abs(zeros - target * total) > len(layers):
        raise AssertionError(f"{what} should have {target:.0%} of its {ctx.weights} at zero, but has "
                             f"{zeros / total:.2%}." + _compounding_hint(ctx, [zeros / total], [target]))


def final_model(ctx: Context):
    """The notebook's ``model`` after Part 1: the course model global magnitude-pruned to 80%."""
    state = ctx.state(registry.PART1_MODEL)
    _check_sparsity(ctx, state, FINAL_SPARSITY, "After Part 1 `model`")
    if problem := _threshold_violation(ctx, state):
        raise AssertionError(f"`model` is at {FINAL_SPARSITY:.0%} but not by global magnitude: {problem}.")
    if problem := _changed_besides_zeros(ctx, state):
        raise AssertionError(f"`model` after Part 1 is not the course model with weights set to zero: {problem}.")


def _check_accuracies(ctx: Context, results_item, levels, states):
    recorded = ctx.results(results_item)
    name = results_item.source
    values = {}
    for level in results_item.keys:
        key = next((k for k in recorded if isinstance(k, float) and abs(k - level) < 1e-9), None)
        if key is None:
            raise AssertionError(f"`{name}` has no entry for level {level}; its keys are {list(recorded)[:10]}.")
        values[level] = recorded[key]
        if not isinstance(values[level], float) or not 0 <= values[level] <= 1:
            raise AssertionError(f"`{name}[{level}]` should be the accuracy test_model returns (a float in [0, 1]), "
                                 f"got {values[level]!r}.")
    for level, state in zip(levels, states):
        value = values[level]
        actual = ctx.accuracy(state)
        if abs(actual - value) > ACCURACY_TOLERANCE:
            raise AssertionError(
                f"`{name}[{level}]` = {value:.4f}, but your pruned model at {level:.0%} scores {actual:.4f} on "
                "test_data. Record what test_model returns for the model right after pruning it to that level, "
                "on the full test_data.")


def unstructured_accuracies(ctx: Context):
    """``unstructured_results[level]`` equals the accuracy of the student's own pruned model at that level."""
    trace = ctx.trace(registry.PART1_TRACE)
    _require_pruning(ctx, trace, registry.PART1_TRACE)
    for level, state in zip(trace.levels, trace.states):
        if problem := _not_a_pruning(ctx, state):
            raise AssertionError(f"Your pruned model at {level:.0%} is not the course model with weights set to zero "
                                 f"({problem}), so its accuracy cannot be credited.")
    _check_accuracies(ctx, registry.PART1_RESULTS, trace.levels, trace.states)


# ---------------------------------------------------------------- Part 2: filter pruning

def _filter_report(ctx: Context, state: dict, conv: str, level: float):
    per_filter_zero = _per_filter(state[f"{conv}.weight"] == 0)
    whole = per_filter_zero.all(1)
    partial = per_filter_zero.any(1) & ~whole
    return whole, partial, round(level * len(whole))


def _whole_filters(ctx: Context, trace: Trace):
    for level, state in zip(trace.levels, trace.states):
        for conv in ctx.convs:
            whole, partial, expected = _filter_report(ctx, state, conv, level)
            if partial.any():
                raise AssertionError(
                    f"At level {level:.0%}, layer '{ctx.name(conv)}' has {int(partial.sum())} filters that are only "
                    f"partly zero. Structured pruning removes WHOLE filters ({ctx.filter_word()} for filter c), not "
                    "individual weights.")
            if int(whole.sum()) != expected:
                raise AssertionError(
                    f"At level {level:.0%}, layer '{ctx.name(conv)}' has {int(whole.sum())} all-zero filters out of "
                    f"{len(whole)}; expected round({level} * {len(whole)}) = {expected}. Prune each conv layer "
                    "separately, starting from a freshly loaded model for each level.")


def smallest_filters(ctx: Context):
    """Per conv layer, exactly round(p * out_channels) whole filters are zero: the smallest-L2 ones."""
    item = registry.PART2_TRACE
    trace = _complete(ctx.trace(item), item)
    _whole_filters(ctx, trace)
    for level, state in zip(trace.levels, trace.states):
        for conv in ctx.convs:
            whole, _, _ = _filter_report(ctx, state, conv, level)
            norms = np.linalg.norm(_per_filter(ctx.original[f"{conv}.weight"]), axis=1)
            if whole.any() and (~whole).any() and norms[whole].max() > norms[~whole].min() * (1 + 1e-6):
                raise AssertionError(
                    f"At level {level:.0%}, layer '{ctx.name(conv)}' zeroed a filter with L2 norm "
                    f"{norms[whole].max():.4g} but kept one with norm {norms[~whole].min():.4g}: remove the filters "
                    "with the SMALLEST L2 norm of their weights.")


def _filter_pruned(ctx: Context) -> Trace:
    """The Part 2 trace, if each model is the course model with whole filters set to zero (else no credit)."""
    item = registry.PART2_TRACE
    trace = _complete(ctx.trace(item), item)
    try:
        _whole_filters(ctx, trace)
        for level, state in zip(trace.levels, trace.states):
            if problem := _not_a_pruning(ctx, state):
                raise AssertionError(f"At level {level:.0%} {problem}: pruning only sets values to zero.")
    except AssertionError as exc:
        raise AssertionError("Your Part 2 models are not filter-pruned, so this test cannot credit them: "
                             + str(exc)) from None
    return trace


def only_filters_pruned(ctx: Context):
    """A zeroed filter's bias is zero too; kept filters (weights and biases) and the Linear layers are untouched."""
    trace = _filter_pruned(ctx)
    for level, state in zip(trace.levels, trace.states):
        for lin in ctx.linears:
            for key in (f"{lin}.weight", f"{lin}.bias"):
                if not np.array_equal(state[key], ctx.original[key]):
                    raise AssertionError(f"At level {level:.0%} the {ctx.linear} layer '{ctx.name(key)}' was changed. "
                                         f"Part 2 prunes the filters of the conv layers only; leave {ctx.linear} "
                                         "layers as they are.")
        for conv in ctx.convs:
            zeroed = _per_filter(state[f"{conv}.weight"] == 0).all(1)
            live = zeroed & (state[f"{conv}.bias"] != 0)
            if live.any():
                raise AssertionError(
                    f"At level {level:.0%}, {int(live.sum())} zeroed filters of '{ctx.name(conv)}' keep a non-zero "
                    f"bias. A filter is its weights AND its bias ({ctx.filter_word()}): a filter whose weights are "
                    "zero but whose bias is not still outputs a constant map, so zero its bias too.")
            kept_bias = ~zeroed & (state[f"{conv}.bias"] != ctx.original[f"{conv}.bias"])
            if kept_bias.any():
                raise AssertionError(f"At level {level:.0%}, kept filters of '{ctx.name(conv)}' lost their bias: "
                                     "leave every kept filter as it is.")


def structured_accuracies(ctx: Context):
    """``structured_results[level]`` equals the accuracy of the student's filter-pruned model at that level."""
    trace = _filter_pruned(ctx)
    _check_accuracies(ctx, registry.PART2_RESULTS, trace.levels, trace.states)


# ---------------------------------------------------------------- Part 4: pruning during vs after training

def zeros_of(original: dict, state: dict) -> dict:
    """The course model ``original`` with the zeros of ``state``."""
    return {k: v * (state[k] != 0) if k.endswith(".weight") else v for k, v in original.items()}


def _zeros_differ(ctx: Context, state: dict, other: dict) -> float:
    """The fraction of the weights that are zero in one of ``state`` and ``other`` but not in the other."""
    layers = _weights(ctx)
    differ = sum(int(((state[f"{n}.weight"] == 0) != (other[f"{n}.weight"] == 0)).sum()) for n in layers)
    return differ / sum(state[f"{n}.weight"].size for n in layers)


def _recipe_distance(state: dict, recipe: dict, start: dict) -> tuple[float, str]:
    """The largest per-tensor distance |state - recipe| / |recipe - start| (over the weights non-zero in both) and
    the tensor it is in: how far ``state`` is from the recipe's result, in units of the recipe's own training step."""
    worst, where = 0.0, next(iter(state))
    for key in state:
        both = (state[key] != 0) & (recipe[key] != 0) if key.endswith(".weight") else np.ones(state[key].shape, bool)
        update = np.linalg.norm((recipe[key] - start[key])[both].astype(np.float64))
        off = np.linalg.norm((state[key] - recipe[key])[both].astype(np.float64))
        distance = float(off / update) if update > 0 else (0.0 if off == 0 else math.inf)
        if distance > worst:
            worst, where = distance, key
    return worst, where


def _against_recipe(ctx: Context, state: dict, recipe: dict, start: dict) -> tuple[bool, str]:
    """(whether ``state`` is the recipe's result ``recipe``, both trained from ``start``; what was measured)."""
    differ = _zeros_differ(ctx, state, recipe)
    distance, where = _recipe_distance(state, recipe, start)
    measured = (f"it lies {distance:.2%} of the recipe's own training step from the recipe's model (most in "
                f"'{ctx.name(where)}'; honest runs: under {MAX_RECIPE_DISTANCE:.0%}) and its zeros differ from the "
                f"recipe's in {differ:.2%} of the weights (honest runs: under {1 - MIN_ZEROS_AGREEMENT:.1%})")
    return differ <= 1 - MIN_ZEROS_AGREEMENT and distance <= MAX_RECIPE_DISTANCE, measured


RECIPE_HINT = ("Part 4 is graded on the recipe the notebook states: one SGD(lr=part4_lr, momentum=part4_momentum) per "
               "run, train_epoch(model, optimizer, X_part4, y_part4, seed=epoch) for each epoch; try other settings "
               "in cells of your own.")


def _one_shot_start(ctx: Context, tuned: dict) -> dict:
    """Where fine-tuning starts: the course model with the zeros of ``one_shot_model`` (the student's
    ``prune_unstructured_to`` at ``part4_target`` on the course model, recorded by the test cell), once the fine-tuned
    model is shown to keep exactly those zeros. Part 1's tests judge that function; Part 4 judges what follows it."""
    item = registry.PART4_ONE_SHOT
    (one_shot,) = _complete(ctx.trace(item), item).states
    differ = _zeros_differ(ctx, tuned, one_shot)
    if differ > 1 - MIN_ZEROS_AGREEMENT:
        raise AssertionError(
            f"`finetuned_model` does not start where Part 4 says: its zeros are not those of `one_shot_model`, the "
            f"course model pruned to part4_target = {PART4.target:.0%} by your `{item.source}`; only "
            f"{1 - differ:.1%} of the weights agree (zero in both or in neither; a fine-tune of "
            "`clone_model(one_shot_model)`, whose masks keep its zeros, agrees on all of them). The recipe "
            "fine-tunes `one_shot_model`; another start earns nothing here.")
    return zeros_of(ctx.original, one_shot)


def finetuned_model(ctx: Context) -> str:
    """The fine-tuned model keeps the zeros of the course model pruned to ``part4_target`` by the student's Part 1
    function and is what the recipe trains from there. Returns what was left for grading (a student's own run) or
    what was measured."""
    tuned = ctx.state(registry.PART4_FINETUNED)
    _check_sparsity(ctx, tuned, PART4.target, "`finetuned_model`")
    if ctx.recipe is None:
        return "compared with the grader's own run of the recipe when graded"
    start = _one_shot_start(ctx, tuned)
    follows, measured = _against_recipe(ctx, tuned, ctx.recipe(FINETUNED, start), start)
    if not follows:
        raise AssertionError(f"`finetuned_model` is not what the recipe trains from the course model with the zeros "
                             f"of `one_shot_model` (pruned to part4_target = {PART4.target:.0%}, masks kept): "
                             f"{measured}. {RECIPE_HINT}")
    return measured


def gradual_model(ctx: Context) -> str:
    """The model pruned during training is what the recipe and its pruning schedule give from the course model.
    Returns what was left for grading (a student's own run) or what was measured."""
    gradual = ctx.state(registry.PART4_GRADUAL)
    _check_sparsity(ctx, gradual, PART4.target, "`gradual_model`")
    if ctx.recipe is None:
        return "compared with the grader's own run of the recipe when graded"
    follows, measured = _against_recipe(ctx, gradual, ctx.recipe(GRADUAL, ctx.original), ctx.original)
    if not follows:
        steps = ", ".join(f"{PART4.target * (e + 1) / (PART4.epochs - 1):.1%}" for e in range(PART4.epochs - 1))
        raise AssertionError(f"`gradual_model` is not what the recipe gives from the course model when it prunes "
                             f"globally to {steps} at the end of each epoch but the last: {measured}. {RECIPE_HINT}")
    return measured


def part4_accuracies(ctx: Context) -> str | None:
    """The two recorded accuracies are those of the two Part 4 models (which follow the recipe)."""
    try:
        finetuned_model(ctx)
        gradual_model(ctx)
    except AssertionError as exc:
        raise AssertionError(f"Your Part 4 models are not both right, so their accuracies cannot be credited: "
                             f"{exc}") from None
    recorded = ctx.results(registry.PART4_RESULTS)
    for key, item in (("after_training", registry.PART4_FINETUNED), ("during_training", registry.PART4_GRADUAL)):
        value = recorded.get(key)
        if not isinstance(value, float) or not 0 <= value <= 1:
            raise AssertionError(f"`part4_results['{key}']` should be the accuracy test_model returns for "
                                 f"`{item.source}` (a float in [0, 1]), got {value!r}.")
        actual = ctx.accuracy(ctx.state(item))
        if abs(actual - value) > ACCURACY_TOLERANCE:
            raise AssertionError(f"`part4_results['{key}']` = {value:.4f}, but `{item.source}` scores {actual:.4f} on "
                                 "test_data: record test_model's result for that model on the full test_data.")
    if ctx.recipe is None:
        return "the models are compared with the grader's own run of the recipe when graded"
    return None


# ---------------------------------------------------------------- Part 5: a compact model under a budget

@dataclass
class Part5Point:
    """What the grader measured of one Part 5 model, for the class picture (``GradingResult.figures["part5"]``):
    MACs as fractions of the dense model's, accuracies of the grader's own recipe runs on its own test images."""
    framework: str
    widths: list
    macs: float
    accuracy: float
    baseline_widths: list
    baseline_macs: float
    baseline_accuracy: float
    dense_accuracy: float
    budget: float
    difference: float
    low: float
    high: float


def _widths_text(widths) -> str:
    return "(" + ", ".join(str(w) for w in widths) + ")"


def part5_budget(ctx: Context) -> str | None:
    """``part5_model`` has fewer filters and needs at most ``part5_budget`` of the dense model's MACs."""
    state = ctx.state(registry.PART5_MODEL)
    widths = budget.conv_widths(state)
    fraction = budget.macs_fraction(widths)
    if fraction > PART5_BUDGET:
        zeroed = sum(int(_per_filter(state[f"{conv}.weight"] == 0).all(1).sum()) for conv in ctx.convs)
        hint = (f" It still holds {zeroed} all-zero filters: zeroed filters cost as much as any other until "
                "remove_zero_filters builds the smaller model without them." if zeroed else "")
        raise AssertionError(f"`part5_model` keeps {_widths_text(widths)} filters in its conv layers and needs "
                             f"{fraction:.1%} of the dense model's MACs, over part5_budget = {PART5_BUDGET:.0%}.{hint}")
    return f"{_widths_text(widths)} filters, {fraction:.1%} of the dense model's MACs" if ctx.recipe else None


def _part5_start(ctx: Context) -> dict:
    """``part5_start``, once it is shown to be the course model cut down to some of its filters."""
    start = ctx.state(registry.PART5_START)
    _, problem = budget.origin(start, ctx.original)
    if problem:
        raise AssertionError(f"`part5_start` is not the course model cut down to some of its filters: {problem}. "
                             "Keep filters with your `keep_filters` on a freshly loaded course model, then "
                             "remove_zero_filters; change nothing else before fine-tuning a copy of it.")
    return start


def part5_recipe(ctx: Context) -> str | None:
    """``part5_start`` keeps course filters as they are, and ``part5_model`` is what the recipe trains from it."""
    start, model = _part5_start(ctx), ctx.state(registry.PART5_MODEL)
    if budget.conv_widths(model) != budget.conv_widths(start):
        raise AssertionError(f"`part5_model` keeps {_widths_text(budget.conv_widths(model))} filters but "
                             f"`part5_start` {_widths_text(budget.conv_widths(start))}: fine-tune a copy of "
                             "`part5_start` (clone_model) and store that as `part5_model`.")
    if ctx.recipe is None:
        return "compared with the grader's own run of the recipe from `part5_start` when graded"
    follows, measured = _against_recipe(ctx, model, ctx.recipe(COMPACT, start), start)
    if not follows:
        raise AssertionError(f"`part5_model` is not what the recipe trains from `part5_start`: {measured}. "
                             "Fine-tune a copy of `part5_start` with your Part 4 `finetune` for part4_epochs "
                             "epochs, nothing more.")
    return measured


def part5_baseline(ctx: Context) -> str | None:
    """The recipe from ``part5_start`` is not less accurate than the recipe from the uniform choice under the
    budget beyond the paired 95% interval (graded only: the grader runs both)."""
    start = _part5_start(ctx)
    widths = budget.conv_widths(start)
    if budget.macs_fraction(widths) > PART5_BUDGET:
        raise AssertionError(f"`part5_start` keeps {_widths_text(widths)} filters, which need "
                             f"{budget.macs_fraction(widths):.1%} of the dense model's MACs, over part5_budget = "
                             f"{PART5_BUDGET:.0%}: only a choice within the budget is compared with the uniform one.")
    if ctx.recipe is None or ctx.correct is None:
        return "the grader runs the recipe from `part5_start` and from the uniform choice when graded"
    uniform_widths = budget.uniform_widths(PART5_BUDGET)
    uniform = budget.cut(ctx.original, budget.largest_filters(ctx.original, uniform_widths))
    mine, base = ctx.correct(ctx.recipe(COMPACT, start)), ctx.correct(ctx.recipe(COMPACT, uniform))
    difference, low, high = paired_interval(mine, base)
    point = Part5Point(ctx.framework, list(widths), budget.macs_fraction(widths), float(mine.mean()),
                       list(uniform_widths), budget.macs_fraction(uniform_widths), float(base.mean()),
                       ctx.accuracy(ctx.original), PART5_BUDGET, difference, low, high)
    ctx.figures["part5"] = asdict(point)
    measured = (f"the recipe from your {_widths_text(widths)} reaches {point.accuracy:.1%}, from the uniform "
                f"{_widths_text(uniform_widths)} {point.baseline_accuracy:.1%}: {difference * 100:+.1f} points, "
                f"paired 95% interval [{low * 100:+.1f}, {high * 100:+.1f}]")
    if high < 0:
        raise AssertionError(f"On the grader's test images {measured}, below it beyond the interval. The scan shows "
                             "which layers lose the most accuracy per filter removed, and which cost the most MACs "
                             "per filter kept.")
    return measured


def run(grade_id: str, ctx: Context) -> str | None:
    """Run the check of ``grade_id`` on ``ctx``; AssertionError with the student's message if it fails, else a note
    or None: in a student's own run what was left for grading (it cannot compare Part 4 with the grader's recipe
    run), when graded what was measured (how far a Part 4 model is from that run)."""
    return globals()[registry.test(grade_id).check](ctx)
