"""``make bench``: speed and memory of the assignment at full CINIC-10 size, on synthetic data.

    python -m benchmarks [--size full|small|tiny] [--work build/bench] [--report-dir benchmarks]

Writes a full-size synthetic dataset (90,000 images per split, NOT CINIC-10)
with the project's generator, trains a quick model on it, then measures and
prints P1 evaluation throughput (P1tf: the same in TensorFlow mode, when
TensorFlow is installed), P2 dataset loading, P3 peak memory, P5 latency of
pruned models and P4 notebook and grading times: the phases of one autograde
and P4d, our grading pipeline with 1 and 2 workers against stock nbgrader on
the same submissions. It writes ``report.json`` and ``REPORT.md`` (each figure
beside its goal) to ``--report-dir``. Everything else stays under ``--work``;
the dataset is reused by later runs.
"""
import argparse
import os
import time
from pathlib import Path

from . import grading, measures
from .report import SETS, goals, p4d_lines, write_report

REPO = Path(__file__).resolve().parent.parent


def shown_path(path) -> str:
    """``path`` relative to the repository when it lies inside it (reports are committed)."""
    path = Path(path)
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def prepare(work: Path, size: str, train_images: int, epochs: int) -> dict:
    """Synthetic data, an isolated cache and a quickly trained model under ``work``; the environment points there."""
    from ece662 import data_utils
    from ece662.datasets.synthetic import write_synthetic_dataset
    from ece662.pruning_helper import model_path

    root = work / f"synthetic-{size}"
    os.environ.update(CINIC10_DIR=str(root), ECE662_CACHE_DIR=str(work / "cache"),
                      ECE662_MODEL_DIR=str(work / "models"))
    started = time.perf_counter()
    if not (root / data_utils.SYNTHETIC_MARKER).is_file():
        print(f"writing the {size} synthetic dataset (not CINIC-10) to {root}")
        write_synthetic_dataset(root, size=size)
    setup = {"dataset": "synthetic (not CINIC-10)", "root": str(root), "generate_s": time.perf_counter() - started}
    info = data_utils.describe_dataset(root)
    setup.update(sizes=info["sizes"], images=sum(info["sizes"].values()), train_images=train_images, epochs=epochs)
    setup["model"] = str(model_path("torch"))
    return setup


def train_model(setup: dict) -> None:
    """Train the bench model on a class-balanced prefix of the training split, unless one for this data exists."""
    from ece662 import data_utils, train
    from ece662.architecture import DEFAULT_CONFIG
    from ece662.pruning_helper import accuracy, effective_state_dict, model_path, read_checkpoint, save_checkpoint

    path = model_path("torch")
    data = data_utils.get_CINIC10_data(num_training=setup["train_images"], verbose=False)
    if path.is_file() and read_checkpoint(path)["meta"]["dataset"] == data_utils.active_dataset():
        return
    model = train.train(data, epochs=setup["epochs"])
    acc = accuracy(model, data["X_test"], data["y_test"])
    meta = {"dataset": data_utils.active_dataset(), "test_accuracy": acc,
            "training": {"epochs": setup["epochs"], "train_images": setup["train_images"], "purpose": "benchmark"}}
    save_checkpoint(effective_state_dict(model), path, DEFAULT_CONFIG, meta)
    print(f"bench model: test accuracy {acc:.4f} on {len(data['y_test'])} images")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small", "full"], default="full")
    parser.add_argument("--work", default=str(REPO / "build" / "bench"))
    parser.add_argument("--report-dir", default=str(REPO / "benchmarks"))
    parser.add_argument("--train-images", type=int, default=20000, help="training images for the bench model")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--grading-submissions", type=int, default=len(grading.GRADING_EXAMPLES),
                        help="submissions graded by each side of P4d (at most %(default)s)")
    parser.add_argument("--grading-rounds", type=int, default=1,
                        help="rounds of P4d's alternating runs; each side keeps its best")
    args = parser.parse_args(argv)

    from ece662 import data_utils
    from ece662.pruning_helper import load_model, model_path

    started = time.perf_counter()
    work = Path(args.work).resolve()
    setup = prepare(work, args.size, args.train_images, args.epochs)
    print(f"data: {setup['images']:,} synthetic images in {setup['root']}")
    figures = {}

    print("\nP2 dataset load ...", flush=True)
    figures["P2"] = measures.dataset_load(Path(setup["root"]))
    train_model(setup)
    print(figures["P2"])

    print("\nP1 evaluation throughput ...", flush=True)
    data = data_utils.get_CINIC10_data(num_test=None, verbose=False)
    figures["P1"] = measures.eval_throughput(load_model(model_path("torch")), data["X_test"], data["y_test"])
    del data
    print(figures["P1"])

    print("\nP1tf evaluation throughput, TensorFlow mode ...", flush=True)
    figures["P1tf"] = measures.tf_eval_throughput()
    print(figures["P1tf"])

    print("\nP3 peak memory ...", flush=True)
    figures["P3"] = measures.peak_memory()
    print(figures["P3"])

    print("\nP5 latency of pruned models ...", flush=True)
    figures["P5"] = measures.pruned_latency(model_path("torch"))
    print(figures["P5"])

    print("\nP4 notebook and grading, P4d against stock nbgrader ...", flush=True)
    figures["P4"] = grading.grading_times(work / "grading", args.grading_submissions, args.grading_rounds)
    print({k: v for k, v in figures["P4"].items() if k not in SETS})
    print("\n".join(line for name in SETS for line in p4d_lines(figures["P4"], name)))

    setup["total_s"] = time.perf_counter() - started
    setup.update(root=shown_path(setup["root"]), model=shown_path(setup["model"]))  # no machine paths in reports
    json_path, md_path = write_report(figures, setup, Path(args.report_dir))
    print()
    for row in goals(figures):
        print(f"{row['id']:4s} {'ok ' if row['met'] else 'NO '} {row['what']}: {row['measured']} (goal {row['goal']})")
    print(f"\nreport: {json_path}\nsummary: {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
