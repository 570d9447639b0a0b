"""Model loading, evaluation and sparsity accounting for the pruning assignment.

The seed calls work verbatim::

    model = load_model(path, mode='torch')
    test_model(model, [X, y], mode='torch')      # prints "Test Acc: 0.xxxx"

Sparsity helpers read the *effective* weight of a layer
(``weight_orig * weight_mask`` while ``torch.nn.utils.prune`` re-parametrises
it, else ``weight``), so they are right before and after ``prune.remove``.
"""
import io
import time
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data_utils
from ._allocator import keep_freed_memory_mapped
from .model import build_model

MODEL_DIR = Path(__file__).resolve().parent / "models"
CHECKPOINT_FORMAT = "ece662-checkpoint"
EVAL_BATCH_SIZE = 256
SUPPORTED_MODES = ("torch",)


class ModelFileError(ValueError):
    """A model file that is not a usable ece662 checkpoint."""


def _check_mode(mode: str) -> None:
    if mode == "tensorflow":
        raise NotImplementedError("mode='tensorflow' is not supported yet; use mode='torch'.")
    if mode not in SUPPORTED_MODES:
        raise ValueError(f"unknown mode {mode!r}; use mode='torch'.")


def model_path(mode: str = "torch") -> Path:
    """The course model file: ``ece662/models/torch.model`` (``$ECE662_MODEL_DIR`` overrides the folder)."""
    _check_mode(mode)
    return Path(os.environ.get("ECE662_MODEL_DIR") or MODEL_DIR) / f"{mode}.model"


def _train_hint() -> str:
    return "Train one with `python -m ece662.train` (or `make model`), or copy the course's torch.model there."


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else 'no details'}"


def read_checkpoint(path) -> dict:
    """The checkpoint dict at ``path``, validated; raises ModelFileError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}. {_train_hint()}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ModelFileError(
            f"{path} is not a readable PyTorch checkpoint ({_first_line(exc)}). "
            f"The file may be truncated or not a model at all. {_train_hint()}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(
            f"{path} is a PyTorch file but not an ece662 checkpoint (no '{CHECKPOINT_FORMAT}' header; "
            f"a bare state_dict or another project's model?). {_train_hint()}"
        )
    return ckpt


def model_from_checkpoint(ckpt: dict, path="checkpoint") -> nn.Module:
    try:
        model = build_model(ckpt["architecture"], ckpt.get("config"))
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise ModelFileError(
            f"{path} does not match the course architecture ({_first_line(exc)}). {_train_hint()}"
        ) from None
    return model.eval()


def load_model(path, mode="torch") -> nn.Module:
    """Load the course CNN from ``path`` in eval mode.

    Warns when the checkpoint was trained on other data than the dataset in use
    (e.g. synthetic weights with real CINIC-10).
    """
    _check_mode(mode)
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt, path)
    trained_on = ckpt.get("meta", {}).get("dataset")
    if trained_on:
        data_utils.warn_if_other_dataset(trained_on, f"The model in {path}")
    return model


def save_checkpoint(model: nn.Module, path, architecture: str, config: dict, meta: dict) -> Path:
    """Write an ece662 checkpoint atomically (pruning re-parametrisation is folded in)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "architecture": architecture,
        "config": config,
        "state_dict": effective_state_dict(model),
        "meta": meta,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return path


def _batches(X, y, batch_size):
    """Yield normalised float batches from uint8 NHWC images (or preprocessed float NCHW)."""
    X = X if isinstance(X, (np.ndarray, torch.Tensor)) else np.asarray(X)
    mean = torch.tensor(data_utils.CINIC10_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(data_utils.CINIC10_STD).view(1, 3, 1, 1) * 255
    y = torch.as_tensor(np.asarray(y)).long()
    if len(X) != len(y):
        raise ValueError(f"test_data holds {len(X)} images but {len(y)} labels")
    for start in range(0, len(X), batch_size):
        xb = torch.as_tensor(np.array(X[start:start + batch_size]))
        if xb.dtype == torch.uint8 and xb.shape[1:] == (32, 32, 3):
            # channels-last view (no copy): the CPU convolutions run about twice as fast on it as on NCHW
            xb = xb.permute(0, 3, 1, 2).float().sub_(mean).div_(std)
        elif not (xb.is_floating_point() and xb.shape[1:] == (3, 32, 32)):
            raise ValueError(
                "test_data[0] must hold uint8 images shaped (N, 32, 32, 3), as get_CINIC10_data() returns "
                f"(or normalised float images shaped (N, 3, 32, 32)); got {xb.dtype} {tuple(xb.shape)}"
            )
        yield xb, y[start:start + batch_size]


def accuracy(model: nn.Module, X, y, batch_size: int = EVAL_BATCH_SIZE) -> float:
    """Fraction of ``X`` that ``model`` classifies as ``y`` (eval mode, no gradients, in batches)."""
    keep_freed_memory_mapped()
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.inference_mode():
            for xb, yb in _batches(X, y, batch_size):
                correct += (model(xb).argmax(1) == yb).sum().item()
    finally:
        model.train(was_training)
    return correct / max(len(y), 1)


def test_model(model, test_data, mode="torch") -> float:
    """Print and return the accuracy of ``model`` on ``test_data = [X, y]``."""
    _check_mode(mode)
    X, y = test_data
    acc = accuracy(model, X, y)
    print(f"Test Acc: {acc:.4f}")
    return acc


test_model.__test__ = False  # not a pytest test, despite the name


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every Conv2d and Linear layer, in model order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The weight the layer computes with: ``weight_orig * weight_mask`` while pruned, else ``weight``."""
    if hasattr(layer, "weight_orig") and hasattr(layer, "weight_mask"):
        return (layer.weight_orig * layer.weight_mask).detach()
    return layer.weight.detach()


def effective_state_dict(model: nn.Module) -> dict:
    """A plain state_dict (``weight``, not ``weight_orig``/``weight_mask``) of what the model computes with."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("_mask"):
            continue
        if key.endswith("_orig"):
            base = key[: -len("_orig")]
            value = value * model.state_dict()[base + "_mask"]
            key = base
        state[key] = value.detach().clone()
    return state


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero weights in each Conv2d/Linear layer."""
    return {n: (effective_weight(m) == 0).float().mean().item() for n, m in prunable_layers(model)}


def global_sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over all Conv2d/Linear weights together (biases excluded)."""
    zeros = total = 0
    for _, m in prunable_layers(model):
        w = effective_weight(m)
        zeros += (w == 0).sum().item()
        total += w.numel()
    return zeros / total


def count_parameters(model: nn.Module, nonzero_only: bool = False) -> int:
    """Parameters the model computes with (masks not counted); ``nonzero_only`` skips zeros."""
    state = effective_state_dict(model)
    return sum(int((v != 0).sum()) if nonzero_only else v.numel() for v in state.values() if v.is_floating_point())


def model_size_bytes(model: nn.Module) -> int:
    """Size of the model's plain (dense) state_dict as ``torch.save`` writes it."""
    buffer = io.BytesIO()
    torch.save(effective_state_dict(model), buffer)
    return buffer.tell()


def cpu_latency_ms(model: nn.Module, batch_size: int = 256, repeats: int = 15) -> float:
    """Median wall time (ms) of one forward pass over a random batch on the CPU.

    The batch has the memory layout ``test_model`` feeds (NHWC images permuted to NCHW, i.e. channels
    last), in which the CPU convolutions of this CNN run about twice as fast as on a contiguous NCHW batch.
    """
    keep_freed_memory_mapped()
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
