"""The reference solution in Keras, TensorFlow mode (see ``autograder/reference/__init__.py``); each function imports
the helpers it uses in its body, as the example submissions built from its source need."""
import numpy as np


def prune_unstructured_to(model, target):
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


def prune_filters(model, level):
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


def keep_filters(model, keep):
    """Part 5 in Keras: in the i-th Conv2D layer, zero every filter but the ``keep[i]`` of largest L2 norm."""
    from ece662.keras_helper import keras, prunable_layers

    convs = [layer for _, layer in prunable_layers(model) if isinstance(layer, keras.layers.Conv2D)]
    for layer, kept in zip(convs, keep):
        kernel, bias = layer.get_weights()
        norms = np.sqrt((kernel ** 2).sum(axis=(0, 1, 2)))
        pruned = np.argsort(-norms, kind="stable")[kept:]
        kernel[..., pruned] = 0.0
        bias[pruned] = 0.0
        layer.set_weights([kernel, bias])


def finetune(model, epochs, X, y, lr, momentum):
    from ece662.keras_helper import keras, train_epoch

    optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    for epoch in range(epochs):
        train_epoch(model, optimizer, X, y, seed=epoch)


def train_with_gradual_pruning(model, epochs, target, X, y, lr, momentum):
    from ece662.keras_helper import keras, train_epoch

    optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    for epoch in range(epochs):
        train_epoch(model, optimizer, X, y, seed=epoch)
        if epoch < epochs - 1:
            prune_unstructured_to(model, target * (epoch + 1) / (epochs - 1))
