"""``make demo`` (``python -m demo``): the main job end to end on the best data available.

1. data: real CINIC-10 when ``get_CINIC10_data()`` finds it (``$CINIC10_DIR`` or
   ``ece662/datasets/cinic-10``); otherwise the synthetic stand-in in ``build/demo/``, announced;
2. model: trains the course model unless one trained on this data exists, and evaluates it;
3. release: regenerates ``release/`` from ``assignment/`` with nbgrader;
4. solution: executes the solution notebook (``build/demo/solution-executed.ipynb``);
5. grading: autogrades example submissions with the grading pipeline and prints the grade table.
"""
import importlib.util
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from autograder.course.pipeline import grade
from autograder.course.release import release
from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, SOURCE_DIR
from demo.examples import write_examples
from ece662 import data_utils, pruning_helper
from ece662.frameworks import read_course_file
from ece662.datasets.synthetic import write_synthetic_dataset

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "build" / "demo"
DEMO_EPOCHS_SYNTHETIC = 8
DEMO_EXAMPLES = ["correct", "correct_kthvalue_manual", "blank", "wrong_incremental_fraction", "wrong_per_layer",
                 "wrong_structured_hits_linear", "wrong_finetune_drops_masks", "hostile_kills_kernel"]
MODES = ["torch"] + (["tensorflow"] if importlib.util.find_spec("tensorflow") else [])


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


def prepare_model(info: dict, mode: str) -> Path:
    """Train the course model of ``mode`` unless one trained on this very data exists."""
    from ece662 import train

    path = pruning_helper.model_path(mode)
    if path.is_file():
        trained_on = read_course_file(path, mode).get("meta", {}).get("dataset", {})
        if trained_on.get("content_id") == info["content_id"]:
            print(f"Model {path} was trained on this data; reusing it")
            return path
        print(f"Model {path} was trained on other data; retraining")
    epochs = DEMO_EPOCHS_SYNTHETIC if info["synthetic"] else 15
    train.main(["--mode", mode, "--epochs", str(epochs), "--out", str(path)])
    return path


def execute_solution(out_dir: Path = DEMO_DIR) -> tuple[Path, float]:
    """Run the source notebook (with solutions) top to bottom in ``out_dir``; returns the executed copy and seconds."""
    nb = nbformat.read(REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK, as_version=4)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(out_dir)}}).execute()
    seconds = time.monotonic() - started
    out = out_dir / "solution-executed.ipynb"
    nbformat.write(nb, out)
    return out, seconds


def print_solution_results(executed: Path, seconds: float) -> None:
    nb = nbformat.read(executed, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.get("id") in ("part1_code", "part2_code", "part3_compare")
                   for o in c.get("outputs", []))
    print(text)
    print(f"solution notebook executed in {seconds:.0f} s -> {executed}")


def main() -> None:
    banner("1. data")
    info = prepare_data()
    banner("2. models")
    data = data_utils.get_CINIC10_data()
    for mode in MODES:
        path = prepare_model(info, mode)
        model = pruning_helper.load_model(path, mode=mode)
        print(f"{mode}: ", end="")
        pruning_helper.test_model(model, [data["X_test"], data["y_test"]], mode=mode)
    banner("3. release")
    print(f"regenerated {release()} from {SOURCE_DIR}/ (git diff should be empty)")
    banner("4. solution notebook")
    print_solution_results(*execute_solution())
    banner("5. grading example submissions")
    submissions = DEMO_DIR / "submissions"
    write_examples(submissions, DEMO_EXAMPLES + (["tf_correct"] if "tensorflow" in MODES else []))
    grade(submissions, DEMO_DIR / "grading", workers=2)


if __name__ == "__main__":
    main()
