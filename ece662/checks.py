"""The outcome checks behind every autograded test (one function per ``registry.GradedTest.check``).

A check reads a ``Context``: the course model's original weights, the
evidence items the notebook recorded (a pruning function's trace, a model's
weights, a results dict) and how to measure weights (an ``Evaluator``, which
keeps each measurement in an ``ece662.evaluations`` store). It verifies *what* the
student's code produced, never *how*, and raises ``AssertionError`` with a
message addressed to the student. The same functions run in two places:

* when graded, in the grader process (``autograder/verify.py``), on evidence
  files, against the grader's own checkpoint and test data;
* in a student's own run, in the kernel (``ece662/notebook_tests.py``), on the
  live objects, at the registry's public levels: immediate feedback.

All weights are in the canonical layout (see ``ece662/evidence.py``), so the
checks are the same for PyTorch and Keras submissions.
"""
import math
from dataclasses import dataclass
from typing import Callable

import torch

from . import registry
from .evaluations import EvaluationStore, data_digest, measurement_key
from .model import from_canonical
from .pruning_helper import accuracy, mean_loss
from .registry import FINAL_SPARSITY

ACCURACY_TOLERANCE = 0.0025  # recorded vs re-evaluated accuracy (a few images of 5000; frameworks differ slightly)
MIN_TRAINED_FRACTION = 0.5  # Part 4: at least half of the kept weights must have moved
MIN_CORRELATION = 0.5  # Part 4: trained weights stay close to where they started
MIN_LOSS_DROP = 0.01  # Part 4: training lowers the training loss by at least 1% (honest runs: 3.5-7.5%)
LOSS_CHECK_IMAGES = 1000  # Part 4: the first training images, which every Part 4 run trains on


@dataclass
class Trace:
    """A pruning function called at each level: the levels completed, the weights after each, its error."""
    levels: list
    states: list
    error: str = ""


class Context:
    """The inputs of the checks: ``original`` weights, recorded ``items``, ``problems`` with items, and how to
    measure weights (an ``Evaluator``: each distinct set measured once)."""

    def __init__(self, original: dict, items: dict, problems: dict, evaluate: Callable[[dict], float],
                 training_loss: Callable[[dict], float], layer_names: dict | None = None):
        self.original, self.items, self.problems, self._evaluate = original, items, problems, evaluate
        self.training_loss = training_loss  # mean cross-entropy on the first LOSS_CHECK_IMAGES training images
        self._layer_names = layer_names or {}  # canonical layer -> the name the student's framework uses
        self.convs = [k[:-7] for k, v in original.items() if k.endswith(".weight") and v.dim() == 4]
        self.linears = [k[:-7] for k, v in original.items() if k.endswith(".weight") and v.dim() == 2]

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

    def trace(self, item) -> Trace:
        return self._item(item)

    def state(self, item) -> dict:
        return self._item(item)

    def results(self, item) -> dict:
        return self._item(item)

    def accuracy(self, state: dict) -> float:
        return self._evaluate(state)


class Evaluator:
    """Accuracy on test images and loss on training images of canonical weights (the course SmallCNN), each
    measured once per ``store``."""

    def __init__(self, test_images, test_labels, train_images, train_labels, store: EvaluationStore | None = None):
        self.test, self.train = (test_images, test_labels), (train_images, train_labels)
        self.digests = {"accuracy": data_digest(*self.test), "loss": data_digest(*self.train)}
        self.store = store or EvaluationStore()

    def accuracy(self, state: dict) -> float:
        return self.store.measure(measurement_key("accuracy", self.digests["accuracy"], state),
                                  lambda: accuracy(from_canonical(state), *self.test))

    def training_loss(self, state: dict) -> float:
        return self.store.measure(measurement_key("loss", self.digests["loss"], state),
                                  lambda: mean_loss(from_canonical(state), *self.train))


def _weights(ctx: Context) -> list[str]:
    return ctx.convs + ctx.linears


