"""TensorFlow mode: the Keras counterparts of ``ece662.pruning_helper``, without torch.

The notebook's setup cell imports the helpers from here in TensorFlow mode
(the same names as ``pruning_helper``'s), so a TensorFlow student never loads
torch; ``pruning_helper``'s public functions also hand Keras models (and
``mode='tensorflow'``) to the functions of the same name here, so the seed
calls work verbatim in both frameworks::

    model = load_model(model_path('tensorflow'), mode='tensorflow')
    test_model(model, [X, y], mode='tensorflow')      # prints "Test Acc: 0.xxxx"

Images are normalised exactly as in torch mode (uint8 -> float32, minus
``CINIC10_MEAN * 255``, divided by ``CINIC10_STD * 255``) but stay NHWC,
Keras' layout. Prunable layers are Conv2D and Dense; their ``kernel`` holds
the weights (Conv2D: HWIO, a filter is the last axis; Dense: (in, out)).

Importing this module imports TensorFlow (quietly: its start-up log is not shown); torch-mode code never does.
"""
import json
import os
import shutil
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # fewer TensorFlow C++ info lines in notebooks


@contextmanager
def _native_stderr_silenced():
    """Hide what native code writes to the process's stderr meanwhile (TensorFlow's start-up log, written
    before its logging settings apply); Python's own errors still reach the caller as exceptions."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _load_triton_before_tensorflow() -> None:
    """Load Triton's LLVM before TensorFlow's, or building a torch optimizer later aborts the process.

    torch imports Triton lazily (building an optimizer imports torch._dynamo). TensorFlow loads its own
    LLVM with RTLD_GLOBAL, and Triton's copy loaded after it registers the same options again: the process
    dies with "LLVM ERROR: ... registered more than once". Loaded first, Triton keeps its LLVM private.
    """
    try:
        import triton  # noqa: F401
    except ImportError:  # no Triton (macOS, Windows, CPU-only torch builds): nothing to clash with
        pass


_load_triton_before_tensorflow()
try:
    with _native_stderr_silenced():
        import keras
        import tensorflow  # noqa: F401  (Keras' backend; fail here, with the fix, when it is missing)
except ImportError as exc:
    raise ModuleNotFoundError(
        "mode='tensorflow' needs TensorFlow: `pip install -e '.[tensorflow]'` in the ece662 folder "
        "(or `pip install 'tensorflow-cpu>=2.21'`), then restart the kernel.", name=exc.name
    ) from exc

from . import data_utils
from ._allocator import keep_freed_memory_mapped
from .architecture import ARCHITECTURE, CANONICAL_PREFIX, CONV_LAYERS, DEFAULT_CONFIG
from .budget import without_zero_filters
from .checkpoint import CHECKPOINT_FORMAT, ModelFileError, check_model_file, model_file_format
from .data_utils import EVAL_BATCH_SIZE, TRAIN_BATCH_SIZE
from .keras_model import ARCHIVE_HEADER, INPUT_SHAPE, archive_header, canonical_state, from_canonical
from .paths import model_path  # noqa: F401 (the notebook imports it from here in TensorFlow mode)

_MEAN = np.asarray(data_utils.CINIC10_MEAN, dtype=np.float32) * np.float32(255)
_STD = np.asarray(data_utils.CINIC10_STD, dtype=np.float32) * np.float32(255)


# ----------------------------------------------------------------- files

@contextmanager
def _readable_as(path: Path, suffix: str):
    """``path`` itself if it ends in ``suffix`` (Keras picks the format by extension), else a temporary copy."""
    if path.name.endswith(suffix):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="ece662-") as folder:
        copy = Path(folder) / f"model{suffix}"
        shutil.copyfile(path, copy)
        yield copy


def load_model(path, mode="tensorflow"):
    """A Keras model ready for inference: the course ``tensorflow.model`` or your own ``.keras`` / ``.h5`` model.

    Warns when the course model was trained on other data than the dataset in use.
    """
    if mode != "tensorflow":
        raise TypeError(f"the TensorFlow helpers load Keras models; got mode={mode!r}: use mode='tensorflow', or "
                        "import the helpers of ece662.pruning_helper for PyTorch.")
    path = check_model_file(path, "tensorflow")
    kind = model_file_format(path)
    if kind not in ("keras", "hdf5"):
        raise ModelFileError(
            f"{path} is neither a Keras archive (.keras, as model.save writes it) nor an HDF5 model (.h5). "
            "Save your model with model.save('my_model.keras'), or load a PyTorch checkpoint with mode='torch'."
        )
    with _readable_as(path, ".keras" if kind == "keras" else ".h5") as readable:
        try:
            model = keras.saving.load_model(readable, compile=False)
        except Exception as exc:  # Keras raises many types for a bad file; name the file and the cause
            raise ModelFileError(f"Keras could not load {path}: {type(exc).__name__}: {exc}") from None
    header = archive_header(path) if kind == "keras" else None
    trained_on = (header or {}).get("meta", {}).get("dataset")
    if trained_on:
        data_utils.warn_if_other_dataset(trained_on, f"The model in {path}")
    return model


def _course_config(model) -> dict | None:
    """The SmallCNN config of a Keras SmallCNN (also a compacted one), None for other architectures."""
    layers = {layer.name: layer for layer in getattr(model, "layers", [])}
    expected = {name: keras.layers.Conv2D if name in CONV_LAYERS else keras.layers.Dense for name in CANONICAL_PREFIX}
    if not all(isinstance(layers.get(name), kind) for name, kind in expected.items()):
        return None
    names = set(layers)
    dropout = model.get_layer("dropout").rate if "dropout" in names else DEFAULT_CONFIG["dropout"]
    return {"channels": [model.get_layer(n).filters for n in CONV_LAYERS], "hidden": model.get_layer("fc1").units,
            "dropout": float(dropout), "num_classes": model.get_layer("fc2").units}


def save_model(model, path, mode="tensorflow", meta: dict | None = None) -> Path:
    """Write ``model`` as a Keras archive at ``path`` (any file name), atomically, and return the path.

    A SmallCNN also gets the course header (``ece662.json``: format, architecture, config and ``meta``,
    by default the global sparsity and the dataset in use), which ``load_model`` reads to warn about other
    data and ``ece662.keras_model.read_keras_checkpoint`` reads without TensorFlow.
    """
    if mode != "tensorflow":
        raise TypeError(f"save_model got a Keras model with mode={mode!r}; use mode='tensorflow'.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        config = _course_config(model)
        if config is not None:
            if meta is None:
                meta = {"saved_by": "ece662 save_model", "global_sparsity": global_sparsity(model)}
                if data_utils.active_dataset():
                    meta["dataset"] = data_utils.active_dataset()
            header = {"format": CHECKPOINT_FORMAT, "architecture": ARCHITECTURE, "config": config, "meta": meta}
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(ARCHIVE_HEADER, json.dumps(header))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def clone_model(model):
    """An independent copy of a Keras model with the same weights (pruning one leaves the other intact)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _seed_dropout(model, seed: int) -> None:
    """Seed the dropout masks of this epoch: each layer's own random state starts from ``seed``.

    A Keras layer draws its random state when it is built (from Python's unseeded ``random`` module for a
    clone or a loaded model), so ``keras.utils.set_random_seed`` alone leaves dropout different in every
    process; resetting the layers' states makes an epoch with the same seed the same epoch, as in torch mode.
    """
    keras.utils.set_random_seed(seed)
    layers, index = list(model.layers), 0
    while layers:
        layer = layers.pop(0)
        layers += getattr(layer, "layers", [])  # nested models
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            index += 1
            generator.state.assign(np.asarray([(seed * 1_000_003 + index) % 2**31, 0], dtype=generator.state.dtype))


