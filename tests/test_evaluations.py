"""The store of measurements (ece662/evaluations.py): keys by content, the shared folder, the kernel's lookup."""
import numpy as np
import pytest
import torch

from ece662 import evaluations, evidence, notebook_tests, registry
from ece662.checks import Evaluator
from ece662.evaluations import EvaluationStore, data_digest, measurement_key


@pytest.fixture
def data(course_env):
    from ece662 import data_utils

    return data_utils.get_CINIC10_data(verbose=False)


@pytest.fixture
def pruned(course_env):
    """The course model pruned by torch.nn.utils.prune (masks on), as a student's Part 1 leaves it."""
    from torch.nn.utils import prune

    from ece662.pruning_helper import load_model, model_path, prunable_layers

    model = load_model(model_path("torch"))
    prune.global_unstructured([(m, "weight") for _, m in prunable_layers(model)], prune.L1Unstructured, amount=0.5)
    return model


def test_store_shares_values_through_its_folder_and_ignores_unreadable_entries(tmp_path):
    first, second = EvaluationStore(tmp_path), EvaluationStore(tmp_path)
    calls = []
    assert first.measure("k", lambda: calls.append(1) or 0.4321) == 0.4321
    assert second.measure("k", lambda: calls.append(2) or 0.0) == 0.4321  # another worker: read, not computed
    assert calls == [1] and (first.made, second.reused) == (1, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]  # no partial files left behind
    (tmp_path / "bad").write_text("not a number")
    assert second.get("bad") is None and second.get("missing") is None
    assert EvaluationStore().measure("k", lambda: 0.5) == 0.5  # no folder: memory only


def test_key_changes_with_kind_images_labels_and_any_weight(data):
    X, y = data["X_test"][:50], data["y_test"][:50]
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(2, np.float32)}
    key = measurement_key("accuracy", data_digest(X, y), state)
    flipped = dict(state, w=state["w"].copy())
    flipped["w"][1, 2] = np.nextafter(flipped["w"][1, 2], np.float32(0))
    other_labels = y.copy()
    other_labels[0] = (other_labels[0] + 1) % 10
    assert len({key, measurement_key("loss", data_digest(X, y), state),
                measurement_key("accuracy", data_digest(X[:49], y[:49]), state),
                measurement_key("accuracy", data_digest(X, other_labels), state),
                measurement_key("accuracy", data_digest(X, y), flipped),
                measurement_key("accuracy", data_digest(X, y), {"w": state["w"].reshape(3, 2), "b": state["b"]})}) == 6
    torch_state = {k: torch.from_numpy(v) for k, v in state.items()}
    assert measurement_key("accuracy", data_digest(X, y), torch_state) == key


def test_the_kernels_key_is_the_verifiers_key(pruned, data, tmp_path):
    """A pruned model as the kernel sees it (masks on) and as the verifier reads it back from its evidence file."""
    from ece662.pruning_helper import canonical_weights

    item = registry.PART1_MODEL
    evidence.write_model(tmp_path, item, notebook_tests.canonical_state(pruned), "torch")
    shapes = {k: v.shape for k, v in notebook_tests.canonical_state(pruned).items()}
    recorded, _ = evidence.read_model(tmp_path, item, shapes)
    images = data_digest(data["X_test"], data["y_test"])
    kernel = canonical_weights(pruned)  # what test_model hashes
    assert measurement_key("accuracy", images, kernel) == measurement_key(
        "accuracy", images, {k: torch.from_numpy(v) for k, v in recorded.items()})


def test_graded_test_model_returns_the_graders_measurement_of_exactly_that_model(pruned, data, tmp_path,
                                                                                 monkeypatch, capsys):
    from ece662.pruning_helper import accuracy, load_model, model_path, test_model

    test_data = [data["X_test"], data["y_test"]]
    real = accuracy(pruned, *test_data)
    measure = Evaluator(*test_data, data["X_train"][:10], data["y_train"][:10], EvaluationStore(tmp_path))
    assert measure.accuracy(notebook_tests.canonical_state(pruned)) == pytest.approx(real, abs=0.0025)
    assert test_model(pruned, test_data) == pytest.approx(real, abs=1e-9)  # not grading: computed

    monkeypatch.setenv(evaluations.ENV_DIR, str(tmp_path))
    (entry,) = [p for p in tmp_path.iterdir()]
    entry.write_text("0.0123")  # a value no evaluation gives: proof that it was looked up
    assert test_model(pruned, test_data) == 0.0123
    assert "Test Acc: 0.0123" in capsys.readouterr().out
    dense = load_model(model_path("torch"))
    assert test_model(dense, test_data) == pytest.approx(accuracy(dense, *test_data))  # not measured: computed
    assert test_model(pruned, [data["X_test"][:100], data["y_test"][:100]]) == pytest.approx(
        accuracy(pruned, data["X_test"][:100], data["y_test"][:100]))  # other images: computed


def test_negative_and_positive_zeros_are_the_same_weights(data):
    """torch.nn.utils.prune's masks leave -0.0 where a negative weight was; writing 0.0 gives the same model."""
    images = data_digest(data["X_test"][:10], data["y_test"][:10])
    masked = {"w": np.array([-0.0, 1.5, -2.0], np.float32)}
    written = {"w": np.array([0.0, 1.5, -2.0], np.float32)}
    assert measurement_key("accuracy", images, masked) == measurement_key("accuracy", images, written)
