"""Part 4's recipe, run by the grader from its own starting point, in the student's framework.

The notebook states one recipe (``ece662.grading.registry.PART4``: images, epochs,
target, SGD learning rate and momentum, ``seed=epoch``, the gradual schedule)
and grades Part 4 on it: the checks compare a student's two models with what
this module computes (``ece662/grading/checks.py``). The start is never a model the
student recorded: fine-tuning starts from the grader's own course weights with
the student's zeros, gradual pruning from the grader's own course model. The
model is loaded from the grader's own course file by the loader students use,
so both runs compute with the same layers, and trained with the reference
solution (``autograder/reference/``). Part 5 fine-tunes a compact start: the
student's ``part5_start`` once the checks found it equal to the grader's course
weights cut down to some of their filters, built as ``remove_zero_filters``
builds it.
"""
from pathlib import Path

from autograder import reference
from ece662.frameworks import canonical_state, from_canonical, helpers, with_canonical_state
from ece662.grading import registry
from ece662.grading.registry import COMPACT, FINETUNED


def run(kind: str, start: dict, framework: str, course_file: Path, X, y,
        recipe: registry.Part4Recipe = registry.PART4) -> dict:
    """The canonical weights the recipe ``kind`` (FINETUNED, GRADUAL or COMPACT) gives from ``start`` (canonical
    weights) on the images ``X`` and labels ``y``, in ``framework`` ('torch' or 'tensorflow')."""
    helper = helpers(framework)  # first: the Keras helpers load TensorFlow safely beside torch
    solution = reference.solution(framework)
    # a compact start has fewer filters than the course model: built as remove_zero_filters builds it
    course = from_canonical(start, framework) if kind == COMPACT else helper.load_model(Path(course_file), mode=framework)
    model = with_canonical_state(course, start)
    if kind in (FINETUNED, COMPACT):
        solution.finetune(model, recipe.epochs, X, y, recipe.lr, recipe.momentum)
    else:
        solution.train_with_gradual_pruning(model, recipe.epochs, recipe.target, X, y, recipe.lr, recipe.momentum)
    return canonical_state(model)
