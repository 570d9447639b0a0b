"""The graded parts of the assignment, in one place: every test's points, every question's, Part 4's recipe.

Each autograded test is a ``GradedTest``: its nbgrader grade id, the part it
belongs to, its points, the check in ``ece662/grading/checks.py`` that decides
it, the evidence that check reads, and the levels a student's own run checks
publicly. Each hand-graded question is a ``ManualQuestion``. The notebook's
graded cells (one call: ``run_test(grade_id, globals())``), the verifier, the
grade CSV, Gradescope's results and the tests all read this module, and
``make release`` writes the points, the notebook's points table and its Part 4
settings cell from it.

* Re-weight a test: change its points here, then ``make release``.
* Add a test: an entry here, its check in ``ece662/grading/checks.py``, a graded
  cell ``run_test("<grade id>", globals())`` in the source notebook with that
  grade id (``make release`` refuses a notebook whose graded cells are not this
  file's), and the example submissions' expected points in ``tests/end_to_end/test_grading.py``
  where they change.
"""
from dataclasses import dataclass

# The assignment's identity, shared by the grader and ``ece662.submit``: its nbgrader id and its notebook's name
ASSIGNMENT = "pruning"
NOTEBOOK_ID = "pruning"  # the notebook's name without ``.ipynb``, as nbgrader's gradebook names it
NOTEBOOK = f"{NOTEBOOK_ID}.ipynb"

UNSTRUCTURED_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
STRUCTURED_LEVELS = (0.2, 0.5, 0.8)
FINAL_SPARSITY = UNSTRUCTURED_LEVELS[-1]


@dataclass(frozen=True)
class Part4Recipe:
    """Part 4's training recipe, as the notebook's ``part4_settings`` cell states it (``make release`` writes
    that cell from here) and as the grader runs it (``autograder/worker/recipe.py``): one
    ``SGD(lr, momentum)`` per run, ``train_epoch(..., seed=epoch)`` on the first ``images`` training images for
    ``epochs`` epochs; gradual pruning prunes globally at the end of each epoch but the last, in equal steps
    reaching ``target`` before the last epoch."""
    images: int = 5000
    epochs: int = 3
    target: float = 0.95  # chosen from measurements: one-shot pruning to 95% loses accuracy that training recovers
    lr: float = 0.01
    momentum: float = 0.9


PART4 = Part4Recipe()
# What the grader runs the recipe for: Part 4's fine-tune and gradual runs, Part 5's fine-tune of a compact model
FINETUNED, GRADUAL, COMPACT = "finetuned", "gradual", "compact"
# Part 5: `part5_model` may need at most this fraction of the dense model's MACs (the notebook's part5_settings
# cell, written by `make release`). At 30% the uniform choice keeps (16, 32, 32) filters (ece662/budget.py).
PART5_BUDGET = 0.3


@dataclass(frozen=True)
class Evidence:
    """One item a graded cell records: a function's trace, a model's weights, or a results dict.

    ``source`` is the name in the notebook (function, model variable or dict); the item is saved as
    ``<name>.safetensors`` (trace, model) or ``<name>.json`` (results) in the evidence folder.
    """
    name: str
    kind: str  # "trace" | "model" | "compact" (a model with fewer filters) | "results"
    source: str
    levels: tuple = ()
    cumulative: bool = False  # trace: one model pruned level after level (else a fresh model per level)
    keys: tuple = ()  # results: the keys the dict must have

    @property
    def filename(self) -> str:
        return f"{self.name}.json" if self.kind == "results" else f"{self.name}.safetensors"


PART1_TRACE = Evidence("part1_trace", "trace", "prune_unstructured_to", UNSTRUCTURED_LEVELS, cumulative=True)
PART1_MODEL = Evidence("part1_model", "model", "model")
PART1_RESULTS = Evidence("part1_results", "results", "unstructured_results", keys=UNSTRUCTURED_LEVELS)
PART2_TRACE = Evidence("part2_trace", "trace", "prune_filters", STRUCTURED_LEVELS, cumulative=False)
PART2_RESULTS = Evidence("part2_results", "results", "structured_results", keys=STRUCTURED_LEVELS)
# Part 1's function at part4_target on the course model: what `one_shot_model` is, where fine-tuning starts
PART4_ONE_SHOT = Evidence("part4_one_shot", "trace", "prune_unstructured_to", (PART4.target,))
PART4_FINETUNED = Evidence("part4_finetuned", "model", "finetuned_model")
PART4_GRADUAL = Evidence("part4_gradual", "model", "gradual_model")
PART4_RESULTS = Evidence("part4_results", "results", "part4_results", keys=("after_training", "during_training"))
PART5_START = Evidence("part5_start", "compact", "part5_start")  # the compact model before training
PART5_MODEL = Evidence("part5_model", "compact", "part5_model")


@dataclass(frozen=True)
class GradedTest:
    grade_id: str
    part: str
    points: float
    check: str  # function name in ece662/grading/checks.py
    evidence: tuple  # Evidence items the check reads
    summary: str  # what it checks, in a student's words
    public_levels: tuple | None = None  # trace levels checked in the student's own run; None: graded only


@dataclass(frozen=True)
class ManualQuestion:
    grade_id: str
    part: str
    points: float
    title: str


