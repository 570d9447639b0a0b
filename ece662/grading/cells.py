"""What a graded notebook cell runs: ``run_test(grade_id, globals())``.

* In a student's own run, the test's check (``ece662/grading/checks.py``) runs here, on
  the notebook's objects, at the registry's *public* levels, and prints what
  passed or raises what is wrong. A test with no public part says it is
  checked when graded. This is feedback only: nothing here decides a grade.
* When nbgrader autogrades (``NBGRADER_EXECUTION=autograde``), the cell only
  records evidence (``ece662/grading/evidence.py``) at the full levels: the grader
  verifies it after the notebook has run, outside this process.
"""
import os
import sys
import warnings

from ..frameworks import TENSORFLOW, TORCH, canonical_state, from_canonical, helpers
from . import checks, evidence, registry

_recorded: set = set()  # evidence items already written by this kernel


def grading() -> bool:
    return os.environ.get("NBGRADER_EXECUTION") == "autograde"


def _mode(namespace: dict) -> str:
    return TENSORFLOW if namespace.get("mode") == TENSORFLOW else TORCH


def _fresh_model(mode: str):
    module = helpers(mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return module.load_model(module.model_path(mode), mode=mode)


def _call(fn, model, level):
    torch = sys.modules.get("torch")  # loaded by a torch-mode notebook; a TF-mode kernel never imports it
    if torch is not None:
        with torch.enable_grad():  # torch.nn.utils.prune needs autograd-enabled tensors for some calls
            return fn(model, level)
    return fn(model, level)


def trace(fn, item, levels, mode: str) -> tuple[list, list, str]:
    """Call ``fn(model, level)`` at each level on fresh course models (one model throughout if cumulative).

    Returns (levels completed, canonical state after each, error text or "")."""
    done, states, model = [], [], None
    for level in levels:
        if model is None or not item.cumulative:
            model = _fresh_model(mode)
        try:
            result = _call(fn, model, level)
            if result is not None and not isinstance(result, (bool, int, float, str, dict)):
                model = result  # a returned model (in-place pruning returns None or the same model)
            states.append(canonical_state(model))
        except Exception as exc:  # reported to the student by every test that reads this trace
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return done, states, f"{fn.__name__}(model, {level}) raised {what}"
        done.append(level)
    return done, states, ""


def _function(namespace: dict, item):
    fn = namespace.get(item.source)
    if not callable(fn):
        raise AssertionError(f"Define the function {item.source}(model, level) in the cell marked for your code.")
    return fn


def _variable(namespace: dict, item):
    if item.source not in namespace:
        raise AssertionError(f"`{item.source}` is not defined: run the cell that computes it.")
    return namespace[item.source]


# ------------------------------------------------------------------ grading: record evidence

def _record(item, namespace: dict, folder) -> None:
    mode = _mode(namespace)
    if item.kind == "trace":
        fn = namespace.get(item.source)
        if callable(fn):
            levels, states, error = trace(fn, item, item.levels, mode)
        else:
            levels, states, error = [], [], f"the function {item.source} is not defined"
        evidence.write_trace(folder, item, states, levels, error, mode)
    elif item.kind in ("model", "compact"):
        evidence.write_model(folder, item, canonical_state(_variable(namespace, item)), mode)
    else:
        evidence.write_results(folder, item, _variable(namespace, item))


def record(test, namespace: dict) -> None:
    folder = evidence.evidence_dir()
    for item in test.evidence:
        if item.name not in _recorded:
            _recorded.add(item.name)
            try:
                _record(item, namespace, folder)
            except AssertionError:
                pass  # nothing to record: the verifier reports the missing evidence


# ------------------------------------------------------------------ a student's own run: public checks

def _student_context(test, namespace: dict) -> checks.Context:
    mode = _mode(namespace)
    items = {}
    for item in test.evidence:
        if item.kind == "trace":
            levels, states, error = trace(_function(namespace, item), item, test.public_levels, mode)
            items[item.name] = checks.Trace(levels, states, error)
        elif item.kind in ("model", "compact"):
            items[item.name] = canonical_state(_variable(namespace, item))
        else:
            items[item.name] = evidence.normalise_results(_variable(namespace, item))
    original = canonical_state(_fresh_model(mode))
    X, y = namespace["test_data"]

    def measure(state: dict) -> float:
        return helpers(mode).accuracy(from_canonical(state, mode), X, y)

    return checks.Context(original, items, {}, measure, framework=mode)


def run_test(grade_id: str, namespace: dict) -> None:
    """The graded cell ``grade_id``: public check in a student's run, evidence when graded."""
    test = registry.test(grade_id)
    if grading():
        record(test, namespace)
        print("Recorded for grading.")
        return
    if test.public_levels is None:
        print(f"Checked when graded: {test.summary}.")
        return
    left = checks.run(grade_id, _student_context(test, namespace))
    levels = f" (at {', '.join(f'{x:.0%}' for x in test.public_levels)})" if test.public_levels else ""
    more = " More levels are checked when graded." if test.public_levels else ""
    if left:
        print(f"Public check passed for what your own run can check; {left}: {test.summary}.")
    else:
        print(f"Public check passed: {test.summary}{levels}.{more}")
