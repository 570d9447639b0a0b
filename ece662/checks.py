"""Outcome checks for the pruning assignment, shared by the public and hidden notebook tests.

They verify *what* a student's code produced, never *how*: any correct
method (``torch.nn.utils.prune``, hand-made masks, ``prune.remove``, another
loop) passes. Everything is compared with the original checkpoint and
re-evaluated here, on data loaded here, with this package's own model
class, so nothing the notebook defines is trusted. Load this module through
``ece662.trusted.checks()`` in tests. Failures raise AssertionError with a
message addressed to the student.
"""
import math

import torch
from torch import nn

from . import data_utils
from .pruning_helper import accuracy, effective_state_dict, model_from_checkpoint, model_path, read_checkpoint

UNSTRUCTURED_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
STRUCTURED_LEVELS = (0.2, 0.5, 0.8)
ACCURACY_TOLERANCE = 0.0025  # recorded vs re-evaluated accuracy (a few images of 5000)


def original_model() -> nn.Module:
    """A fresh copy of the course model, read from its file."""
    return model_from_checkpoint(read_checkpoint(model_path("torch")))


def layer_names(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the Conv2d and the Linear layers."""
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return convs, linears


def snapshot(model) -> dict:
    """Plain weights a student's model computes with (folds in pruning masks)."""
    if not isinstance(model, nn.Module):
        raise AssertionError(f"expected a torch.nn.Module, got {type(model).__name__}")
    return effective_state_dict(model)


def test_data():
    """The test split as get_CINIC10_data() returns it by default, loaded afresh."""
    data = data_utils.get_CINIC10_data(verbose=False)
    return data["X_test"], data["y_test"]


def evaluate(state: dict, X, y) -> float:
    """Accuracy of the course architecture with weights ``state`` (the student's forward is not used)."""
    model = original_model()
    model.load_state_dict(state)
    return accuracy(model, X, y)


def student_function(namespace: dict, name: str, signature: str):
    fn = namespace.get(name)
    if not callable(fn):
        raise AssertionError(f"Define the function {name}{signature} in the cell marked for your code.")
    return fn


def _apply(fn, model, level):
    """Call the student's pruning function; accept in-place pruning or a returned model."""
    with torch.enable_grad():  # torch.nn.utils.prune needs autograd-enabled tensors for some calls
        result = fn(model, level)
    return result if isinstance(result, nn.Module) else model


class Trace:
    """Snapshots of a student's pruning function at each level, taken on fresh models."""

    def __init__(self, original: dict, levels, snapshots: list, error: str | None):
        self.original, self.levels, self.snapshots, self.error = original, tuple(levels), snapshots, error
        self.convs, self.linears = layer_names(original_model())

    @classmethod
    def run(cls, fn, levels, cumulative: bool):
        """``cumulative``: one model pruned step by step; else a fresh model per level."""
        model = original_model()
        original = snapshot(model)
        snapshots, error = [], None
        try:
            for level in levels:
                if not cumulative:
                    model = original_model()
                model = _apply(fn, model, level)
                snapshots.append(snapshot(model))
        except Exception as exc:  # report the student's error in every test that needs the trace
            error = f"calling {getattr(fn, '__name__', 'your function')}(model, {level}) raised {type(exc).__name__}: {exc}"
        return cls(original, levels, snapshots, error)

    def require_complete(self):
        if self.error:
            raise AssertionError(self.error)

    def require_pruning(self):
        """The function ran and zeroed weights at every level (no credit for a function that does nothing)."""
        self.require_complete()
        before = sum(int((v == 0).sum()) for k, v in self.original.items() if k.endswith(".weight"))
        for level, state in zip(self.levels, self.snapshots):
            after = sum(int((v == 0).sum()) for k, v in state.items() if k.endswith(".weight"))
            if after <= before:
                raise AssertionError(f"After calling your function with {level} no weight is zero: it prunes nothing.")


# ---------------------------------------------------------------- unstructured

def _zeros_and_total(state, names):
    ws = [state[f"{n}.weight"] for n in names]
    return sum(int((w == 0).sum()) for w in ws), sum(w.numel() for w in ws)


def _compounding_hint(observed: list[float], levels) -> str:
    repeated = [1 - (1 - levels[0]) ** (k + 1) for k in range(len(observed))]
    compounded = [1 - math.prod(1 - t for t in levels[: k + 1]) for k in range(len(observed))]
    if all(abs(o - r) < 0.01 for o, r in zip(observed, repeated)):
        return (" This is the classic mistake: a float `amount` in torch.nn.utils.prune is a fraction of the "
                "weights that are STILL UNPRUNED, so pruning 0.1 eight times leaves 1 - 0.9**8 = 57% zeros, "
                "not 80%. Prune (target - current) / (1 - current) of the remaining weights, or an integer "
                "count round(target * N) - zeros, at each step.")
    if all(abs(o - c) < 0.01 for o, c in zip(observed, compounded)):
        return (" You passed the cumulative target as `amount` at every step, but a float `amount` is a "
                "fraction of the weights still unpruned, so the steps compound (0.1, then 20% of the remaining "
                "90% = 28%, ...). Prune (target - current) / (1 - current) of the remaining weights instead.")
    return ""


def assert_cumulative_sparsity(trace: Trace):
    """After each step, exactly round(target * N) of all Conv2d+Linear weights are zero."""
    trace.require_complete()
    names = trace.convs + trace.linears
    tolerance = len(names)  # per-step rounding, a weight per layer at most
    observed = []
    for level, state in zip(trace.levels, trace.snapshots):
        zeros, total = _zeros_and_total(state, names)
        observed.append(zeros / total)
    for k, (level, state) in enumerate(zip(trace.levels, trace.snapshots)):
        zeros, total = _zeros_and_total(state, names)
        if abs(zeros - level * total) > tolerance:
            raise AssertionError(
                f"After pruning to {level:.0%} the model has {zeros / total:.2%} of its Conv2d+Linear weights "
                f"at zero ({zeros} of {total}); expected {round(level * total)}. Sparsities after each step: "
                + ", ".join(f"{o:.1%}" for o in observed) + "."
                + _compounding_hint(observed, trace.levels)
            )


def _threshold_violation(original: dict, pruned: dict, names) -> str | None:
    """Message if some kept weight is smaller in |w| than some pruned one (across all layers)."""
    pruned_max, kept_min = -1.0, math.inf
    where = {}
    for n in names:
        w0, w1 = original[f"{n}.weight"].abs(), pruned[f"{n}.weight"]
        zeroed = (w1 == 0) & (w0 != 0)
        kept = w1 != 0
        if zeroed.any() and (m := w0[zeroed].max().item()) > pruned_max:
            pruned_max, where["pruned"] = m, n
        if kept.any() and (m := w0[kept].min().item()) < kept_min:
            kept_min, where["kept"] = m, n
    if pruned_max > kept_min:
        return (f"layer '{where['kept']}' kept a weight with |w| = {kept_min:.4g} while layer '{where['pruned']}' "
                f"lost one with |w| = {pruned_max:.4g}")
    return None


def assert_global_threshold(trace: Trace):
    """At each step the zeroed weights are the globally smallest |w| (one threshold over all layers)."""
    trace.require_pruning()
    names = trace.convs + trace.linears
    for level, state in zip(trace.levels, trace.snapshots):
        if problem := _threshold_violation(trace.original, state, names):
            raise AssertionError(
                f"At {level:.0%} the zeroed weights are not the globally smallest: {problem}. Global L1 pruning "
                "ranks ALL Conv2d and Linear weights together by |w| and removes the smallest, so each layer ends "
                "with a different sparsity. Pruning each layer by the same fraction (per-layer pruning) is not "
                "what was asked: use prune.global_unstructured over all layers at once (or one threshold).")


def assert_only_weights_changed(trace: Trace):
    """Biases untouched and kept weights keep their original values."""
    trace.require_pruning()
    for level, state in zip(trace.levels, trace.snapshots):
        for key, before in trace.original.items():
            after = state.get(key)
            if after is None or after.shape != before.shape:
                raise AssertionError(f"At {level:.0%} the parameter '{key}' is missing or changed shape.")
            if key.endswith(".bias") and not torch.equal(after, before):
                raise AssertionError(f"At {level:.0%} the bias '{key}' changed: unstructured pruning here "
                                     "prunes weights only (biases excluded).")
            kept = after != 0
            if key.endswith(".weight") and not torch.equal(after[kept], before[kept]):
                raise AssertionError(f"At {level:.0%} weights of '{key}' that were not pruned changed value: "
                                     "pruning should only set weights to zero.")


def assert_model_at(model, level: float = UNSTRUCTURED_LEVELS[-1]):
    """The notebook's ``model`` after Part 1: global L1-pruned to ``level``."""
    state = snapshot(model)
    original = snapshot(original_model())
    convs, linears = layer_names(original_model())
    names = convs + linears
    zeros, total = _zeros_and_total(state, names)
    if abs(zeros - level * total) > len(names):
        raise AssertionError(
            f"After Part 1 `model` should have {level:.0%} of its Conv2d+Linear weights at zero, but has "
            f"{zeros / total:.2%}." + _compounding_hint([zeros / total], [level])
            + (" If you pruned 0.1 at each of the 8 steps you end near 57%: a float amount is a fraction of "
               "the weights still unpruned." if abs(zeros / total - (1 - 0.9 ** 8)) < 0.01 else ""))
    if problem := _threshold_violation(original, state, names):
        raise AssertionError(f"`model` is at {level:.0%} but not by global magnitude: {problem}.")


def _check_accuracies(recorded, levels, states, name: str):
    if not isinstance(recorded, dict):
        raise AssertionError(f"`{name}` should be a dict {{level: accuracy}}, got {type(recorded).__name__}.")
    X, y = test_data()
    for level, state in zip(levels, states):
        key = next((k for k in recorded if isinstance(k, (int, float)) and abs(k - level) < 1e-9), None)
        if key is None:
            raise AssertionError(f"`{name}` has no entry for level {level}; its keys are {sorted(recorded)}.")
        value = recorded[key]
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise AssertionError(f"`{name}[{level}]` should be the accuracy returned by test_model (a float in "
                                 f"[0, 1]), got {value!r}.")
        actual = evaluate(state, X, y)
        if abs(actual - value) > ACCURACY_TOLERANCE:
            raise AssertionError(
                f"`{name}[{level}]` = {value:.4f}, but your pruned model at {level:.0%} scores {actual:.4f} on "
                "test_data. Record test_model(model, test_data, mode=mode) right after pruning to each level, "
                "on the full test_data.")


def assert_recorded_accuracies(trace: Trace, recorded, name: str):
    """``recorded[level]`` equals the accuracy of the student's own pruned model at that level."""
    trace.require_complete()
    _check_accuracies(recorded, trace.levels, trace.snapshots, name)


# ---------------------------------------------------------------- structured

def _filter_report(original: dict, state: dict, conv: str, level: float):
    w0, w1 = original[f"{conv}.weight"], state[f"{conv}.weight"]
    per_filter_zero = (w1 == 0).flatten(1)
    whole = per_filter_zero.all(1)
    partial = per_filter_zero.any(1) & ~whole
    expected = round(level * w0.shape[0])
    return whole, partial, expected


def assert_whole_filters(trace: Trace):
    """Per Conv2d layer, exactly round(p * out_channels) filters are entirely zero; no partial filters."""
    trace.require_complete()
    for level, state in zip(trace.levels, trace.snapshots):
        for conv in trace.convs:
            whole, partial, expected = _filter_report(trace.original, state, conv, level)
            if partial.any():
                raise AssertionError(
                    f"At level {level:.0%}, layer '{conv}' has {int(partial.sum())} filters that are only partly "
                    "zero. Structured pruning removes WHOLE output filters (dim=0 of the weight, e.g. "
                    "prune.ln_structured(conv, 'weight', amount=p, n=2, dim=0)), not individual weights.")
            if int(whole.sum()) != expected:
                raise AssertionError(
                    f"At level {level:.0%}, layer '{conv}' has {int(whole.sum())} all-zero filters out of "
                    f"{len(whole)}; expected round({level} * {len(whole)}) = {expected}. Prune each Conv2d layer "
                    "separately, starting from a freshly loaded model for each level.")


def assert_smallest_filters(trace: Trace):
    """The zeroed filters are those with the smallest L2 norm in their layer."""
    assert_whole_filters(trace)
    for level, state in zip(trace.levels, trace.snapshots):
        for conv in trace.convs:
            whole, _, _ = _filter_report(trace.original, state, conv, level)
            norms = trace.original[f"{conv}.weight"].flatten(1).norm(dim=1)
            if whole.any() and (~whole).any() and norms[whole].max() > norms[~whole].min() * (1 + 1e-6):
                raise AssertionError(
                    f"At level {level:.0%}, layer '{conv}' zeroed a filter with L2 norm "
                    f"{norms[whole].max():.4g} but kept one with norm {norms[~whole].min():.4g}. Remove the "
                    "filters with the SMALLEST L2 norm (n=2, dim=0).")


def _require_filter_structure(trace: Trace):
    try:
        assert_whole_filters(trace)
    except AssertionError as exc:
        raise AssertionError("Your Part 2 models are not filter-pruned, so this test cannot credit them: "
                             + str(exc)) from None


def assert_only_convs_pruned(trace: Trace):
    """Linear layers and all biases are untouched by structured pruning."""
    _require_filter_structure(trace)
    for level, state in zip(trace.levels, trace.snapshots):
        for lin in trace.linears:
            if not torch.equal(state[f"{lin}.weight"], trace.original[f"{lin}.weight"]):
                raise AssertionError(
                    f"At level {level:.0%} the Linear layer '{lin}' was changed. Part 2 prunes the filters of the "
                    "Conv2d layers only; leave Linear layers as they are.")
        for key, before in trace.original.items():
            if key.endswith(".bias") and not torch.equal(state[key], before):
                raise AssertionError(f"At level {level:.0%} the bias '{key}' changed; prune weights only.")


def assert_structured_accuracies(trace: Trace, recorded, name: str):
    """``recorded[level]`` equals the accuracy of the student's filter-pruned model at that level."""
    _require_filter_structure(trace)
    _check_accuracies(recorded, trace.levels, trace.snapshots, name)
