"""What a graded notebook cell records, and the strict reader the verifier uses.

The evidence folder (``$ECE662_EVIDENCE_DIR``, else ``evidence/`` beside the
notebook) holds one file per ``registry.Evidence`` item:

* ``<name>.safetensors`` for a *trace* (a pruning function called at each
  level) or a *model*: float32 arrays in the **canonical layout**, the names
  and shapes of the course SmallCNN's torch ``state_dict``
  (``features.0.weight`` (32, 3, 3, 3) ... ``classifier.4.bias`` (10,)),
  whichever framework produced them (a Keras model is converted: OIHW
  kernels, (out, in) Dense weights, Flatten columns in (c, h, w) order).
  A trace stores level ``L``'s arrays as ``"<L>/<name>"``. The header's
  metadata: ``format`` = ``ece662-evidence``, ``version``, ``kind``,
  ``source``, ``framework`` (``torch`` | ``tensorflow``), and for a trace
  ``levels`` (JSON list of the levels completed) and ``error`` (what the
  student's function raised, or empty).
  A *compact* model (Part 5) has the same names with fewer filters in its
  conv layers (``ece662/budget.py``).
* ``<name>.json`` for a *results* dict: ``{"format", "version", "kind":
  "results", "source", "items": [[key, value], ...]}`` where a key or value
  that is not a number is recorded as ``{"type": <its type name>}``.

Writing happens in the student's kernel; reading happens in the grader,
which trusts nothing in these files: it reads at most a size cap, never
follows links, never unpickles, accepts only the expected names, shapes and
dtypes, finite values, and returns plain numpy arrays, floats and strings.
"""
import json
import math
import os
import stat
from pathlib import Path

import numpy as np

from ..architecture import CONV_LAYERS
from ..budget import CONVS, compact_shapes
from ..paths import SUPPORTED_MODES

FORMAT, VERSION = "ece662-evidence", "1"
ENV_DIR = "ECE662_EVIDENCE_DIR"
MAX_JSON_BYTES = 64 * 1024
MAX_HEADER_BYTES = 1 << 20
MAX_ERROR_CHARS = 400


class EvidenceError(ValueError):
    """Evidence that is missing, malformed, oversized or inconsistent; the message is for the student."""


def evidence_dir() -> Path:
    return Path(os.environ.get(ENV_DIR) or "evidence")


# ------------------------------------------------------------------ writing (in the kernel)

def _level_key(level) -> str:
    return repr(float(level))


def _plain_number(x):
    """A float for numbers (Python, numpy or one-element tensors), the text of a string, else a type marker."""
    if isinstance(x, bool):
        return {"type": "bool"}
    if isinstance(x, str):
        return x[:40]
    try:
        value = float(x)
    except (TypeError, ValueError, RuntimeError):
        return {"type": type(x).__name__}
    return value if math.isfinite(value) else {"type": "non-finite float"}


def _save_arrays(path: Path, arrays: dict, metadata: dict) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}, str(tmp),
              metadata={k: str(v) for k, v in metadata.items()})
    os.replace(tmp, path)


def _meta(kind: str, source: str, framework: str, **extra) -> dict:
    return {"format": FORMAT, "version": VERSION, "kind": kind, "source": source, "framework": framework, **extra}


def write_model(folder: Path, item, state: dict, framework: str) -> Path:
    path = Path(folder) / item.filename
    _save_arrays(path, state, _meta(item.kind, item.source, framework))
    return path


def write_trace(folder: Path, item, states: list, levels, error: str, framework: str) -> Path:
    arrays = {f"{_level_key(level)}/{k}": v for level, state in zip(levels, states) for k, v in state.items()}
    path = Path(folder) / item.filename
    _save_arrays(path, arrays, _meta("trace", item.source, framework, levels=json.dumps([float(x) for x in levels]),
                                     error=(error or "")[:MAX_ERROR_CHARS]))
    return path


def write_results(folder: Path, item, results) -> Path:
    if isinstance(results, dict):
        items = [[_plain_number(k), _plain_number(v)] for k, v in list(results.items())[:64]]
        payload = {"format": FORMAT, "version": VERSION, "kind": "results", "source": item.source, "items": items}
    else:
        payload = {"format": FORMAT, "version": VERSION, "kind": "results", "source": item.source,
                   "not_a_dict": type(results).__name__}
    path = Path(folder) / item.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


# ------------------------------------------------------------------ reading (in the grader)

