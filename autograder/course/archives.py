"""Unpack an LMS bulk-download zip and the students' archives in it, with bounds, using zipfile and tarfile.

Each member of the LMS zip is one upload. An archive in it (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``, ...; nested
ones too) is extracted into a folder beside it named after it, then removed. An upload is unpacked whole or not at
all; it is refused, with the reason, when

* it cannot be read as what its name says (an HTML page saved as ``.zip``, a truncated download, a password);
* a member would land outside its folder (an absolute path, ``..``) or is a link or another special file;
* it holds more than ``MAX_UPLOAD_BYTES`` or ``MAX_MEMBERS`` files in all, archives nested more than ``MAX_DEPTH``
  deep, an archive with no file, or expands more than ``MAX_RATIO`` times what it was compressed to.

The caps hold on the bytes actually read, never on the sizes an archive's headers declare (a tar member's declared
size is charged as well, since skipping it reads that much). macOS's ``__MACOSX`` and dot files are junk
(``is_junk``): never extracted.
"""
import contextlib
import errno
import lzma
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

MAX_UPLOAD_BYTES = 256 * 2**20  # what one upload may unpack to, nested archives included
MAX_MEMBERS = 2000  # files and folders in one upload
MAX_DEPTH = 3  # archives inside archives inside the upload
MAX_RATIO = 100  # bytes out per compressed byte: a zip member, or a whole tar archive
RATIO_FLOOR = 2**20  # what anything may expand to, whatever its compressed size
CHUNK = 2**20
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".gz")
# what a broken archive raises while it is read (a password-protected zip member: RuntimeError)
READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError,
               NotImplementedError, RuntimeError, ValueError, OSError)


class UploadRefused(Exception):
    """Why an upload cannot be unpacked, in one sentence for the instructor."""


@contextlib.contextmanager
def _reading(where: str, problem: str = "cannot be read"):
    """What a broken or hostile archive raises, as UploadRefused (a full disk is the grader's, not the upload's)."""
    try:
        yield
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:  # a member both a file and a folder
        raise UploadRefused(f"{where} holds clashing members ({Path(exc.filename or '').name!r})") from None
    except READ_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        why = " ".join(str(exc).split())[:200]  # one line (tarfile lists every method it tried)
        raise UploadRefused(f"{where} {problem} ({type(exc).__name__}: {why})") from None


def is_junk(rel: PurePosixPath) -> bool:
    """Files macOS and Jupyter add beside a student's work, never the work itself (``..`` is not junk: refused)."""
    return any(part.startswith((".", "__MACOSX")) and part != ".." for part in rel.parts)


def is_archive(name: str) -> bool:
    return name.lower().endswith((".zip", *TAR_SUFFIXES))


def extracted_folder(archive: Path) -> Path:
    """Where ``archive`` is extracted: beside it, named without its archive suffixes (``work.tar.gz`` -> ``work``)."""
    name = archive.name
    for suffix in (".zip", *TAR_SUFFIXES):
        if name.lower().endswith(suffix):
            name = name[:-len(suffix)]
            break
    return archive.with_name(name or "archive")


class _Upload:
    """What one upload may still unpack."""

    def __init__(self, name: str):
        self.name, self.bytes_left, self.members_left = name, MAX_UPLOAD_BYTES, MAX_MEMBERS

    def take_member(self, where: str) -> None:
        self.members_left -= 1
        if self.members_left < 0:
            raise UploadRefused(f"{where} holds more than {MAX_MEMBERS} files and folders")


def _target(folder: Path, name: str, where: str) -> Path:
    """``folder / name`` for a member ``name``, refused when it is absolute or leaves ``folder``."""
    rel = PurePosixPath(name)
    if not name or "\0" in name or rel.is_absolute() or ".." in rel.parts:
        raise UploadRefused(f"{where} holds a member outside its folder ({name!r})")
    return folder.joinpath(*rel.parts)


