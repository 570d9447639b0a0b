"""The reference solution of the assignment, the one place it is written as code: one module per framework, each
defining the notebook's ``prune_unstructured_to``, ``prune_filters``, ``finetune``, ``train_with_gradual_pruning``
and ``keep_filters``.

The source notebook's solution cells do exactly this (``tests/autograder/test_reference.py`` runs both and compares the
weights); the example submissions are built from it (``demo/examples.py``); the grader runs Part 4's recipe with
it (``autograder/worker/recipe.py``). The grading container and the instructor's machine hold it; no kernel can
read it (bubblewrap shows kernels only the ``ece662`` package; on Gradescope this folder is mode 0700).
"""
from ece662.frameworks import TENSORFLOW

from . import keras, torch


def solution(mode: str):
    """The reference solution's module for ``mode`` ('torch' or 'tensorflow'), by the notebook's names."""
    return keras if mode == TENSORFLOW else torch
