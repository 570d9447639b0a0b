"""What the notebook tells students they will see holds on real images (the CINIC-10 sample), in both frameworks.

A course model is trained on the sample as ``make model`` trains one on CINIC-10 (10 epochs here), then the
premises the notebook states are checked with paired intervals (``autograder/course/profile.py``): the zeroed and
the removed filter-pruned models predict the same, one-shot pruning to Part 4's target loses accuracy beyond the
noise, and fine-tuning with the stated recipe wins it back beyond the noise. Skipped without the sample.
"""
import importlib.util

import pytest

from autograder.course.profile import premises
from ece662 import data_utils, train

SAMPLE_EPOCHS = 10
MODES = ["torch"] + (["tensorflow"] if importlib.util.find_spec("tensorflow") else [])


@pytest.fixture(scope="module")
def sample_models(tmp_path_factory):
    """The course models of both frameworks trained on the real sample, and its data."""
    from conftest import _real_sample_root

    root, why = _real_sample_root()
    if root is None:
        pytest.skip(f"real CINIC-10 sample not found: {why}")
    folder = tmp_path_factory.mktemp("sample-models")
    for mode in MODES:
        train.main(["--mode", mode, "--epochs", str(SAMPLE_EPOCHS), "--data", str(root),
                    "--out", str(folder / f"{mode}.model")])
    return folder, root


@pytest.mark.parametrize("mode", MODES)
def test_the_notebooks_premises_hold_on_real_images(sample_models, mode, monkeypatch):
    folder, root = sample_models
    monkeypatch.setenv("ECE662_MODEL_DIR", str(folder))
    monkeypatch.setattr(data_utils, "_active_dataset", data_utils.active_dataset())  # restored after the test
    found = premises(mode, data_utils.get_CINIC10_data(root=root, verbose=False))
    assert len(found) == 3
    for premise in found:
        assert premise.holds, f"{premise.statement}: {premise.figures}"
