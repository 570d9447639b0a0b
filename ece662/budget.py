"""Part 5's arithmetic, in numpy alone: what a SmallCNN of given conv widths costs, the uniform choice under a MACs
budget, and a canonical state cut down to chosen filters (what ``remove_zero_filters`` builds).

A compact SmallCNN keeps ``widths[i]`` filters of conv layer ``i`` (each filter's weights and bias), the next
conv's input channels from those filters, and fc1's Flatten columns of the kept conv3 channels; the Linear layers
keep their size. Weights are in the canonical layout (``ece662/architecture.py``).
"""
import numpy as np

from .architecture import CANONICAL_PREFIX, CHANNEL_MULTIPLE, CONV_LAYERS, DEFAULT_CONFIG

CONVS = tuple(CANONICAL_PREFIX[name] for name in CONV_LAYERS)
FC1, FC2 = CANONICAL_PREFIX["fc1"], CANONICAL_PREFIX["fc2"]
FULL_WIDTHS = tuple(DEFAULT_CONFIG["channels"])
CONV_OUTPUT_SIDE = (32, 16, 8)  # each conv's output is side x side (32x32 images, a 2x2 max-pool after conv1, conv2)
KERNEL_AREA = 3 * 3
IN_CHANNELS = 3
UNIFORM_STEPS = 8  # the uniform choice keeps 1/8, 2/8, ... of every layer's filters


def conv_widths(state: dict) -> tuple[int, ...]:
    """The number of filters of each conv layer of a canonical state."""
    return tuple(int(np.shape(state[f"{prefix}.weight"])[0]) for prefix in CONVS)


def macs(widths) -> int:
    """Multiply-accumulates of one image through a SmallCNN whose conv layers have ``widths`` filters."""
    total, before = 0, IN_CHANNELS
    for width, side in zip(widths, CONV_OUTPUT_SIDE):
        total += width * before * KERNEL_AREA * side * side
        before = width
    hidden = DEFAULT_CONFIG["hidden"]
    return total + before * CONV_OUTPUT_SIDE[-1] ** 2 * hidden + hidden * DEFAULT_CONFIG["num_classes"]


def macs_fraction(widths) -> float:
    """``macs(widths)`` as a fraction of the dense course model's."""
    return macs(widths) / macs(FULL_WIDTHS)


