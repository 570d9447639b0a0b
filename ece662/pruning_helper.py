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
import functools
import io
import time
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune
from tqdm.auto import tqdm

from . import data_utils
from ._allocator import keep_freed_memory_mapped
from .paths import model_path  # noqa: F401 (the notebook imports it from here)
from .paths import check_mode as _check_mode
from .model import ARCHITECTURE, SmallCNN, build_model

CHECKPOINT_FORMAT = "ece662-checkpoint"
EVAL_BATCH_SIZE = 256
TRAIN_BATCH_SIZE = 128


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and the fix."""


class ModelFileNotFoundError(ModelFileError, FileNotFoundError):
    """No model file at the path given."""


def _keras_dispatch(fn):
    """Hand a Keras model to the function of the same name in ``ece662.keras_helper`` (TensorFlow mode).

    A Keras model exists only once ``keras`` is imported, so torch-mode calls never import TensorFlow.
    """
    @functools.wraps(fn)
    def dispatch(model, *args, **kwargs):
        keras = sys.modules.get("keras")
        if keras is not None and isinstance(model, keras.Model):
            from . import keras_helper
            return getattr(keras_helper, fn.__name__)(model, *args, **kwargs)
        return fn(model, *args, **kwargs)
    return dispatch


ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PICKLE_PROTOCOL_2_PLUS = b"\x80"  # torch's legacy (non-zip) format starts with a pickle


def model_file_format(path) -> str:
    """What a model file is, from its bytes: 'torch', 'keras', 'hdf5', 'incomplete-zip', 'empty' or 'unknown'.

    'torch' is a ``torch.save`` file (zip archive, or the legacy pickle format); 'keras' a ``.keras``
    archive; 'hdf5' a Keras 2 ``.h5`` file; 'incomplete-zip' a zip archive cut off before its end.
    """
    with open(path, "rb") as file:
        head = file.read(8)
    if not head:
        return "empty"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(PICKLE_PROTOCOL_2_PLUS):
        return "torch"
    if not head.startswith(ZIP_MAGIC):
        return "unknown"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "incomplete-zip"
    if any(name.endswith("data.pkl") for name in names):
        return "torch"
    if "config.json" in names and any(name.endswith(".weights.h5") for name in names):
        return "keras"
    return "unknown"


def check_model_file(path, mode: str = "torch") -> Path:
    """``path`` as a Path if it is a file that ``mode`` could load; else a one-sentence error naming the fix.

    Checks what both frameworks share: missing file, folder, empty file, a file of the other framework.
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileNotFoundError(
            f"No model file at {path}: check the path; `save_model(model, path)` writes one, and the course "
            "model comes with the course (or `python -m ece662.train` trains it)."
        )
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a model file: pass the path of the model file inside it.")
    found = model_file_format(path)
    if found == "empty":
        raise ModelFileError(
            f"{path} is empty (0 bytes), so the save or copy that wrote it was interrupted: save the model "
            "again with `save_model(model, path)`, or copy the file again."
        )
    if mode == "torch" and found in ("keras", "hdf5"):
        raise ModelFileError(f"{path} is a Keras/TensorFlow model file: load it with mode='tensorflow'.")
    if mode == "tensorflow" and found == "torch":
        raise ModelFileError(f"{path} is a PyTorch model file: load it with mode='torch'.")
    return path


def _resave_advice() -> str:
    return "save the model again with `save_model(model, path)`, or copy the course's torch.model again"


