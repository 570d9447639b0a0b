"""The synthetic stand-in: deterministic, CINIC-10 layout, clearly labelled, partly learnable."""
import hashlib

import numpy as np
import pytest
from PIL import Image

from ece662.data_utils import CLASSES, SYNTHETIC_MARKER, get_CINIC10_data
from ece662.datasets.synthetic import synthetic_image, write_synthetic_dataset


def digest_tree(root):
    h = hashlib.sha1()
    for p in sorted(root.rglob("*.png")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = write_synthetic_dataset(tmp_path / "a", per_class=(3, 2, 2), seed=5, verbose=False)
    b = write_synthetic_dataset(tmp_path / "b", per_class=(3, 2, 2), seed=5, verbose=False)
    c = write_synthetic_dataset(tmp_path / "c", per_class=(3, 2, 2), seed=6, verbose=False)
    assert digest_tree(a) == digest_tree(b) != digest_tree(c)


def test_layout_marker_and_announcement(tiny_root, capsys):
    for split, n in (("train", 60), ("valid", 20), ("test", 40)):
        for cls in CLASSES:
            files = list((tiny_root / split / cls).glob("*.png"))
            assert len(files) == n
    assert "NOT CINIC-10" in (tiny_root / SYNTHETIC_MARKER).read_text()
    data = get_CINIC10_data(root=tiny_root)
    assert data["synthetic"] is True
    assert "SYNTHETIC data" in capsys.readouterr().out


def test_some_files_are_grayscale_like_real_cinic10(tiny_root):
    modes = [Image.open(p).mode for p in tiny_root.rglob("*.png")]
    gray = modes.count("L") / len(modes)
    assert 0 < gray < 0.05


def test_classes_differ_on_average_but_images_vary():
    means = np.array([[synthetic_image(0, "train", c, i).mean((0, 1)) for i in range(40)] for c in range(10)])
    class_means = means.mean(1)
    assert np.ptp(class_means, axis=0).max() > 5  # the classes have different colour statistics...
    assert means.std(1).mean() > 5  # ...and images within a class vary a lot


def test_refuses_to_write_into_a_real_dataset(tmp_path):
    (tmp_path / "real" / "train").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        write_synthetic_dataset(tmp_path / "real", per_class=(1, 1, 1), verbose=False)


def test_trained_model_learns_only_partly(course_env):
    from ece662.pruning_helper import read_checkpoint

    acc = read_checkpoint(course_env)["meta"]["test_accuracy"]
    assert 0.15 < acc < 0.9, f"tiny-set model accuracy {acc}: synthetic classes should be learnable, not trivial"
