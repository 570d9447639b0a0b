"""What a model's weights cost to run, in numpy alone, whatever its framework.

On weights in the canonical layout (``ece662.frameworks.canonical_state``:
the torch SmallCNN's ``state_dict`` names and shapes, float32 numpy arrays),
``count_parameters`` and ``count_macs`` say what a pruned model still computes
with: the parameters that are not zero, and the multiply-accumulates of one
image that a zero-skipping machine would still do.
"""
import numpy as np

from .architecture import CANONICAL_PREFIX, CONV_LAYERS

CONV_OUTPUT_SIDE = {"conv1": 32, "conv2": 16, "conv3": 8}  # each conv's output is side x side (32x32 images)


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
