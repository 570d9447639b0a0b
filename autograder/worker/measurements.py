"""What the grader measured and trained, found again by content instead of recomputed.

A measurement (a model's accuracy on the test images) is a pure function of
*which* weights and *which* images; Part 4's recipe outcome is a pure function
of its start, its settings, the training images and the framework. ``key``
hashes such inputs, so two students whose code produced bit-identical weights
(every correct Part 1 and Part 2 does, and every correct Part 4 starts from the
same weights) share one measurement and one recipe run.

``Store`` keeps values in memory and, when a course is graded in the
sandbox, in a folder of the grading output that the workers share and no
kernel can see: one file per key, written atomically, kept for reruns. Only
trusted code writes it; recipe outcomes are read back with the evidence reader's
limits all the same.
"""
import contextlib
import hashlib
import os
import uuid
from pathlib import Path

import numpy as np
from filelock import FileLock

from autograder.worker.fingerprint import code_fingerprint

MAX_VALUE_BYTES = 64


def digest(arrays: dict) -> str:
    """sha256 over the names, dtypes, shapes and values of ``{name: array}`` (numpy or CPU torch tensors)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        if array.dtype.kind == "f":
            array = array + array.dtype.type(0)  # -0.0 -> 0.0: a mask's zeros and written zeros are one weight
        h.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        h.update(memoryview(array).cast("B"))
    return h.hexdigest()


def data_digest(images, labels) -> str:
    return digest({"images": np.asarray(images), "labels": np.asarray(labels)})


def key(kind: str, *parts) -> str:
    """The key of ``kind`` ("accuracy", "finetuned", ...) of inputs given as strings or weight dicts."""
    text = "|".join(part if isinstance(part, str) else digest(part) for part in parts)
    return hashlib.sha256(f"{kind}|{text}".encode()).hexdigest()


def store_folder(root: Path) -> Path:
    """The store under ``root`` for this version of the code (``fingerprint.py``: a change starts a fresh store)."""
    return Path(root) / code_fingerprint()[:16]


class Store:
    """{key: float} and {key: weights} in memory, backed by ``folder`` when given."""

    def __init__(self, folder=None):
        self.folder = Path(folder) if folder else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self._values: dict[str, float] = {}
        self._states: dict[str, dict] = {}
        self.reused = self.made = 0

    def _write(self, name: str, data: bytes) -> None:
        partial = self.folder / f".{name}.{uuid.uuid4().hex}"
        partial.write_bytes(data)
        os.replace(partial, self.folder / name)  # readers see the whole entry or none

    def _value(self, name: str) -> float | None:
        if name not in self._values and self.folder is not None:
            try:
                with open(self.folder / name, "rb") as f:
                    self._values[name] = float(f.read(MAX_VALUE_BYTES))
            except (OSError, ValueError):
                return None
        return self._values.get(name)

    def _state(self, name: str, shapes: dict) -> dict | None:
        if name not in self._states and self.folder is not None:
            from ece662.grading.evidence import EvidenceError, read_arrays

            try:
                self._states[name] = read_arrays(self.folder / f"{name}.safetensors", shapes)
            except EvidenceError:
                return None
        return self._states.get(name)

    def _once(self, name: str, stored, compute, encode):
        """``stored()`` if it finds ``name``, else ``compute()``, kept; a worker computing ``name`` makes the
        others wait for it rather than compute it too."""
        found = stored()
        if found is None:
            with FileLock(self.folder / f".{name}.lock") if self.folder else contextlib.nullcontext():
                found = stored()
                if found is None:
                    found = compute()
                    if self.folder is not None:
                        self._write(*encode(found))
                    self.made += 1
                    return found
        self.reused += 1
        return found

    def measure(self, name: str, compute) -> float:
        """The stored value of ``name``, else ``compute()``, stored."""
        value = self._once(name, lambda: self._value(name), lambda: float(compute()),
                           lambda v: (name, repr(v).encode()))
        self._values[name] = value
        return value

    def train(self, name: str, shapes: dict, compute) -> dict:
        """The stored weights of ``name`` (``{tensor: shape}`` as ``shapes`` says), else ``compute()``, stored."""
        from safetensors.numpy import save

        def computed():
            return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in compute().items()}

        state = self._once(name, lambda: self._state(name, shapes), computed,
                           lambda found: (f"{name}.safetensors", save(found)))
        self._states[name] = state
        return state
