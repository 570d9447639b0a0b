"""The course SmallCNN in Keras, and its weights in the torch SmallCNN's layout.

``build_keras_model()`` makes the same network as ``ece662.model.SmallCNN``
(same layers, filters, kernel sizes and dropout) for NHWC inputs, with layer
names ``conv1 conv2 conv3 fc1 fc2`` for the weighted layers.

The *canonical state* of a Keras SmallCNN is its weights named and shaped
exactly like the torch SmallCNN's ``state_dict`` (float32 numpy arrays), so
that loading it into the torch model gives the same logits:

* conv kernels HWIO -> OIHW, Dense kernels (in, out) -> (out, in);
* ``classifier.1.weight``'s input columns permuted from Keras' Flatten order
  (h, w, c) to torch's (c, h, w).

The course file ``tensorflow.model`` is a Keras 3 archive: a zip holding
``config.json``, ``metadata.json``, ``model.weights.h5`` and, added by
ece662, ``ece662.json`` (``format``, ``architecture``, ``config``, ``meta``:
the same header as the torch checkpoint). In ``model.weights.h5`` each layer's
variables are the datasets ``layers/<group>/vars/0`` (kernel) and ``/1``
(bias), where ``<group>`` is Keras' class-based name (``conv2d_1``...) and the
``vars`` group carries the layer's own name in its ``name`` attribute
(written by Keras 3.15, which tensorflow-cpu 2.21 installs).
``read_keras_checkpoint`` reads that with zipfile, json and h5py only: it
never imports TensorFlow.
"""
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .architecture import ARCHITECTURE, CANONICAL_PREFIX, CONV_LAYERS, DEFAULT_CONFIG
from .budget import conv_widths
from .checkpoint import CHECKPOINT_FORMAT, ModelFileError

ARCHIVE_HEADER = "ece662.json"
KERAS_WEIGHTS = "model.weights.h5"
INPUT_SHAPE = (32, 32, 3)


def build_keras_model(config: dict | None = None):
    """A fresh (randomly initialised) Keras SmallCNN taking normalised NHWC float images, returning logits."""
    import keras
    from keras import layers

    config = dict(DEFAULT_CONFIG, **(config or {}))
    c1, c2, c3 = config["channels"]
    return keras.Sequential([
        keras.Input(INPUT_SHAPE),
        layers.Conv2D(c1, 3, padding="same", activation="relu", name="conv1"),
        layers.MaxPooling2D(2, name="pool1"),
        layers.Conv2D(c2, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2, name="pool2"),
        layers.Conv2D(c3, 3, padding="same", activation="relu", name="conv3"),
        layers.Flatten(name="flatten"),
        layers.Dense(config["hidden"], activation="relu", name="fc1"),
        layers.Dropout(config["dropout"], name="dropout"),
        layers.Dense(config["num_classes"], name="fc2"),
    ], name=ARCHITECTURE)


def _canonical_from_layers(weights: dict) -> dict[str, np.ndarray]:
    """Canonical state from ``{keras layer name: (kernel, bias)}`` of a SmallCNN."""
    missing = sorted(set(CANONICAL_PREFIX) - set(weights))
    if missing:
        raise ValueError(f"not a SmallCNN: layers {missing} are missing (it has {sorted(weights)})")
    state = {}
    for name, prefix in CANONICAL_PREFIX.items():
        kernel, bias = (np.asarray(w, dtype=np.float32) for w in weights[name])
        if name in CONV_LAYERS:
            kernel = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        elif name == "fc1":
            channels = weights["conv3"][0].shape[-1]
            side = int(round((kernel.shape[0] / channels) ** 0.5))
            # rows in (h, w, c) order -> columns in (c, h, w) order
            kernel = kernel.reshape(side, side, channels, -1).transpose(3, 2, 0, 1).reshape(kernel.shape[1], -1)
        else:
            kernel = kernel.T
        state[f"{prefix}.weight"] = np.ascontiguousarray(kernel)
        state[f"{prefix}.bias"] = bias
    return state


