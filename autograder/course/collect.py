"""Find each student's submission in a folder or an LMS bulk-download zip, losing nothing.

Every file is either one student's submission, a superseded file of a student
(listed, not graded), or unmatched (reported by name, never dropped).

* Canvas bulk downloads name files ``<name>[_late]_<userid>_<submissionid>_<file>``:
  the student id is the Canvas user id (two students may share a name), the
  name and the late flag are kept. A folder or zip in which any file follows
  this scheme is read as a Canvas download, and its other files are unmatched.
* Otherwise a folder holds ``<student_id>.<ext>`` or ``<student_id>/<any file>``,
  a zip ``<student_id>.<ext>`` files.
* ``--name-pattern REGEX`` replaces both: it must match a file's whole path
  inside the zip or folder (``/`` separators) and have a ``student_id`` group;
  optional groups ``name``, ``late`` (non-empty when late) and ``submission_id``.
* ``--match FILE=ID`` names the student of one file by hand (``FILE`` as the
  summary lists it, ``ID`` the student's id: for Canvas, the roster's ``ID``
  column); it wins over the names, and ``OUT/matches.json`` remembers it for
  later runs.

A student with several files is graded on the one with the highest submission
id, then notebooks before other files, then the newest.
Archives in a zip (nested ones too) are extracted with bounds (``autograder/course/archives.py``); an upload
refused there is still its student's file, with the reason (``Submission.problem``: graded "invalid upload").
"""
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from autograder.course.archives import is_junk, unpack_lms_zip

CANVAS_PATTERN = (r"(?:.*/)?(?P<name>[^/_]*)(?P<late>_[Ll][Aa][Tt][Ee])?_(?P<student_id>\d+)_(?P<submission_id>\d+)"
                  r"_[^/]+(?:/.+)?")
PLAIN_PATTERN = r"(?:.*/)?(?P<student_id>[^/]+?)\.[^./]+"  # alice.ipynb
FOLDER_PATTERN = r"(?P<student_id>[^/]+)/[^/]+"  # alice/anything.ipynb (folders only)


@dataclass
class Submission:
    student: str
    path: str  # the file to grade (an extracted copy for a zip)
    file: str  # its name as handed in: the path inside the zip or folder
    name: str = ""  # the LMS's name for the student (Canvas: the name slug)
    late: bool = False
    submission_id: str = ""
    matched_by_hand: bool = False  # by --match
    problem: str = ""  # why the upload could not be unpacked ("" when it could); ``path`` is then ""


@dataclass
class Superseded:
    file: str
    student: str
    kept: str  # the file graded instead


@dataclass
class Collection:
    submissions: dict = field(default_factory=dict)  # student id -> Submission
    superseded: list = field(default_factory=list)  # Superseded
    unmatched: list = field(default_factory=list)  # files that name no student

    def files(self) -> dict[str, Path]:
        """{student id: file to grade}."""
        return {s: Path(sub.path) for s, sub in self.submissions.items()}

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "Collection":
        data = json.loads(Path(path).read_text())
        return cls({s: Submission(**v) for s, v in data["submissions"].items()},
                   [Superseded(**v) for v in data["superseded"]], list(data["unmatched"]))


