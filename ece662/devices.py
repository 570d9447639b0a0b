"""Where a torch model lives (CPU, CUDA, Apple's MPS): the helpers' device handling, in one place.

The helpers take a model wherever it is: batches of images go to the model's device, results come back as
numpy arrays and floats, and saved files and the weights grading records are CPU tensors. CPU timing
(``cpu_latency_ms``, ``ece662.latency``) measures a CPU copy of a model that is elsewhere.
"""
import copy
import itertools

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for a model that has none)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def copy_to(model: nn.Module, device) -> nn.Module:
    """An independent copy of ``model`` on ``device``, pruning masks kept; the original stays where it is."""
    # torch.nn.utils.prune keeps a pruned weight as a tensor computed from weight_orig * weight_mask, which deepcopy
    # refuses while it carries autograd history: the copy gets it detached (its next forward recomputes it anyway)
    computed = {id(t): t.detach().to(device) for m in model.modules() for t in vars(m).values()
                if isinstance(t, torch.Tensor) and not t.is_leaf}
    return copy.deepcopy(model, computed).to(device)


def on_cpu(model: nn.Module) -> nn.Module:
    """``model`` itself when it is on the CPU, else a copy of it there."""
    return model if model_device(model).type == "cpu" else copy_to(model, "cpu")
