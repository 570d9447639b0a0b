"""Physically removing zeroed filters gives a smaller model that computes the same function."""
import pytest
import torch
import torch.nn.utils.prune as prune
from torch import nn

from ece662.compaction import remove_zero_filters
from ece662.pruning_helper import count_parameters, load_model


def filter_prune(model, level, zero_bias):
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            prune.ln_structured(m, "weight", amount=level, n=2, dim=0)
            if zero_bias:
                with torch.no_grad():
                    m.bias[m.weight_mask.flatten(1).sum(1) == 0] = 0
    return model


@pytest.mark.parametrize("level", [0.2, 0.5, 0.8])
def test_compacted_model_equals_pruned_model_with_zero_biases(course_env, level):
    pruned = filter_prune(load_model(course_env), level, zero_bias=True)
    small = remove_zero_filters(pruned)
    convs = [m for m in small.features if isinstance(m, nn.Conv2d)]
    kept = [32 - round(level * 32), 64 - round(level * 64), 64 - round(level * 64)]
    # kept filters, padded with zero filters up to a multiple of 8 (at most the original count)
    assert [c.out_channels for c in convs] == [min(full, -(-k // 8) * 8) for k, full in zip(kept, (32, 64, 64))]
    assert [int(c.weight.flatten(1).ne(0).any(1).sum()) for c in convs] == kept
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), pruned(x), atol=1e-4, rtol=1e-4)
    assert count_parameters(small) < count_parameters(pruned)


def test_unpruned_model_compacts_to_itself(course_env):
    model = load_model(course_env)
    small = remove_zero_filters(model)
    assert count_parameters(small) == count_parameters(model)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x))


def test_other_architectures_are_refused():
    with pytest.raises(TypeError, match="SmallCNN"):
        remove_zero_filters(nn.Sequential(nn.Conv2d(3, 4, 3)))
