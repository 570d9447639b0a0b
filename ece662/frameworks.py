"""The one switch between torch and TensorFlow (Keras): every caller asks here which a model or a mode is.

A mode is 'torch' or 'tensorflow'. ``helpers(model_or_mode)`` is the helper module of the framework (imported
only when needed, so a TensorFlow notebook never loads torch). Canonical weights are float32 numpy arrays named
and shaped like the torch SmallCNN's ``state_dict`` (``ece662/architecture.py``), whatever the framework.
"""
import numpy as np

from .modes import TENSORFLOW, TORCH, framework_of, keras_counterpart, require  # noqa: F401 (the switch's names)


def helpers(model_or_mode):
    """``ece662.pruning_helper`` for mode 'torch' or a torch model, ``ece662.keras_helper`` for 'tensorflow' or a
    Keras model."""
    mode = model_or_mode if isinstance(model_or_mode, str) else framework_of(model_or_mode)
    if mode == TENSORFLOW:
        from .modes import keras_helper

        return keras_helper()
    from . import pruning_helper

    return pruning_helper


def canonical_state(model) -> dict:
    """The weights a model computes with, as float32 numpy arrays in the canonical layout."""
    framework = framework_of(model)
    if framework == TORCH:
        from .pruning_helper import canonical_weights

        return canonical_weights(model)
    if framework == TENSORFLOW:
        from .keras_model import canonical_state as keras_canonical

        return keras_canonical(model)
    raise AssertionError(f"expected a model (torch.nn.Module or keras.Model), got {type(model).__name__}")


def from_canonical(state: dict, mode: str):
    """A course SmallCNN of ``mode`` computing with the canonical ``state`` (eval mode in torch)."""
    if mode == TENSORFLOW:
        from .keras_model import from_canonical as build
    else:
        from .model import from_canonical as build
    return build(state)


def with_canonical_state(model, state: dict):
    """``model`` computing with the canonical ``state``, its zeros kept zero by training: in torch a copy with a
    pruning mask on every zero (``clone_model``); in Keras the model itself (its ``train_epoch`` keeps zeros)."""
    if framework_of(model) == TORCH:
        import torch

        from .pruning_helper import clone_model

        model.load_state_dict({k: torch.as_tensor(v, dtype=torch.float32) for k, v in state.items()})
        return clone_model(model)
    from .keras_model import keras_state_from_canonical

    model.set_weights(keras_state_from_canonical(state))
    return model


def read_course_file(path, mode: str) -> dict:
    """A course model file of ``mode``: its header (``format``, ``architecture``, ``config``, ``meta``) and its
    weights as ``state_dict``, canonical layout."""
    if mode == TENSORFLOW:
        from .keras_model import read_keras_checkpoint

        checkpoint = read_keras_checkpoint(path)  # zipfile and h5py only: no TensorFlow
    else:
        from .checkpoint import read_checkpoint

        checkpoint = read_checkpoint(path)
    state = {k: np.asarray(v, dtype=np.float32) for k, v in checkpoint["state_dict"].items()}
    return dict(checkpoint, state_dict=state)


def display_names(mode: str) -> dict:
    """Canonical layer -> the name a student of ``mode`` knows it by (Keras: conv1 ... fc2; torch: itself)."""
    if mode == TENSORFLOW:
        from .keras_model import CANONICAL_PREFIX

        return {canonical: keras for keras, canonical in CANONICAL_PREFIX.items()}
    return {}
