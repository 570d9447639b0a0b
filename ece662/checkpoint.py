"""The course's model file format, at the bottom of the package: what a file is, its errors, the checkpoint.

An ece662 checkpoint is a ``torch.save`` dict: ``format`` ("ece662-checkpoint"),
``architecture``, ``config``, ``state_dict`` (plain: pruning masks folded in) and
``meta`` (the data it was trained on, its accuracy, the training settings). The
Keras course file carries the same header in its archive (``ece662/keras_model.py``).
Every error here is a ``ModelFileError``: one sentence that names the file and the
fix. Nothing here imports TensorFlow; torch only when a torch file is read or written.
"""
import os
import zipfile
from pathlib import Path

from .architecture import ARCHITECTURE

CHECKPOINT_FORMAT = "ece662-checkpoint"


class ModelFileError(ValueError):
    """A model file that cannot be used; the message names the file and the fix."""


class ModelFileNotFoundError(ModelFileError, FileNotFoundError):
    """No model file at the path given."""


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


def read_torch_file(path: Path, trust_pickle: bool = False):
    """``torch.load`` of ``path`` on the CPU; torch's own error text (unsafe-loading advice, ANSI codes) never shown."""
    import torch

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
    import torch

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


def read_checkpoint(path) -> dict:
    """The course checkpoint at ``path``, validated; raises ModelFileError naming the file and the fix."""
    path = check_model_file(path, "torch")
    ckpt = read_torch_file(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(
            f"{path} is a PyTorch file but not an ece662 checkpoint (no '{CHECKPOINT_FORMAT}' header): "
            "load it with `load_model(path)`, or write a checkpoint with `save_model(model, path)`."
        )
    return ckpt


def atomic_save(obj, path) -> Path:
    """``torch.save(obj)`` to ``path`` through a temporary file: a reader never sees half a file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def save_checkpoint(state: dict, path, config: dict, meta: dict) -> Path:
    """Write an ece662 checkpoint of the course architecture atomically: a plain state_dict (pruning folded in,
    see ``fold_pruning``), the architecture's config and what the training recorded (``meta``)."""
    return atomic_save({"format": CHECKPOINT_FORMAT, "architecture": ARCHITECTURE, "config": config,
                        "state_dict": state, "meta": meta}, path)
