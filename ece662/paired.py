"""The paired 95% interval of an accuracy difference: two models evaluated on the same images differ only on the
images where one is right and the other wrong, so their difference is known much better than two separate
accuracies suggest. The notebook's plots (``ece662/plots.py``) and Part 5's grading use it."""
import math

import numpy as np

Z_95 = 1.959964


def paired_interval(correct: np.ndarray, reference: np.ndarray, z: float = Z_95) -> tuple[float, float, float]:
    """(difference, low, high) of the accuracy of ``correct`` minus that of ``reference``, both per-image
    correctness on the SAME images: a 95% interval for paired proportions, which only the images the two
    models disagree on can widen (much tighter than two separate intervals)."""
    correct, reference = np.asarray(correct, bool), np.asarray(reference, bool)
    n = len(correct)
    gained, lost = int((correct & ~reference).sum()), int((~correct & reference).sum())
    diff = (gained - lost) / n
    half = z * math.sqrt(max(gained + lost - (gained - lost) ** 2 / n, 0.0)) / n
    return diff, diff - half, diff + half
