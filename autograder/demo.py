"""``make demo``: the main job end to end on the best data available.

Uses real CINIC-10 when ``get_CINIC10_data()`` finds it (``$CINIC10_DIR`` or
``ece662/datasets/cinic-10``); otherwise writes the synthetic stand-in to
``build/demo/`` and says so. Trains the course model if there is none for
that data, and evaluates it.
"""
import os
from pathlib import Path

from ece662 import data_utils, pruning_helper
from ece662.datasets.synthetic import write_synthetic_dataset

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "build" / "demo"
DEMO_EPOCHS_SYNTHETIC = 8


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def prepare_data() -> dict:
    """Point CINIC10_DIR at real CINIC-10 if present, else at a synthetic stand-in; return its description."""
    try:
        info = data_utils.describe_dataset()
        if not info["synthetic"]:
            print(f"Using real CINIC-10 at {data_utils.dataset_root()}")
            return info
    except data_utils.DatasetError:
        pass
    root = DEMO_DIR / "synthetic-cinic10"
    print("Real CINIC-10 not found: using SYNTHETIC data (not CINIC-10) in", root)
    if not (root / data_utils.SYNTHETIC_MARKER).is_file():
        write_synthetic_dataset(root, size="small")
    os.environ["CINIC10_DIR"] = str(root)
    os.environ["ECE662_MODEL_DIR"] = str(DEMO_DIR / "models")
    return data_utils.describe_dataset()


def prepare_model(info: dict) -> Path:
    """Train the course model unless one trained on this very data exists."""
    from ece662 import train

    path = pruning_helper.model_path("torch")
    if path.is_file():
        trained_on = pruning_helper.read_checkpoint(path).get("meta", {}).get("dataset", {})
        if trained_on.get("content_id") == info["content_id"]:
            print(f"Model {path} was trained on this data; reusing it")
            return path
        print(f"Model {path} was trained on other data; retraining")
    epochs = DEMO_EPOCHS_SYNTHETIC if info["synthetic"] else 15
    train.main(["--epochs", str(epochs), "--out", str(path)])
    return path


def main() -> None:
    banner("1. data")
    info = prepare_data()
    banner("2. model")
    path = prepare_model(info)
    banner("3. evaluate")
    data = data_utils.get_CINIC10_data()
    model = pruning_helper.load_model(path, mode="torch")
    pruning_helper.test_model(model, [data["X_test"], data["y_test"]], mode="torch")


if __name__ == "__main__":
    main()