TESTS = (
    GradedTest("test_part1_cumulative", "part1", 3, "cumulative_sparsity", (PART1_TRACE,),
               "after each step exactly the target fraction of all conv and fully-connected weights is zero",
               public_levels=(0.1, 0.2)),
    GradedTest("test_part1_global", "part1", 3, "global_threshold", (PART1_TRACE,),
               "the zeroed weights are the globally smallest |w| (one threshold for all layers)",
               public_levels=(0.1,)),
    GradedTest("test_part1_weights_only", "part1", 1, "only_weights_changed", (PART1_TRACE,),
               "biases are untouched and the weights that are kept keep their values"),
    GradedTest("test_part1_final_model", "part1", 1, "final_model", (PART1_MODEL,),
               "after the sweep, `model` is the course model globally pruned to 80%", public_levels=()),
    GradedTest("test_part1_accuracies", "part1", 2, "unstructured_accuracies", (PART1_TRACE, PART1_RESULTS),
               "each recorded accuracy is that of your pruned model at that level", public_levels=()),
    GradedTest("test_part2_filters", "part2", 5, "smallest_filters", (PART2_TRACE,),
               "each conv layer has round(level * filters) all-zero filters, the smallest-L2 ones",
               public_levels=(0.2,)),
    GradedTest("test_part2_scope", "part2", 2, "only_filters_pruned", (PART2_TRACE,),
               "a zeroed filter's bias is zero too; kept filters and the fully-connected layers are untouched",
               public_levels=(0.2,)),
    GradedTest("test_part2_accuracies", "part2", 3, "structured_accuracies", (PART2_TRACE, PART2_RESULTS),
               "each recorded accuracy is that of your filter-pruned model at that level", public_levels=()),
    GradedTest("test_part4_finetuned", "part4", 2, "finetuned_model", (PART4_ONE_SHOT, PART4_FINETUNED),
               "`finetuned_model` keeps the zeros of `one_shot_model` (the course model pruned to part4_target by "
               "your `prune_unstructured_to`) and is what the stated recipe trains from it", public_levels=()),
    GradedTest("test_part4_gradual", "part4", 2, "gradual_model", (PART4_GRADUAL,),
               "`gradual_model` is what the stated recipe with its pruning schedule gives from the course model",
               public_levels=()),
    GradedTest("test_part4_accuracies", "part4", 1, "part4_accuracies",
               (PART4_ONE_SHOT, PART4_FINETUNED, PART4_GRADUAL, PART4_RESULTS),
               "the two recorded accuracies are those of your two Part 4 models", public_levels=()),
    GradedTest("test_part5_budget", "part5", 2, "part5_budget", (PART5_MODEL,),
               "`part5_model` has its filters physically removed and needs at most part5_budget of the dense model's "
               "MACs", public_levels=()),
    GradedTest("test_part5_recipe", "part5", 3, "part5_recipe", (PART5_START, PART5_MODEL),
               "every filter of `part5_start` is one of the course model's (with its bias, over the channels kept "
               "before it) and `part5_model` is what the recipe trains from it", public_levels=()),
    GradedTest("test_part5_baseline", "part5", 2, "part5_baseline", (PART5_START,),
               "the recipe from your `part5_start` is not less accurate than the recipe from the uniform choice under "
               "the same budget, beyond the paired 95% interval, on the grader's own test images"),
)

# What each autograded part asks for, as the notebook's points table says it.
PART_TASKS = {
    "part1": "`prune_unstructured_to` and the 10%...80% sweep",
    "part2": "`prune_filters` and the three-level sweep",
    "part4": "fine-tuning with masks and gradual pruning, on the stated recipe",
    "part5": "a compact model under `part5_budget`, fine-tuned with the recipe",
}

QUESTIONS = (
    ManualQuestion("q1_answer", "q1", 5, "Inline Question 1: accuracy vs pruning level"),
    ManualQuestion("q2_answer", "q2", 5, "Inline Question 2: structured pruning vs dropout"),
    ManualQuestion("q3_answer", "q3", 5, "Inline Question 3: pruning during vs after training"),
    ManualQuestion("q4_answer", "q4", 5, "Inline Question 4: which filters to keep under a budget"),
)

# Ungraded cells that autograding skips: they only measure and plot, nothing graded or run later needs what they
# define (the sweeps and Part 5's scan before the plots still run, so every name a student might use later exists),
# and they cost time: Parts 1 and 2's plots were 17 s of a 40 s graded notebook at full size (benchmarks/REPORT.md).
NOT_RUN_WHEN_GRADED = ("part1_plot", "part2_plot", "part3_compare", "part4_control", "part4_plot",
                       "part5_scan_plot", "part5_compare")

_BY_ID = {t.grade_id: t for t in TESTS}


def test(grade_id: str) -> GradedTest:
    """The graded test with this grade id (KeyError naming the known ids otherwise)."""
    try:
        return _BY_ID[grade_id]
    except KeyError:
        raise KeyError(f"no graded test {grade_id!r}; known: {', '.join(_BY_ID)}") from None


def is_autograded(grade_id: str) -> bool:
    return grade_id in _BY_ID


def points() -> dict[str, float]:
    """{grade_id: points} of every graded cell, autograded tests first, in notebook order."""
    return {**{t.grade_id: t.points for t in TESTS}, **{q.grade_id: q.points for q in QUESTIONS}}


def part_of(grade_id: str) -> str:
    """The part ('part1', 'q1', ...) a grade id belongs to."""
    return next(x.part for x in (*TESTS, *QUESTIONS) if x.grade_id == grade_id)


def parts() -> dict[str, float]:
    """{part: max points}, in notebook order."""
    totals: dict[str, float] = {}
    for x in (*TESTS, *QUESTIONS):
        totals[x.part] = totals.get(x.part, 0) + x.points
    return totals


def autograded_total() -> float:
    return sum(t.points for t in TESTS)


def total() -> float:
    return sum(points().values())
