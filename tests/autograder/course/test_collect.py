"""Intake never stops a course: a bad upload makes only its student "invalid upload", with the reason.

The four cases of issue 25 (a ``../`` member, a ``.zip`` that is an HTML page, a zip bomb, a tar with a link),
the bounds on size and member count, and a broken LMS zip as a one-line error, on ``collect`` directly; one grading
run checks that the good student beside the four bad uploads is graded.
"""
import functools
import io
import tarfile
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import cli
from autograder.course import archives
from autograder.course.collect import collect
from autograder.course.pipeline import Limits, grade
from autograder.worker.results import STATUS_GRADED, STATUS_INVALID_UPLOAD
from demo.examples import EXAMPLES

NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def write_zip(path: Path, files: dict) -> Path:
    path.write_bytes(zip_bytes(files))
    return path


def zip_bytes(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buffer.getvalue()


@functools.cache
def bomb_bytes() -> bytes:
    """A zip of 65 KB holding a 64 MiB member (zeros, 1000 times smaller compressed), written in chunks."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z, \
            z.open("pruning.ipynb", "w") as member:
        for _ in range(64):
            member.write(bytes(2**20))
    return buffer.getvalue()


def tar_bytes(files: dict, links: dict | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


BAD_UPLOADS = {  # Canvas file name -> what the reason must say
    "dotdot_222_9002_work.zip": (zip_bytes({"pruning.ipynb": NOTEBOOK, "../escaped.txt": b"x"}),
                                 "outside its folder ('../escaped.txt')"),
    "html_333_9003_pruning.zip": (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>",
                                  "is not a readable zip archive (BadZipFile"),
    "bomb_444_9004_work.zip": (None, "expands more than 100 times its compressed size"),
    "link_555_9005_work.tar.gz": (tar_bytes({"pruning.ipynb": NOTEBOOK}, {"data": "/etc"}), "holds a link ('data')"),
}


GOOD_UPLOADS = {"good_111_9001_pruning.ipynb": NOTEBOOK,
                "nested_666_9006_work.tar.gz": tar_bytes({"work/inner.zip": zip_bytes({"pruning.ipynb": NOTEBOOK})})}


def canvas_zip(path: Path, bad: dict, good: dict = GOOD_UPLOADS) -> Path:
    """A Canvas bulk download of the ``good`` uploads and the ``bad`` ones ({name: (bytes or None: a bomb, _)})."""
    return write_zip(path, good | {name: content or bomb_bytes() for name, (content, _) in bad.items()})


@pytest.fixture(scope="module")
def submissions(tmp_path_factory) -> Path:
    return canvas_zip(tmp_path_factory.mktemp("canvas") / "submissions.zip", BAD_UPLOADS)


def test_each_bad_upload_makes_only_its_student_invalid(submissions, tmp_path):
    found = collect(submissions, tmp_path / "staging")
    assert set(found.submissions) == {"111", "222", "333", "444", "555", "666"}
    for name, (_, reason) in BAD_UPLOADS.items():
        sub = next(s for s in found.submissions.values() if s.file == name)
        assert reason in sub.problem and sub.path == "", (name, sub)
    good = {s: found.submissions[s] for s in ("111", "666")}
    assert good["666"].file == "nested_666_9006_work/work/inner/pruning.ipynb"
    assert all(not s.problem and Path(s.path).read_bytes() == NOTEBOOK for s in good.values())
    written = [p for p in (tmp_path / "staging").rglob("*") if p.is_file()]
    assert sorted(p.name for p in written) == ["good_111_9001_pruning.ipynb", "pruning.ipynb"]
    assert not list(tmp_path.rglob("escaped.txt")) and not list(tmp_path.rglob("data"))


def test_an_upload_past_its_size_or_member_cap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_UPLOAD_BYTES", 3000)
    monkeypatch.setattr(archives, "MAX_MEMBERS", 5)
    files = {"big_1_1_work.zip": zip_bytes({"a.bin": bytes(2000), "b.bin": bytes(2000)}),  # each within its ratio
             "many_2_2_work.zip": zip_bytes({f"{i}.txt": b"x" for i in range(6)}),
             "fine_3_3_work.zip": zip_bytes({f"{i}.txt": b"x" for i in range(5)})}
    found = collect(write_zip(tmp_path / "subs.zip", files), tmp_path / "staging")
    assert "big_1_1_work.zip unpacks to more than" in found.submissions["1"].problem
    assert "holds more than 5 files and folders" in found.submissions["2"].problem
    assert not found.submissions["3"].problem


def test_a_broken_lms_zip_is_one_line_naming_the_file_and_the_fix(tmp_path, capsys):
    broken = tmp_path / "submissions.zip"
    broken.write_bytes(b"<html>Canvas session expired</html>")
    with pytest.raises(ValueError, match="submissions.zip is not a readable zip .*Download Submissions"):
        collect(broken, tmp_path / "staging")
    assert cli.main(["grade", str(broken), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err  # after the set-up bar
    assert "Traceback" not in err and err.rstrip().splitlines()[-1] == f"error: {broken} is not a readable zip (File " \
        "is not a zip file): download the submissions from the LMS again (Canvas: Assignments > the assignment > " \
        "Download Submissions)"


def test_grading_beside_the_bad_uploads_grades_the_good_student(course_env, tmp_path, capsys):
    """One real grading run: the released notebook graded, the four bad uploads "invalid upload" with the
    reason in grades.csv and an ACTION line."""
    good = {"good_111_9001_pruning.ipynb": nbformat.writes(EXAMPLES["blank"]()).encode()}
    submissions = canvas_zip(tmp_path / "submissions.zip", BAD_UPLOADS, good)
    limits = Limits(cell_timeout=60, notebook_timeout=400)
    results = {r.student: r for r in grade(submissions, tmp_path / "out", workers=1, limits=limits)}
    assert results["111"].status == STATUS_GRADED, results["111"].detail
    for name, (_, reason) in BAD_UPLOADS.items():
        student = name.split("_")[1]
        assert results[student].status == STATUS_INVALID_UPLOAD and reason in results[student].detail
    grades_csv = (tmp_path / "out" / "grades.csv").read_text()
    assert grades_csv.count(STATUS_INVALID_UPLOAD) == 4 and "holds a link ('data')" in grades_csv
    printed = capsys.readouterr().out
    assert "ACTION: 4 students handed in work that has no grade" in printed
    assert "    444 (bomb): invalid upload: bomb_444_9004_work.zip: 'pruning.ipynb' expands more than" in printed