def _zeros_and_total(state: dict, layers) -> tuple[int, int]:
    ws = [state[f"{n}.weight"] for n in layers]
    return sum(int((w == 0).sum()) for w in ws), sum(w.numel() for w in ws)


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
                f"After {item.source}(model, {level}) only {observed:.2%} of the Conv2d+Linear weights are zero "
                f"(target {level:.0%}): your function does not prune enough to be checked further.")
        if observed > 1 - (1 - level) / 100:
            raise AssertionError(
                f"After {item.source}(model, {level}) {observed:.2%} of the Conv2d+Linear weights are zero "
                f"(target {level:.0%}): your function prunes (almost) everything, so it cannot be checked further.")


# ---------------------------------------------------------------- Part 1: global unstructured pruning

def _compounding_hint(observed: list[float], levels) -> str:
    repeated = [1 - (1 - levels[0]) ** (k + 1) for k in range(len(observed))]
    compounded = [1 - math.prod(1 - t for t in levels[: k + 1]) for k in range(len(observed))]
    if len(observed) > 1 and all(abs(o - r) < 0.01 for o, r in zip(observed, repeated)):
        return (f" {observed[-1]:.0%} instead of {levels[len(observed) - 1]:.0%}: a float `amount` in "
                "torch.nn.utils.prune is a fraction of the weights STILL UNPRUNED, so the same fraction at every "
                "step compounds. Reread the documentation of `amount`.")
    if len(observed) > 1 and all(abs(o - c) < 0.01 for o, c in zip(observed, compounded)):
        return (" The steps compound: a float `amount` is a fraction of the weights still unpruned, not of all "
                "weights, so passing the cumulative target as `amount` overshoots.")
    return ""


def cumulative_sparsity(ctx: Context):
    """After each step exactly round(target * N) of all Conv2d+Linear weights are zero."""
    item = registry.PART1_TRACE
    trace = _complete(ctx.trace(item), item)
    layers = _weights(ctx)
    observed = [_sparsity(s, layers) for s in trace.states]
    for level, state in zip(trace.levels, trace.states):
        zeros, total = _zeros_and_total(state, layers)
        if abs(zeros - level * total) > len(layers):  # per-step rounding: a weight per layer at most
            raise AssertionError(
                f"After pruning to {level:.0%} the model has {zeros / total:.2%} of its Conv2d+Linear weights at "
                f"zero ({zeros} of {total}); expected {round(level * total)}. Sparsities after each step: "
                + ", ".join(f"{o:.1%}" for o in observed) + "." + _compounding_hint(observed, trace.levels))


def _threshold_violation(ctx: Context, pruned: dict) -> str | None:
    """Message if some kept weight is smaller in |w| than some pruned one (across all layers)."""
    pruned_max, kept_min, where = -1.0, math.inf, {}
    for n in _weights(ctx):
        w0, w1 = ctx.original[f"{n}.weight"].abs(), pruned[f"{n}.weight"]
        zeroed, kept = (w1 == 0) & (w0 != 0), w1 != 0
        if zeroed.any() and (m := w0[zeroed].max().item()) > pruned_max:
            pruned_max, where["pruned"] = m, n
        if kept.any() and (m := w0[kept].min().item()) < kept_min:
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
                "ALL Conv2d and Linear weights together by |w|, so layers end with different sparsities; pruning "
                "each layer by the same fraction (per-layer pruning) is not what was asked.")


def only_weights_changed(ctx: Context):
    """Biases untouched and kept weights keep their original values."""
    item = registry.PART1_TRACE
    trace = ctx.trace(item)
    _require_pruning(ctx, trace, item)
    for level, state in zip(trace.levels, trace.states):
        for key, before in ctx.original.items():
            after = state[key]
            if key.endswith(".bias") and not torch.equal(after, before):
                raise AssertionError(f"At {level:.0%} the bias '{ctx.name(key)}' changed: unstructured pruning here "
                                     "prunes weights only (biases excluded).")
            kept = after != 0
            if key.endswith(".weight") and not torch.equal(after[kept], before[kept]):
                raise AssertionError(f"At {level:.0%} weights of '{ctx.name(key)}' that were not pruned changed "
                                     "value: pruning should only set weights to zero.")


