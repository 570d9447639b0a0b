"""The reference solution of the assignment, in both frameworks: the one place it is written as code.

The source notebook's solution cells do exactly this (``tests/test_reference.py``
runs both and compares the weights); the example submissions are built from
it (``demo/examples.py``); the grader runs Part 4's recipe with it
(``autograder/worker/recipe.py``). The grading container and the instructor's
machine hold it; no kernel can read it (bubblewrap shows kernels only the
``ece662`` package; on Gradescope this folder is mode 0700).
"""
import numpy as np

# ------------------------------------------------------------------ PyTorch

def prune_unstructured_to(model, target):
    """Part 1: global L1 pruning of all Conv2d and Linear weights until a fraction ``target`` of them is zero."""
    from torch.nn.utils import prune

    from ece662.pruning_helper import global_sparsity, prunable_layers

    params = [(layer, "weight") for _, layer in prunable_layers(model)]
    current = global_sparsity(model)
    # a float amount is a fraction of the weights that are still unpruned
    amount = max(0.0, (target - current) / (1.0 - current))
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)


def prune_filters(model, level):
    """Part 2: in every Conv2d layer, zero the ``level`` fraction of filters with the smallest L2 norm, each
    filter's weights and its bias."""
    from torch import nn
    from torch.nn.utils import prune

    from ece662.pruning_helper import prunable_layers

    for _, layer in prunable_layers(model):
        if isinstance(layer, nn.Conv2d):
            prune.ln_structured(layer, name="weight", amount=level, n=2, dim=0)
            kept = layer.weight_mask.flatten(1).any(1)
            prune.custom_from_mask(layer, name="bias", mask=kept.to(layer.bias.dtype))


def finetune(model, epochs, X, y, lr, momentum):
    """Part 4, after training: train the pruned ``model`` with its masks kept; one optimizer for the run,
    ``seed=epoch``."""
    import torch

    from ece662.pruning_helper import train_epoch

    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for epoch in range(epochs):
        train_epoch(model, optimizer, X, y, seed=epoch)


def train_with_gradual_pruning(model, epochs, target, X, y, lr, momentum):
    """Part 4, during training: the same recipe, pruning globally at the end of each epoch but the last in equal
    steps that reach ``target`` before the last epoch; each step ranks the weights as that epoch left them
    (``train_epoch`` leaves a pruned layer's ``weight`` as its last step made it)."""
    import torch

    from ece662.pruning_helper import train_epoch

    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for epoch in range(epochs):
        train_epoch(model, optimizer, X, y, seed=epoch)
        if epoch < epochs - 1:
            prune_unstructured_to(model, target * (epoch + 1) / (epochs - 1))


# ------------------------------------------------------------------ TensorFlow (Keras)

def keras_prune_unstructured_to(model, target):
    """Part 1 in Keras: one threshold over all Conv2D and Dense kernels, applied with ``set_weights``."""
    from ece662.keras_helper import prunable_layers

    layers = [layer for _, layer in prunable_layers(model)]
    flat = np.concatenate([np.abs(layer.get_weights()[0]).ravel() for layer in layers])
    count = int(round(target * flat.size))
    if count == 0:
        return
    threshold = np.partition(flat, count - 1)[count - 1]
    for layer in layers:
        weights = layer.get_weights()
        weights[0] = np.where(np.abs(weights[0]) <= threshold, 0.0, weights[0])
        layer.set_weights(weights)


def keras_prune_filters(model, level):
    """Part 2 in Keras: a filter is the last axis of a Conv2D kernel (height, width, in, out), and its bias."""
    from ece662.keras_helper import keras, prunable_layers

    for _, layer in prunable_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            norms = np.sqrt((kernel ** 2).sum(axis=(0, 1, 2)))
            pruned = np.argsort(norms, kind="stable")[:round(level * len(norms))]
            kernel[..., pruned] = 0.0
            bias[pruned] = 0.0
            layer.set_weights([kernel, bias])


def keras_finetune(model, epochs, X, y, lr, momentum):
    from ece662.keras_helper import keras, train_epoch

    optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    for epoch in range(epochs):
        train_epoch(model, optimizer, X, y, seed=epoch)


def keras_train_with_gradual_pruning(model, epochs, target, X, y, lr, momentum):
    from ece662.keras_helper import keras, train_epoch

    optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    for epoch in range(epochs):
        train_epoch(model, optimizer, X, y, seed=epoch)
        if epoch < epochs - 1:
            keras_prune_unstructured_to(model, target * (epoch + 1) / (epochs - 1))
