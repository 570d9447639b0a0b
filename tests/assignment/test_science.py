"""What the notebook tells students they will see holds on real images (the CINIC-10 sample), in both frameworks.

A course model is trained on the sample as ``make model`` trains one on CINIC-10 (10 epochs here), then:

* the premises the notebook states are checked with paired intervals (``autograder/course/profile.py``): the zeroed
  and the removed filter-pruned models predict the same, one-shot pruning to Part 4's target loses accuracy beyond
  the noise, and fine-tuning with the stated recipe wins it back beyond the noise; at Part 5's budget, after the
  recipe, the sensitivity-guided choice of filters and the uniform one end within the paired interval of each other,
  and the uniform compact model within that of the dense model;
* the claims of the notebook's text that carry a number (``CLAIMS``: a pattern of the source notebook's markdown,
  model answers included, whose groups are the numbers it states) are read from the notebook and compared with a
  run on the sample. A reworded claim fails until this test reads the new sentence. Timings are not checked here
  (the benchmark measures them).

Skipped without the sample.
"""
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from autograder.reference import solution
from autograder.course.profile import part5, premises
from ece662 import budget, data_utils, train
from ece662.grading.registry import PART4, PART5_BUDGET
from ece662.paired import paired_interval

SAMPLE_EPOCHS = 10
MODES = ["torch"] + (["tensorflow"] if importlib.util.find_spec("tensorflow") else [])
NOTEBOOK = Path(__file__).resolve().parents[2] / "assignment" / "pruning" / "pruning.ipynb"
ABOUT = 0.02  # "about N%": within 2 percentage points
PART1_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)

# name: (pattern of the notebook's text, the measured figure or check it must agree with; see `disagreements`)
CLAIMS = {
    "compounding": r"eight calls with `amount=0\.1` end at (\d+)% sparsity",
    "schedule": r"with (\d+) epochs, ([\d.]+)% after the first and ([\d.]+)% after the second",
    "macs_removed": r"leaves the model ([\d.]+)x fewer multiply-accumulates",
    "widths_removed": r"the layers that remain are narrow \((\d+) to (\d+) filters\)",
    "filters_cost": r"removing 80% of the filters without any retraining loses far more accuracy than pruning 80% of "
                    r"the weights one by one",
    "part1_flat": r"the accuracy stays at the dense model's level all the way to 80% \(differences of at most about "
                  r"(\d+) point, every interval includes 0\)",
    "macs_saved": r"saves far less work: about (\d+)% of the multiply-accumulates",
    "fc1_share": r"the first Linear layer, which holds about (\d+)% of the weights",
    "fc1_sparsity": r"emptied the big first Linear layer \(about (\d+)% zero at 80%\)",
    "conv1_sparsity": r"spared the first conv layer \(under (\d+)% zero\)",
    "fc1_robust": r"the first Linear layer alone keeps its accuracy even at 98%",
    "conv1_sensitive": r"the first conv layer \([^)]*\) loses accuracy fastest when pruned alone",
    "one_shot_loss": r"one-shot pruning to 95% lost about (\d+) to (\d+) points against the dense model",
    "part5_filter_cost": r"8 filters of the first conv layer are ([\d.]+)% of the dense model's MACs \([^)]*\), 8 "
                         r"filters of the second ([\d.]+)%, 8 of the third ([\d.]+)%",
    "part5_uniform": r"rounded up to a multiple of 8: \((\d+), (\d+), (\d+)\) at (\d+)%\)",
    "part5_cut_cost": r"the uniform choice lost about (\d+) point against the dense model before any training, inside "
                      r"the paired interval, and after the recipe it was still within the paired interval of the dense "
                      r"model",
    "part5_guided": r"came out as the uniform one at (\d+)%",
    "part5_narrow": r"in TensorFlow \(8, 40, 48\) lost about (\d+) points against the uniform choice before training, "
                    r"beyond the interval, and ended within the interval of it after the recipe",
    "part5_scan_conv1": r"TensorFlow: conv1 at 8 filters lost about (\d+) points",
}
NARROW = (8, 40, 48)  # the first conv layer cut to its minimum (part5_narrow)


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


@pytest.fixture
def sample_data(sample_models, monkeypatch):
    """The sample's data, with the sample's course models in place."""
    folder, root = sample_models
    monkeypatch.setenv("ECE662_MODEL_DIR", str(folder))
    monkeypatch.setattr(data_utils, "_active_dataset", data_utils.active_dataset())  # restored after the test
    return data_utils.get_CINIC10_data(root=root, verbose=False)


