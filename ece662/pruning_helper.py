"""Model loading, evaluation and sparsity accounting for the pruning assignment.

The seed calls work verbatim::

    model = load_model(path, mode='torch')
    test_model(model, [X, y], mode='torch')      # prints "Test Acc: 0.xxxx"

Sparsity helpers read the *effective* weight of a layer
(``weight_orig * weight_mask`` while ``torch.nn.utils.prune`` re-parametrises
it, else ``weight``), so they are right before and after ``prune.remove``.

Students' own files: ``load_model`` also reads a plain or pruned state_dict of
the course architecture, and ``save_model`` writes a model safely (masks folded
in). A ``torch.save(model)`` pickle is refused unless ``trust_pickle=True``
(unpickling runs code from the file). ``clone_model`` copies a pruned model
with its masks, and ``train_epoch`` trains one epoch (Part 4's fine-tuning).
"""
import io
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune
from tqdm.auto import tqdm

from . import data_utils
from ._allocator import keep_freed_memory_mapped
from .architecture import ARCHITECTURE
from .checkpoint import (  # noqa: F401 (ModelFileError: the notebook's and students' own code catch it)
    CHECKPOINT_FORMAT,
    ModelFileError,
    atomic_save,
    check_model_file,
    fold_pruning,
    model_file_format,
    read_checkpoint,
    read_torch_file,
    save_checkpoint,
)
from .data_utils import EVAL_BATCH_SIZE, TRAIN_BATCH_SIZE
from .devices import model_device, on_cpu
from .modes import TORCH, keras_counterpart, keras_helper
from .model import build_model
from .paths import check_mode as _check_mode
from .paths import model_path  # noqa: F401 (the notebook imports it from here)


def course_config(state: dict) -> dict | None:
    """The SmallCNN config (channels, hidden, classes) whose state_dict has exactly these names and shapes, or None."""
    try:
        config = {
            "channels": [state[f"features.{i}.weight"].shape[0] for i in (0, 3, 6)],
            "hidden": state["classifier.1.weight"].shape[0],
            "num_classes": state["classifier.4.weight"].shape[0],
        }
    except (KeyError, AttributeError, IndexError):
        return None
    expected = build_model(ARCHITECTURE, config).state_dict()
    same = expected.keys() == state.keys() and all(
        isinstance(state[k], torch.Tensor) and state[k].shape == v.shape for k, v in expected.items()
    )
    return config if same else None


def _state_from_file(content, path: Path) -> tuple[dict, dict]:
    """(state_dict, checkpoint meta) from what a torch file held: an ece662 checkpoint, a (pruned) state_dict,
    a training checkpoint with a 'model_state_dict'/'state_dict' entry, or a whole pickled model."""
    if isinstance(content, nn.Module):
        return content.state_dict(), {}
    if isinstance(content, dict) and content.get("format") == CHECKPOINT_FORMAT:
        return content.get("state_dict", {}), content
    if isinstance(content, dict):
        for key in ("model_state_dict", "state_dict"):
            if isinstance(content.get(key), dict):
                return content[key], {}
        if all(isinstance(v, torch.Tensor) for v in content.values()):
            return content, {}
    raise ModelFileError(
        f"{path} holds a {type(content).__name__} that is not a model's weights: save the model with "
        "`save_model(model, path)` and load that file."
    )


def _other_architecture_error(state: dict, path: Path) -> ModelFileError:
    layers = sorted({k.rpartition(".")[0] for k in state if isinstance(k, str)})
    shown = ", ".join(layers[:4]) + (", ..." if len(layers) > 4 else "")
    return ModelFileError(
        f"{path} holds the weights of another architecture (layers {shown or 'none'}), not the course SmallCNN: "
        "the graded parts use the course model (`load_model(model_path(mode))`); to explore your own network, "
        "load its weights with plain torch: `net = MyNet(); net.load_state_dict(torch.load(path, weights_only=True))`."
    )


