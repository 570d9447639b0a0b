"""The reference solution in PyTorch (see ``autograder/reference/__init__.py``); each function imports the
helpers it uses in its body, as the example submissions built from its source need."""


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


def keep_filters(model, keep):
    """Part 5: in the i-th Conv2d layer, zero every filter but the ``keep[i]`` of largest L2 norm, each filter's
    weights and its bias (Part 2's rule, with a count per layer)."""
    from torch import nn
    from torch.nn.utils import prune

    from ece662.pruning_helper import prunable_layers

    convs = [layer for _, layer in prunable_layers(model) if isinstance(layer, nn.Conv2d)]
    for layer, kept in zip(convs, keep):
        prune.ln_structured(layer, name="weight", amount=layer.out_channels - kept, n=2, dim=0)
        mask = layer.weight_mask.flatten(1).any(1)
        prune.custom_from_mask(layer, name="bias", mask=mask.to(layer.bias.dtype))


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
