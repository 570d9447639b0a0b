"""Compare models' CPU inference time in a way a busy laptop cannot skew.

Timing one model after another lets a noisy moment (another program, a
throttled core) land on one model only. ``compare_latency`` interleaves:
each round times every model, in a rotating order, and the result is each
model's median over rounds with its spread, plus speed-ups taken within each
round (both models saw the same moment) and a flag when the spread is too
large to trust.
"""
import time

import numpy as np
import torch
from torch import nn

from ._allocator import keep_freed_memory_mapped

NOISY_RELATIVE_IQR = 0.2  # a model's IQR above 20% of its median: the machine was too busy to trust the figures
WARMUP_PASSES = 2
PASSES_PER_ROUND = 3


def channels_last_batch(batch_size: int) -> torch.Tensor:
    """A random image batch in the layout ``test_model`` feeds: NHWC images permuted to NCHW (channels last)."""
    return torch.randn(batch_size, 32, 32, 3, generator=torch.Generator().manual_seed(0)).permute(0, 3, 1, 2)


def _forward(model, x: torch.Tensor):
    """One inference pass; a Keras model gets the same images as an NHWC array, its own layout."""
    if isinstance(model, nn.Module):
        return lambda: model(x)
    nhwc = np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
    return lambda: model(nhwc, training=False)


def _time_ms(model, x: torch.Tensor, passes: int) -> float:
    """Median wall time (ms) of ``passes`` forward passes."""
    forward = _forward(model, x)
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


def compare_latency(models: dict[str, nn.Module], batch_size: int = 256, rounds: int = 7) -> dict[str, dict]:
    """Time every model on the same channels-last batch in ``rounds`` interleaved rounds; see ``summarize_rounds``.

    Round r times the models in an order rotated by r, each as the median of a few forward passes, after
    warm-up passes. The first model is the reference for the speed-ups. Models are left in eval mode.
    """
    if not models:
        raise ValueError("compare_latency needs at least one model, e.g. {'dense': model}")
    keep_freed_memory_mapped()
    names = list(models)
    x = channels_last_batch(batch_size)
    times = {name: [] for name in names}
    with torch.inference_mode():
        for name in names:
            if isinstance(models[name], nn.Module):
                models[name].eval()
            _time_ms(models[name], x, WARMUP_PASSES)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                times[name].append(_time_ms(models[name], x, PASSES_PER_ROUND))
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