def _course_model(state: dict, path: Path, config: dict | None = None) -> nn.Module:
    state = fold_pruning(state)
    inferred = course_config(state)
    if inferred is None:
        raise _other_architecture_error(state, path)
    model = build_model(ARCHITECTURE, dict(config or {}, **inferred))
    model.load_state_dict(state)
    return model.eval()


def load_model(path, mode="torch", trust_pickle: bool = False) -> nn.Module:
    """Load the course CNN from ``path`` in eval mode.

    ``path`` may hold an ece662 checkpoint (the course model, ``save_model``'s files), or a plain or pruned
    state_dict of the course architecture (pruning masks are folded in, sparsity kept). A whole pickled
    model (``torch.save(model)``) is refused: unpickling runs code from the file. ``trust_pickle=True`` loads
    it anyway -- only for a file you made yourself; a pickled model of another architecture is then returned
    as it is, for exploration. Warns when a checkpoint was trained on other data than the dataset in use.
    """
    path = check_model_file(path, mode)
    _check_mode(mode)
    if mode != TORCH:
        return keras_helper().load_model(path)
    content = read_torch_file(path, trust_pickle)
    state, ckpt = _state_from_file(content, path)
    if isinstance(content, nn.Module) and course_config(fold_pruning(state)) is None:
        return content.eval()
    model = _course_model(state, path, ckpt.get("config"))
    trained_on = ckpt.get("meta", {}).get("dataset")
    if trained_on:
        data_utils.warn_if_other_dataset(trained_on, f"The model in {path}")
    return model


def _dropout(model: nn.Module) -> dict:
    rates = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    return {"dropout": rates[0]} if rates else {}


@keras_counterpart
def save_model(model: nn.Module, path, mode="torch") -> Path:
    """Save ``model`` safely to ``path`` (pruning masks folded in, no pickled code) and return the path.

    The course SmallCNN becomes an ece662 checkpoint that ``load_model(path)`` reads back, sparsity intact.
    Another architecture is saved as its plain state_dict, and a message says how to load it with torch.
    """
    _check_mode(mode)
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_model saves a torch nn.Module; got {type(model).__name__}.")
    state = effective_state_dict(model)
    config = course_config(state)
    if config is None:
        path = atomic_save(state, path)
        print(f"Saved the weights of your {type(model).__name__} (not the course SmallCNN) to {path}; load them with "
              f"`net = {type(model).__name__}(); net.load_state_dict(torch.load(path, weights_only=True))`.")
        return path
    meta = {"saved_by": "ece662.pruning_helper.save_model", "global_sparsity": global_sparsity(model)}
    if data_utils.active_dataset():
        meta["dataset"] = data_utils.active_dataset()
    return save_checkpoint(state, path, dict(config, **_dropout(model)), meta)


def _batches(X, y, batch_size, device="cpu"):
    """Yield normalised float batches (and their labels) on ``device`` from uint8 NHWC images (or preprocessed
    float NCHW)."""
    X = X if isinstance(X, (np.ndarray, torch.Tensor)) else np.asarray(X)
    mean = (torch.tensor(data_utils.CINIC10_MEAN).view(1, 3, 1, 1) * 255).to(device)
    std = (torch.tensor(data_utils.CINIC10_STD).view(1, 3, 1, 1) * 255).to(device)
    y = torch.as_tensor(np.asarray(y)).long()
    if len(X) != len(y):
        raise ValueError(f"test_data holds {len(X)} images but {len(y)} labels")
    for start in range(0, len(X), batch_size):
        xb = torch.as_tensor(np.array(X[start:start + batch_size])).to(device)
        if xb.dtype == torch.uint8 and xb.shape[1:] == (32, 32, 3):
            # channels-last view (no copy): the CPU convolutions run about twice as fast on it as on NCHW
            xb = xb.permute(0, 3, 1, 2).float().sub_(mean).div_(std)
        elif not (xb.is_floating_point() and xb.shape[1:] == (3, 32, 32)):
            raise ValueError(
                "test_data[0] must hold uint8 images shaped (N, 32, 32, 3), as get_CINIC10_data() returns "
                f"(or normalised float images shaped (N, 3, 32, 32)); got {xb.dtype} {tuple(xb.shape)}"
            )
        yield xb, y[start:start + batch_size].to(device)


