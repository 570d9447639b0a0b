"""Measurements the grader has already made, found again by content instead of recomputed.

A measurement (a model's accuracy on test images, its loss on training
images) is a pure function of *what* is measured, *which* images and labels,
and *which* weights. ``measurement_key`` hashes the three, so two students
whose code produced bit-identical weights (every correct Part 1 and Part 2
does) share one measurement.

``EvaluationStore`` keeps them in memory and, when grading a whole course, in
a folder that only the grader writes: one file per key, written atomically,
shared by the workers and by reruns. While grading, the kernel gets that folder
read-only (``$ECE662_EVALUATIONS_DIR``) and ``test_model`` reads its answer
there when the grader has measured exactly these weights on exactly these
images: the value the kernel would have computed, without the minutes of
forward passes (weights nobody measured yet it asks the grader to measure:
``ece662/measurement_requests.py``). No grade depends on that: the verifier still measures every
recorded model itself (through this store, filled only by trusted code) and
compares. Outside grading the variable is unset and nothing is looked up.

The store also holds *sealed* entries (``put_sealed``/``get_sealed``): bytes
found under a secret, the hash of the inputs that produce them (a
``train_epoch`` call, see ``ece662/training_replay.py``). The file's name and
the key that encrypts it both derive from the secret, so a kernel reading the
folder can open an entry only when it holds exactly those inputs, that is,
only when it could have computed the bytes itself.
"""
import hashlib
import os
import uuid
from pathlib import Path

import numpy as np

ENV_DIR = "ECE662_EVALUATIONS_DIR"
MAX_ENTRY_BYTES = 64
# The code a stored value depends on: a change to any of these starts a fresh store.
MEASURING_CODE = ("evaluations.py", "pruning_helper.py", "model.py", "data_utils.py", "training_replay.py")


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


def measurement_key(kind: str, data: str, state: dict) -> str:
    """The key of measuring ``kind`` ("accuracy" or "loss") of the weights ``state`` (canonical layout,
    float32) on the images and labels whose ``data_digest`` is ``data``."""
    return hashlib.sha256(f"{kind}|{data}|{digest(state)}".encode()).hexdigest()


def store_folder(root: Path) -> Path:
    """The store under ``root`` for this version of the measuring code."""
    h = hashlib.sha256()
    for name in MEASURING_CODE:
        h.update((Path(__file__).parent / name).read_bytes())
    return Path(root) / h.hexdigest()[:16]


class EvaluationStore:
    """{key: float} in memory, backed by ``folder`` when given; only trusted code may ``put``."""

    def __init__(self, folder=None):
        self.folder = Path(folder) if folder else None
        self._values: dict[str, float] = {}
        self.reused = self.made = 0

    def get(self, key: str) -> float | None:
        if key not in self._values and self.folder is not None:
            try:
                with open(self.folder / key, "rb") as f:
                    self._values[key] = float(f.read(MAX_ENTRY_BYTES))
            except (OSError, ValueError):
                return None
        return self._values.get(key)

    def put(self, key: str, value: float) -> None:
        self._values[key] = value
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.folder / f".{key}.{uuid.uuid4().hex}"
            partial.write_text(repr(float(value)))
            os.replace(partial, self.folder / key)  # readers see the whole value or none

    def put_sealed(self, secret: str, content: bytes) -> None:
        """Keep ``content`` where only a holder of ``secret`` finds and reads it (needs a folder)."""
        name, sealed = _sealed_name(secret), _xor_keystream(secret, content)
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{name}.{uuid.uuid4().hex}"
        partial.write_bytes(sealed)
        os.replace(partial, self.folder / name)

    def get_sealed(self, secret: str) -> bytes | None:
        if self.folder is None:
            return None
        try:
            sealed = (self.folder / _sealed_name(secret)).read_bytes()
        except OSError:
            return None
        return _xor_keystream(secret, sealed)

    def measure(self, key: str, compute) -> float:
        """The stored value of ``key``, else ``compute()``, stored."""
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value)
            self.made += 1
        else:
            self.reused += 1
        return value


def _sealed_name(secret: str) -> str:
    return "sealed-" + hashlib.sha256(f"name|{secret}".encode()).hexdigest()


def _xor_keystream(secret: str, data: bytes) -> bytes:
    """``data`` XOR SHAKE-256(secret): encrypts and decrypts (one key per content, never reused for another)."""
    stream = hashlib.shake_256(f"key|{secret}".encode()).digest(len(data))
    return (np.frombuffer(data, np.uint8) ^ np.frombuffer(stream, np.uint8)).tobytes()


def graders_store() -> EvaluationStore | None:
    """In a graded kernel: the grader's store (read-only there); None outside grading."""
    folder = os.environ.get(ENV_DIR)
    return EvaluationStore(folder) if folder else None

