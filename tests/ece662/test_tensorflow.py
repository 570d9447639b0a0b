"""TensorFlow mode: the Keras SmallCNN, its canonical (torch) layout, the helpers, compaction and training.

Skipped when TensorFlow is not installed (`pip install -e '.[tensorflow]'`). The Keras course model is
the torch tiny model's weights converted (fixture ``tf_model_file``), so both frameworks hold the same
weights and must give the same predictions.
"""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as prune
from torch import nn

keras_helper = pytest.importorskip("ece662.keras_helper")  # imports TensorFlow (after Triton, see there)
import keras  # noqa: E402

from ece662 import data_utils, train  # noqa: E402
from ece662.frameworks import read_course_file  # noqa: E402
from ece662.compaction import remove_zero_filters as remove_zero_filters_torch  # noqa: E402
from ece662.keras_model import (
    canonical_state,
    from_canonical,
    keras_state_from_canonical,
    read_keras_checkpoint,
)
from ece662.model import SmallCNN  # noqa: E402
from ece662.model import from_canonical as torch_from_canonical
from ece662.pruning_helper import (
    ModelFileError,
    accuracy,
    count_parameters,
    effective_state_dict,
    global_sparsity,
    layer_sparsity,
    load_model,
    model_path,
    model_size_bytes,
    prunable_layers,
    read_checkpoint,
    test_model,
)

REPO = Path(__file__).resolve().parents[2]


def torch_state(model: nn.Module) -> dict:
    return {k: v.numpy() for k, v in effective_state_dict(model).items()}


@pytest.fixture(scope="module")
def tf_model_file(tf_course_env):
    return tf_course_env


@pytest.fixture
def data(course_env):
    return data_utils.get_CINIC10_data(verbose=False)


def test_canonical_state_is_the_torch_state_dict_and_gives_the_same_logits(course_env, data):
    torch_model = load_model(course_env)
    expected = torch_state(torch_model)
    keras_model = from_canonical(expected)
    canonical = canonical_state(keras_model)
    assert list(canonical) == list(expected)
    assert all(canonical[k].dtype == np.float32 and np.array_equal(canonical[k], expected[k]) for k in expected)
    assert canonical["classifier.1.weight"].shape == (128, 4096)
    X = np.asarray(data["X_test"][:64])
    (xb, _), = keras_helper._batches(X, np.zeros(len(X)), len(X))
    with torch.no_grad():
        torch_logits = torch_model(torch.from_numpy(xb).permute(0, 3, 1, 2)).numpy()
    keras_logits = keras.ops.convert_to_numpy(keras_model(xb, training=False))
    np.testing.assert_allclose(keras_logits, torch_logits, atol=1e-4, rtol=1e-4)
    assert (keras_logits.argmax(1) == torch_logits.argmax(1)).all()


def test_flatten_order_is_permuted_not_copied():
    """A Keras Dense row (h, w, c) lands in torch column (c, h, w): one marked weight shows where."""
    state = {k: v.numpy() for k, v in SmallCNN().state_dict().items()}
    state["classifier.1.weight"][:] = 0
    state["classifier.1.weight"][5, 2 * 64 + 3 * 8 + 7] = 1  # channel 2, row 3, column 7
    kernel = keras_state_from_canonical(state)[6]
    assert kernel.shape == (4096, 128)
    assert kernel[(3 * 8 + 7) * 64 + 2, 5] == 1 and kernel.sum() == 1


def test_seed_calls_verbatim_in_tensorflow_mode(tf_model_file, course_env, data, capsys):
    mode = "tensorflow"
    test_data = [data["X_test"], data["y_test"]]
    model = load_model(str(model_path(mode)), mode=mode)
    acc = test_model(model, test_data, mode=mode)
    assert isinstance(model, keras.Model)
    assert capsys.readouterr().out.strip() == f"Test Acc: {acc:.4f}"
    # the same weights in torch classify the same images the same way
    assert acc == pytest.approx(accuracy(load_model(course_env), *test_data), abs=1 / len(test_data[1]))
    assert keras_helper.accuracy(model, *test_data, batch_size=7) == acc