def uniform_widths(budget: float) -> tuple[int, ...]:
    """The uniform choice under ``budget``: every conv layer keeps the same share k/8 of its filters, rounded up to
    a multiple of 8, with the largest share whose MACs fit the budget."""
    for step in range(UNIFORM_STEPS, 0, -1):
        widths = tuple(-(-full * step // (UNIFORM_STEPS * CHANNEL_MULTIPLE)) * CHANNEL_MULTIPLE for full in FULL_WIDTHS)
        if macs_fraction(widths) <= budget:
            return widths
    raise ValueError(f"no uniform choice fits a budget of {budget:.1%} of the dense model's MACs")


def largest_filters(state: dict, widths) -> list[np.ndarray]:
    """Per conv layer, the sorted indices of its ``widths[i]`` filters of largest L2 norm (of their weights)."""
    kept = []
    for prefix, width in zip(CONVS, widths):
        weight = state[f"{prefix}.weight"]
        norms = np.linalg.norm(weight.reshape(len(weight), -1), axis=1)
        kept.append(np.sort(np.argsort(-norms, kind="stable")[:width]))
    return kept


def cut(state: dict, kept) -> dict:
    """The compact canonical state keeping filters ``kept[i]`` (index arrays) of conv layer ``i``."""
    small = dict(state)
    before = np.arange(np.shape(state[f"{CONVS[0]}.weight"])[1])
    for prefix, keep in zip(CONVS, kept):
        keep = np.asarray(keep, dtype=np.int64)
        small[f"{prefix}.weight"] = state[f"{prefix}.weight"][keep][:, before]
        small[f"{prefix}.bias"] = state[f"{prefix}.bias"][keep]
        before = keep
    small[f"{FC1}.weight"] = state[f"{FC1}.weight"][:, _fc1_columns(state, before)]
    return small


def kept_filters(weight: np.ndarray, multiple: int = CHANNEL_MULTIPLE) -> np.ndarray:
    """Sorted indices of the filters of an OIHW conv weight that ``remove_zero_filters`` keeps: the non-zero ones,
    padded with zero filters up to a multiple of ``multiple`` (at most all of them, at least one)."""
    nonzero = weight.reshape(len(weight), -1).any(1)
    kept = np.flatnonzero(nonzero)
    wanted = min(len(nonzero), max(1, -(-len(kept) // multiple) * multiple))
    padding = np.flatnonzero(~nonzero)[: wanted - len(kept)]
    return np.sort(np.concatenate([kept, padding]))


def without_zero_filters(state: dict) -> dict:
    """What ``remove_zero_filters`` builds, as canonical weights: ``state`` cut to its ``kept_filters``, a zero
    filter's bias dropped with it (so it equals ``state`` with those biases zeroed)."""
    small = cut(state, [kept_filters(state[f"{prefix}.weight"]) for prefix in CONVS])
    for prefix in CONVS:
        weight = small[f"{prefix}.weight"]
        small[f"{prefix}.bias"] = small[f"{prefix}.bias"] * weight.reshape(len(weight), -1).any(1)
    return small


def _fc1_columns(state: dict, channels: np.ndarray) -> np.ndarray:
    """fc1's input columns of conv3's ``channels`` (the Flatten maps channel c to columns c*H*W ... (c+1)*H*W-1)."""
    spatial = np.shape(state[f"{FC1}.weight"])[1] // np.shape(state[f"{CONVS[-1]}.weight"])[0]
    return (channels[:, None] * spatial + np.arange(spatial)[None, :]).ravel()


def compact_shapes(shapes: dict, widths) -> dict:
    """The canonical ``{name: shape}`` of the course model's ``shapes`` with ``widths`` filters per conv layer."""
    small, before = dict(shapes), shapes[f"{CONVS[0]}.weight"][1]
    for prefix, width in zip(CONVS, widths):
        small[f"{prefix}.weight"] = (width, before, *shapes[f"{prefix}.weight"][2:])
        small[f"{prefix}.bias"] = (width,)
        before = width
    fc1 = shapes[f"{FC1}.weight"]
    small[f"{FC1}.weight"] = (fc1[0], fc1[1] // shapes[f"{CONVS[-1]}.weight"][0] * before)
    return small


def origin(start: dict, original: dict) -> tuple[list, str]:
    """(the course filters each conv layer of the compact ``start`` keeps, or None; why ``start`` is not
    ``cut(original, kept)`` for any choice, or ""): every filter of ``start`` must be one of the course model's,
    with its bias and its inputs from the filters kept before it, exactly as ``remove_zero_filters`` leaves it."""
    kept, before = [], np.arange(np.shape(original[f"{CONVS[0]}.weight"])[1])
    for layer, prefix in zip(CONV_LAYERS, CONVS):
        weight, bias = original[f"{prefix}.weight"][:, before], original[f"{prefix}.bias"]
        index = {_filter_bytes(w, b): i for i, (w, b) in enumerate(zip(weight, bias))}
        found = [index.get(_filter_bytes(w, b)) for w, b in zip(start[f"{prefix}.weight"], start[f"{prefix}.bias"])]
        if None in found:
            j = found.index(None)
            zero = not start[f"{prefix}.weight"][j].any()
            return None, (f"filter {j} of {layer} is " + ("all zero (keep a multiple of 8 filters in each layer, so "
                          "that remove_zero_filters adds no zero filters)" if zero else
                          "none of the course model's filters (with its bias, over the channels kept before it)"))
        if len(set(found)) < len(found):
            return None, f"{layer} holds one of the course model's filters twice"
        kept.append(np.asarray(found))
        before = kept[-1]
    expected = cut(original, kept)
    for name, array in expected.items():
        if not np.array_equal(array, start[name]):
            return None, f"'{name}' is not the course model's, cut to the filters kept before it"
    return kept, ""


def _filter_bytes(weight: np.ndarray, bias) -> bytes:
    return np.ascontiguousarray(weight, dtype=np.float32).tobytes() + np.float32(bias).tobytes()