def _check_at_final_sparsity(ctx: Context, state: dict, what: str):
    layers = _weights(ctx)
    zeros, total = _zeros_and_total(state, layers)
    if abs(zeros - FINAL_SPARSITY * total) > len(layers):
        raise AssertionError(f"{what} should have {FINAL_SPARSITY:.0%} of its Conv2d+Linear weights at zero, but has "
                             f"{zeros / total:.2%}." + _compounding_hint([zeros / total], [FINAL_SPARSITY]))


def final_model(ctx: Context):
    """The notebook's ``model`` after Part 1: global magnitude-pruned to 80%."""
    state = ctx.state(registry.PART1_MODEL)
    _check_at_final_sparsity(ctx, state, "After Part 1 `model`")
    if problem := _threshold_violation(ctx, state):
        raise AssertionError(f"`model` is at {FINAL_SPARSITY:.0%} but not by global magnitude: {problem}.")


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
    _check_accuracies(ctx, registry.PART1_RESULTS, trace.levels, trace.states)


# ---------------------------------------------------------------- Part 2: filter pruning

def _filter_report(ctx: Context, state: dict, conv: str, level: float):
    per_filter_zero = (state[f"{conv}.weight"] == 0).flatten(1)
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
                    "partly zero. Structured pruning removes WHOLE output filters (one output channel of the weight), not "
                    "individual weights.")
            if int(whole.sum()) != expected:
                raise AssertionError(
                    f"At level {level:.0%}, layer '{ctx.name(conv)}' has {int(whole.sum())} all-zero filters out of "
                    f"{len(whole)}; expected round({level} * {len(whole)}) = {expected}. Prune each Conv2d layer "
                    "separately, starting from a freshly loaded model for each level.")


def smallest_filters(ctx: Context):
    """Per Conv2d layer, exactly round(p * out_channels) whole filters are zero: the smallest-L2 ones."""
    item = registry.PART2_TRACE
    trace = _complete(ctx.trace(item), item)
    _whole_filters(ctx, trace)
    for level, state in zip(trace.levels, trace.states):
        for conv in ctx.convs:
            whole, _, _ = _filter_report(ctx, state, conv, level)
            norms = ctx.original[f"{conv}.weight"].flatten(1).norm(dim=1)
            if whole.any() and (~whole).any() and norms[whole].max() > norms[~whole].min() * (1 + 1e-6):
                raise AssertionError(
                    f"At level {level:.0%}, layer '{ctx.name(conv)}' zeroed a filter with L2 norm "
                    f"{norms[whole].max():.4g} but kept one with norm {norms[~whole].min():.4g}: remove the filters with the SMALLEST L2 norm.")


def _filter_pruned(ctx: Context) -> Trace:
    item = registry.PART2_TRACE
    trace = _complete(ctx.trace(item), item)
    try:
        _whole_filters(ctx, trace)
    except AssertionError as exc:
        raise AssertionError("Your Part 2 models are not filter-pruned, so this test cannot credit them: "
                             + str(exc)) from None
    return trace


def only_convs_pruned(ctx: Context):
    """Linear layers and all biases are untouched by filter pruning."""
    trace = _filter_pruned(ctx)
    for level, state in zip(trace.levels, trace.states):
        for lin in ctx.linears:
            if not torch.equal(state[f"{lin}.weight"], ctx.original[f"{lin}.weight"]):
                raise AssertionError(f"At level {level:.0%} the Linear layer '{ctx.name(lin)}' was changed. Part 2 "
                                     "prunes the filters of the Conv2d layers only; leave Linear layers as they are.")
        for key, before in ctx.original.items():
            if key.endswith(".bias") and not torch.equal(state[key], before):
                raise AssertionError(f"At level {level:.0%} the bias '{ctx.name(key)}' changed; prune weights only.")


def structured_accuracies(ctx: Context):
    """``structured_results[level]`` equals the accuracy of the student's filter-pruned model at that level."""
    trace = _filter_pruned(ctx)
    _check_accuracies(ctx, registry.PART2_RESULTS, trace.levels, trace.states)


# ---------------------------------------------------------------- Part 4: pruning during vs after training

