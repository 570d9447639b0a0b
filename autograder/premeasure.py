"""Before grading a course: measure, once, the models that every correct notebook evaluates.

A correct notebook evaluates the course model, its global L1 pruning at each
Part 1 level and its filter pruning at each Part 2 level, and the verifier
measures the same weights again. The pipeline measures these reference
models itself before any kernel starts (about a dozen evaluations, kept in
the shared store for later runs), so for every student whose code produces
them, kernel and verifier look the values up instead (``ece662/evaluations.py``).
Nothing here decides a grade: a student's weights that differ from these by
one bit are measured as before.
"""
from pathlib import Path

from ece662 import registry

from .verify import TrustedData


def reference_models(original: dict) -> list[dict]:
    """Canonical weights: the course model, its global L1 pruning to each Part 1 level (cumulative, as the
    notebook asks) and its L2 filter pruning at each Part 2 level."""
    from torch import nn
    from torch.nn.utils import prune

    from ece662.model import from_canonical
    from ece662.pruning_helper import effective_state_dict, global_sparsity, prunable_layers

    def state(model):
        return {k: v.float() for k, v in effective_state_dict(model).items()}

    states = [dict(original)]
    model = from_canonical(original)
    for level in registry.UNSTRUCTURED_LEVELS:
        current = global_sparsity(model)
        prune.global_unstructured([(layer, "weight") for _, layer in prunable_layers(model)],
                                  pruning_method=prune.L1Unstructured, amount=(level - current) / (1 - current))
        states.append(state(model))
    for level in registry.STRUCTURED_LEVELS:
        model = from_canonical(original)
        for _, layer in prunable_layers(model):
            if isinstance(layer, nn.Conv2d):
                prune.ln_structured(layer, name="weight", amount=level, n=2, dim=0)
        states.append(state(model))
    return states


def measure_references(store_folder: Path, model_dir: Path, data_root: Path) -> None:
    """Put the reference models' accuracies (and the final Part 1 model's training loss, which Part 4's checks
    compare against) into the store at ``store_folder``, unless they are there already."""
    from ece662.evaluations import EvaluationStore

    trusted = TrustedData(model_dir, data_root, EvaluationStore(store_folder))
    states = reference_models(trusted.original("torch"))
    for state in states:
        trusted.accuracy(state)
    trusted.training_loss(states[len(registry.UNSTRUCTURED_LEVELS)])