def train_epoch(model, optimizer, X, y, batch_size: int = TRAIN_BATCH_SIZE, seed=0, scheduler=None, progress=None) -> float:
    """One epoch of training a Keras model on uint8 NHWC images ``X``; returns the mean loss.

    The Keras counterpart of ``pruning_helper.train_epoch``: shuffled mini-batches, the course
    normalisation, half the images flipped horizontally, dropout on. Kernel entries of Conv2D and Dense
    layers that are exactly zero when the epoch starts stay zero after every step (Keras has no pruning
    masks; this keeps pruned weights pruned, as torch's masks do). ``optimizer``: a Keras optimizer, e.g.
    ``keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)``; ``scheduler`` is not used in this mode.
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if not isinstance(seed, np.random.Generator):
        _seed_dropout(model, seed)
    masks = [(layer.kernel, tf.constant(_kernel(layer) != 0, dtype=layer.kernel.dtype))
             for _, layer in prunable_layers(model) if (_kernel(layer) == 0).any()]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    y = np.asarray(y).astype(np.int64)
    order = rng.permutation(len(y))
    total = 0.0
    for start in tqdm(range(0, len(y), batch_size), desc=progress, disable=progress is None):
        idx = np.sort(order[start:start + batch_size])
        xb = normalise(X[idx])
        flip = rng.random(len(idx)) < 0.5
        xb[flip] = xb[flip, :, ::-1]
        with tf.GradientTape() as tape:
            loss = loss_fn(y[idx], model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        for kernel, mask in masks:
            kernel.assign(kernel * mask)
        total += float(loss) * len(idx)
    return total / max(len(y), 1)


# ----------------------------------------------------------------- evaluation

def normalise(images) -> np.ndarray:
    """uint8 NHWC images -> float32 NHWC, normalised exactly as torch mode's ``_batches`` does."""
    out = np.subtract(images, _MEAN, dtype=np.float32)  # converts and subtracts in one pass
    out /= _STD
    return out