def _trained_from(ctx: Context, state: dict, start: dict, what: str, start_what: str, untrained: dict):
    """Most kept weights moved away from ``start`` yet stay correlated with it (trained, not replaced), and the
    training loss is clearly below that of ``untrained`` (the same zeros without the training)."""
    kept_after = torch.cat([state[f"{n}.weight"].flatten() for n in _weights(ctx)])
    kept_before = torch.cat([start[f"{n}.weight"].flatten() for n in _weights(ctx)])
    kept = kept_after != 0
    moved = (kept_after[kept] != kept_before[kept]).float().mean().item() if kept.any() else 0.0
    if moved < MIN_TRAINED_FRACTION:
        raise AssertionError(f"Only {moved:.0%} of the non-zero weights of {what} differ from {start_what}: it was "
                             "not trained (or only barely).")
    pair = torch.stack([kept_after[kept], kept_before[kept]]).double()
    correlation = torch.corrcoef(pair)[0, 1].item()
    if not correlation > MIN_CORRELATION:
        raise AssertionError(f"The weights of {what} have little in common with {start_what} (correlation "
                             f"{correlation:.2f}): start from it and train it briefly; do not re-initialise.")
    after, before = ctx.training_loss(state), ctx.training_loss(untrained)
    if not after < before * (1 - MIN_LOSS_DROP):
        raise AssertionError(f"{what} has a training loss of {after:.4f}, against {before:.4f} for the same pruned "
                             "weights before training: it does not look trained on the training images. Train it "
                             "with train_epoch on X_part4, y_part4.")


def untrained_like(original: dict, state: dict) -> dict:
    """The course model ``original`` with the zeros of ``state``: what pruning without training would have given."""
    return {k: v * (state[k] != 0) if k.endswith(".weight") else v for k, v in original.items()}


def _finetuned_trained(ctx: Context):
    part1 = ctx.state(registry.PART1_MODEL)
    _trained_from(ctx, ctx.state(registry.PART4_FINETUNED), part1, "`finetuned_model`", "Part 1's pruned model",
                  part1)


def _gradual_trained(ctx: Context):
    gradual = ctx.state(registry.PART4_GRADUAL)
    _trained_from(ctx, gradual, ctx.original, "`gradual_model`", "the course model", untrained_like(ctx.original, gradual))


def finetuned_model(ctx: Context):
    """The fine-tuned model keeps exactly the Part 1 model's zeros, and its other weights were trained."""
    part1 = ctx.state(registry.PART1_MODEL)
    try:
        _check_at_final_sparsity(ctx, part1, "Part 1's `model`")
    except AssertionError as exc:
        raise AssertionError(f"Part 4 starts from Part 1's 80% model, which is not right yet: {exc}") from None
    tuned = ctx.state(registry.PART4_FINETUNED)
    for n in _weights(ctx):
        regrown = int(((part1[f"{n}.weight"] == 0) & (tuned[f"{n}.weight"] != 0)).sum())
        if regrown:
            raise AssertionError(f"{regrown} weights of '{ctx.name(n)}' that Part 1 pruned are non-zero in "
                                 "`finetuned_model`: keep the pruning masks on while fine-tuning so pruned weights "
                                 "stay exactly zero.")
    _check_at_final_sparsity(ctx, tuned, "`finetuned_model`")
    _finetuned_trained(ctx)


def gradual_model(ctx: Context):
    """The model pruned during training ends at 80% global sparsity and was trained from the course model."""
    _check_at_final_sparsity(ctx, ctx.state(registry.PART4_GRADUAL), "`gradual_model`")
    _gradual_trained(ctx)


def part4_accuracies(ctx: Context):
    """The two recorded accuracies are those of the two Part 4 models (which were trained)."""
    try:
        _finetuned_trained(ctx)
        _gradual_trained(ctx)
    except AssertionError as exc:
        raise AssertionError(f"Your Part 4 models were not both trained, so their accuracies cannot be credited: "
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


def run(grade_id: str, ctx: Context):
    """Run the check of ``grade_id`` on ``ctx``; AssertionError with the student's message if it fails."""
    globals()[registry.test(grade_id).check](ctx)
