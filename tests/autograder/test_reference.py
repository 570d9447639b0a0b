"""The source notebook's solution is the reference solution (autograder/reference/): the same weights, bit for bit.

The grader runs the recipe of Parts 4 and 5 with the reference and the example submissions are built from it, so a
solution cell that drifted from it would grade students against another answer than the one they are taught.
"""
import nbformat
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from autograder.reference import solution as reference_solution
from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, REPO, SOURCE_DIR
from ece662 import data_utils
from ece662.grading.registry import PART4, STRUCTURED_LEVELS, UNSTRUCTURED_LEVELS
from ece662.pruning_helper import (
    canonical_weights,
    clone_model,
    global_sparsity,
    load_model,
    model_path,
    prunable_layers,
    train_epoch,
)

reference = reference_solution("torch")


@pytest.fixture(scope="module")
def solution(course_env):
    """The functions the source notebook's solution cells define, in a namespace like the notebook's."""
    data = data_utils.get_CINIC10_data(verbose=False)
    ns = dict(torch=torch, nn=nn, prune=prune, np=np, prunable_layers=prunable_layers, global_sparsity=global_sparsity,
              train_epoch=train_epoch, X_part4=data["X_train"][:PART4.images], y_part4=data["y_train"][:PART4.images],
              part4_lr=PART4.lr, part4_momentum=PART4.momentum)
    cells = {c.get("id"): c.source for c in nbformat.read(REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK, 4).cells}
    for cell_id in ("part1_code", "part2_code", "part4_code", "part5_code"):
        definitions = cells[cell_id].split("\n\n\n### BEGIN SOLUTION")[0].split("\n\n\nunstructured_results")[0]
        exec(definitions.split("\n\n\nstructured_results")[0], ns)  # the function definitions, not the sweeps
    return ns, data


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    wa, wb = canonical_weights(a), canonical_weights(b)
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_part1_and_part2_solutions_are_the_reference(solution):
    ns, _ = solution
    mine, theirs = load_model(model_path("torch")), load_model(model_path("torch"))
    for level in UNSTRUCTURED_LEVELS:
        ns["prune_unstructured_to"](mine, level)
        reference.prune_unstructured_to(theirs, level)
        assert _same(mine, theirs), level
    for level in STRUCTURED_LEVELS:
        mine, theirs = load_model(model_path("torch")), load_model(model_path("torch"))
        ns["prune_filters"](mine, level)
        reference.prune_filters(theirs, level)
        assert _same(mine, theirs), level


def test_part4_solution_is_the_recipe_the_grader_runs(solution):
    ns, data = solution
    X, y = data["X_train"][:PART4.images], data["y_train"][:PART4.images]
    one_shot = load_model(model_path("torch"))
    reference.prune_unstructured_to(one_shot, PART4.target)
    mine, theirs = clone_model(one_shot), clone_model(one_shot)
    ns["finetune"](mine, PART4.epochs)
    reference.finetune(theirs, PART4.epochs, X, y, PART4.lr, PART4.momentum)
    assert _same(mine, theirs)
    mine, theirs = load_model(model_path("torch")), load_model(model_path("torch"))
    ns["train_with_gradual_pruning"](mine, PART4.epochs, PART4.target)
    reference.train_with_gradual_pruning(theirs, PART4.epochs, PART4.target, X, y, PART4.lr, PART4.momentum)
    assert _same(mine, theirs)
    assert global_sparsity(mine) == pytest.approx(PART4.target, abs=1e-4)


def test_part5_solution_keeps_the_reference_filters(solution):
    ns, _ = solution
    for keep in ((16, 24, 48), (8, 64, 8), (32, 64, 64)):
        mine, theirs = load_model(model_path("torch")), load_model(model_path("torch"))
        ns["keep_filters"](mine, keep)
        reference.keep_filters(theirs, keep)
        assert _same(mine, theirs), keep
        kept = [int(layer.weight.detach().flatten(1).ne(0).any(1).sum()) for _, layer in prunable_layers(mine)
                if isinstance(layer, nn.Conv2d)]
        assert tuple(kept) == keep
