"""Compare models' CPU inference time in a way a busy laptop cannot skew.

Timing one model after another lets a noisy moment (another program, a
throttled core) land on one model only. ``compare_latency`` interleaves:
each round times every model, in a rotating order, and the result is each
model's median over rounds with its spread, plus speed-ups taken within each
round (both models saw the same moment) and a flag when the spread is too
large to trust.
"""
import sys
import time

import numpy as np

from ._allocator import keep_freed_memory_mapped
from .frameworks import TORCH, framework_of

NOISY_RELATIVE_IQR = 0.2  # a model's IQR above 20% of its median: the machine was too busy to trust the figures
WARMUP_PASSES = 2
PASSES_PER_ROUND = 3


def random_images(batch_size: int) -> np.ndarray:
    """A fixed random batch of float32 images, NHWC as ``get_CINIC10_data`` gives them."""
    return np.random.default_rng(0).standard_normal((batch_size, 32, 32, 3), dtype=np.float32)


def _forward(model, images: np.ndarray):
    """One inference pass over ``images`` in the model's own layout: a torch model gets them permuted to NCHW
    (channels last, the layout ``test_model`` feeds), a Keras model as they are (NHWC)."""
    if framework_of(model) != TORCH:  # Keras: a TensorFlow notebook never loads torch
        return lambda: model(images, training=False)
    torch = sys.modules["torch"]
    x = torch.from_numpy(images).permute(0, 3, 1, 2)

    def forward():
        with torch.inference_mode():
            return model(x)
    return forward


def _on_cpu_for_inference(model):
    """A torch model in eval mode on the CPU (a copy when it is on a GPU); a Keras model as it is."""
    if framework_of(model) != TORCH:
        return model
    from .devices import on_cpu  # torch is loaded: the model is a torch module

    return on_cpu(model).eval()


def _time_ms(forward, passes: int) -> float:
    """Median wall time (ms) of ``passes`` calls of ``forward``."""
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        forward()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def summarize_rounds(times_ms: dict[str, list[float]], reference: str) -> dict[str, dict]:
    """Per model: median, quartiles, min/max, relative IQR, speed-up over ``reference`` and a ``noisy`` flag.

    ``times_ms[name][r]`` is the model's time in round r. The speed-up is the median over rounds of the
    within-round ratio reference / model, with its min and max.
    """
    summary = {}
    for name, times in times_ms.items():
        t = np.asarray(times, dtype=float)
        q1, median, q3 = np.percentile(t, [25, 50, 75])
        ratios = np.asarray(times_ms[reference], dtype=float) / t
        summary[name] = {
            "median_ms": float(median), "q1_ms": float(q1), "q3_ms": float(q3),
            "min_ms": float(t.min()), "max_ms": float(t.max()), "rounds_ms": [float(v) for v in t],
            "relative_iqr": float((q3 - q1) / median),
            "speedup": float(np.median(ratios)), "speedup_min": float(ratios.min()), "speedup_max": float(ratios.max()),
            "noisy": bool((q3 - q1) / median > NOISY_RELATIVE_IQR),
        }
    return summary


def compare_latency(models: dict, batch_size: int = 256, rounds: int = 7) -> dict[str, dict]:
    """Time every model (torch or Keras) on the same images in ``rounds`` interleaved rounds; see
    ``summarize_rounds``.

    Round r times the models in an order rotated by r, each as the median of a few forward passes, after
    warm-up passes. The first model is the reference for the speed-ups. Torch models are left in eval mode; one on
    a GPU is timed as a CPU copy.
    """
    if not models:
        raise ValueError("compare_latency needs at least one model, e.g. {'dense': model}")
    keep_freed_memory_mapped()
    images = random_images(batch_size)
    forwards = {name: _forward(_on_cpu_for_inference(model), images) for name, model in models.items()}
    names = list(forwards)
    times = {name: [] for name in names}
    for name in names:
        _time_ms(forwards[name], WARMUP_PASSES)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(_time_ms(forwards[name], PASSES_PER_ROUND))
    return summarize_rounds(times, reference=names[0])


def latency_report(summary: dict[str, dict]) -> str:
    """A table of ``compare_latency``'s result, with a warning line when any model's timing is noisy."""
    lines = [f"{'model':32s} {'median ms':>10s} {'IQR ms':>14s} {'speed-up (min-max)':>20s}"]
    for name, s in summary.items():
        lines.append(f"{name:32s} {s['median_ms']:10.1f} {s['q1_ms']:6.1f}-{s['q3_ms']:<6.1f}  "
                     f"{s['speedup']:8.1f}x ({s['speedup_min']:.1f}-{s['speedup_max']:.1f})")
    noisy = [name for name, s in summary.items() if s["noisy"]]
    if noisy:
        lines.append(f"WARNING: the timings of {', '.join(noisy)} vary by more than {NOISY_RELATIVE_IQR:.0%} "
                     "between rounds (IQR / median): the machine was busy, so do not trust these speed-ups; "
                     "close other programs and run this cell again.")
    return "\n".join(lines)