def _copy(open_member, target: Path, upload: _Upload, allowance: int, where: str) -> None:
    """Stream the member ``open_member()`` opens into the new file ``target``: at most ``allowance`` bytes (its
    compression ratio) and what ``upload`` has left, counted as read."""
    copied = 0
    with _reading(where):
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out, open_member() as source:
            while chunk := source.read(CHUNK):
                copied += len(chunk)
                if copied > upload.bytes_left:
                    raise UploadRefused(f"{upload.name} unpacks to more than {MAX_UPLOAD_BYTES // 2**20} MiB")
                if copied > allowance:
                    raise UploadRefused(f"{where} expands more than {MAX_RATIO} times its compressed size "
                                        "(a zip bomb?)")
                out.write(chunk)
    upload.bytes_left -= copied


def _extract_zip(archive: Path, folder: Path, upload: _Upload, where: str) -> None:
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            upload.take_member(where)
            if is_junk(PurePosixPath(info.filename)):
                continue
            target = _target(folder, info.filename, where)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UploadRefused(f"{where} holds a link ({info.filename!r})")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                _copy(lambda: z.open(info), target, upload, max(MAX_RATIO * info.compress_size, RATIO_FLOOR),
                      f"{where}: {info.filename!r}")


def _extract_tar(archive: Path, folder: Path, upload: _Upload, where: str) -> None:
    """Every member's data counts against the whole archive's ratio, skipped ones too (skipping reads them)."""
    allowance = max(MAX_RATIO * archive.stat().st_size, RATIO_FLOOR)
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            upload.take_member(where)
            allowance -= member.size
            if allowance < 0:
                raise UploadRefused(f"{where} expands more than {MAX_RATIO} times its compressed size (a zip bomb?)")
            if is_junk(PurePosixPath(member.name)):
                continue
            target = _target(folder, member.name, where)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif not member.isreg():
                kind = "a link" if member.issym() or member.islnk() else "a special file"
                raise UploadRefused(f"{where} holds {kind} ({member.name!r})")
            else:
                _copy(lambda: tar.extractfile(member), target, upload, member.size, f"{where}: {member.name!r}")


def _unpack(archive: Path, upload: _Upload, where: str, depth: int) -> None:
    """Extract ``archive`` into a folder beside it, then every archive in it; remove it."""
    if depth > MAX_DEPTH:
        raise UploadRefused(f"{where} nests archives more than {MAX_DEPTH} deep")
    kind = "zip" if archive.name.lower().endswith(".zip") else "tar"
    folder = extracted_folder(archive)
    with _reading(where, f"is not a readable {kind} archive"):
        folder.mkdir(exist_ok=True)
        (_extract_zip if kind == "zip" else _extract_tar)(archive, folder, upload, where)
    archive.unlink()
    found = sorted(p for p in folder.rglob("*") if p.is_file())
    if not found:
        raise UploadRefused(f"{where} holds no file")
    for path in found:
        if is_archive(path.name):
            _unpack(path, upload, f"{where}/{path.relative_to(folder).as_posix()}", depth + 1)


def _unpack_upload(lms: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> None:
    """One member of the LMS zip, and every archive in it, under ``target``; nothing of it is left if refused."""
    name, upload = info.filename, _Upload(info.filename)
    path = _target(target, name, name)
    try:
        _copy(lambda: lms.open(info), path, upload, max(MAX_RATIO * info.compress_size, RATIO_FLOOR), name)
        if is_archive(path.name):
            _unpack(path, upload, name, 1)
    except UploadRefused:
        if is_archive(path.name) and extracted_folder(path).is_dir():
            shutil.rmtree(extracted_folder(path))  # our own files and folders: no link was ever made
        path.unlink(missing_ok=True)
        raise


def unpack_lms_zip(source: Path, target: Path) -> dict[str, str]:
    """Extract the LMS zip ``source`` into the new folder ``target``: each member, and every archive in it.
    Returns {member name: why} for the uploads refused (nothing of them is left in ``target``); a ``source`` that
    is not a readable zip is refused as a whole (ValueError)."""
    try:
        lms = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{source} is not a readable zip ({exc}): download the submissions from the LMS again "
                         "(Canvas: Assignments > the assignment > Download Submissions)") from None
    refused = {}
    with lms:
        for info in lms.infolist():
            if not info.is_dir() and not is_junk(PurePosixPath(info.filename)):
                try:
                    _unpack_upload(lms, info, target)
                except UploadRefused as exc:
                    refused[info.filename] = str(exc)
    return refused