def test_archive_is_read_without_tensorflow(tf_model_file, course_env):
    header = read_keras_checkpoint(tf_model_file)
    assert header["architecture"] == "SmallCNN" and header["meta"] == read_checkpoint(course_env)["meta"]
    state = read_course_file(tf_model_file, "tensorflow")["state_dict"]
    expected = torch_state(load_model(course_env))
    assert all(np.array_equal(state[k], expected[k]) for k in expected) and state.keys() == expected.keys()
    probe = ("import sys; from ece662.frameworks import read_course_file as r; "
             f"s = r({str(tf_model_file)!r}, 'tensorflow')['state_dict']; print(len(s), 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["10", "False", "False"]


def test_torch_mode_never_imports_tensorflow(course_env):
    probe = ("import sys, numpy as np; from ece662.pruning_helper import *; "
             "m = load_model(model_path('torch')); test_model(m, [np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4)]); "
             "prunable_layers(m); global_sparsity(m); count_parameters(m); model_size_bytes(m); "
             "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split()[-2:] == ["False", "False"]


def test_tensorflow_mode_never_imports_torch(tf_model_file):
    """What a TensorFlow notebook's cells run, Part 3 and the graded cells' imports included, with torch blocked."""
    probe = ("import sys, numpy as np; sys.modules['torch'] = None; "
             "from ece662.keras_helper import *; from ece662 import plots, weights, frameworks, latency, data_utils, grading; "
             f"m = load_model({str(tf_model_file)!r}, mode='tensorflow'); "
             "test_model(m, [np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4)], mode='tensorflow'); "
             "k, b = m.layers[0].get_weights(); m.layers[0].set_weights([k * (np.arange(k.shape[-1]) % 2), b * 0]); "
             "small = remove_zero_filters(m); weights.count_macs(frameworks.canonical_state(small)); "
             "s = latency.compare_latency({'zeroed': m, 'removed': small}, batch_size=4, rounds=1); "
             "print(sorted(s), small.layers[0].get_weights()[0].shape[-1] < k.shape[-1])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["['removed',", "'zeroed']", "True"]


def test_missing_tensorflow_names_the_fix(tf_model_file):
    probe = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "
             "from ece662.pruning_helper import load_model; "
             f"load_model({str(tf_model_file)!r}, mode='tensorflow')")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert out.returncode != 0
    assert "ModuleNotFoundError: mode='tensorflow' needs TensorFlow: `pip install -e '.[tensorflow]'`" in out.stderr


def test_wrong_mode_and_bad_files_say_what_to_do(tf_model_file, course_env, data, tmp_path):
    with pytest.raises(ModelFileError, match="mode='torch'"):
        load_model(course_env, mode="tensorflow")
    with pytest.raises(ModelFileError, match="mode='tensorflow'"):
        load_model(tf_model_file, mode="torch")
    with pytest.raises(TypeError, match="use mode='tensorflow'"):
        test_model(load_model(tf_model_file, mode="tensorflow"), [data["X_test"], data["y_test"]], mode="torch")
    with pytest.raises(TypeError, match="use mode='torch'"):
        test_model(load_model(course_env), [data["X_test"], data["y_test"]], mode="tensorflow")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="junk.keras is neither a Keras archive"):
        load_model(junk, mode="tensorflow")
    with pytest.raises(ModelFileError, match="not an ece662 Keras model"):
        read_keras_checkpoint(junk)


def test_load_warns_when_trained_on_other_data(course_env, data, tmp_path):
    other = {"name": "CINIC-10", "synthetic": False, "sizes": {"train": 90000}, "content_id": "elsewhere"}
    path = keras_helper.save_model(from_canonical(torch_state(load_model(course_env))), tmp_path / "tensorflow.model",
                                   meta={"dataset": other})
    with pytest.warns(UserWarning, match="trained on CINIC-10"):
        load_model(path, mode="tensorflow")


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_students_own_models_of_any_architecture_load(tmp_path, suffix):
    inner = keras.Sequential([keras.Input((16, 16, 8)), keras.layers.Conv2D(4, 3, name="inner_conv")], name="block")
    net = keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem"), inner,
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, name="head"),
    ])
    net.save(tmp_path / f"mine{suffix}")
    loaded = load_model(tmp_path / f"mine{suffix}", mode="tensorflow")
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(net(x)), atol=1e-6)
    assert [name for name, _ in prunable_layers(loaded)] == ["stem", "block/inner_conv", "head"]
    assert count_parameters(loaded) == net.count_params()


def test_sparsity_counts_and_size_match_torch(tf_model_file, course_env):
    model = load_model(tf_model_file, mode="tensorflow")
    torch_model = load_model(course_env)
    assert [(name, type(layer).__name__) for name, layer in prunable_layers(model)] == [
        ("conv1", "Conv2D"), ("conv2", "Conv2D"), ("conv3", "Conv2D"), ("fc1", "Dense"), ("fc2", "Dense")]
    assert count_parameters(model) == count_parameters(torch_model) == 582_026
    assert global_sparsity(model) == 0 and model_size_bytes(model) > 4 * 582_026
    # global magnitude pruning in Keras: one threshold over all kernels, then set_weights
    kernels = [layer.kernel.numpy() for _, layer in prunable_layers(model)]
    count = round(0.6 * sum(k.size for k in kernels))
    threshold = np.sort(np.concatenate([np.abs(k).ravel() for k in kernels]))[count - 1]
    for (_, layer), kernel in zip(prunable_layers(model), kernels):
        layer.set_weights([np.where(np.abs(kernel) <= threshold, 0, kernel), layer.bias.numpy()])
    layers = [m for _, m in prunable_layers(torch_model)]
    prune.global_unstructured([(m, "weight") for m in layers], prune.L1Unstructured, amount=count)
    assert global_sparsity(model) == pytest.approx(global_sparsity(torch_model)) == pytest.approx(0.6, abs=1e-4)
    assert layer_sparsity(model) == pytest.approx(dict(zip(("conv1", "conv2", "conv3", "fc1", "fc2"),
                                                            layer_sparsity(torch_model).values())))
    expected = torch_state(torch_model)
    assert all(np.array_equal(v == 0, expected[k] == 0) for k, v in canonical_state(model).items())
    assert count_parameters(model, nonzero_only=True) == count_parameters(torch_model, nonzero_only=True)


