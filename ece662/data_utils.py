"""Load CINIC-10 from its official folder layout into compact uint8 arrays.

``get_CINIC10_data()`` reads ``{train,valid,test}/<class>/*.png`` from
``$CINIC10_DIR`` (or ``ece662/datasets/cinic-10/``). The first read decodes
every PNG in parallel and writes a uint8 cache (``$ECE662_CACHE_DIR``, default
``~/.cache/ece662``); later reads memory-map that cache, so they take well
under a second and hold no float copies of the images.

Images are stored in *stratified order*: the cache interleaves the classes
(one image of each class in turn), so the first ``n`` images of a split are a
class-balanced, deterministic subset and taking them copies nothing.

A *prepared* dataset (``save_prepared``) is such a cache, cut to the images a
grader needs and saved with a ``PREPARED.json`` that records where it came
from. ``get_CINIC10_data`` reads a prepared folder directly (no PNGs, no
cache), and reports the original dataset's identity, so the course model
trained on it is recognised.
"""
import hashlib
import json
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image, PngImagePlugin
from tqdm.auto import tqdm

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLIT_FOLDERS = {"train": "train", "val": "valid", "test": "test"}
IMAGE_SHAPE = (32, 32, 3)
# Per-channel statistics of CINIC-10 published by its authors (BayesWatch/cinic-10).
CINIC10_MEAN = (0.47889522, 0.47227842, 0.43047404)
CINIC10_STD = (0.24205776, 0.23828046, 0.25874835)
DEFAULT_ROOT = Path(__file__).resolve().parent / "datasets" / "cinic-10"
SYNTHETIC_MARKER = "SYNTHETIC_DATA.txt"
PREPARED_MARKER = "PREPARED.json"
PREPARED_FORMAT = "ece662-prepared-cinic10"
CACHE_VERSION = 1
LISTING_STAMP = "listing.json"  # in a dataset's cache folder: the folders' mtimes when last listed
RACY_NS = 2_000_000_000  # a folder modified this close to its listing is listed again
DEFAULT_NUM_TEST = 5000
EVAL_BATCH_SIZE = 256  # images per batch when evaluating (test_model, in both frameworks)
TRAIN_BATCH_SIZE = 128  # images per mini-batch of train_epoch (both frameworks) and of the course model's training

_active_dataset = None  # description of the dataset the last get_CINIC10_data() call loaded


class DatasetError(RuntimeError):
    """The dataset folder is missing, incomplete or holds unreadable files."""


def dataset_root(root=None) -> Path:
    """Where the dataset is read from: ``root``, else ``$CINIC10_DIR``, else the package default."""
    return Path(root or os.environ.get("CINIC10_DIR") or DEFAULT_ROOT).expanduser()


def cache_dir() -> Path:
    base = os.environ.get("ECE662_CACHE_DIR")
    if base:
        return Path(base).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "ece662"


def _missing_dataset_message(root: Path) -> str:
    return (
        f"CINIC-10 was not found at {root}.\n"
        "  Download it (687 MB) with:   python -m ece662.datasets download\n"
        "  or point CINIC10_DIR at a folder holding train/, valid/ and test/ "
        "(each with one sub-folder per class).\n"
        "  Offline? `python -m ece662.datasets synthesize --root DIR` writes a synthetic stand-in "
        "(not CINIC-10) in the same layout."
    )


def list_split(root: Path, split: str) -> list[list[str]]:
    """Sorted PNG file names of each class folder of one split (index = label)."""
    split_dir = root / SPLIT_FOLDERS[split]
    if not split_dir.is_dir():
        raise DatasetError(
            f"{split_dir} is missing: the dataset at {root} is incomplete "
            f"(expected train/, valid/ and test/). Re-run `python -m ece662.datasets download`."
        )
    unexpected = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name not in CLASSES)
    if unexpected:
        raise DatasetError(
            f"{split_dir} holds folders that are not CINIC-10 classes: {unexpected}. "
            f"Expected exactly: {', '.join(CLASSES)}."
        )
    names = []
    for cls in CLASSES:
        class_dir = split_dir / cls
        if not class_dir.is_dir():
            raise DatasetError(f"{class_dir} is missing: the dataset at {root} is incomplete or has the wrong layout.")
        files = sorted(e.name for e in os.scandir(class_dir) if e.name.lower().endswith(".png"))
        if not files:
            raise DatasetError(f"{class_dir} holds no .png files: the dataset at {root} is incomplete.")
        names.append(files)
    return names