def _read_torch_file(path: Path, trust_pickle: bool):
    """``torch.load`` of ``path`` on the CPU; torch's own error text (unsafe-loading advice, ANSI codes) never shown."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception:  # torch raises many types here; the message says which case it is
        raise _unreadable_torch_file_error(path, trust_pickle) from None


def _unreadable_torch_file_error(path: Path, trust_pickle: bool) -> ModelFileError:
    found = model_file_format(path)
    if found == "incomplete-zip":
        return ModelFileError(
            f"{path} is an incomplete PyTorch file (it ends after {path.stat().st_size:,} bytes, before the end "
            f"of its archive, e.g. an interrupted save or copy): {_resave_advice()}."
        )
    if found != "torch":
        return ModelFileError(
            f"{path} is not a PyTorch model file (neither a torch.save archive nor a pickle): pass the file that "
            "`save_model(model, path)` wrote, or the course model `model_path('torch')`."
        )
    if trust_pickle:
        return ModelFileError(
            f"{path} could not be unpickled even with trust_pickle=True: import or define the classes it was "
            f"saved with first, or {_resave_advice()}."
        )
    return ModelFileError(
        f"{path} holds pickled Python objects ({_pickled_names(path)}), e.g. from `torch.save(model)`, which "
        "load_model does not unpickle because unpickling runs code from the file: re-save the model with "
        "`save_model(model, path)` where you built it, or, only for a file you made yourself, load it with "
        "`load_model(path, trust_pickle=True)`."
    )


def _pickled_names(path: Path) -> str:
    """The classes a pickle needs, most specific first (e.g. 'ece662.model.SmallCNN, ...')."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a damaged archive: the caller's message still holds
        return "classes that cannot be listed"
    own = [n for n in names if not n.startswith(("torch.", "collections.", "builtins."))]
    listed = own + [n for n in names if n not in own]
    return ", ".join(listed[:3]) + (", ..." if len(listed) > 3 else "")


def fold_pruning(state: dict) -> dict:
    """A state_dict with every ``X_orig``/``X_mask`` pair (torch.nn.utils.prune) replaced by ``X = orig * mask``."""
    folded = {}
    for key, value in state.items():
        base = key[: -len("_orig")] if key.endswith("_orig") else None
        if base is not None and base + "_mask" in state:
            folded[base] = value * state[base + "_mask"]
        elif not (key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state):
            folded[key] = value
    return folded


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


def model_metadata(path, mode: str = "torch") -> dict:
    """What a course model file records about its training (dataset, accuracy, settings), in either mode."""
    if mode == "tensorflow":
        from .keras_model import archive_header

        return (archive_header(path) or {}).get("meta", {})
    return read_checkpoint(path).get("meta", {})


