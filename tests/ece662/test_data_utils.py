"""get_CINIC10_data: layout, labels, stratified subsets, the uint8 cache and clear errors."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from ece662 import data_utils
from ece662.data_utils import CLASSES, DatasetError, get_CINIC10_data


def copy_dataset(src, dst):
    shutil.copytree(src, dst)
    return dst


def cache_files():
    return sorted(data_utils.cache_dir().rglob("*.npy"))


def test_seed_calls_work_verbatim(tiny_root, monkeypatch):
    monkeypatch.setenv("CINIC10_DIR", str(tiny_root))
    from ece662.data_utils import get_CINIC10_data as seed_import

    data = seed_import()
    test_data = [data["X_test"], data["y_test"]]
    assert test_data[0].shape == (400, 32, 32, 3) and test_data[0].dtype == np.uint8
    assert data["X_train"].shape == (600, 32, 32, 3) and data["X_val"].shape == (200, 32, 32, 3)
    assert data["class_names"] == list(CLASSES)
    assert data["synthetic"] is True


def test_labels_follow_official_class_order_and_pixels_match_files(tiny_root):
    data = get_CINIC10_data(root=tiny_root, verbose=False)
    # the stratified order interleaves classes: image i has label i % 10 while all classes have images left
    assert list(data["y_train"][:20]) == list(range(10)) * 2
    for i in (0, 7, 123):
        label = int(data["y_test"][i])
        name = sorted(os.listdir(tiny_root / "test" / CLASSES[label]))[i // 10]
        expected = np.asarray(Image.open(tiny_root / "test" / CLASSES[label] / name).convert("RGB"))
        np.testing.assert_array_equal(data["X_test"][i], expected)


def test_subsets_are_class_balanced_prefix_views(tiny_root):
    data = get_CINIC10_data(num_training=50, num_validation=30, num_test=100, root=tiny_root, verbose=False)
    assert len(data["y_train"]) == 50 and len(data["y_val"]) == 30 and len(data["y_test"]) == 100
    assert np.bincount(data["y_test"], minlength=10).tolist() == [10] * 10
    assert isinstance(data["X_test"], np.memmap)  # a view into the cache, no copy
    full = get_CINIC10_data(num_test=None, root=tiny_root, verbose=False)
    np.testing.assert_array_equal(full["X_test"][:100], data["X_test"])
    too_many = get_CINIC10_data(num_test=10**6, root=tiny_root, verbose=False)
    assert len(too_many["y_test"]) == 400
    with pytest.raises(ValueError):
        get_CINIC10_data(num_test=-1, root=tiny_root, verbose=False)


def test_second_call_reads_the_cache_without_decoding(tiny_root, monkeypatch):
    get_CINIC10_data(root=tiny_root, verbose=False)
    before = {p: p.stat().st_mtime_ns for p in cache_files()}

    def no_decoding(*args, **kwargs):
        raise AssertionError("cache should have been used")

    monkeypatch.setattr(data_utils, "_build_split_cache", no_decoding)
    get_CINIC10_data(root=tiny_root, verbose=False)
    assert {p: p.stat().st_mtime_ns for p in cache_files()} == before


def test_cache_is_rebuilt_when_the_folder_changes(tiny_root, tmp_path):
    root = copy_dataset(tiny_root, tmp_path / "data")
    assert len(get_CINIC10_data(root=root, num_test=None, verbose=False)["y_test"]) == 400
    victim = sorted((root / "test" / "cat").iterdir())[0]
    victim.unlink()
    data = get_CINIC10_data(root=root, num_test=None, verbose=False)
    assert len(data["y_test"]) == 399 and np.bincount(data["y_test"])[CLASSES.index("cat")] == 39


def _age_folders(root, seconds=60):
    """Date every folder of the dataset ``seconds`` back, as for a dataset downloaded a while ago."""
    past = time.time() - seconds
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        os.utime(folder, (past, past))


def test_unchanged_folders_are_not_listed_again_and_any_change_is_seen(tiny_root, tmp_path, monkeypatch):
    root = copy_dataset(tiny_root, tmp_path / "data")
    _age_folders(root)
    first = get_CINIC10_data(root=root, num_test=None, verbose=False)
    listed = []
    monkeypatch.setattr(data_utils, "list_split", lambda *a: listed.append(a) or pytest.fail("listed again"))
    again = get_CINIC10_data(root=root, num_test=None, verbose=False)
    np.testing.assert_array_equal(again["X_test"], first["X_test"])
    monkeypatch.undo()
    assert data_utils.active_dataset() == data_utils.describe_dataset(root)  # the stamp's description is true

    (root / "test" / "cat" / "extra.png").write_bytes((root / "test" / "cat" / sorted(
        p.name for p in (root / "test" / "cat").iterdir())[0]).read_bytes())  # a new file, just now
    data = get_CINIC10_data(root=root, num_test=None, verbose=False)
    assert len(data["y_test"]) == 401 and np.bincount(data["y_test"])[CLASSES.index("cat")] == 41


def test_a_folder_changed_just_before_its_listing_is_listed_every_time(tiny_root, tmp_path, monkeypatch):
    """The folder's clock may not tick between a listing and a change right after it: such stamps are not
    trusted (until the folders are older than the stamp by a margin)."""
    root = copy_dataset(tiny_root, tmp_path / "data")
    _age_folders(root, seconds=0)  # modified now (copytree dates folders like their originals)
    get_CINIC10_data(root=root, verbose=False)
    calls = []
    real = data_utils.list_split
    monkeypatch.setattr(data_utils, "list_split", lambda *a: calls.append(a) or real(*a))
    get_CINIC10_data(root=root, verbose=False)
    assert len(calls) == 3


def test_half_written_cache_is_never_used(tiny_root, tmp_path):
    root = copy_dataset(tiny_root, tmp_path / "data")
    good = np.array(get_CINIC10_data(root=root, num_test=None, verbose=False)["X_test"])
    x_file = next(p for p in cache_files() if p.name == "test-X.npy" and str(root.resolve()) in
                  json.loads((p.parent / "test.json").read_text())["root"])
    with open(x_file, "r+b") as f:  # simulate a crash mid-write: truncate the array file
        f.truncate(x_file.stat().st_size // 2)
    data = get_CINIC10_data(root=root, num_test=None, verbose=False)
    np.testing.assert_array_equal(data["X_test"], good)
    (x_file.parent / "test.json").unlink()  # meta missing: the arrays are not trusted either
    np.testing.assert_array_equal(get_CINIC10_data(root=root, num_test=None, verbose=False)["X_test"], good)


def test_grayscale_images_become_rgb(tmp_path, tiny_root):
    root = copy_dataset(tiny_root, tmp_path / "data")
    path = sorted((root / "test" / "dog").iterdir())[0]
    gray = Image.open(path).convert("L")
    gray.save(path)
    data = get_CINIC10_data(root=root, num_test=None, verbose=False)
    i = int(np.flatnonzero(data["y_test"] == CLASSES.index("dog"))[0])
    assert data["X_test"].shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(data["X_test"][i], np.asarray(gray.convert("RGB")))


def test_missing_folder_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DatasetError) as err:
        get_CINIC10_data(root=tmp_path / "nowhere", verbose=False)
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message
    assert "python -m ece662.datasets download" in message and "CINIC10_DIR" in message


def test_partial_dataset_and_wrong_layout_are_named(tiny_root, tmp_path):
    root = copy_dataset(tiny_root, tmp_path / "data")
    shutil.rmtree(root / "valid")
    with pytest.raises(DatasetError, match=r"valid.*missing"):
        get_CINIC10_data(root=root, verbose=False)
    root = copy_dataset(tiny_root, tmp_path / "data2")
    shutil.rmtree(root / "train" / "frog")
    with pytest.raises(DatasetError, match=r"train/frog is missing"):
        get_CINIC10_data(root=root, verbose=False)
    root = copy_dataset(tiny_root, tmp_path / "data3")
    (root / "test" / "zebra").mkdir()
    with pytest.raises(DatasetError, match="zebra"):
        get_CINIC10_data(root=root, verbose=False)


def test_corrupt_png_is_named_and_nothing_is_cached(tiny_root, tmp_path):
    root = copy_dataset(tiny_root, tmp_path / "data")
    bad = sorted((root / "train" / "ship").iterdir())[3]
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    with pytest.raises(DatasetError) as err:
        get_CINIC10_data(root=root, verbose=False)
    assert str(bad) in str(err.value)
    assert not any(".tmp" in p.name for p in data_utils.cache_dir().rglob("*"))
    assert bad.exists()  # the dataset folder is left as it was


def test_concurrent_first_loads_build_one_consistent_cache(tiny_root, tmp_path):
    root = copy_dataset(tiny_root, tmp_path / "data")
    code = ("from ece662.data_utils import get_CINIC10_data as g; import sys; "
            f"d = g(root={str(root)!r}, num_test=None, verbose=False); print(int(d['X_test'].sum()))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outputs)) == 1


def test_real_sample_loads_with_correct_counts_and_labels(sample_root):
    started = time.perf_counter()
    data = get_CINIC10_data(root=sample_root, verbose=False)
    first = time.perf_counter() - started
    assert data["synthetic"] is False
    for split, folder in (("train", "train"), ("val", "valid"), ("test", "test")):  # the sample, or full CINIC-10
        files = [len(list((sample_root / folder / cls).glob("*.png"))) for cls in CLASSES]
        assert np.bincount(data[f"y_{split}"], minlength=10).tolist() == files
    # every image equals its file, converted to RGB (the sample holds grayscale files on purpose)
    gray_seen = 0
    for label, cls in enumerate(CLASSES):
        names = sorted(os.listdir(sample_root / "test" / cls))
        for k in (0, len(names) - 1):
            img = Image.open(sample_root / "test" / cls / names[k])
            gray_seen += img.mode != "RGB"
            np.testing.assert_array_equal(data["X_test"][k * 10 + label], np.asarray(img.convert("RGB")))
    started = time.perf_counter()
    get_CINIC10_data(root=sample_root, verbose=False)
    print(f"sample: first load {first:.2f}s, second {time.perf_counter() - started:.3f}s")


def test_real_sample_grayscale_files_are_decoded_to_rgb(sample_root):
    gray = [p for p in sorted((sample_root / "train").rglob("*.png")) if Image.open(p).mode != "RGB"]
    assert gray, "the sample is documented to hold grayscale files"
    data = get_CINIC10_data(root=sample_root, num_training=None, verbose=False)
    cls = gray[0].parent.name
    names = sorted(os.listdir(gray[0].parent))
    index = names.index(gray[0].name) * 10 + CLASSES.index(cls)
    np.testing.assert_array_equal(data["X_train"][index], np.asarray(Image.open(gray[0]).convert("RGB")))
