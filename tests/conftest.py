"""Shared fixtures: an isolated cache, a tiny synthetic dataset and a model trained on it.

The whole session runs with ``ECE662_CACHE_DIR``, ``CINIC10_DIR`` and
``ECE662_MODEL_DIR`` pointing into a temporary folder, so tests never touch
a user's cache, dataset or course model, and notebook kernels started by
tests see the same data and model.
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))  # the attack notebooks and stand-ins tests share

REPO = Path(__file__).resolve().parent.parent
SHARED_SAMPLE = REPO.parent / "shared" / "data" / "cinic10-sample"
# read at import, before `isolated_env` points CINIC10_DIR at the session's temporary folder
SAMPLE_CANDIDATES = [(f"${name}", Path(os.environ[name]).expanduser().resolve())
                     for name in ("ECE662_SAMPLE_DIR", "CINIC10_DIR") if os.environ.get(name)]
SAMPLE_CANDIDATES.append(("the default location", SHARED_SAMPLE))
TINY_PER_CLASS = (60, 20, 40)
TINY_EPOCHS = 12


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ece662")


@pytest.fixture(scope="session", autouse=True)
def isolated_env(session_dir):
    old = {k: os.environ.get(k) for k in ("ECE662_CACHE_DIR", "CINIC10_DIR", "ECE662_MODEL_DIR")}
    os.environ["ECE662_CACHE_DIR"] = str(session_dir / "cache")
    os.environ["CINIC10_DIR"] = str(session_dir / "no-dataset-yet")
    os.environ["ECE662_MODEL_DIR"] = str(session_dir / "no-model-yet")
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_root(session_dir):
    """A tiny synthetic dataset (600/200/400 images) in the CINIC-10 layout."""
    from ece662.datasets.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(session_dir / "tiny-synthetic", per_class=TINY_PER_CLASS, verbose=False)


@pytest.fixture(scope="session")
def course_env(tiny_root, session_dir):
    """CINIC10_DIR -> tiny synthetic data, ECE662_MODEL_DIR -> a model trained on it. Returns the model path."""
    from ece662 import data_utils, train
    from ece662.architecture import DEFAULT_CONFIG
    from ece662.pruning_helper import accuracy, effective_state_dict, save_checkpoint

    os.environ["CINIC10_DIR"] = str(tiny_root)
    os.environ["ECE662_MODEL_DIR"] = str(session_dir / "models")
    data = data_utils.get_CINIC10_data(verbose=False)
    model = train.train(data, epochs=TINY_EPOCHS, batch_size=64, verbose=False)
    meta = {"dataset": data_utils.active_dataset(),
            "test_accuracy": accuracy(model, data["X_test"], data["y_test"]), "training": {"epochs": TINY_EPOCHS}}
    return save_checkpoint(effective_state_dict(model), session_dir / "models" / "torch.model", DEFAULT_CONFIG, meta)


def _real_sample_root() -> tuple[Path | None, str]:
    """(folder, "") for the first of $ECE662_SAMPLE_DIR, $CINIC10_DIR, ../shared/data/cinic10-sample that holds
    real CINIC-10 images in train/, valid/ and test/ (no SYNTHETIC_DATA.txt); else (None, what was tried)."""
    from ece662.data_utils import is_synthetic

    tried = []
    for source, root in SAMPLE_CANDIDATES:
        if not all((root / split).is_dir() for split in ("train", "valid", "test")):
            tried.append(f"{root} ({source}): no train/valid/test folders")
        elif is_synthetic(root):
            tried.append(f"{root} ({source}): synthetic data")
        else:
            return root, ""
    return None, "; ".join(tried)


@pytest.fixture(scope="session")
def tf_course_env(course_env):
    """``tensorflow.model`` beside the torch tiny model: the same weights as a Keras archive, the same metadata.
    Skips when TensorFlow is not installed."""
    pytest.importorskip("ece662.keras_helper")
    from ece662 import keras_helper
    from ece662.grading.cells import canonical_state
    from ece662.keras_model import from_canonical
    from ece662.pruning_helper import load_model, model_path, read_checkpoint

    keras_model = from_canonical(canonical_state(load_model(course_env)))
    return keras_helper.save_model(keras_model, model_path("tensorflow"), meta=read_checkpoint(course_env)["meta"])


@pytest.fixture
def sample_root():
    """Real CINIC-10 images: $ECE662_SAMPLE_DIR, else $CINIC10_DIR, else the 4,000-image sample beside the project."""
    root, why = _real_sample_root()
    if root is None:
        pytest.skip(f"real CINIC-10 sample not found: {why}")
    return root