def read_checkpoint(path) -> dict:
    """The course checkpoint at ``path``, validated; raises ModelFileError naming the file and the fix."""
    path = check_model_file(path, "torch")
    ckpt = _read_torch_file(path, trust_pickle=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(
            f"{path} is a PyTorch file but not an ece662 checkpoint (no '{CHECKPOINT_FORMAT}' header): "
            "load it with `load_model(path)`, or write a checkpoint with `save_model(model, path)`."
        )
    return ckpt


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
    if mode == "tensorflow":
        from . import keras_helper
        return keras_helper.load_model(path)
    content = _read_torch_file(path, trust_pickle)
    state, ckpt = _state_from_file(content, path)
    if isinstance(content, nn.Module) and course_config(fold_pruning(state)) is None:
        return content.eval()
    model = _course_model(state, path, ckpt.get("config"))
    trained_on = ckpt.get("meta", {}).get("dataset")
    if trained_on:
        data_utils.warn_if_other_dataset(trained_on, f"The model in {path}")
    return model


def _atomic_save(obj, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def save_checkpoint(model: nn.Module, path, architecture: str, config: dict, meta: dict) -> Path:
    """Write an ece662 checkpoint atomically (pruning re-parametrisation is folded in)."""
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "architecture": architecture,
        "config": config,
        "state_dict": effective_state_dict(model),
        "meta": meta,
    }
    return _atomic_save(ckpt, path)


def _dropout(model: nn.Module) -> dict:
    rates = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    return {"dropout": rates[0]} if rates else {}


@_keras_dispatch
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
        path = _atomic_save(state, path)
        print(f"Saved the weights of your {type(model).__name__} (not the course SmallCNN) to {path}; load them with "
              f"`net = {type(model).__name__}(); net.load_state_dict(torch.load(path, weights_only=True))`.")
        return path
    meta = {"saved_by": "ece662.pruning_helper.save_model", "global_sparsity": global_sparsity(model)}
    if data_utils.active_dataset():
        meta["dataset"] = data_utils.active_dataset()
    return save_checkpoint(model, path, ARCHITECTURE, dict(config, **_dropout(model)), meta)


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


def _logits(model: nn.Module, X, batch_size: int):
    """Yield the logits of ``model`` for ``X`` batch by batch (eval mode, no gradients; the mode is restored)."""
    keep_freed_memory_mapped()
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for xb, _ in _batches(X, np.zeros(len(X), dtype=np.int64), batch_size):
                yield model(xb)
    finally:
        model.train(was_training)


@_keras_dispatch
def predict(model: nn.Module, X, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """The class ``model`` predicts for each image of ``X`` (uint8 NHWC images, as get_CINIC10_data returns)."""
    return np.concatenate([logits.argmax(1).numpy() for logits in _logits(model, X, batch_size)] or [[]]).astype(int)


def accuracy(model: nn.Module, X, y, batch_size: int = EVAL_BATCH_SIZE) -> float:
    """Fraction of ``X`` that ``model`` classifies as ``y``."""
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"test_data holds {len(X)} images but {len(y)} labels")
    return float((predict(model, X, batch_size) == y).sum()) / max(len(y), 1)


@_keras_dispatch
def test_model(model, test_data, mode="torch") -> float:
    """Print and return the accuracy of ``model`` on ``test_data = [X, y]``."""
    _check_mode(mode, "torch")
    X, y = test_data
    acc = accuracy(model, X, y)
    print(f"Test Acc: {acc:.4f}")
    return acc


test_model.__test__ = False  # not a pytest test, despite the name


@_keras_dispatch
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
    return {key: value.detach().clone() for key, value in fold_pruning(model.state_dict()).items()}


def canonical_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The weights ``model`` computes with, as float32 numpy arrays: what grading records and measures."""
    return {k: v.cpu().float().numpy() for k, v in effective_state_dict(model).items()}


@_keras_dispatch
def layer_sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero weights in each Conv2d/Linear layer."""
    return {n: (effective_weight(m) == 0).float().mean().item() for n, m in prunable_layers(model)}


@_keras_dispatch
def global_sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over all Conv2d/Linear weights together (biases excluded)."""
    zeros = total = 0
    for _, m in prunable_layers(model):
        w = effective_weight(m)
        zeros += (w == 0).sum().item()
        total += w.numel()
    return zeros / total


@_keras_dispatch
def count_parameters(model: nn.Module, nonzero_only: bool = False) -> int:
    """Parameters the model computes with (masks not counted); ``nonzero_only`` skips zeros."""
    state = effective_state_dict(model)
    return sum(int((v != 0).sum()) if nonzero_only else v.numel() for v in state.values() if v.is_floating_point())


@_keras_dispatch
def model_size_bytes(model: nn.Module) -> int:
    """Size of the model's plain (dense) state_dict as ``torch.save`` writes it."""
    buffer = io.BytesIO()
    torch.save(effective_state_dict(model), buffer)
    return buffer.tell()


@_keras_dispatch
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


@_keras_dispatch
def clone_model(model: nn.Module) -> nn.Module:
    """An independent copy of a course SmallCNN that keeps its pruning masks (``prune.custom_from_mask``).

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
    copy = build_model(ARCHITECTURE, dict(config, **_dropout(model)))
    copy.load_state_dict(weights)
    for name, mask in masks.items():
        module, _, param = name.rpartition(".")
        prune.custom_from_mask(copy.get_submodule(module), param, mask.clone())
    for name, layer in prunable_layers(copy):  # zeros pruned without masks (by hand, after prune.remove)
        if f"{name}.weight" not in masks and bool((layer.weight == 0).any()):
            prune.custom_from_mask(layer, "weight", layer.weight.detach() != 0)
    return copy.train(model.training)


@_keras_dispatch
def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, X, y, batch_size: int = TRAIN_BATCH_SIZE, seed=0,
                scheduler=None, progress: str | None = None) -> float:
    """One epoch of training on uint8 NHWC images ``X`` (as get_CINIC10_data returns); returns the mean loss.

    Shuffles, normalises like ``test_model`` and flips half the images horizontally; dropout is on
    (train mode), the model's mode is restored after. Pruned models keep their masks, so pruned weights stay
    zero. ``seed``: an int (also seeds torch's RNG, which dropout uses) or a ``np.random.Generator`` to go
    on drawing from. ``scheduler`` steps after every batch; ``progress`` is the label of a progress bar.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if not isinstance(seed, np.random.Generator):
        torch.manual_seed(seed)
    y = np.asarray(y)
    loss_fn = nn.CrossEntropyLoss()
    was_training = model.training
    model.train()
    order = rng.permutation(len(y))
    total = 0.0
    bar = tqdm(range(0, len(y), batch_size), desc=progress, disable=progress is None)
    try:
        for start in bar:
            idx = np.sort(order[start:start + batch_size])
            (xb, yb), = _batches(X[idx], y[idx], len(idx))
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
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
    return total / max(len(y), 1)
