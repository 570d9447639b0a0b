"""The measurements behind ``make bench``; each returns a dict of figures (seconds, images/s, MiB).

Ratios are measured side by side in one process and one run, alternating the
two sides, because absolute times on a shared machine drift.
"""
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.utils.prune as prune
from PIL import Image
from torch import nn

from autograder.nbgrader_course import REPO
from ece662 import data_utils
from ece662._allocator import keep_freed_memory_mapped
from ece662.compaction import remove_zero_filters
from ece662.pruning_helper import EVAL_BATCH_SIZE, _batches, accuracy, cpu_latency_ms, load_model, prunable_layers


def _best_of(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


# ----------------------------------------------------------------- P1 evaluation throughput

def eval_throughput(model: nn.Module, X, y, rounds: int = 2) -> dict:
    """test_model's images/s (uint8 in, normalised per batch) vs a bare forward over a preloaded float tensor."""
    keep_freed_memory_mapped()  # both sides run with the allocator settings test_model uses
    (preloaded, _), = _batches(X, y, len(y))  # test_model's own normalisation and layout, done once up front

    def bare_forward():
        with torch.inference_mode():
            for start in range(0, len(preloaded), EVAL_BATCH_SIZE):
                model(preloaded[start:start + EVAL_BATCH_SIZE]).argmax(1)

    helper, bare = [], []
    for _ in range(rounds):  # alternate the sides so drift hits both
        helper.append(_best_of(lambda: accuracy(model, X, y), 1))
        bare.append(_best_of(bare_forward, 1))
    n = len(y)
    return {"images": n, "batch_size": EVAL_BATCH_SIZE, "threads": torch.get_num_threads(),
            "test_model_img_per_s": n / min(helper), "bare_forward_img_per_s": n / min(bare),
            "ratio": min(bare) / min(helper)}


_TF_PROBE = """
import json
from benchmarks.tf_throughput import tf_eval_throughput
from ece662.data_utils import get_CINIC10_data
from ece662.pruning_helper import model_path
data = get_CINIC10_data(num_test=None, verbose=False)
print(json.dumps(tf_eval_throughput(model_path('torch'), data['X_test'], data['y_test'])))
"""


def tf_eval_throughput() -> dict:
    """P1 for TensorFlow (``benchmarks/tf_throughput.py``), in its own process so TensorFlow's threads and
    allocator never touch the torch figures; ``{"skipped": why}`` without TensorFlow."""
    if importlib.util.find_spec("tensorflow") is None:
        return {"skipped": "TensorFlow is not installed (pip install tensorflow-cpu)"}
    if importlib.util.find_spec("benchmarks.tf_throughput") is None:
        return {"skipped": "benchmarks/tf_throughput.py is missing"}
    out = subprocess.run([sys.executable, "-c", _TF_PROBE], capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"the TensorFlow throughput probe failed (run benchmarks/tf_throughput.py's "
                           f"tf_eval_throughput by hand to see why):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- P2 dataset load

def naive_load(root: Path) -> int:
    """The loop a student would write: one process, PIL, every file of every split into one array."""
    count = 0
    for split in data_utils.SPLIT_FOLDERS.values():
        images = []
        for cls in data_utils.CLASSES:
            folder = root / split / cls
            for name in sorted(os.listdir(folder)):
                images.append(np.asarray(Image.open(folder / name).convert("RGB")))
        count += len(np.stack(images))
    return count


def read_every_file(root: Path) -> None:
    """Bring the dataset's files into the OS page cache, so both loaders are timed decoding, not waiting on disk."""
    for path in root.rglob("*.png"):
        path.read_bytes()


def dataset_load(root: Path) -> dict:
    """Cold load (decode every PNG into the cache) vs the naive loop, and warm load (cache hit), all splits."""
    read_every_file(root)
    naive_s = _best_of(lambda: naive_load(root), 1)
    cold_s = _best_of(lambda: data_utils.get_CINIC10_data(root=root, num_test=None, rebuild_cache=True,
                                                           verbose=False), 1)
    warm_s = _best_of(lambda: data_utils.get_CINIC10_data(root=root, num_test=None, verbose=False), 3)
    sizes = data_utils.describe_dataset(root)["sizes"]
    return {"images": sum(sizes.values()), "naive_s": naive_s, "cold_s": cold_s, "cold_speedup": naive_s / cold_s,
            "warm_s": warm_s, "note": "both loaders timed with the PNG files in the OS page cache (read once beforehand)"}


# ----------------------------------------------------------------- P3 memory

_RSS_PROBE = """
import json, resource, sys


def peak_kib():
    # VmHWM starts afresh at exec; ru_maxrss on Linux keeps the peak of the process that forked us
    try:
        with open('/proc/self/status') as status:
            return next(int(line.split()[1]) for line in status if line.startswith('VmHWM:'))
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == 'darwin' else peak


import torch
from ece662.data_utils import get_CINIC10_data
from ece662.pruning_helper import load_model, model_path, test_model
imports = peak_kib()
data = get_CINIC10_data(num_test=None, verbose=False)
model = load_model(model_path('torch'))
test_model(model, [data['X_test'], data['y_test']])
print(json.dumps({'imports_kib': imports, 'peak_kib': peak_kib(), 'images': len(data['y_test'])}))
"""


def peak_memory() -> dict:
    """Peak RSS of a fresh process: get_CINIC10_data() (warm cache) + test_model over the whole test split."""
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE], capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    return {"images": probe["images"], "imports_mib": probe["imports_kib"] / 1024,
            "peak_mib": probe["peak_kib"] / 1024}


# ----------------------------------------------------------------- P5 structured pruning pays off

def _unstructured(model: nn.Module, level: float) -> nn.Module:
    layers = [m for _, m in prunable_layers(model)]
    prune.global_unstructured([(m, "weight") for m in layers], prune.L1Unstructured, amount=level)
    for m in layers:
        prune.remove(m, "weight")
    return model


def _filters(model: nn.Module, level: float) -> nn.Module:
    for _, m in prunable_layers(model):
        if isinstance(m, nn.Conv2d):
            prune.ln_structured(m, "weight", amount=level, n=2, dim=0)
    return model


def pruned_latency(model_file: Path, rounds: int = 3) -> dict:
    """Median forward latency (batch 256) of dense, 80% unstructured, 80% filters (masked, removed)."""
    with torch.no_grad():
        models = {
            "dense": load_model(model_file),
            "unstructured_80": _unstructured(load_model(model_file), 0.8),
            "filters_80_masked": _filters(load_model(model_file), 0.8),
        }
        models["filters_80_removed"] = remove_zero_filters(models["filters_80_masked"])
    samples = {name: [] for name in models}
    for _ in range(rounds):  # interleaved rounds
        for name, m in models.items():
            samples[name].append(cpu_latency_ms(m))
    ms = {name: float(np.median(v)) for name, v in samples.items()}
    return {"batch_size": 256, "ms": ms, "speedup": {name: ms["dense"] / v for name, v in ms.items()}}
