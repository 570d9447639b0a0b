"""Before grading a course: measure and train, once, what every correct notebook measures and trains.

A correct notebook evaluates the course model, its global L1 pruning at each
Part 1 level and its filter pruning at each Part 2 level, and trains two
models in Part 4 with the recipe the notebook gives; the verifier measures the
same weights again. The pipeline does all of it itself before any kernel
starts (a dozen evaluations and six epochs, kept in the shared store for
later runs), so for every student whose code produces the same weights from
the same inputs, kernel and verifier look the values up, and the kernel
replays the training (``ece662/evaluations.py``, ``ece662/training_replay.py``).
Nothing here decides a grade: a student's weights that differ from these by
one bit are measured, and trained, as before.
"""
from pathlib import Path

from ece662 import registry

from .verify import TrustedData

# Part 4's recipe, as the notebook states it (part4_settings and its text): a correct notebook that follows it
# replays every epoch (tests/test_training_replay.py runs the source notebook's solution against this).
PART4_IMAGES, PART4_EPOCHS, PART4_LR, PART4_MOMENTUM = 5000, 3, 0.01, 0.9


def _prune_globally_to(model, level: float) -> None:
    """Part 1's rule: global L1 pruning of all Conv2d+Linear weights until ``level`` of them are zero."""
    from torch.nn.utils import prune

    from ece662.pruning_helper import global_sparsity, prunable_layers

    current = global_sparsity(model)
    prune.global_unstructured([(layer, "weight") for _, layer in prunable_layers(model)],
                              pruning_method=prune.L1Unstructured, amount=max(0.0, (level - current) / (1 - current)))


def _canonical(model) -> dict:
    """The model's canonical weights as the verifier reads them from evidence (float32 torch tensors)."""
    import torch

    from ece662.pruning_helper import canonical_weights

    return {k: torch.from_numpy(v) for k, v in canonical_weights(model).items()}


def reference_models(model_file: Path) -> tuple[list[dict], object]:
    """(canonical weights of the course model, its global L1 pruning to each Part 1 level (cumulative, as the
    notebook asks) and its L2 filter pruning at each Part 2 level; the 80% Part 1 model itself)."""
    from torch import nn
    from torch.nn.utils import prune

    from ece662.pruning_helper import load_model, prunable_layers

    model = load_model(model_file)
    states = [_canonical(model)]
    for level in registry.UNSTRUCTURED_LEVELS:
        _prune_globally_to(model, level)
        states.append(_canonical(model))
    for level in registry.STRUCTURED_LEVELS:
        filters = load_model(model_file)
        for _, layer in prunable_layers(filters):
            if isinstance(layer, nn.Conv2d):
                prune.ln_structured(layer, name="weight", amount=level, n=2, dim=0)
        states.append(_canonical(filters))
    return states, model


def _train_sealed(model, X, y, store, prune_to: float | None = None) -> None:
    """Part 4's recipe on ``model``, each epoch replayed from ``store`` or trained and sealed there; with
    ``prune_to``, global pruning in equal steps at the end of each epoch but the last (gradual pruning)."""
    import torch

    from ece662.pruning_helper import TRAIN_BATCH_SIZE, train_epoch
    from ece662.training_replay import call_key, outcome, replay

    optimizer = torch.optim.SGD(model.parameters(), lr=PART4_LR, momentum=PART4_MOMENTUM)
    for epoch in range(PART4_EPOCHS):
        key = call_key(model, optimizer, X, y, TRAIN_BATCH_SIZE, epoch)
        content = store.get_sealed(key)
        if content is None or replay(model, optimizer, content) is None:
            loss = train_epoch(model, optimizer, X, y, seed=epoch)
            store.put_sealed(key, outcome(model, optimizer, loss))
        if prune_to is not None and epoch < PART4_EPOCHS - 1:
            _prune_globally_to(model, prune_to * (epoch + 1) / (PART4_EPOCHS - 1))


def measure_references(store_folder: Path, model_dir: Path, data_root: Path) -> None:
    """Put into the store at ``store_folder``, unless they are there already: the reference models'
    accuracies, Part 4's reference epochs (sealed) and the losses and accuracies Part 4's checks measure."""
    from ece662.checks import untrained_like
    from ece662.evaluations import EvaluationStore
    from ece662.pruning_helper import clone_model, load_model

    store = EvaluationStore(store_folder)
    trusted, model_file = TrustedData(model_dir, data_root, store), Path(model_dir) / "torch.model"
    data = trusted.dataset()  # first: load_model then checks the model against this dataset, not another
    states, part1 = reference_models(model_file)
    for state in states:
        trusted.accuracy(state)
    trusted.training_loss(states[len(registry.UNSTRUCTURED_LEVELS)])

    X, y = data["X_train"][:PART4_IMAGES], data["y_train"][:PART4_IMAGES]
    finetuned, gradual = clone_model(part1), load_model(model_file)
    _train_sealed(finetuned, X, y, store)
    _train_sealed(gradual, X, y, store, prune_to=registry.FINAL_SPARSITY)
    original = trusted.original("torch")
    for trained in (_canonical(finetuned), _canonical(gradual)):
        trusted.accuracy(trained)
        trusted.training_loss(trained)
    trusted.training_loss(untrained_like(original, _canonical(gradual)))
