"""Part 5's arithmetic (ece662/budget.py), the reader of compact models and Part 5's checks, on course-shaped weights."""
import numpy as np
import pytest
import torch

from autograder.reference import solution
from ece662 import budget
from ece662.compaction import remove_zero_filters
from ece662.frameworks import canonical_state
from ece662.grading import checks, evidence, registry
from ece662.model import SmallCNN
from ece662.weights import count_macs

UNIFORM = budget.uniform_widths(registry.PART5_BUDGET)


@pytest.fixture
def course():
    """Course-shaped weights without a zero (as trained weights are)."""
    torch.manual_seed(0)
    return canonical_state(SmallCNN())


def test_macs_of_widths_agree_with_counting_the_weights_of_the_model(course):
    assert budget.macs(budget.FULL_WIDTHS) == count_macs(course)[0] == 8_488_192
    for widths in ((8, 8, 8), (16, 24, 48), UNIFORM):
        small = budget.cut(course, budget.largest_filters(course, widths))
        assert budget.conv_widths(small) == widths
        assert budget.macs(widths) == count_macs(small)[0]


def test_the_uniform_choice_is_the_largest_equal_share_within_the_budget():
    assert UNIFORM == (16, 32, 32)
    assert budget.macs_fraction(UNIFORM) <= registry.PART5_BUDGET < budget.macs_fraction((24, 40, 40))
    assert budget.uniform_widths(0.5) == (24, 40, 40)
    with pytest.raises(ValueError, match="no uniform choice"):
        budget.uniform_widths(0.01)


def test_cut_is_what_keep_filters_then_remove_zero_filters_build():
    torch.manual_seed(1)
    model = SmallCNN()
    state = canonical_state(model)
    solution("torch").keep_filters(model, (16, 24, 48))
    compact = canonical_state(remove_zero_filters(model))
    expected = budget.cut(state, budget.largest_filters(state, (16, 24, 48)))
    assert compact.keys() == expected.keys()
    assert all(np.array_equal(compact[k], expected[k]) for k in compact)
    assert budget.compact_shapes({k: v.shape for k, v in state.items()}, (16, 24, 48)) == \
        {k: v.shape for k, v in expected.items()}


def test_origin_finds_the_kept_filters_in_any_order(course):
    kept = [np.array([3, 1, 7, 5, 0, 2, 4, 6]), np.arange(8, 24), np.arange(0, 64, 2)]
    found, problem = budget.origin(budget.cut(course, kept), course)
    assert problem == "" and all(np.array_equal(a, b) for a, b in zip(found, kept))


@pytest.mark.parametrize("change, message", [
    (lambda s: s["features.3.weight"].__setitem__((2, 0, 0, 0), 0.5), "none of the course model's filters"),
    (lambda s: s["features.0.bias"].__setitem__(1, 9.0), "none of the course model's filters"),
    (lambda s: s["features.6.weight"].__setitem__(4, 0.0) or s["features.6.bias"].__setitem__(4, 0.0),
     "all zero (keep a multiple of 8"),
    (lambda s: s["classifier.1.weight"].__setitem__((0, 0), 1.0), "'classifier.1.weight' is not the course model's"),
])
def test_origin_names_what_is_not_the_course_model(course, change, message):
    small = budget.cut(course, budget.largest_filters(course, UNIFORM))
    change(small)
    assert message in budget.origin(small, course)[1]


def test_origin_refuses_a_filter_kept_twice(course):
    small = budget.cut(course, [np.array([0, 0, 1, 2, 3, 4, 5, 6]), np.arange(8), np.arange(8)])
    assert "twice" in budget.origin(small, course)[1]


def test_the_compact_reader_accepts_any_widths_and_refuses_a_wider_model(course, tmp_path):
    shapes = {k: v.shape for k, v in course.items()}
    small = budget.cut(course, budget.largest_filters(course, (8, 40, 24)))
    evidence.write_model(tmp_path, registry.PART5_MODEL, small, "torch")
    state, framework = evidence.read_compact(tmp_path, registry.PART5_MODEL, shapes)
    assert framework == "torch" and all(np.array_equal(state[k], small[k]) for k in small)
    wider = dict(small, **{"features.0.weight": np.zeros((40, 3, 3, 3), np.float32)})
    evidence.write_model(tmp_path, registry.PART5_MODEL, wider, "torch")
    with pytest.raises(evidence.EvidenceError, match="between 1 and 32"):
        evidence.read_compact(tmp_path, registry.PART5_MODEL, shapes)
    mismatched = dict(small, **{"features.3.bias": np.zeros(41, np.float32)})
    evidence.write_model(tmp_path, registry.PART5_MODEL, mismatched, "torch")
    with pytest.raises(evidence.EvidenceError, match="features.3.bias"):
        evidence.read_compact(tmp_path, registry.PART5_MODEL, shapes)


def _context(course, start, model, correct_of):
    """Checks' context with a stand-in recipe (a fixed step from the start) and per-image correctness."""
    def recipe(kind, state):
        assert kind == registry.COMPACT
        return {k: v + 0.01 for k, v in state.items()}

    items = {registry.PART5_START.name: start, registry.PART5_MODEL.name: model}
    return checks.Context(course, items, {}, lambda state: 0.5, recipe, "torch", correct_of)


def test_part5_checks_pass_a_choice_within_the_budget_that_follows_the_recipe(course):
    start = budget.cut(course, budget.largest_filters(course, (16, 24, 48)))
    model = {k: v + 0.01 for k, v in start.items()}
    right = np.arange(400) % 3 == 0
    ctx = _context(course, start, model, lambda state: right)
    assert "28.1%" in checks.part5_budget(ctx)
    assert "0.00% of the recipe's own training step" in checks.part5_recipe(ctx)
    assert "+0.0 points" in checks.part5_baseline(ctx)
    point = ctx.figures["part5"]
    assert point["widths"] == [16, 24, 48] and point["baseline_widths"] == list(UNIFORM)
    assert point["accuracy"] == point["baseline_accuracy"] == pytest.approx(right.mean())


def test_part5_checks_fail_what_they_should(course):
    start = budget.cut(course, budget.largest_filters(course, (8, 8, 64)))
    longer = {k: v + 0.02 for k, v in start.items()}  # twice the recipe's step: trained more than the recipe
    base = np.ones(400, bool)
    worse = np.arange(400) % 2 == 0  # half the images lost: far beyond the paired interval

    def correct_of(state):
        return base if budget.conv_widths(state) == UNIFORM else worse

    ctx = _context(course, start, longer, correct_of)
    with pytest.raises(AssertionError, match="not what the recipe trains from `part5_start`"):
        checks.part5_recipe(ctx)
    with pytest.raises(AssertionError, match="below it beyond the interval"):
        checks.part5_baseline(ctx)
    zeroed = dict(course, **{"features.0.weight": course["features.0.weight"] * 0})
    with pytest.raises(AssertionError, match="32 all-zero filters"):
        checks.part5_budget(_context(course, start, zeroed, correct_of))
