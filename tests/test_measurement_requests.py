"""A graded kernel's measurement requests and the worker's service that answers them."""
import os
import time

import pytest

from autograder.measurement_service import MeasurementService
from autograder.verify import TrustedData
from ece662 import evaluations, measurement_requests
from ece662.evaluations import EvaluationStore
from ece662.measurement_requests import REFUSED


@pytest.fixture
def graded_kernel(course_env, tiny_root, tmp_path, monkeypatch):
    """(service, store folder, data): a running service and the environment of a graded kernel."""
    from ece662 import data_utils

    store = tmp_path / "store"
    trusted = TrustedData(course_env.parent, tiny_root, EvaluationStore(store))
    monkeypatch.setenv(evaluations.ENV_DIR, str(store))
    monkeypatch.setenv(measurement_requests.ENV_DIR, str(tmp_path / "requests"))
    with MeasurementService(tmp_path / "requests", trusted, limit=3) as service:
        yield service, store, data_utils.get_CINIC10_data(verbose=False)


def _model():
    from torch.nn.utils import prune

    from ece662.pruning_helper import load_model, model_path, prunable_layers

    model = load_model(model_path("torch"))
    prune.global_unstructured([(m, "weight") for _, m in prunable_layers(model)], prune.L1Unstructured, amount=0.37)
    return model


def test_the_grader_measures_what_the_kernel_asks_and_keeps_it_for_the_verifier(graded_kernel):
    from ece662.notebook_tests import canonical_state
    from ece662.pruning_helper import accuracy, test_model

    service, store, data = graded_kernel
    model = _model()
    value = test_model(model, [data["X_test"], data["y_test"]])
    assert value == pytest.approx(accuracy(model, data["X_test"], data["y_test"]), abs=1e-9)
    assert (service.answered, service.refused) == (1, 0)
    key = evaluations.measurement_key("accuracy", evaluations.data_digest(data["X_test"], data["y_test"]),
                                      canonical_state(model))
    assert EvaluationStore(store).get(key) == value  # where the verifier will find it


def test_requests_for_other_images_or_over_the_limit_are_measured_by_the_kernel(graded_kernel):
    from ece662.pruning_helper import accuracy, test_model

    service, store, data = graded_kernel
    model = _model()
    few = [data["X_test"][:50], data["y_test"][:50]]
    assert test_model(model, few) == pytest.approx(accuracy(model, *few))
    assert (service.answered, service.refused) == (0, 1)
    assert not [p for p in store.glob("*") if not p.name.startswith(".")]  # nothing stored for them


def test_malformed_requests_and_planted_links_are_refused_without_following_them(graded_kernel, tmp_path):
    service, store, data = graded_kernel
    folder = tmp_path / "requests"
    images = service.trusted.evaluator().digests["accuracy"]
    victim = tmp_path / "victim"
    os.symlink(victim, folder / f"request-{images}-evil{REFUSED}")  # a link where the marker goes
    (folder / f"request-{images}-evil.safetensors").write_bytes(b"\0" * 64)
    os.symlink("/etc/passwd", folder / f"request-{images}-link.safetensors")
    os.mkfifo(folder / f"request-{images}-fifo.safetensors")
    deadline = time.monotonic() + 30
    while service.refused < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (service.answered, service.refused) == (0, 3)
    assert not victim.exists() and (folder / f"request-{images}-link{REFUSED}").is_file()
    from ece662.pruning_helper import accuracy, test_model

    model = _model()  # the limit (3) is reached: the kernel measures itself
    assert test_model(model, [data["X_test"], data["y_test"]]) == pytest.approx(
        accuracy(model, data["X_test"], data["y_test"]))
    assert (service.answered, service.refused) == (0, 4)
