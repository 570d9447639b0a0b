"""A deterministic synthetic stand-in for CINIC-10 (clearly labelled, never the real thing).

Each class is a recipe: an object shape, a hue, a stripe orientation and a
stripe frequency. Every image draws a cluttered background, a distractor
object of a random other class and the class object at a random place and
size, with a per-image contrast that is sometimes too low to see. Classes
share attributes in pairs, so a small CNN learns them only partly (about
50-75% test accuracy, like real CINIC-10), and accuracy falls gradually as a
network is pruned.

The output folder has exactly the CINIC-10 layout plus a ``SYNTHETIC_DATA.txt``
marker that ``get_CINIC10_data`` announces on every load.
"""
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..data_utils import CLASSES, SPLIT_FOLDERS, SYNTHETIC_MARKER

SIZES = {  # images per class for train / valid / test
    "tiny": (60, 20, 40),
    "small": (600, 100, 300),
    "full": (9000, 9000, 9000),
}
GRAYSCALE_FRACTION = 0.01  # like real CINIC-10, a few files are single-channel
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_YY, _XX = np.mgrid[0:32, 0:32].astype(np.float32)


def _class_recipe(label: int) -> dict:
    return {
        "shape": label % 5,
        "hue": ((label * 3) % 10) / 10.0,
        "angle": np.pi * (label % 4) / 4.0,
        "freq": 0.25 + 0.2 * (label // 5),
    }


def _hue_rgb(hue: float) -> np.ndarray:
    return np.clip(np.abs((hue * 6.0 + np.array([0.0, 4.0, 2.0])) % 6.0 - 3.0) - 1.0, 0.0, 1.0)


def _shape_mask(shape: int, cx, cy, r) -> np.ndarray:
    dx, dy = _XX - cx, _YY - cy
    if shape == 0:  # disk
        return (dx * dx + dy * dy <= r * r).astype(np.float32)
    if shape == 1:  # square
        return ((np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)).astype(np.float32)
    if shape == 2:  # triangle
        return ((dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)).astype(np.float32)
    if shape == 3:  # ring
        d2 = dx * dx + dy * dy
        return ((d2 <= r * r) & (d2 >= (0.55 * r) ** 2)).astype(np.float32)
    return ((np.abs(dx) <= r * 0.3) & (np.abs(dy) <= r) | (np.abs(dy) <= r * 0.3) & (np.abs(dx) <= r)).astype(np.float32)


def _draw_object(img, rng, label: int, contrast: float):
    rec = _class_recipe(label)
    r = rng.uniform(6, 11)
    cx, cy = rng.uniform(r - 2, 34 - r, size=2)
    mask = _shape_mask(rec["shape"], cx, cy, r)
    angle = rec["angle"] + rng.normal(0, 0.25)
    stripes = 0.5 + 0.5 * np.sin(rec["freq"] * 2 * np.pi / 4 * (_XX * np.cos(angle) + _YY * np.sin(angle))
                                 + rng.uniform(0, 2 * np.pi))
    color = _hue_rgb((rec["hue"] + rng.normal(0, 0.06)) % 1.0)
    obj = color[None, None, :] * (0.55 + 0.45 * stripes[..., None])
    alpha = contrast * mask[..., None]
    img *= 1 - alpha
    img += alpha * obj


def synthetic_image(seed: int, split: str, label: int, index: int) -> np.ndarray:
    """One deterministic 32x32 RGB uint8 image of class ``label``."""
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], label, index])
    c0, c1 = rng.uniform(0.15, 0.85, size=(2, 3)).astype(np.float32)
    t = (_XX * np.cos(a := rng.uniform(0, 2 * np.pi)) + _YY * np.sin(a)) / 45.0 + 0.5
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    img += rng.normal(0, 0.06, size=(8, 8, 3)).repeat(4, 0).repeat(4, 1).astype(np.float32)
    distractor = (label + rng.integers(1, 10)) % 10
    _draw_object(img, rng, distractor, rng.uniform(0.2, 0.5))
    _draw_object(img, rng, label, rng.uniform(0.3, 1.0))
    img += rng.normal(0, 0.07, size=img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _write_class(args):
    root, seed, split, label, count = args
    folder = Path(root) / SPLIT_FOLDERS[split] / CLASSES[label]
    folder.mkdir(parents=True, exist_ok=True)
    gray_rng = np.random.default_rng([seed, 99, _SPLIT_IDS[split], label])
    gray = gray_rng.random(count) < GRAYSCALE_FRACTION
    for i in range(count):
        img = Image.fromarray(synthetic_image(seed, split, label, i))
        if gray[i]:
            img = img.convert("L")
        img.save(folder / f"synthetic-{CLASSES[label]}-{i:05d}.png", optimize=False, compress_level=1)
    return count


def write_synthetic_dataset(root, size="small", seed=0, per_class=None, workers=None, verbose=True) -> Path:
    """Write a synthetic dataset in the CINIC-10 layout under ``root``.

    ``size`` is a key of ``SIZES``; ``per_class`` (train, valid, test) overrides it.
    The folder gets a ``SYNTHETIC_DATA.txt`` marker so it is never mistaken for CINIC-10.
    Refuses to write into a folder that holds a dataset without the marker.
    """
    root = Path(root)
    counts = dict(zip(("train", "val", "test"), per_class or SIZES[size]))
    if (root / "train").exists() and not (root / SYNTHETIC_MARKER).exists():
        raise FileExistsError(f"{root} already holds a dataset that is not synthetic; refusing to overwrite it.")
    root.mkdir(parents=True, exist_ok=True)
    (root / SYNTHETIC_MARKER).write_text(
        "SYNTHETIC DATA, NOT CINIC-10.\n"
        f"Written by ece662.datasets.synthetic (seed={seed}, images per class={counts}).\n"
        "Same folder layout as CINIC-10 so that code can be tested offline; accuracies measured\n"
        "on it say nothing about CINIC-10.\n"
    )
    jobs = [(str(root), seed, split, label, n) for split, n in counts.items() for label in range(len(CLASSES))]
    total = sum(n for *_, n in jobs)
    with tqdm(total=total, desc="writing synthetic PNGs", unit="img", disable=not verbose) as bar:
        with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
            for done in pool.map(_write_class, jobs):
                bar.update(done)
    return root