_PART5: dict = {}  # mode -> profile.part5's figures: one scan and one recipe run per mode for both tests


def part5_figures(mode: str, data: dict) -> dict:
    if mode not in _PART5:
        _PART5[mode] = part5(mode, data)
    return _PART5[mode]


@pytest.mark.parametrize("mode", MODES)
def test_the_notebooks_premises_hold_on_real_images(sample_data, mode):
    found = premises(mode, sample_data, part5_figures(mode, sample_data))
    assert len(found) == 5
    for premise in found:
        assert premise.holds, f"{premise.statement}: {premise.figures}"


def stated(name: str) -> list[float]:
    """The numbers the notebook states in claim ``name`` (none for a claim without numbers)."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    text = " ".join(" ".join("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown")
    match = re.search(CLAIMS[name], text)
    assert match, (f"the notebook no longer says /{CLAIMS[name]}/ ({name}): check what it says now on the sample "
                   "and update CLAIMS")
    return [float(group) for group in match.groups()]


def measure(mode: str, data: dict) -> dict:
    """What a student's run of the notebook shows on ``data``, for the claims of ``CLAIMS``."""
    from ece662.compaction import remove_zero_filters
    from ece662.plots import correct_on, layer_sensitivity, measure_curve
    from ece662.frameworks import canonical_state, helpers
    from ece662.weights import count_macs

    helper, reference = helpers(mode), solution(mode)
    prune_to, prune_filters = reference.prune_unstructured_to, reference.prune_filters
    test = [data["X_test"], data["y_test"]]

    def load():
        return helper.load_model(helper.model_path(mode), mode=mode)

    def pruned(prune, level):
        model = load()
        prune(model, level)
        return model

    dense, part1 = load(), {level: pruned(prune_to, level) for level in PART1_LEVELS}
    curve = measure_curve(part1, dense, test)
    filters80 = pruned(prune_filters, 0.8)
    removed = canonical_state(remove_zero_filters(filters80))
    dense_state, sparse_state = canonical_state(dense), canonical_state(part1[0.8])
    weights = {name: value for name, value in dense_state.items() if name.endswith("weight")}
    sensitivity = layer_sensitivity(load, test, (0.9, 0.98))
    figures = {
        "part1": [curve[level] for level in PART1_LEVELS],
        "macs_removed": count_macs(dense_state)[0] / count_macs(removed)[0],
        "widths_removed": [removed[f"features.{i}.weight"].shape[0] for i in (0, 3, 6)],
        "filters_vs_unstructured": paired_interval(correct_on(filters80, test), correct_on(part1[0.8], test)),
        "macs_saved": 1 - count_macs(sparse_state)[1] / count_macs(dense_state)[0],
        "fc1_share": weights["classifier.1.weight"].size / sum(w.size for w in weights.values()),
        "fc1_sparsity": float((sparse_state["classifier.1.weight"] == 0).mean()),
        "conv1_sparsity": float((sparse_state["features.0.weight"] == 0).mean()),
        "sensitivity": [list(row.values()) for row in sensitivity.values()],  # layers in order: [90%, 98%]
        "dense": curve[0.0]["accuracy"],
        "one_shot": paired_interval(correct_on(pruned(prune_to, PART4.target), test), correct_on(dense, test)),
    }
    figures["part5"] = part5_figures(mode, data)
    if mode == "tensorflow":
        figures["part5_narrow"] = compact_before_and_after(mode, data, NARROW)
    if mode == "torch":
        from torch.nn.utils import prune

        repeated = load()
        for _ in range(8):
            prune.global_unstructured([(layer, "weight") for _, layer in helper.prunable_layers(repeated)],
                                      pruning_method=prune.L1Unstructured, amount=0.1)
        figures["compounding"] = helper.global_sparsity(repeated)
    return figures


def compact_before_and_after(mode: str, data: dict, widths) -> tuple:
    """Per-test-image correctness of the compact model keeping ``widths`` filters, before and after the recipe."""
    from ece662.compaction import remove_zero_filters
    from ece662.frameworks import helpers
    from ece662.plots import correct_on

    reference, helper, test = solution(mode), helpers(mode), [data["X_test"], data["y_test"]]
    model = helper.load_model(helper.model_path(mode), mode=mode)
    reference.keep_filters(model, widths)
    compact = remove_zero_filters(model)
    before = correct_on(compact, test)
    reference.finetune(compact, PART4.epochs, data["X_train"][:PART4.images], data["y_train"][:PART4.images],
                       PART4.lr, PART4.momentum)
    return before, correct_on(compact, test)


