"""load_model / training: seed calls, metadata, determinism and clear errors for bad files."""
import warnings

import pytest
import torch

from ece662 import data_utils, train
from ece662.model import SmallCNN
from ece662.pruning_helper import ModelFileError, load_model, model_path, read_checkpoint


def test_seed_calls_verbatim(course_env, capsys):
    from ece662.data_utils import get_CINIC10_data
    from ece662.pruning_helper import load_model, test_model

    data = get_CINIC10_data()
    test_data = [data["X_test"], data["y_test"]]
    mode = "torch"
    model = load_model(str(course_env), mode=mode)
    acc = test_model(model, test_data, mode=mode)
    assert isinstance(model, SmallCNN) and not model.training
    assert f"Test Acc: {acc:.4f}" in capsys.readouterr().out
    assert acc == pytest.approx(read_checkpoint(course_env)["meta"]["test_accuracy"])


def test_checkpoint_records_what_it_was_trained_on(course_env):
    meta = read_checkpoint(course_env)["meta"]
    assert meta["dataset"]["synthetic"] is True and meta["dataset"]["sizes"]["train"] == 600
    assert 0 <= meta["test_accuracy"] <= 1 and meta["training"]["epochs"] > 0
    assert sum(p.numel() for p in load_model(course_env).parameters()) == 582_026


def test_training_is_deterministic(tiny_root):
    data = data_utils.get_CINIC10_data(root=tiny_root, verbose=False)
    a = train.train(data, epochs=1, batch_size=64, seed=3, verbose=False).state_dict()
    b = train.train(data, epochs=1, batch_size=64, seed=3, verbose=False).state_dict()
    c = train.train(data, epochs=1, batch_size=64, seed=4, verbose=False).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_train_command_writes_a_loadable_checkpoint(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CINIC10_DIR", str(tiny_root))
    out = tmp_path / "m" / "torch.model"
    train.main(["--epochs", "1", "--out", str(out)])
    assert "Test Acc:" in capsys.readouterr().out
    assert isinstance(load_model(out), SmallCNN)
    assert not list(out.parent.glob("*.tmp"))


def test_model_path_is_inside_the_package_unless_overridden(monkeypatch):
    monkeypatch.delenv("ECE662_MODEL_DIR")
    assert model_path("torch").as_posix().endswith("ece662/models/torch.model")


def test_missing_file_says_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m ece662.train"):
        load_model(tmp_path / "torch.model")


@pytest.mark.parametrize("content", [b"", b"definitely not a checkpoint", "truncated"])
def test_corrupt_file_names_the_file(course_env, tmp_path, content):
    bad = tmp_path / "torch.model"
    bad.write_bytes(course_env.read_bytes()[:5000] if content == "truncated" else content)
    with pytest.raises(ModelFileError) as err:
        load_model(bad)
    assert str(bad) in str(err.value) and "python -m ece662.train" in str(err.value)


def test_wrong_file_is_rejected_clearly(course_env, tmp_path):
    bare = tmp_path / "bare.pt"
    torch.save(load_model(course_env).state_dict(), bare)
    with pytest.raises(ModelFileError, match="not an ece662 checkpoint"):
        load_model(bare)
    other = tmp_path / "other.model"
    ckpt = read_checkpoint(course_env)
    ckpt["state_dict"] = {"fc.weight": torch.zeros(2, 2)}
    torch.save(ckpt, other)
    with pytest.raises(ModelFileError, match="does not match the course architecture"):
        load_model(other)


def test_pickled_code_is_refused(tmp_path):
    evil = tmp_path / "evil.model"
    torch.save({"format": "ece662-checkpoint", "x": object()}, evil)
    with pytest.raises(ModelFileError):
        load_model(evil)


def test_tensorflow_mode_is_not_supported_yet(course_env):
    with pytest.raises(NotImplementedError, match="not supported yet"):
        load_model(course_env, mode="tensorflow")


def test_warns_when_the_data_in_use_differs(course_env, sample_root):
    data_utils.get_CINIC10_data(root=sample_root, verbose=False)
    with pytest.warns(UserWarning, match="trained on synthetic"):
        load_model(course_env)
    data_utils.get_CINIC10_data(verbose=False)  # back to the data the model was trained on
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(course_env)