def _stratified_order(names: list[list[str]]) -> list[tuple[str, int]]:
    """(relative path, label) pairs interleaving the classes, so every prefix is class-balanced."""
    order = []
    for i in range(max(len(n) for n in names)):
        for label, files in enumerate(names):
            if i < len(files):
                order.append((f"{CLASSES[label]}/{files[i]}", label))
    return order


def _digest(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def is_prepared(root: Path) -> bool:
    return (Path(root) / PREPARED_MARKER).is_file()


def _prepared_info(root: Path) -> dict:
    try:
        info = json.loads((root / PREPARED_MARKER).read_text())
        if info["format"] != PREPARED_FORMAT:
            raise ValueError(f"format {info['format']!r}")
        return info
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{root / PREPARED_MARKER} is not a prepared dataset description ({exc}); "
                           "rebuild it with save_prepared() or point CINIC10_DIR at the PNG dataset") from None


def is_synthetic(root: Path) -> bool:
    if is_prepared(root):
        return _prepared_info(root)["dataset"]["synthetic"]
    return (root / SYNTHETIC_MARKER).is_file()


def _describe(root: Path, listing: dict) -> dict:
    synthetic = is_synthetic(root)
    return {
        "name": "synthetic (not CINIC-10)" if synthetic else "CINIC-10",
        "synthetic": synthetic,
        "sizes": {split: sum(map(len, names)) for split, names in listing.items()},
        "content_id": _digest(listing)[:16],
    }


def describe_dataset(root=None) -> dict:
    """Identity of the dataset at ``root``: name, whether synthetic, split sizes and a content id.

    The content id hashes the file names only, so two copies of the same
    dataset (e.g. CINIC-10 on two machines) have the same id.
    """
    root = dataset_root(root)
    if not root.is_dir():
        raise DatasetError(_missing_dataset_message(root))
    if is_prepared(root):
        return _prepared_info(root)["dataset"]
    return _describe(root, {split: list_split(root, split) for split in SPLIT_FOLDERS})


def active_dataset() -> dict | None:
    """Description of the dataset that get_CINIC10_data() loaded last in this process, if any."""
    return _active_dataset


def _read_image(path: str) -> np.ndarray:
    """One image as uint8 (32, 32, 3) RGB.

    PNGs are parsed directly (PIL's format probing costs about 10% of the
    decode); a file that is not a PNG after all goes through ``Image.open``.
    """
    with open(path, "rb") as f:
        try:
            img = PngImagePlugin.PngImageFile(f)
        except SyntaxError:
            f.seek(0)
            img = Image.open(f)
        with img:
            image = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    if image.shape != IMAGE_SHAPE:
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}, expected 32x32")
    return image


def _decode_chunk(args) -> tuple[int, list[str]]:
    """Worker: decode PNGs into rows of the cache file; returns how many and the files that could not be read.

    The rows land in the shared page cache; the parent flushes the file once at the end (a flush per chunk
    would write the whole file back each time).
    """
    cache_file, split_dir, start, paths = args
    out = np.load(cache_file, mmap_mode="r+")
    bad = []
    for i, rel in enumerate(paths):
        path = os.path.join(split_dir, rel)
        try:
            out[start + i] = _read_image(path)
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... name them all
            bad.append(f"{path}: {exc}")
    return len(paths), bad


