"""The weights a model computes with, whatever its framework, and what they cost to run.

``helpers(model_or_mode)`` is the helper module of the model's framework
(``pruning_helper`` or ``keras_helper``, imported only when needed, so a
TensorFlow notebook never loads torch). ``canonical_state(model)`` gives its
weights as float32 numpy arrays in the canonical layout (the torch SmallCNN's
``state_dict`` names and shapes, see ``ece662/architecture.py``). On that
layout, ``count_parameters`` and ``count_macs`` say what a pruned model still
computes with: the parameters that are not zero, and the multiply-accumulates
of one image that a zero-skipping machine would still do.
"""
import sys

import numpy as np

from .architecture import CANONICAL_PREFIX, CONV_LAYERS

CONV_OUTPUT_SIDE = {"conv1": 32, "conv2": 16, "conv3": 8}  # each conv's output is side x side (32x32 images)


def is_torch(model) -> bool:
    torch = sys.modules.get("torch")  # a TensorFlow notebook never imports it
    return torch is not None and isinstance(model, torch.nn.Module)


def helpers(model_or_mode):
    """``ece662.pruning_helper`` for a torch model or mode 'torch', ``ece662.keras_helper`` for Keras."""
    keras = model_or_mode == "tensorflow" if isinstance(model_or_mode, str) else not is_torch(model_or_mode)
    if keras:
        from . import keras_helper

        return keras_helper
    from . import pruning_helper

    return pruning_helper


def canonical_state(model) -> dict:
    """The weights a model computes with, as float32 numpy arrays in the canonical (torch SmallCNN) layout."""
    if is_torch(model):
        from .pruning_helper import canonical_weights

        return canonical_weights(model)
    if type(model).__module__.split(".")[0] in ("keras", "tf_keras", "tensorflow"):
        from .keras_model import canonical_state as keras_canonical

        return keras_canonical(model)
    raise AssertionError(f"expected a model (torch.nn.Module or keras.Model), got {type(model).__name__}")


def count_parameters(state: dict) -> tuple[int, int]:
    """(all parameters, the non-zero ones) of a canonical state."""
    return sum(v.size for v in state.values()), sum(int(np.count_nonzero(v)) for v in state.values())


def count_macs(state: dict) -> tuple[int, int]:
    """(MACs of one image for the dense layers, MACs left when every multiplication by a zero weight or by an
    input that is always zero is skipped). A filter whose weights and bias are zero outputs zeros, so the next
    layer's weights on that channel do nothing either."""
    dense = effective = 0
    live = np.ones(3, dtype=bool)  # the input channels
    for name in CONV_LAYERS:
        prefix, side = CANONICAL_PREFIX[name], CONV_OUTPUT_SIDE[name]
        weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
        used = (weight != 0) & live[None, :, None, None]
        dense += weight.size * side * side
        effective += int(used.sum()) * side * side
        live = used.reshape(len(weight), -1).any(1) | (bias != 0)
    live = np.repeat(live, CONV_OUTPUT_SIDE[CONV_LAYERS[-1]] ** 2)  # Flatten: channel c -> its side x side columns
    for name in ("fc1", "fc2"):
        prefix = CANONICAL_PREFIX[name]
        weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
        used = (weight != 0) & live[None, :]
        dense += weight.size
        effective += int(used.sum())
        live = used.any(1) | (bias != 0)
    return dense, effective
