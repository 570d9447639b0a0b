"""Part 4's recipe, run by the grader from its own starting point, in the student's framework.

The notebook states one recipe (``ece662.grading.registry.PART4``: images, epochs,
target, SGD learning rate and momentum, ``seed=epoch``, the gradual schedule)
and grades Part 4 on it: the checks compare a student's two models with what
this module computes (``ece662/grading/checks.py``). The start is never a model the
student recorded: fine-tuning starts from the grader's own course weights with
the student's zeros, gradual pruning from the grader's own course model. The
model is loaded from the grader's own course file by the loader students use,
so both runs compute with the same layers, and trained with the reference
solution (``autograder/reference.py``).
"""
from pathlib import Path

from ece662.grading import registry

FINETUNED, GRADUAL = "finetuned", "gradual"


def _torch(kind: str, start: dict, course_file: Path, X, y, recipe: registry.Part4Recipe) -> dict:
    import torch

    from autograder import reference
    from ece662.pruning_helper import canonical_weights, clone_model, load_model

    model = load_model(course_file)
    model.load_state_dict({k: torch.as_tensor(v, dtype=torch.float32) for k, v in start.items()})
    model = clone_model(model)  # a mask on every zero, as the student's clone has
    if kind == FINETUNED:
        reference.finetune(model, recipe.epochs, X, y, recipe.lr, recipe.momentum)
    else:
        reference.train_with_gradual_pruning(model, recipe.epochs, recipe.target, X, y, recipe.lr, recipe.momentum)
    return canonical_weights(model)


def _keras(kind: str, start: dict, course_file: Path, X, y, recipe: registry.Part4Recipe) -> dict:
    from autograder import reference
    from ece662 import keras_helper  # first: it loads TensorFlow safely beside torch
    from ece662.keras_model import canonical_state, keras_state_from_canonical

    model = keras_helper.load_model(course_file)
    model.set_weights(keras_state_from_canonical(start))
    if kind == FINETUNED:
        reference.keras_finetune(model, recipe.epochs, X, y, recipe.lr, recipe.momentum)
    else:
        reference.keras_train_with_gradual_pruning(model, recipe.epochs, recipe.target, X, y, recipe.lr,
                                                   recipe.momentum)
    return canonical_state(model)


def run(kind: str, start: dict, framework: str, course_file: Path, X, y,
        recipe: registry.Part4Recipe = registry.PART4) -> dict:
    """The canonical weights the recipe ``kind`` (FINETUNED or GRADUAL) gives from ``start`` (canonical
    weights) on the images ``X`` and labels ``y``, in ``framework`` ('torch' or 'tensorflow')."""
    train = _keras if framework == "tensorflow" else _torch
    return train(kind, start, Path(course_file), X, y, recipe)