def disagreements(m: dict) -> list[str]:
    """Each claim of ``CLAIMS`` that the measured figures ``m`` contradict, as a line naming both."""
    wrong = []

    def check(name, holds, measured):
        if not holds:
            wrong.append(f"{name}: the notebook says /{CLAIMS[name]}/ with {stated(name)}; measured {measured}")

    if "compounding" in m:
        check("compounding", round(m["compounding"] * 100) == stated("compounding")[0], m["compounding"])
    epochs, first, second = stated("schedule")
    steps = [PART4.target * k / (PART4.epochs - 1) * 100 for k in (1, 2)]
    check("schedule", epochs == PART4.epochs and [first, second] == pytest.approx(steps), (PART4.epochs, steps))
    check("macs_removed", round(m["macs_removed"], 1) == stated("macs_removed")[0], m["macs_removed"])
    check("widths_removed", stated("widths_removed") == [min(m["widths_removed"]), max(m["widths_removed"])],
          m["widths_removed"])
    check("filters_cost", m["filters_vs_unstructured"][2] < 0, m["filters_vs_unstructured"])
    largest = max(abs(p["difference"]) for p in m["part1"])
    check("part1_flat", all(p["low"] <= 0 <= p["high"] for p in m["part1"])
          and largest <= stated("part1_flat")[0] / 100 + 0.005, m["part1"])
    for name in ("macs_saved", "fc1_share", "fc1_sparsity"):
        check(name, abs(m[name] - stated(name)[0] / 100) <= ABOUT, m[name])
    check("conv1_sparsity", m["conv1_sparsity"] < stated("conv1_sparsity")[0] / 100, m["conv1_sparsity"])
    at90, at98 = np.array(m["sensitivity"]).T
    check("fc1_robust", abs(at98[3] - m["dense"]) <= ABOUT, (at98[3], m["dense"]))
    check("conv1_sensitive", at90.argmin() == 0 and at98.argmin() == 0, m["sensitivity"])
    full, cost = budget.FULL_WIDTHS, []
    for index in range(len(full)):
        fewer = list(full)
        fewer[index] -= 8
        cost.append(round((1 - budget.macs_fraction(fewer)) * 100, 1))
    check("part5_filter_cost", stated("part5_filter_cost") == cost, cost)
    uniform = budget.uniform_widths(PART5_BUDGET)
    check("part5_uniform", stated("part5_uniform") == [*uniform, PART5_BUDGET * 100], uniform)
    p5 = m["part5"]["correct"]
    before, after = paired_interval(p5["uniform"], p5["dense"]), paired_interval(p5["uniform_tuned"], p5["dense"])
    check("part5_cut_cost", abs(-before[0] - stated("part5_cut_cost")[0] / 100) <= ABOUT
          and before[1] <= 0 <= before[2] and after[1] <= 0 <= after[2], (before, after))
    check("part5_guided", m["part5"]["guided"] == uniform and stated("part5_guided") == [PART5_BUDGET * 100],
          (m["part5"]["guided"], uniform))
    if "part5_narrow" in m:
        narrow_before = paired_interval(m["part5_narrow"][0], p5["uniform"])
        narrow_after = paired_interval(m["part5_narrow"][1], p5["uniform_tuned"])
        scan_loss = m["part5"]["dense_val"] - m["part5"]["scan"]["conv1"][8][1]
        check("part5_scan_conv1", abs(scan_loss - stated("part5_scan_conv1")[0] / 100) <= ABOUT, scan_loss)
        check("part5_narrow", abs(-narrow_before[0] - stated("part5_narrow")[0] / 100) <= ABOUT
              and narrow_before[2] < 0 and narrow_after[1] <= 0 <= narrow_after[2], (narrow_before, narrow_after))
    low, high = stated("one_shot_loss")
    check("one_shot_loss", low - 0.5 <= -m["one_shot"][0] * 100 <= high + 0.5 and m["one_shot"][2] < 0, m["one_shot"])
    return wrong


@pytest.mark.parametrize("mode", MODES)
def test_the_numbers_the_notebook_states_are_what_real_images_give(sample_data, mode):
    wrong = disagreements(measure(mode, sample_data))
    assert not wrong, "\n".join(wrong)
