"""Download and unpack the official CINIC-10 tarball with torchvision's utilities.

The tarball is fetched to ``<name>.part`` and renamed only after its MD5
matches, and it is unpacked into a staging folder that is moved into place
only when it holds ``train/``, ``valid/`` and ``test/``: an interrupted or
corrupted download never leaves anything that looks complete.
"""
import shutil
import tempfile
from pathlib import Path

from torchvision.datasets.utils import check_integrity, download_url, extract_archive

from ..data_utils import DEFAULT_ROOT, SPLIT_FOLDERS, list_split

CINIC10_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz"
# Published MD5 of CINIC-10.tar.gz (687,544,992 bytes), as used by several independent loaders.
CINIC10_MD5 = "6ee4d0c996905fe93221de577967a372"
ARCHIVE_NAME = "CINIC-10.tar.gz"


class DownloadError(RuntimeError):
    """The download or its unpacking failed; nothing was left in place."""


def fetch_archive(url: str, folder: Path, md5: str) -> Path:
    """Download ``url`` to ``folder/CINIC-10.tar.gz`` and verify it; reuse a verified copy."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / ARCHIVE_NAME
    if check_integrity(str(final), md5):
        print(f"using verified {final}")
        return final
    partial = folder / (ARCHIVE_NAME + ".part")
    partial.unlink(missing_ok=True)
    try:
        download_url(url, str(folder), filename=partial.name, md5=md5)
    except Exception as exc:  # URLError, HTTPError, IncompleteRead, torchvision's "corrupted" RuntimeError
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"Downloading {url} failed: {exc}. Nothing was kept; run the command again, "
            f"or download the file by hand, check its MD5 ({md5}) and put it at {final}."
        ) from None
    partial.replace(final)
    return final


def _find_dataset_dir(top: Path) -> Path:
    for candidate in [top, *sorted(p for p in top.iterdir() if p.is_dir())]:
        if all((candidate / split).is_dir() for split in SPLIT_FOLDERS.values()):
            return candidate
    raise DownloadError(f"the archive holds no train/, valid/ and test/ folders (looked in {top} and one level down)")


def install(archive: Path, root: Path) -> Path:
    """Unpack ``archive`` into ``root`` via a staging folder beside it, checking the layout first."""
    if root.exists() and any(root.iterdir()):
        raise DownloadError(f"{root} already exists and is not empty; move it away or pass another --root.")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cinic10-staging-", dir=root.parent) as staging:
        try:
            extract_archive(str(archive), staging)
        except Exception as exc:
            raise DownloadError(f"could not unpack {archive}: {exc}. Delete it and download again.") from None
        found = _find_dataset_dir(Path(staging))
        for split in SPLIT_FOLDERS:
            list_split(found, split)  # raises DatasetError on a wrong layout
        if root.exists():
            root.rmdir()
        shutil.move(str(found), str(root))
    return root


def download_cinic10(root=DEFAULT_ROOT, url=CINIC10_URL, md5=CINIC10_MD5, keep_archive=False) -> Path:
    """Fetch, verify and unpack CINIC-10 into ``root`` (default: ``ece662/datasets/cinic-10``)."""
    root = Path(root).expanduser()
    archive = fetch_archive(url, root.parent, md5)
    install(archive, root)
    if not keep_archive:
        archive.unlink()
    print(f"CINIC-10 is ready in {root}")
    return root
