"""Physically remove pruned conv filters: a smaller dense SmallCNN that really runs faster.

Zeroing filters (structured pruning with masks) leaves every tensor its
original size, so the CPU does the same work. ``remove_zero_filters`` builds
a new SmallCNN whose Conv2d layers keep only the non-zero filters, drops the
matching input channels of the next conv and the matching input columns of
the first Linear layer (the Flatten maps channel c to columns
c*H*W ... (c+1)*H*W - 1).

Kept channels are rounded up to a multiple of ``CHANNEL_MULTIPLE`` (8) with
all-zero filters (see ``ece662/architecture.py`` and ``ece662.budget.kept_filters``).

A zeroed filter still outputs its bias (a constant map), which the compacted
model drops: it equals the pruned model with those filters' biases zeroed
too, and is exactly equal when they already were.
"""
from .budget import without_zero_filters
from .devices import model_device
from .frameworks import keras_counterpart
from .model import SmallCNN, from_canonical
from .pruning_helper import canonical_weights


@keras_counterpart
def remove_zero_filters(model: SmallCNN) -> SmallCNN:
    """A compacted dense copy of ``model``, on its device, without its all-zero Conv2d filters (works on pruned
    models; a Keras SmallCNN is compacted by ``ece662.keras_helper.remove_zero_filters``). Both compute in the
    canonical layout with ``ece662.budget.without_zero_filters``."""
    if not isinstance(model, SmallCNN):
        raise TypeError(f"remove_zero_filters works on the course SmallCNN, not {type(model).__name__}")
    return from_canonical(without_zero_filters(canonical_weights(model))).to(model_device(model))
