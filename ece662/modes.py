"""What a mode is ('torch' or 'tensorflow'), whether this environment has its framework, and which framework a
model belongs to: the bottom of ``ece662/frameworks.py``'s switch, importing neither framework.

``pruning_helper`` takes its Keras hand-over (``keras_counterpart``) from here, not from the switch above it, so
that no module of the package imports one that imports it back.
"""
import functools
import importlib.util
import sys

from .paths import SUPPORTED_MODES, check_mode

TORCH, TENSORFLOW = SUPPORTED_MODES
_KERAS_PACKAGES = ("keras", "tf_keras", "tensorflow")
# each mode's package, its name for people, and the handout's requirements file that installs it
_INSTALLS = {TORCH: ("torch", "PyTorch", "requirements.txt"),
             TENSORFLOW: ("tensorflow", "TensorFlow", "requirements-tensorflow.txt")}


def require(mode: str) -> None:
    """Refuse an unknown mode, and a mode whose framework this Python environment lacks, saying what to do
    (the notebook's setup cell calls it first; it imports neither framework)."""
    check_mode(mode)
    package, name, requirements = _INSTALLS[mode]
    if importlib.util.find_spec(package) is not None:
        return
    other = TENSORFLOW if mode == TORCH else TORCH
    switch = (f"It has {_INSTALLS[other][1]}: set mode = {other!r} in the cell above, or install {name}"
              if importlib.util.find_spec(_INSTALLS[other][0]) else f"Install {name}")
    raise ModuleNotFoundError(f"mode = {mode!r} needs {name}, which this Python environment ({sys.executable}) does "
                              f"not have. {switch} with `pip install -r {requirements}` in the handout's folder, "
                              "then restart the kernel.", name=package)


def framework_of(model) -> str | None:
    """'torch' for a torch module, 'tensorflow' for a Keras model, None for anything else (imports neither)."""
    torch, keras = sys.modules.get("torch"), sys.modules.get("keras")  # a model's framework is loaded already
    if torch is not None and isinstance(model, torch.nn.Module):
        return TORCH
    if keras is not None and isinstance(model, keras.Model):
        return TENSORFLOW
    if type(model).__module__.split(".")[0] in _KERAS_PACKAGES:  # tf_keras (Keras 2) models too
        return TENSORFLOW
    return None


def keras_helper():
    """``ece662.keras_helper``, imported when first needed (it loads TensorFlow)."""
    from . import keras_helper as module

    return module


def keras_counterpart(fn):
    """Hand a Keras model to the function of the same name in ``ece662.keras_helper`` (a torch helper's decorator)."""
    @functools.wraps(fn)
    def dispatch(model, *args, **kwargs):
        if framework_of(model) == TENSORFLOW:
            return getattr(keras_helper(), fn.__name__)(model, *args, **kwargs)
        return fn(model, *args, **kwargs)
    return dispatch
