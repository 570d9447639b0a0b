"""The notebook's first check of its mode: a clear message when this environment lacks the framework."""
import importlib.util

import pytest

from ece662 import frameworks


def _without(monkeypatch, *packages):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in packages else real(name, *a))


def test_require_says_to_switch_mode_when_only_the_other_framework_is_installed(monkeypatch):
    frameworks.require("torch")  # this environment has both
    _without(monkeypatch, "torch")
    with pytest.raises(ModuleNotFoundError) as err:
        frameworks.require("torch")
    assert "set mode = 'tensorflow' in the cell above" in str(err.value)
    assert "pip install -r requirements.txt" in str(err.value) and err.value.name == "torch"


def test_require_names_the_requirements_file_when_neither_is_installed(monkeypatch):
    _without(monkeypatch, "torch", "tensorflow")
    with pytest.raises(ModuleNotFoundError, match=r"Install TensorFlow with `pip install -r requirements-tensorflow"):
        frameworks.require("tensorflow")


def test_require_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="use mode='torch' or mode='tensorflow'"):
        frameworks.require("pytorch")
