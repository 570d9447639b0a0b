"""Command line for the dataset: download CINIC-10, write the synthetic stand-in, show what is found.

    python -m ece662.datasets download [--root DIR]
    python -m ece662.datasets synthesize --root DIR [--size tiny|small|full]
    python -m ece662.datasets info
"""
import argparse
import sys

from ..data_utils import DEFAULT_ROOT, SPLIT_FOLDERS, DatasetError, cache_dir, dataset_root, describe_dataset
from .download import CINIC10_MD5, CINIC10_SPLIT_SIZE, CINIC10_URL, DownloadError, download_cinic10
from .synthetic import SIZES, write_synthetic_dataset


def describe() -> str:
    """What ``info`` prints: the dataset get_CINIC10_data() would load, its images per split, and a note when a
    split of real CINIC-10 holds fewer images than the full dataset's."""
    info = describe_dataset()
    lines = [f"dataset: {info['name']} at {dataset_root()}",
             "images: " + ", ".join(f"{SPLIT_FOLDERS[split]} {count:,}" for split, count in info["sizes"].items())]
    if not info["synthetic"] and min(info["sizes"].values()) < CINIC10_SPLIT_SIZE:
        lines.append(f"NOTE: smaller than CINIC-10, which has {CINIC10_SPLIT_SIZE:,} images in each split: this is a "
                     "part of it, so accuracies will not match the full dataset's (get it with "
                     "`python -m ece662.datasets download`)")
    return "\n".join([*lines, f"cache: {cache_dir()}"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ece662.datasets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="fetch and unpack the official CINIC-10 (687 MB)")
    dl.add_argument("--root", default=str(DEFAULT_ROOT), help="where to unpack (default: %(default)s)")
    dl.add_argument("--url", default=CINIC10_URL)
    dl.add_argument("--md5", default=CINIC10_MD5)
    dl.add_argument("--keep-archive", action="store_true", help="keep CINIC-10.tar.gz beside the folder")
    syn = sub.add_parser("synthesize", help="write a synthetic stand-in (NOT CINIC-10) in the same layout")
    syn.add_argument("--root", required=True)
    syn.add_argument("--size", choices=sorted(SIZES), default="small",
                     help="images per class (train/valid/test): " +
                          ", ".join(f"{k}={'/'.join(map(str, v))}" for k, v in SIZES.items()))
    syn.add_argument("--seed", type=int, default=0)
    sub.add_parser("info", help="show which dataset get_CINIC10_data() would load")
    args = parser.parse_args(argv)

    try:
        if args.command == "download":
            download_cinic10(args.root, args.url, args.md5, args.keep_archive)
        elif args.command == "synthesize":
            root = write_synthetic_dataset(args.root, args.size, args.seed)
            print(f"wrote synthetic data (not CINIC-10) to {root}; use it with CINIC10_DIR={root}")
        else:
            print(describe())
    except (DatasetError, DownloadError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
