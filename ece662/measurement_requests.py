"""While grading: the kernel asks the grader to measure a model, instead of both measuring it.

The verifier trusts nothing a kernel computes, so every accuracy a graded
kernel measures on weights the grader has not seen would be measured twice:
once by ``test_model`` in the kernel, once by the verifier. Instead, a graded
kernel writes the weights as a request (the evidence format,
``ece662/evidence.py``) into ``$ECE662_MEASUREMENT_REQUESTS`` and waits. The
worker's measurement service (``autograder/measurement_service.py``, trusted
code outside the sandbox) reads the request strictly, measures it on its own
test images and puts the value into the shared store
(``ece662/evaluations.py``), where the kernel, and later the verifier, find
it. When no service answers, or it refuses (other images, a malformed file,
too many requests), the kernel measures itself, as outside grading.
"""
import os
import time
import uuid
from pathlib import Path

from .evaluations import EvaluationStore
from .registry import Evidence

ENV_DIR = "ECE662_MEASUREMENT_REQUESTS"
SERVING = "serving"  # in the folder while the service answers
REFUSED = ".refused"  # suffix of the file that tells a kernel to measure itself
PREFIX = "request-"
WAIT_S = 300  # at most this long for one answer (a measurement takes about a second)
POLL_S = 0.02


def request_item(images: str, ident: str) -> Evidence:
    """The request to measure on the images and labels whose ``data_digest`` is ``images``."""
    return Evidence(f"{PREFIX}{images}-{ident}", "model", "test_model")


def parse_name(filename: str) -> tuple[str, Evidence] | None:
    """(images digest, item) of a request file's name, or None."""
    stem, dot, ext = filename.rpartition(".")
    parts = stem[len(PREFIX):].split("-") if stem.startswith(PREFIX) and ext == "safetensors" else []
    if len(parts) != 2 or not all(p.isalnum() for p in parts):
        return None
    return parts[0], request_item(*parts)


def ask_grader(state: dict, images: str, key: str, store: EvaluationStore) -> float | None:
    """In a graded kernel: the grader's measurement of ``state`` (canonical float32 arrays) on the images
    whose digest is ``images``, stored under ``key``; None when no service takes the request."""
    from . import evidence

    folder = Path(os.environ.get(ENV_DIR) or "no-requests")
    if not (folder / SERVING).is_file():
        return None
    item = request_item(images, uuid.uuid4().hex)
    partial = Evidence(f".{item.name}", item.kind, item.source)
    try:
        evidence.write_model(folder, partial, state, "torch")
        os.replace(folder / partial.filename, folder / item.filename)  # the service sees whole requests only
    except Exception:  # a read-only or full folder, weights it cannot write: the kernel measures itself
        return None
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = store.get(key)
        if value is not None:
            return value
        if (folder / f"{item.name}{REFUSED}").exists() or not (folder / SERVING).is_file():
            return store.get(key)
        time.sleep(POLL_S)
    return None