def safe_id(text: str) -> str:
    """A student id usable as a folder name (no separators, no leading dot)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.@-]", "_", text).lstrip(".")
    return cleaned or "unnamed"


def _files(top: Path) -> list[str]:
    """Relative paths of the submission files under ``top``."""
    rels = (PurePosixPath(p.relative_to(top).as_posix()) for p in top.rglob("*") if p.is_file())
    return sorted(rel.as_posix() for rel in rels if not is_junk(rel))


def _patterns(files: list[str], name_pattern: str | None, from_zip: bool) -> list[re.Pattern]:
    if name_pattern:
        pattern = re.compile(name_pattern)
        if "student_id" not in pattern.groupindex:
            raise ValueError(f"--name-pattern {name_pattern!r} has no (?P<student_id>...) group")
        return [pattern]
    canvas = re.compile(CANVAS_PATTERN)
    if any(canvas.fullmatch(f) for f in files):
        return [canvas]
    return [re.compile(PLAIN_PATTERN)] if from_zip else [re.compile(FOLDER_PATTERN), re.compile(PLAIN_PATTERN)]


def _unpack(source: Path, staging: Path) -> tuple[Path, dict]:
    """Extract the zip under ``staging``: (the folder holding its contents, {upload refused: why})."""
    shutil.rmtree(staging, ignore_errors=True)
    top = staging / "extracted" / source.stem
    top.mkdir(parents=True)
    return top, unpack_lms_zip(source, top)


def _hand_matches(pairs: list[str], remembered: Path | None) -> tuple[dict, dict]:
    """(every hand match: remembered, then ``pairs`` "FILE=ID" given now; those given now) as {file: id}."""
    given = {}
    for pair in pairs:
        file, _, student = pair.rpartition("=")
        if not file.strip() or not student.strip():
            raise ValueError(f"--match {pair!r} is not FILE=ID: give the file as the summary lists it and the "
                             "student's id, e.g. --match '1009.ipynb=1009'")
        given[file.strip()] = student.strip()
    saved = json.loads(remembered.read_text()) if remembered and remembered.is_file() else {}
    return {**saved, **given}, given


def _rank(sub: Submission) -> tuple:
    """Higher is preferred: newest submission id, then a notebook, then the newest file."""
    number = int(sub.submission_id) if sub.submission_id.isdigit() else -1
    return number, sub.path.endswith(".ipynb"), Path(sub.path).stat().st_mtime if sub.path else 0.0, sub.file


def collect(source: Path, staging: Path, name_pattern: str | None = None, match: list[str] = (),
            remembered: Path | None = None) -> Collection:
    """Every file in ``source`` (folder or zip) as a submission, a superseded file or an unmatched one.

    ``match``: hand matches "FILE=ID" (``--match``), added to those in ``remembered`` (a JSON file), which
    then holds them all; a match given now must name a file of ``source``."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist: pass a folder of notebooks or an LMS zip")
    from_zip = source.is_file()
    if from_zip and source.suffix.lower() != ".zip":
        raise ValueError(f"{source} is a file but not a .zip: pass a folder of notebooks or an LMS zip")
    top, refused = _unpack(source, staging) if from_zip else (source, {})
    files = sorted(_files(top) + list(refused))
    patterns = _patterns(files, name_pattern, from_zip)
    by_hand, given = _hand_matches(list(match), remembered)
    if absent := [f for f in given if f not in files]:
        raise ValueError(f"--match names no file of {source}: {', '.join(absent)}; give the file as the summary "
                         "lists it (its path inside the zip or folder)")

    collection, raw_ids, candidates = Collection(), {}, {}
    for rel in files:
        if rel in by_hand:
            groups = {"student_id": by_hand[rel]}
        elif found := next((m for p in patterns if (m := p.fullmatch(rel)) and m.group("student_id")), None):
            groups = found.groupdict()
        else:
            collection.unmatched.append(rel)
            continue
        student = safe_id(groups["student_id"])
        if raw_ids.setdefault(student, groups["student_id"]) != groups["student_id"]:
            raise ValueError(f"{source}: student ids {raw_ids[student]!r} and {groups['student_id']!r} both become "
                             f"{student!r} as folder names; rename one of the files")
        candidates.setdefault(student, []).append(Submission(
            student, "" if rel in refused else str(top / rel), rel, groups.get("name") or "",
            bool(groups.get("late")), groups.get("submission_id") or "", rel in by_hand, refused.get(rel, "")))
    for student, subs in sorted(candidates.items()):
        subs.sort(key=_rank, reverse=True)
        collection.submissions[student] = subs[0]
        collection.superseded += [Superseded(s.file, student, subs[0].file) for s in subs[1:]]
    if remembered and by_hand:
        Path(remembered).write_text(json.dumps(by_hand, indent=1))
    return collection
