"""The Gradescope bundle ships the images the notebook's defaults use, or says loudly that it does not."""
import subprocess
import sys

import pytest

from autograder.gradescope.bundle import build, check_dataset_size
from autograder.nbgrader_course import REPO
from ece662.data_utils import DEFAULT_NUM_TEST
from ece662.grading.registry import PART4


def test_a_dataset_smaller_than_the_notebooks_defaults_is_refused_unless_allowed(capsys):
    check_dataset_size({"train": PART4.images, "val": 0, "test": DEFAULT_NUM_TEST}, allow_small=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match=f"1,000 test images of the notebook's {DEFAULT_NUM_TEST:,}.*"
                                         "--allow-small-dataset"):
        check_dataset_size({"train": PART4.images, "val": 0, "test": 1000}, allow_small=False)
    check_dataset_size({"train": 100, "val": 0, "test": DEFAULT_NUM_TEST}, allow_small=True)
    assert f"WARNING: the bundle ships a SMALLER dataset than the notebook's defaults (100 train images of the " \
           f"notebook's {PART4.images:,})" in capsys.readouterr().err


def test_build_on_a_sample_keeps_the_previous_bundle(course_env, tmp_path):
    """The tiny test dataset stands for a sample in CINIC10_DIR: refused, and the previous zip is left alone."""
    previous = tmp_path / "autograder.zip"
    previous.write_bytes(b"the bundle that works")
    with pytest.raises(ValueError, match="smaller than the notebook's defaults.*CINIC10_DIR"):
        build(tmp_path, train_images=100)
    assert previous.read_bytes() == b"the bundle that works"
    done = subprocess.run([sys.executable, "-m", "autograder.gradescope", "build", "--out", str(tmp_path),
                           "--train-images", "100", "--allow-small-dataset"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert previous.read_bytes() != b"the bundle that works" and "SMALLER" in done.stderr