_NO_FOLLOW = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def read_capped(path: Path, limit: int) -> bytes:
    """The bytes of a regular file, refusing links (the file or its folder), devices, FIFOs and anything over
    ``limit`` bytes: a kernel must not make the grader read another student's or a system file."""
    path = Path(path)
    try:
        folder = os.open(path.parent, _NO_FOLLOW | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        raise EvidenceError("was not recorded (did its test cell run to the end?)") from None
    except OSError:
        raise EvidenceError("could not be read (its folder is not a plain folder)") from None
    try:
        fd = os.open(path.name, _NO_FOLLOW, dir_fd=folder)
    except FileNotFoundError:
        raise EvidenceError("was not recorded (did its test cell run to the end?)") from None
    except OSError as exc:
        raise EvidenceError(f"could not be read ({exc.strerror or 'not a regular file'})") from None
    finally:
        os.close(folder)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise EvidenceError("is not a regular file")
        if info.st_size > limit:
            raise EvidenceError(f"is {info.st_size} bytes, over the {limit}-byte limit for it")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise EvidenceError(f"grew past the {limit}-byte limit while being read")
        return data
    finally:
        os.close(fd)


_MALFORMED = (ValueError, TypeError, OverflowError, RecursionError, UnicodeDecodeError)


def _json(text, what: str):
    """Parsed JSON, or EvidenceError: deep nesting, huge numbers and bad bytes are malformed evidence."""
    try:
        return json.loads(text)
    except _MALFORMED:
        raise EvidenceError(f"has {what} that is not valid JSON") from None


def _short(value) -> str:
    return repr(value)[:40]


def _header(data: bytes) -> dict:
    if len(data) < 8:
        raise EvidenceError("is truncated")
    size = int.from_bytes(data[:8], "little")
    if size > min(MAX_HEADER_BYTES, len(data) - 8):
        raise EvidenceError("has a malformed header")
    header = _json(data[8:8 + size], "a header")
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__", {}), dict):
        raise EvidenceError("has a malformed header")
    return header


def _check_meta(meta: dict, item) -> None:
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise EvidenceError("is not ece662 evidence of this version")
    if meta.get("kind") != item.kind or meta.get("source") != item.source:
        raise EvidenceError(f"holds a {_short(meta.get('kind'))} of {_short(meta.get('source'))}, expected a "
                            f"{item.kind} of {item.source!r}")
    if meta.get("framework") not in SUPPORTED_MODES:
        raise EvidenceError("names no known framework")


def _arrays(data: bytes, expected: dict[str, tuple]) -> dict[str, np.ndarray]:
    """Exactly the ``expected`` {name: shape} float32 arrays, finite, as plain numpy arrays."""
    from safetensors.numpy import load

    header = _header(data)
    names = set(header) - {"__metadata__"}
    if names != set(expected):
        missing, extra = sorted(set(expected) - names)[:3], sorted(names - set(expected))[:3]
        raise EvidenceError("does not hold the course model's layers"
                            + (f" (missing {missing})" if missing else "") + (f" (unexpected {extra})" if extra else "")
                            + ": use the course model from load_model(path, mode=mode)")
    for name, shape in expected.items():
        entry = header[name]
        found = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(found, list) or [int(d) if isinstance(d, int) else None for d in found] != list(shape) \
                or entry.get("dtype") != "F32":
            raise EvidenceError(f"has '{name}' with shape {_short(found)}, expected {list(shape)} (float32): use "
                                "the course model's architecture")
    try:
        arrays = load(data)
    except Exception:  # the library's own errors for inconsistent offsets and sizes
        raise EvidenceError("is corrupt") from None
    plain = {}
    for name, array in arrays.items():
        array = np.array(array, dtype=np.float32, copy=True)
        if not np.isfinite(array).all():
            raise EvidenceError(f"has non-finite values in '{name}'")
        plain[name] = array
    return plain


def array_bytes(shapes: dict[str, tuple]) -> int:
    return sum(4 * math.prod(s) for s in shapes.values())


def read_arrays(path: Path, shapes: dict[str, tuple]) -> dict:
    """Exactly the float32 arrays ``{name: shape}`` of a safetensors file, read with the limits above."""
    return _arrays(read_capped(path, array_bytes(shapes) + MAX_HEADER_BYTES), shapes)


def read_model(folder: Path, item, shapes: dict[str, tuple]) -> tuple[dict, str]:
    """(canonical state, framework) of a model item."""
    data = read_capped(Path(folder) / item.filename, array_bytes(shapes) + MAX_HEADER_BYTES)
    meta = _header(data).get("__metadata__", {})
    _check_meta(meta, item)
    return _arrays(data, shapes), meta["framework"]


def read_compact(folder: Path, item, shapes: dict[str, tuple]) -> tuple[dict, str]:
    """(canonical state, framework) of a compact model item: the course model's layers (``shapes``), each conv
    layer with between 1 and all of its filters, the next layer's inputs to match (``ece662/budget.py``)."""
    data = read_capped(Path(folder) / item.filename, array_bytes(shapes) + MAX_HEADER_BYTES)
    header = _header(data)
    meta = header.get("__metadata__", {})
    _check_meta(meta, item)
    widths = []
    for prefix, layer in zip(CONVS, CONV_LAYERS):
        entry = header.get(f"{prefix}.weight")
        shape = entry.get("shape") if isinstance(entry, dict) else None
        full = shapes[f"{prefix}.weight"][0]
        if not isinstance(shape, list) or not shape or not isinstance(shape[0], int) or not 1 <= shape[0] <= full:
            raise EvidenceError(f"has {layer} with {_short(shape)} as its shape: a compact model keeps between 1 "
                                f"and {full} of its filters")
        widths.append(shape[0])
    return _arrays(data, compact_shapes(shapes, widths)), meta["framework"]


def read_trace(folder: Path, item, shapes: dict[str, tuple]) -> tuple[list, list, str, str]:
    """(levels completed, canonical state per level, error text, framework) of a trace item."""
    limit = len(item.levels) * array_bytes(shapes) + MAX_HEADER_BYTES
    data = read_capped(Path(folder) / item.filename, limit)
    meta = _header(data).get("__metadata__", {})
    _check_meta(meta, item)
    levels = _json(meta.get("levels", "null"), "a list of levels")
    if not isinstance(levels, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                               for x in levels) or len(levels) > len(item.levels):
        raise EvidenceError("lists no valid levels")
    if levels != [float(x) for x in item.levels[:len(levels)]]:
        raise EvidenceError(f"was recorded at levels {_short(levels)}, expected {list(item.levels)}")
    error = str(meta.get("error", ""))[:MAX_ERROR_CHARS]
    if len(levels) < len(item.levels) and not error:
        raise EvidenceError("stops before the last level without an error")
    expected = {f"{_level_key(level)}/{k}": s for level in levels for k, s in shapes.items()}
    arrays = _arrays(data, expected)
    states = [{k: arrays[f"{_level_key(level)}/{k}"] for k in shapes} for level in levels]
    return levels, states, error, meta["framework"]


class NotANumber:
    """A results entry that was not a number (its type name is kept for the message)."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self):
        return f"<{self.type_name}>"


def _plain_entry(x):
    if isinstance(x, bool):
        return NotANumber("bool")
    if isinstance(x, (int, float)):
        try:
            value = float(x)
        except OverflowError:
            return NotANumber("number too large")
        return value if math.isfinite(value) else NotANumber("non-finite float")
    if isinstance(x, str):
        return x[:40]
    if isinstance(x, dict):
        return NotANumber(_short(x.get("type", "?")).strip("'\""))
    return NotANumber(type(x).__name__)


def read_results(folder: Path, item) -> dict:
    """The recorded dict as {float or str key: float or NotANumber}; EvidenceError if it was not a dict."""
    data = read_capped(Path(folder) / item.filename, MAX_JSON_BYTES)
    payload = _json(data, "content")
    if not isinstance(payload, dict):
        raise EvidenceError("is malformed")
    _check_meta({**payload, "framework": "torch"}, item)
    if "not_a_dict" in payload:
        raise EvidenceError(f"should be a dict, got {_short(payload['not_a_dict'])}")
    items = payload.get("items")
    if not isinstance(items, list) or not all(isinstance(p, list) and len(p) == 2 for p in items):
        raise EvidenceError("is malformed")
    return _parse_items(items)


def _parse_items(items: list) -> dict:
    results = {}
    for key, value in items[:64]:
        key = _plain_entry(key)
        results[key if not isinstance(key, NotANumber) else repr(key)] = _plain_entry(value)
    return results


def normalise_results(results) -> dict:
    """A results dict as the verifier will see it (the writer's conversion, then the reader's)."""
    if not isinstance(results, dict):
        raise AssertionError(f"expected a dict, got {type(results).__name__}")
    return _parse_items([[_plain_number(k), _plain_number(v)] for k, v in results.items()])