def _batches(X, y, batch_size):
    """Yield (normalised float32 NHWC batch, labels) from uint8 NHWC images (or already normalised floats)."""
    X = X if isinstance(X, np.ndarray) else np.asarray(X)
    y = np.asarray(y).astype(np.int64)
    if len(X) != len(y):
        raise ValueError(f"test_data holds {len(X)} images but {len(y)} labels")
    if X.shape[1:] != INPUT_SHAPE or not (X.dtype == np.uint8 or np.issubdtype(X.dtype, np.floating)):
        raise ValueError(
            "test_data[0] must hold uint8 images shaped (N, 32, 32, 3), as get_CINIC10_data() returns "
            f"(or normalised float images of that shape); got {X.dtype} {X.shape}"
        )
    for start in range(0, len(X), batch_size):
        xb = X[start:start + batch_size]
        yield (normalise(xb) if xb.dtype == np.uint8 else xb.astype(np.float32)), y[start:start + batch_size]


def predict(model, X, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """The class a Keras ``model`` predicts for each image of ``X`` (inference mode: dropout off, in batches)."""
    keep_freed_memory_mapped()
    found = [keras.ops.convert_to_numpy(model(xb, training=False)).argmax(1)
             for xb, _ in _batches(X, np.zeros(len(X), dtype=np.int64), batch_size)]
    return np.concatenate(found or [[]]).astype(int)


def accuracy(model, X, y, batch_size: int = EVAL_BATCH_SIZE) -> float:
    """Fraction of ``X`` that ``model`` classifies as ``y``."""
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"test_data holds {len(X)} images but {len(y)} labels")
    return float((predict(model, X, batch_size) == y).sum()) / max(len(y), 1)


def test_model(model, test_data, mode="tensorflow") -> float:
    """Print and return the accuracy of a Keras ``model`` on ``test_data = [X, y]``."""
    if mode != "tensorflow":
        raise TypeError(f"test_model got a Keras model with mode={mode!r}; use mode='tensorflow'.")
    X, y = test_data
    acc = accuracy(model, X, y)
    print(f"Test Acc: {acc:.4f}")
    return acc


test_model.__test__ = False  # not a pytest test, despite the name


# ----------------------------------------------------------------- sparsity, size, speed

def _walk(layers, prefix=""):
    for layer in layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            yield prefix + layer.name, layer
        elif hasattr(layer, "layers"):  # a nested model
            yield from _walk(layer.layers, f"{prefix}{layer.name}/")


def prunable_layers(model) -> list[tuple[str, object]]:
    """(name, layer) of every Conv2D and Dense layer, in model order (nested models as ``outer/inner``)."""
    return list(_walk(model.layers))


def _kernel(layer) -> np.ndarray:
    return layer.kernel.numpy()


def layer_sparsity(model) -> dict[str, float]:
    """Fraction of zero weights in each Conv2D/Dense kernel."""
    return {name: float((_kernel(layer) == 0).mean()) for name, layer in prunable_layers(model)}


def global_sparsity(model) -> float:
    """Fraction of zero weights over all Conv2D/Dense kernels together (biases excluded)."""
    kernels = [_kernel(layer) for _, layer in prunable_layers(model)]
    return sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)


def count_parameters(model, nonzero_only: bool = False) -> int:
    """Floating-point values the model computes with (``model.weights``); ``nonzero_only`` skips zeros."""
    values = [v.numpy() for v in model.weights]
    values = [v for v in values if np.issubdtype(v.dtype, np.floating)]
    return sum(int(np.count_nonzero(v)) if nonzero_only else v.size for v in values)


def model_size_bytes(model) -> int:
    """Size of the model's weights as ``model.save_weights`` writes them (an HDF5 file)."""
    with tempfile.TemporaryDirectory(prefix="ece662-") as folder:
        path = Path(folder) / "model.weights.h5"
        model.save_weights(path)
        return path.stat().st_size


def cpu_latency_ms(model, batch_size: int = 256, repeats: int = 15) -> float:
    """Median wall time (ms) of one inference call ``model(x, training=False)`` on a random NHWC batch."""
    keep_freed_memory_mapped()
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal((batch_size, *INPUT_SHAPE),
                                                                             dtype=np.float32))
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(model(x, training=False))
        if i >= 2:  # first calls warm up allocator and kernels
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


# ----------------------------------------------------------------- removing filters (Part 3)

def remove_zero_filters(model):
    """A compacted copy of a Keras SmallCNN without its all-zero Conv2D filters (narrower layers; the same outputs
    when those filters' biases are zero too, as Part 2 leaves them).

    Works in the canonical (torch) layout, as ``ece662.compaction`` does: ``ece662.budget.without_zero_filters``.
    """
    config = _course_config(model)
    if config is None:
        raise TypeError(f"remove_zero_filters works on the course SmallCNN (layers {', '.join(CANONICAL_PREFIX)}); "
                        f"{model.name} has layers {[layer.name for layer in model.layers]}")
    return from_canonical(without_zero_filters(canonical_state(model)), config["dropout"])
