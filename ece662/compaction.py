"""Physically remove pruned conv filters: a smaller dense SmallCNN that really runs faster.

Zeroing filters (structured pruning with masks) leaves every tensor its
original size, so the CPU does the same work. ``remove_zero_filters`` builds
a new SmallCNN whose Conv2d layers keep only the non-zero filters, drops the
matching input channels of the next conv and the matching input columns of
the first Linear layer (the Flatten maps channel c to columns
c*H*W ... (c+1)*H*W - 1).

Kept channels are rounded up to a multiple of ``CHANNEL_MULTIPLE`` (8) with
all-zero filters (see ``ece662/architecture.py``).

A zeroed filter still outputs its bias (a constant map), which the compacted
model drops: it equals the pruned model with those filters' biases zeroed
too, and is exactly equal when they already were.
"""
import torch
from torch import nn

from .architecture import ARCHITECTURE, CHANNEL_MULTIPLE, DEFAULT_CONFIG
from .devices import model_device
from .model import SmallCNN, build_model
from .frameworks import keras_counterpart
from .pruning_helper import effective_weight


def kept_filters(conv: nn.Conv2d, multiple: int = CHANNEL_MULTIPLE) -> torch.Tensor:
    """Sorted indices of the filters of ``conv`` to keep: the non-zero ones, padded with zero filters
    up to a multiple of ``multiple`` (at most all of them, at least one)."""
    nonzero = effective_weight(conv).flatten(1).ne(0).any(1)
    kept = nonzero.nonzero().flatten()
    wanted = min(len(nonzero), max(1, -(-len(kept) // multiple) * multiple))
    padding = (~nonzero).nonzero().flatten()[: wanted - len(kept)]
    return torch.cat([kept, padding]).sort().values


@keras_counterpart
@torch.no_grad()
def remove_zero_filters(model: SmallCNN) -> SmallCNN:
    """A compacted dense copy of ``model``, on its device, without its all-zero Conv2d filters (works on pruned
    models; a Keras SmallCNN is compacted by ``ece662.keras_helper.remove_zero_filters``)."""
    if not isinstance(model, SmallCNN):
        raise TypeError(f"remove_zero_filters works on the course SmallCNN, not {type(model).__name__}")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    keeps = [kept_filters(c) for c in convs]
    config = dict(DEFAULT_CONFIG, channels=[len(k) for k in keeps], hidden=linears[0].out_features)
    device = model_device(model)
    small = build_model(ARCHITECTURE, config).to(device).eval()
    small_convs = [m for m in small.features if isinstance(m, nn.Conv2d)]
    keep_in = torch.arange(convs[0].in_channels, device=device)
    for conv, new, keep in zip(convs, small_convs, keeps):
        weight = effective_weight(conv)[keep][:, keep_in]
        new.weight.copy_(weight)
        new.bias.copy_(conv.bias.detach()[keep] * weight.flatten(1).ne(0).any(1))  # zero filters: no bias
        keep_in = keep
    spatial = linears[0].in_features // convs[-1].out_channels
    columns = (keep_in[:, None] * spatial + torch.arange(spatial, device=device)[None, :]).flatten()
    small_linears = [m for m in small.classifier if isinstance(m, nn.Linear)]
    small_linears[0].weight.copy_(effective_weight(linears[0])[:, columns])
    small_linears[0].bias.copy_(linears[0].bias.detach())
    small_linears[1].weight.copy_(effective_weight(linears[1]))
    small_linears[1].bias.copy_(linears[1].bias.detach())
    return small