def _logits(model: nn.Module, X, batch_size: int):
    """Yield the logits of ``model`` for ``X`` batch by batch, on the model's device (eval mode, no gradients; the
    mode is restored)."""
    keep_freed_memory_mapped()
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for xb, _ in _batches(X, np.zeros(len(X), dtype=np.int64), batch_size, model_device(model)):
                yield model(xb)
    finally:
        model.train(was_training)


@keras_counterpart
def predict(model: nn.Module, X, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """The class ``model`` predicts for each image of ``X`` (uint8 NHWC images, as get_CINIC10_data returns)."""
    return np.concatenate([logits.argmax(1).cpu().numpy() for logits in _logits(model, X, batch_size)]
                          or [[]]).astype(int)


def accuracy(model: nn.Module, X, y, batch_size: int = EVAL_BATCH_SIZE) -> float:
    """Fraction of ``X`` that ``model`` classifies as ``y``."""
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"test_data holds {len(X)} images but {len(y)} labels")
    return float((predict(model, X, batch_size) == y).sum()) / max(len(y), 1)


@keras_counterpart
def test_model(model, test_data, mode="torch") -> float:
    """Print and return the accuracy of ``model`` on ``test_data = [X, y]``."""
    _check_mode(mode, "torch")
    X, y = test_data
    acc = accuracy(model, X, y)
    print(f"Test Acc: {acc:.4f}")
    return acc


test_model.__test__ = False  # not a pytest test, despite the name


@keras_counterpart
def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every Conv2d and Linear layer, in model order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The weight the layer computes with: ``weight_orig * weight_mask`` while pruned, else ``weight``."""
    if hasattr(layer, "weight_orig") and hasattr(layer, "weight_mask"):
        return (layer.weight_orig * layer.weight_mask).detach()
    return layer.weight.detach()


def effective_state_dict(model: nn.Module) -> dict:
    """A plain state_dict (``weight``, not ``weight_orig``/``weight_mask``) of what the model computes with, on the
    CPU wherever the model is."""
    return {key: value.detach().to("cpu", copy=True) for key, value in fold_pruning(model.state_dict()).items()}


def canonical_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The weights ``model`` computes with, as float32 numpy arrays: what grading records and measures."""
    return {k: v.cpu().float().numpy() for k, v in effective_state_dict(model).items()}


@keras_counterpart
def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero weights in each Conv2d/Linear layer."""
    return {n: (effective_weight(m) == 0).float().mean().item() for n, m in prunable_layers(model)}


@keras_counterpart
def global_sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over all Conv2d/Linear weights together (biases excluded)."""
    zeros = total = 0
    for _, m in prunable_layers(model):
        w = effective_weight(m)
        zeros += (w == 0).sum().item()
        total += w.numel()
    return zeros / total


@keras_counterpart
def count_parameters(model: nn.Module, nonzero_only: bool = False) -> int:
    """Parameters the model computes with (masks not counted); ``nonzero_only`` skips zeros."""
    state = effective_state_dict(model)
    return sum(int((v != 0).sum()) if nonzero_only else v.numel() for v in state.values() if v.is_floating_point())


@keras_counterpart
def model_size_bytes(model: nn.Module) -> int:
    """Size of the model's plain (dense) state_dict as ``torch.save`` writes it."""
    buffer = io.BytesIO()
    torch.save(effective_state_dict(model), buffer)
    return buffer.tell()


@keras_counterpart
def cpu_latency_ms(model: nn.Module, batch_size: int = 256, repeats: int = 15) -> float:
    """Median wall time (ms) of one forward pass over a random batch on the CPU (a model on a GPU is timed as a CPU
    copy).

    The batch has the memory layout ``test_model`` feeds (NHWC images permuted to NCHW, i.e. channels
    last), in which the CPU convolutions of this CNN run about twice as fast as on a contiguous NCHW batch.
    """
    keep_freed_memory_mapped()
    model = on_cpu(model)
    model.eval()
    x = torch.randn(batch_size, 32, 32, 3, generator=torch.Generator().manual_seed(0)).permute(0, 3, 1, 2)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            start = time.perf_counter()
            model(x)
            if i >= 2:  # first calls warm up allocator and kernels
                times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