def canonical_state(keras_model) -> dict[str, np.ndarray]:
    """The weights of a Keras SmallCNN, named and shaped like the torch SmallCNN's state_dict (float32)."""
    present = {layer.name for layer in keras_model.layers}
    return _canonical_from_layers({name: keras_model.get_layer(name).get_weights()
                                   for name in CANONICAL_PREFIX if name in present})


def keras_state_from_canonical(state: dict) -> list[np.ndarray]:
    """The inverse of ``canonical_state``: weights in ``build_keras_model().get_weights()`` order."""
    weights = []
    for name, prefix in CANONICAL_PREFIX.items():
        kernel = np.asarray(state[f"{prefix}.weight"], dtype=np.float32)
        if name in CONV_LAYERS:
            kernel = kernel.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif name == "fc1":
            channels = np.shape(state[f"{CANONICAL_PREFIX['conv3']}.weight"])[0]
            side = int(round((kernel.shape[1] / channels) ** 0.5))
            kernel = kernel.reshape(-1, channels, side, side).transpose(2, 3, 1, 0).reshape(-1, kernel.shape[0])
        else:
            kernel = kernel.T
        weights += [np.ascontiguousarray(kernel), np.asarray(state[f"{prefix}.bias"], dtype=np.float32)]
    return weights


def from_canonical(state: dict, dropout: float = DEFAULT_CONFIG["dropout"]):
    """A Keras SmallCNN computing with the weights of a canonical state (any channel widths)."""
    config = {"channels": list(conv_widths(state)),
              "hidden": np.shape(state[f"{CANONICAL_PREFIX['fc1']}.weight"])[0],
              "num_classes": np.shape(state[f"{CANONICAL_PREFIX['fc2']}.weight"])[0], "dropout": dropout}
    model = build_keras_model(config)
    model.set_weights(keras_state_from_canonical(state))
    return model


def archive_header(path) -> dict | None:
    """The ece662 header (``ece662.json``) of a Keras archive; None for an archive without one (your own model)."""
    with zipfile.ZipFile(path) as archive:
        if ARCHIVE_HEADER not in archive.namelist():
            return None
        return json.loads(archive.read(ARCHIVE_HEADER))


def _layer_weights(h5_bytes: bytes) -> dict:
    """``{layer name: [vars...]}`` from a Keras 3 ``model.weights.h5`` (see the module docstring)."""
    import h5py

    found = {}
    with h5py.File(io.BytesIO(h5_bytes), "r") as weights:
        for group in weights.get("layers", {}).values():
            variables = group.get("vars")
            if variables is not None and "name" in variables.attrs and len(variables):
                found[str(variables.attrs["name"])] = [variables[str(i)][()] for i in range(len(variables))]
    return found


def read_keras_checkpoint(path) -> dict:
    """The course header (``format``, ``architecture``, ``config``, ``meta``) of a ``tensorflow.model``
    archive plus its weights as ``state_dict`` in the canonical (torch) layout; no TensorFlow needed.

    Raises ModelFileError naming the file when it is not an ece662 Keras archive.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}. Train one with `python -m ece662.train --mode tensorflow`.")
    try:
        with zipfile.ZipFile(path) as archive:
            header = json.loads(archive.read(ARCHIVE_HEADER))
            found = _layer_weights(archive.read(KERAS_WEIGHTS))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ModelFileError(
            f"{path} is not an ece662 Keras model (a zip with {ARCHIVE_HEADER} and {KERAS_WEIGHTS}; "
            f"{type(exc).__name__}: {exc}). Write it with `python -m ece662.train --mode tensorflow` "
            "or ece662.keras_helper.save_model."
        ) from None
    if header.get("format") != CHECKPOINT_FORMAT or header.get("architecture") != ARCHITECTURE:
        raise ModelFileError(f"{path}: {ARCHIVE_HEADER} is not an ece662 {ARCHITECTURE} header: {header}")
    try:
        state = _canonical_from_layers({name: found[name][:2] for name in CANONICAL_PREFIX if name in found})
    except ValueError as exc:
        raise ModelFileError(f"{path}: {exc} (layers found in {KERAS_WEIGHTS}: {sorted(found)})") from None
    return dict(header, state_dict=state)