def zero_smallest_filters(model, level):
    """Zero the smallest-L2 filters of each Conv2D (and their biases), as ln_structured + zeroed bias would."""
    for name in ("conv1", "conv2", "conv3"):
        kernel, bias = model.get_layer(name).get_weights()
        norms = np.sqrt((kernel ** 2).sum(axis=(0, 1, 2)))
        pruned = np.argsort(norms, kind="stable")[: round(level * kernel.shape[-1])]
        kernel[..., pruned], bias[pruned] = 0, 0
        model.get_layer(name).set_weights([kernel, bias])
    return model


@pytest.mark.parametrize("level", [0.2, 0.5, 0.8])
def test_remove_zero_filters_gives_a_narrower_model_with_the_same_outputs(tf_model_file, level):
    pruned = zero_smallest_filters(load_model(tf_model_file, mode="tensorflow"), level)
    small = keras_helper.remove_zero_filters(pruned)
    kept = [32 - round(level * 32), 64 - round(level * 64), 64 - round(level * 64)]
    widths = [min(full, -(-k // 8) * 8) for k, full in zip(kept, (32, 64, 64))]
    assert [small.get_layer(n).filters for n in ("conv1", "conv2", "conv3")] == widths
    x = np.random.default_rng(1).standard_normal((8, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(small(x, training=False)),
                               keras.ops.convert_to_numpy(pruned(x, training=False)), atol=1e-4, rtol=1e-4)
    assert count_parameters(small) < count_parameters(pruned)
    # the same filters as torch mode's compaction of the same pruned weights
    torch_small = remove_zero_filters_torch(torch_from_canonical(canonical_state(pruned)))
    compact = canonical_state(small)
    assert all(np.array_equal(compact[k], v) for k, v in torch_state(torch_small).items())


def test_keep_filters_in_keras_keeps_what_torch_keeps(tf_model_file, course_env):
    from autograder.reference import solution
    from ece662.pruning_helper import canonical_weights

    keras_model, torch_model = load_model(tf_model_file, mode="tensorflow"), load_model(course_env)
    solution("tensorflow").keep_filters(keras_model, (16, 24, 48))
    solution("torch").keep_filters(torch_model, (16, 24, 48))
    keras_small = canonical_state(keras_helper.remove_zero_filters(keras_model))
    torch_small = canonical_weights(remove_zero_filters_torch(torch_model))
    assert [keras_small[f"{p}.weight"].shape[0] for p in ("features.0", "features.3", "features.6")] == [16, 24, 48]
    assert all(np.array_equal(keras_small[k], v) for k, v in torch_small.items())


def test_remove_zero_filters_refuses_other_architectures():
    with pytest.raises(TypeError, match="course SmallCNN"):
        keras_helper.remove_zero_filters(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_tensorflow_training_is_torch_training_but_for_dropout(tiny_root, monkeypatch):
    """Without dropout (whose random masks the frameworks draw differently) both train to the same weights."""
    data = data_utils.get_CINIC10_data(root=tiny_root, verbose=False)
    monkeypatch.setattr(train, "DEFAULT_CONFIG", dict(train.DEFAULT_CONFIG, dropout=0.0))
    torch_model = train.train(data, epochs=1, batch_size=64, seed=2, verbose=False)
    keras_model = train.train_tensorflow(data, epochs=1, batch_size=64, seed=2, verbose=False)
    expected = torch_state(torch_model)
    for key, value in canonical_state(keras_model).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-5, err_msg=key)


def test_tensorflow_training_is_deterministic(tiny_root):
    data = data_utils.get_CINIC10_data(root=tiny_root, num_training=256, verbose=False)
    a, b, c = (train.train_tensorflow(data, epochs=1, batch_size=64, seed=s, verbose=False).get_weights()
               for s in (3, 3, 4))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_train_command_writes_a_loadable_keras_archive(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CINIC10_DIR", str(tiny_root))
    out = tmp_path / "m" / "tensorflow.model"
    train.main(["--mode", "tensorflow", "--epochs", "1", "--out", str(out)])
    assert "Test Acc:" in capsys.readouterr().out
    with zipfile.ZipFile(out) as archive:
        assert {"config.json", "metadata.json", "model.weights.h5", "ece662.json"} <= set(archive.namelist())
        header = json.loads(archive.read("ece662.json"))
    assert header["meta"]["dataset"]["synthetic"] is True and header["meta"]["training"]["keras"]
    assert 0 <= header["meta"]["test_accuracy"] <= 1
    assert isinstance(load_model(out, mode="tensorflow"), keras.Model)
    assert not list(out.parent.glob(".*"))