@keras_counterpart
def clone_model(model: nn.Module) -> nn.Module:
    """An independent copy of a course SmallCNN, on the same device, that keeps its pruning masks
    (``prune.custom_from_mask``).

    Weights of Conv2d/Linear layers that are zero without a mask (pruned by hand, or after ``prune.remove``)
    get a mask too. Training the copy keeps its pruned weights exactly zero; the original is untouched. Works on models
    that ``copy.deepcopy`` refuses (pruned with gradients enabled).
    """
    state = model.state_dict()
    masks = {k[: -len("_mask")]: v for k, v in state.items() if k.endswith("_mask") and k[:-5] + "_orig" in state}
    weights = {}
    for key, value in state.items():
        if key.endswith(("_orig", "_mask")) and key[:-5] in masks:
            if key.endswith("_mask"):
                continue
            key = key[:-5]
        weights[key] = value.detach().clone()
    config = course_config(weights)
    if config is None:
        raise TypeError(f"clone_model copies the course SmallCNN; for your own {type(model).__name__}, build a new "
                        "one and copy the weights with `new.load_state_dict(old.state_dict())`.")
    copy = build_model(ARCHITECTURE, dict(config, **_dropout(model))).to(model_device(model))
    copy.load_state_dict(weights)
    for name, mask in masks.items():
        module, _, param = name.rpartition(".")
        prune.custom_from_mask(copy.get_submodule(module), param, mask.clone())
    for name, layer in prunable_layers(copy):  # zeros pruned without masks (by hand, after prune.remove)
        if f"{name}.weight" not in masks and bool((layer.weight == 0).any()):
            prune.custom_from_mask(layer, "weight", layer.weight.detach() != 0)
    return copy.train(model.training)


@keras_counterpart
def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, X, y, batch_size: int = TRAIN_BATCH_SIZE, seed=0,
                scheduler=None, progress: str | None = None) -> float:
    """One epoch of training on uint8 NHWC images ``X`` (as get_CINIC10_data returns); returns the mean loss.

    Shuffles, normalises like ``test_model`` and flips half the images horizontally; dropout is on
    (train mode), the model's mode is restored after. Pruned models keep their masks, so pruned weights stay
    zero, and each pruned layer's ``weight`` is left as the last step made it. ``seed``: an int (also seeds
    torch's RNG, which dropout uses) or a ``np.random.Generator`` to go on drawing from. ``scheduler`` steps after
    every batch; ``progress`` is the label of a progress bar.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if not isinstance(seed, np.random.Generator):
        torch.manual_seed(seed)
    y = np.asarray(y)
    device = model_device(model)
    loss_fn = nn.CrossEntropyLoss()
    was_training = model.training
    model.train()
    order = rng.permutation(len(y))
    total = 0.0
    bar = tqdm(range(0, len(y), batch_size), desc=progress, disable=progress is None)
    try:
        for start in bar:
            idx = np.sort(order[start:start + batch_size])
            (xb, yb), = _batches(X[idx], y[idx], len(idx), device)
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5).to(device)
            xb[flip] = xb[flip].flip(3)
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.item() * len(idx)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    finally:
        model.train(was_training)
        _refresh_pruned(model)
    return total / max(len(y), 1)


def _refresh_pruned(model: nn.Module) -> None:
    """Recompute every pruned tensor (``weight = weight_orig * weight_mask``) from the parameters as they are now.

    torch's prune computes it before each forward pass, so after the epoch's last ``optimizer.step()`` it would be
    one step old. Refreshed, whatever reads ``layer.weight`` next (global pruning ranks it) sees the weights as the
    epoch left them, whether or not a forward pass came first.
    """
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                hook(module, None)
