"""Download and unpack the official CINIC-10 tarball, with the standard library only (no framework needed).

The tarball is fetched to ``<name>.part`` and renamed only after its MD5
matches, and it is unpacked into a staging folder that is moved into place
only when it holds ``train/``, ``valid/`` and ``test/``: an interrupted or
corrupted download never leaves anything that looks complete. Only plain
files and folders inside the staging folder are unpacked.
"""
import hashlib
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from ..data_utils import DEFAULT_ROOT, SPLIT_FOLDERS, list_split

CINIC10_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz"
# Published MD5 of CINIC-10.tar.gz (687,544,992 bytes), as used by several independent loaders.
CINIC10_MD5 = "6ee4d0c996905fe93221de577967a372"
ARCHIVE_NAME = "CINIC-10.tar.gz"
CINIC10_SPLIT_SIZE = 90_000  # images in each of CINIC-10's train, valid and test splits
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The download or its unpacking failed; nothing was left in place."""


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path) -> None:
    """``url`` into ``target``, with a progress bar; raises when fewer bytes came than announced."""
    request = urllib.request.Request(url, headers={"User-Agent": "ece662-datasets"})
    with urllib.request.urlopen(request, timeout=60) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {target.name}") as bar:
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
        if total is not None and out.tell() != total:
            raise OSError(f"the connection closed after {out.tell():,} of {total:,} bytes")


def fetch_archive(url: str, folder: Path, md5: str) -> Path:
    """Download ``url`` to ``folder/CINIC-10.tar.gz`` and verify it; reuse a verified copy."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / ARCHIVE_NAME
    if final.is_file() and md5_of(final) == md5:
        print(f"using verified {final}")
        return final
    partial = folder / (ARCHIVE_NAME + ".part")
    partial.unlink(missing_ok=True)
    try:
        _download(url, partial)
        if (found := md5_of(partial)) != md5:
            raise OSError(f"the file's MD5 is {found}, not {md5}: it is corrupted")
    except Exception as exc:  # URLError, HTTPError, IncompleteRead, timeouts, a short or corrupted file
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"Downloading {url} failed: {exc}. Nothing was kept; run the command again, "
            f"or download the file by hand, check its MD5 ({md5}) and put it at {final}."
        ) from None
    partial.replace(final)
    return final


def _checked_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Every entry of the archive, refusing any that is not a plain file or folder below the target."""
    members = tar.getmembers()
    for member in members:
        path = PurePosixPath(member.name)
        if not (member.isfile() or member.isdir()) or path.is_absolute() or ".." in path.parts:
            raise DownloadError(f"the archive holds {member.name!r}, which is not a file or folder inside it")
    return members


def extract(archive: Path, into: Path) -> None:
    """Unpack the tar.gz ``archive`` into ``into``, with a progress bar."""
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12 / 3.11.4
    with tarfile.open(archive, "r:gz") as tar:
        for member in tqdm(_checked_members(tar), desc=f"unpacking {archive.name}", unit="file"):
            tar.extract(member, into, **safe)


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
            extract(archive, Path(staging))
        except (OSError, tarfile.TarError, EOFError) as exc:
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
