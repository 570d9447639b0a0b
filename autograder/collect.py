"""Find each student's submission in a folder or an LMS bulk-download zip.

Folder: ``<student_id>.ipynb`` files, or ``<student_id>/<any name>.ipynb``.
Zip: extracted with nbgrader's ``ExtractorPlugin`` (nested zips too); student
ids come from file names through nbgrader's ``FileNameCollectorPlugin``.
The default pattern reads both ``alice.ipynb`` and Canvas-style names
(``doejane_12345_67890_pruning.ipynb``, ``doejane_late_...``); other LMS name
schemes need ``--name-pattern`` with a ``student_id`` and a ``file_id`` group.
A student with several files is graded on their newest notebook; a student
who handed in only other files is reported as an invalid notebook.
"""
import re
import shutil
from pathlib import Path

from nbgrader.plugins.zipcollect import ExtractorPlugin, FileNameCollectorPlugin

DEFAULT_NAME_PATTERN = r".*/(?P<student_id>[^/_]+?)(?:_late)?(?:_\d+_\d+_[^/]*?)?(?P<file_id>\.[^./]+)$"


def safe_id(text: str) -> str:
    """A student id usable as a folder name (no separators, no leading dot)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.@-]", "_", text).lstrip(".")
    return cleaned or "unnamed"


def _student_of(path: Path, top: Path, collector, from_zip: bool) -> str:
    rel = path.relative_to(top)
    if len(rel.parts) > 1 and not from_zip:  # <student>/<file> in a folder
        return safe_id(rel.parts[0])
    found = collector.collect(str(path))
    return safe_id(found["student_id"] if found and found.get("student_id") else path.stem)


def collect(source: Path, staging: Path, name_pattern: str = DEFAULT_NAME_PATTERN) -> dict[str, Path]:
    """{student_id: file to grade}; zips are extracted under ``staging``."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist: pass a folder of notebooks or an LMS zip")
    if source.is_file():
        if source.suffix.lower() != ".zip":
            raise ValueError(f"{source} is a file but not a .zip: pass a folder of notebooks or an LMS zip")
        archive, top = staging / "archive", staging / "extracted"
        shutil.rmtree(staging, ignore_errors=True)
        archive.mkdir(parents=True)
        shutil.copy(source, archive / source.name)
        ExtractorPlugin().extract(str(archive), str(top))
    else:
        top = source
    collector = FileNameCollectorPlugin(named_regexp=name_pattern, valid_ext=[p.suffix for p in top.rglob("*")])
    chosen: dict[str, Path] = {}
    for path in sorted(p for p in top.rglob("*") if p.is_file()):
        rel = path.relative_to(top)
        if any(part.startswith((".", "__MACOSX")) for part in rel.parts) or ".ipynb_checkpoints" in rel.parts:
            continue
        student = _student_of(path, top, collector, from_zip=source.is_file())
        best = chosen.get(student)
        is_nb = path.suffix == ".ipynb"
        if best is None or (is_nb, path.stat().st_mtime) > (best.suffix == ".ipynb", best.stat().st_mtime):
            chosen[student] = path
    return chosen