class _DecoderPool:
    """Decoding processes shared by all splits of one load, started only if a cache must be built."""

    def __init__(self, workers: int):
        self.workers, self._pool = workers, None

    def map(self, fn, jobs):
        if self.workers <= 1 or len(jobs) <= 1:
            return map(fn, jobs)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers)
        return self._pool.map(fn, jobs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def _build_split_cache(root: Path, split: str, order, target: Path, pool: _DecoderPool, verbose: bool):
    """Decode one split into ``target/<split>-X.npy`` and ``-y.npy`` via temporary files."""
    split_dir = root / SPLIT_FOLDERS[split]
    tmp_x = target / f".{split}-X.{os.getpid()}.tmp.npy"
    tmp_y = target / f".{split}-y.{os.getpid()}.tmp.npy"
    try:
        X = np.lib.format.open_memmap(tmp_x, mode="w+", dtype=np.uint8, shape=(len(order), *IMAGE_SHAPE))
        np.save(tmp_y, np.array([label for _, label in order], dtype=np.int64))
        paths = [rel for rel, _ in order]
        chunk = 1000
        jobs = [(str(tmp_x), str(split_dir), s, paths[s:s + chunk]) for s in range(0, len(paths), chunk)]
        bad = []
        with tqdm(total=len(paths), desc=f"decoding {split} PNGs", unit="img", disable=not verbose) as bar:
            for done, errors in pool.map(_decode_chunk, jobs):
                bar.update(done)
                bad += errors
        if bad:
            shown = "\n  ".join(bad[:10])
            more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise DatasetError(
                f"{len(bad)} image(s) in {split_dir} could not be read:\n  {shown}{more}\n"
                "Re-download the dataset (python -m ece662.datasets download) or replace/delete these files. "
                "Nothing was cached; the dataset folder was not changed."
            )
        X.flush()
        del X
        os.replace(tmp_x, target / f"{split}-X.npy")
        os.replace(tmp_y, target / f"{split}-y.npy")
    finally:
        for tmp in (tmp_x, tmp_y):
            tmp.unlink(missing_ok=True)


def _cache_folder(root: Path) -> Path:
    return cache_dir() / f"cinic10-{_digest(str(root.resolve()))[:12]}"


def _split_key(root: Path, split: str, names) -> str:
    """What one split's cache was built from: its file names and its class folders' mtimes."""
    split_dir = root / SPLIT_FOLDERS[split]
    return _digest(CACHE_VERSION, names, [os.stat(split_dir / cls).st_mtime_ns for cls in CLASSES])


def _cached_split(target: Path, split: str, key: str):
    """Memory-mapped (X, y) of one split's cache if it was built for ``key``, else None."""
    try:
        meta = json.loads((target / f"{split}.json").read_text())
        if meta["key"] != key:
            return None
        X = np.load(target / f"{split}-X.npy", mmap_mode="r")
        y = np.load(target / f"{split}-y.npy")
    except (OSError, ValueError, KeyError):
        return None
    return (X, y) if X.shape == (meta["count"], *IMAGE_SHAPE) and y.shape == (meta["count"],) else None


def _load_split(root: Path, split: str, names, key: str, rebuild: bool, pool: _DecoderPool, verbose: bool):
    """Memory-mapped (X, y) of one split, rebuilding its cache if the folder changed."""
    target = _cache_folder(root)
    if not rebuild and (hit := _cached_split(target, split, key)) is not None:
        return hit
    target.mkdir(parents=True, exist_ok=True)
    meta_file = target / f"{split}.json"
    with FileLock(str(target / f"{split}.lock")):
        if not rebuild and (hit := _cached_split(target, split, key)) is not None:  # built meanwhile elsewhere
            return hit
        meta_file.unlink(missing_ok=True)  # arrays are about to change: invalidate first
        order = _stratified_order(names)
        _build_split_cache(root, split, order, target, pool, verbose)
        tmp_meta = meta_file.with_suffix(f".{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps({"key": key, "count": len(order), "root": str(root)}))
        os.replace(tmp_meta, meta_file)  # written last: the cache is complete only once this exists
    return _cached_split(target, split, key)


def _folder_mtimes(root: Path) -> dict[str, int] | None:
    """mtime (ns) of the root, split and class folders (adding, removing or renaming a file changes its
    folder's), or None if one is missing."""
    try:
        return {f"{split}/{cls}": os.stat(root / split / cls).st_mtime_ns
                for split in ("", *SPLIT_FOLDERS.values()) for cls in ("", *(CLASSES if split else ()))}
    except OSError:
        return None


def _stamped_listing(root: Path, target: Path) -> dict | None:
    """The listing stamp of the cache at ``target`` (its description and split keys) if no folder of ``root``
    changed since the stamp was written. As git does with its index, a folder modified within ``RACY_NS``
    before the stamp was written is not trusted (a later change in the same clock tick would not show)."""
    try:
        stamp_file = target / LISTING_STAMP
        stamp, written = json.loads(stamp_file.read_text()), stamp_file.stat().st_mtime_ns
        mtimes = _folder_mtimes(root)
    except (OSError, ValueError):
        return None
    if mtimes is None or stamp.get("version") != CACHE_VERSION or stamp.get("mtimes") != mtimes or \
            max(mtimes.values()) >= written - RACY_NS:
        return None
    return stamp


def _write_stamp(root: Path, target: Path, description: dict, keys: dict, mtimes: dict) -> None:
    """Record a fresh listing, when it differs from the stamp there (so that readers never rewrite it)."""
    stamp = {"version": CACHE_VERSION, "mtimes": mtimes, "keys": keys, "description": description}
    try:
        if json.loads((target / LISTING_STAMP).read_text()) == stamp:
            return
    except (OSError, ValueError):
        pass
    try:
        tmp = target / f".{LISTING_STAMP}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(stamp))
        os.replace(tmp, target / LISTING_STAMP)
    except OSError:  # a read-only cache (a sandboxed kernel): list the folders each time
        pass


def _load_listed(root: Path, rebuild: bool, workers, verbose: bool) -> tuple[dict, dict]:
    """(description, {split: (X, y)}) of a PNG dataset: from the cache without listing the folders when they
    did not change since the last listing; else listed (hundreds of thousands of names), cached if need be."""
    target = _cache_folder(root)
    stamp = None if rebuild else _stamped_listing(root, target)
    if stamp is not None:
        arrays = {split: _cached_split(target, split, stamp["keys"][split]) for split in SPLIT_FOLDERS}
        if all(hit is not None for hit in arrays.values()):
            return stamp["description"], arrays
    mtimes = _folder_mtimes(root)
    listing = {split: list_split(root, split) for split in SPLIT_FOLDERS}
    description = _describe(root, listing)
    keys = {split: _split_key(root, split, names) for split, names in listing.items()}
    with _DecoderPool(workers or min(8, os.cpu_count() or 1)) as pool:
        arrays = {split: _load_split(root, split, names, keys[split], rebuild, pool, verbose)
                  for split, names in listing.items()}
    if mtimes is not None and mtimes == _folder_mtimes(root):  # unchanged while listed
        _write_stamp(root, target, description, keys, mtimes)
    return description, arrays


def data_fingerprint(root=None) -> str:
    """What ``get_CINIC10_data(root=root)`` returns, as the cache identifies it: each split's cache key (its file
    names and class folders' mtimes) for a PNG dataset, read from the listing stamp while it holds (no PNG is
    read); the array files' bytes for a prepared one."""
    root = dataset_root(root)
    if not root.is_dir():
        raise DatasetError(_missing_dataset_message(root))
    if is_prepared(root):
        h = hashlib.sha256()
        for name in [PREPARED_MARKER] + [f"{split}-{a}.npy" for split in SPLIT_FOLDERS for a in "Xy"]:
            h.update((root / name).read_bytes())
        return h.hexdigest()
    stamp = _stamped_listing(root, _cache_folder(root))
    keys = stamp["keys"] if stamp else {split: _split_key(root, split, list_split(root, split))
                                        for split in SPLIT_FOLDERS}
    return _digest(keys)


def get_CINIC10_data(num_training=None, num_validation=None, num_test=DEFAULT_NUM_TEST,
                     root=None, rebuild_cache=False, workers=None, verbose=True):
    """Load CINIC-10 as uint8 arrays, CS231n style.

    Returns a dict with ``X_train, y_train, X_val, y_val, X_test, y_test``
    (``X``: uint8 ``(N, 32, 32, 3)`` memory-mapped arrays, ``y``: int64 labels
    in the official class order), ``class_names``, ``synthetic`` and ``root``.

    ``num_training``/``num_validation``/``num_test`` take the first ``n``
    images of a split, a class-balanced subset (``None``: the whole split; a
    number larger than the split: the whole split). The default of
    ``num_test=5000`` keeps a full pruning sweep under a minute on a laptop
    CPU; pass ``num_test=None`` for all 90,000 test images.
    """
    global _active_dataset
    root = dataset_root(root)
    if not root.is_dir():
        raise DatasetError(_missing_dataset_message(root))
    synthetic = is_synthetic(root)
    if synthetic and verbose:
        print(f"NOTE: {root} holds SYNTHETIC data generated by ece662, not CINIC-10. "
              "Accuracies measured on it say nothing about CINIC-10.")
    data = {"class_names": list(CLASSES), "synthetic": synthetic, "root": str(root)}
    limits = {"train": num_training, "val": num_validation, "test": num_test}
    if is_prepared(root):
        description = _prepared_info(root)["dataset"]
        arrays = {split: _load_prepared_split(root, split) for split in SPLIT_FOLDERS}
    else:
        description, arrays = _load_listed(root, rebuild_cache, workers, verbose)
    for split, (X, y) in arrays.items():
        n = limits[split]
        if n is not None:
            if n < 0:
                raise ValueError(f"num_{split} must be >= 0 or None, got {n}")
            X, y = X[:n], y[:n]
        data[f"X_{split}"], data[f"y_{split}"] = X, y
    _active_dataset = description
    if verbose:
        print(f"{_active_dataset['name']} from {root}: "
              f"train {len(data['y_train'])}, val {len(data['y_val'])}, test {len(data['y_test'])} images")
    return data


def _load_prepared_split(root: Path, split: str):
    try:
        X = np.load(root / f"{split}-X.npy", mmap_mode="r", allow_pickle=False)
        y = np.load(root / f"{split}-y.npy", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"the prepared dataset at {root} is damaged ({split}: {exc}); rebuild it") from None
    if X.dtype != np.uint8 or X.shape[1:] != IMAGE_SHAPE or y.shape != (len(X),):
        raise DatasetError(f"the prepared dataset at {root} holds {split} arrays of the wrong shape or type "
                           f"({X.dtype} {X.shape}, labels {y.shape}); rebuild it")
    return X, y


def save_prepared(target, num_training: int, num_validation: int, num_test: int, root=None) -> Path:
    """Write the first ``num_*`` images of each split of the dataset at ``root`` as a prepared dataset.

    ``target`` receives ``<split>-X.npy``, ``<split>-y.npy`` and ``PREPARED.json``; pointing
    ``CINIC10_DIR`` at it (or placing it at the package's default data folder) makes
    ``get_CINIC10_data`` return those images, with the original dataset's identity.
    """
    data = get_CINIC10_data(num_training, num_validation, num_test, root=root, verbose=False)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLIT_FOLDERS:
        X, y = data[f"X_{split}"], data[f"y_{split}"]
        np.save(target / f"{split}-X.npy", np.ascontiguousarray(X))
        np.save(target / f"{split}-y.npy", np.asarray(y, dtype=np.int64))
        counts[split] = len(y)
    info = {"format": PREPARED_FORMAT, "dataset": active_dataset(), "counts": counts}
    (target / PREPARED_MARKER).write_text(json.dumps(info, indent=1))
    return target


def warn_if_other_dataset(trained_on: dict, context: str) -> None:
    """Warn when ``trained_on`` (a checkpoint's dataset description) is not the dataset in use."""
    current = _active_dataset
    if current is None:
        try:
            current = describe_dataset()
        except DatasetError:
            return
    if trained_on.get("content_id") != current["content_id"] or trained_on.get("synthetic") != current["synthetic"]:
        warnings.warn(
            f"{context} was trained on {trained_on.get('name', 'unknown data')} "
            f"(sizes {trained_on.get('sizes')}), but the data in use is {current['name']} "
            f"(sizes {current['sizes']}). Accuracies will not mean what you expect; "
            "retrain with `python -m ece662.train` or point CINIC10_DIR at the matching data.",
            stacklevel=3,
        )
