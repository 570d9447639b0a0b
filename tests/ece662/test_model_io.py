"""load_model / save_model / training: seed calls, students' own files, determinism, one-sentence errors."""
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from ece662 import data_utils, train
from ece662.model import SmallCNN
from ece662.pruning_helper import (
    ModelFileError,
    effective_state_dict,
    effective_weight,
    global_sparsity,
    load_model,
    model_path,
    prunable_layers,
    read_checkpoint,
    save_model,
)


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


def _pruned_copy(path, level=0.8):
    model = load_model(path)
    with torch.no_grad():
        prune.global_unstructured([(m, "weight") for _, m in prunable_layers(model)], prune.L1Unstructured,
                                  amount=level)
    return model


def _error_text(path, **kwargs) -> str:
    with pytest.raises(ModelFileError) as err:
        load_model(path, **kwargs)
    text = str(err.value)
    assert str(path) in text, "the message names the file"
    assert "\x1b" not in text and "weights_only set to False" not in text and "Re-running" not in text
    assert "\n" not in text and text.endswith("."), "one clean sentence"
    return text


def test_plain_state_dict_of_the_course_architecture_loads(course_env, tmp_path):
    course = load_model(course_env)
    plain = tmp_path / "plain.pt"
    torch.save(course.state_dict(), plain)
    loaded = load_model(plain)
    assert isinstance(loaded, SmallCNN) and not loaded.training
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in course.state_dict().items())


def test_training_checkpoint_with_model_state_dict_loads(course_env, tmp_path):
    course = load_model(course_env)
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "model_state_dict": course.state_dict(), "optimizer_state_dict": {}}, path)
    assert torch.equal(load_model(path).classifier[1].weight, course.classifier[1].weight)


def test_pruned_state_dict_is_folded_with_its_sparsity(course_env, tmp_path):
    pruned = _pruned_copy(course_env)
    path = tmp_path / "pruned.pt"
    torch.save(pruned.state_dict(), path)
    assert any(k.endswith("weight_mask") for k in torch.load(path, weights_only=True))
    loaded = load_model(path)
    assert global_sparsity(loaded) == pytest.approx(global_sparsity(pruned)) == pytest.approx(0.8, abs=1e-5)
    assert all(torch.equal(effective_weight(a), effective_weight(b))
               for (_, a), (_, b) in zip(prunable_layers(pruned), prunable_layers(loaded)))


def test_save_model_round_trips_a_pruned_model(course_env, tmp_path):
    pruned = _pruned_copy(course_env)
    path = save_model(pruned, tmp_path / "sub" / "mine.model")
    assert read_checkpoint(path)["format"] == "ece662-checkpoint"
    loaded = load_model(path)
    assert global_sparsity(loaded) == pytest.approx(global_sparsity(pruned))
    assert torch.equal(effective_state_dict(loaded)["classifier.1.weight"],
                       effective_state_dict(pruned)["classifier.1.weight"])


class OwnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))

    def forward(self, x):
        return self.body(x)


def test_own_architecture_is_saved_as_weights_and_refused_for_grading(tmp_path, capsys):
    path = save_model(OwnNet(), tmp_path / "own.pt")
    assert "OwnNet()" in capsys.readouterr().out
    text = _error_text(path)
    assert "another architecture" in text and "graded parts use the course model" in text
    assert "load_state_dict(torch.load(path, weights_only=True))" in text
    OwnNet().load_state_dict(torch.load(path, weights_only=True))  # the advice works


def test_whole_pickled_model_is_refused_unless_trusted(course_env, tmp_path):
    pruned = _pruned_copy(course_env)
    path = tmp_path / "whole.pt"
    torch.save(pruned, path)
    text = _error_text(path)
    assert "torch.save(model)" in text and "save_model(model, path)" in text and "trust_pickle=True" in text
    assert "ece662.model.SmallCNN" in text
    trusted = load_model(path, trust_pickle=True)
    assert isinstance(trusted, SmallCNN) and global_sparsity(trusted) == pytest.approx(global_sparsity(pruned))
    own = tmp_path / "own-whole.pt"
    torch.save(OwnNet(), own)
    assert isinstance(load_model(own, trust_pickle=True), OwnNet)  # for exploration, on request only


def test_pickled_code_is_refused(tmp_path):
    evil = tmp_path / "evil.model"
    torch.save({"format": "ece662-checkpoint", "x": object()}, evil)
    assert "trust_pickle=True" in _error_text(evil)


@pytest.mark.parametrize("case, expected", [
    ("empty", "is empty (0 bytes)"),
    ("random bytes", "is not a PyTorch model file"),
    ("truncated", "is an incomplete PyTorch file"),
    ("list", "holds a list that is not a model's weights"),
])
def test_unusable_file_gets_one_sentence_naming_the_fix(course_env, tmp_path, case, expected):
    bad = tmp_path / "torch.model"
    if case == "list":
        torch.save([torch.zeros(2)], bad)
    else:
        content = {"empty": b"", "random bytes": bytes(range(256)) * 8, "truncated": course_env.read_bytes()[:5000]}
        bad.write_bytes(content[case])
    text = _error_text(bad)
    assert expected in text and "save_model(model, path)" in text


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m ece662.train") as err:
        load_model(tmp_path / "torch.model")
    assert isinstance(err.value, ModelFileError) and str(tmp_path / "torch.model") in str(err.value)
    assert "a folder, not a model file" in _error_text(tmp_path)


def test_wrong_file_is_rejected_clearly(course_env, tmp_path):
    other = tmp_path / "other.model"
    ckpt = read_checkpoint(course_env)
    ckpt["state_dict"] = {"fc.weight": torch.zeros(2, 2)}
    torch.save(ckpt, other)
    assert "another architecture (layers fc)" in _error_text(other)
    bare = tmp_path / "bare.pt"
    torch.save(load_model(course_env).state_dict(), bare)
    with pytest.raises(ModelFileError, match="not an ece662 checkpoint"):
        read_checkpoint(bare)


def test_torch_file_in_tensorflow_mode_names_the_right_mode(course_env):
    with pytest.raises(ModelFileError, match="is a PyTorch model file: load it with mode='torch'"):
        load_model(course_env, mode="tensorflow")


def test_warns_when_the_data_in_use_differs(course_env, sample_root):
    data_utils.get_CINIC10_data(root=sample_root, verbose=False)
    with pytest.warns(UserWarning, match="trained on synthetic"):
        load_model(course_env)
    data_utils.get_CINIC10_data(verbose=False)  # back to the data the model was trained on
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(course_env)
