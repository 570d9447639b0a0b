"""The instructor's whole loop: LMS zip in, manual grading in formgrader, final grades and Canvas CSV out,
feedback pages to Canvas.

Fast tests cover collection (hand matches too), the Canvas roster, what
``canvas.csv`` leaves empty, the summaries, the carry-over of manual work on a
gradebook filled through nbgrader's API, and the feedback upload to a Canvas
stand-in (``tests/support/canvas_stand_in.py``); ``test_whole_loop`` grades a
Canvas-style zip for real, opens formgrader's printed link in a fresh headless
Chromium, grades by hand through nbgrader's Gradebook API, exports, regrades
and uploads the feedback.
"""
import csv
import json
import os
import re
import shutil
import urllib.request
import zipfile
from pathlib import Path

import nbformat
import pytest
from canvas_stand_in import CanvasStandIn, serve
from formgrader_session import chromium_dom, formgrader

from autograder import cli
from autograder.course.aggregate import finish, print_summary
from autograder.course.canvas_feedback import (
    SKIPPED,
    UNCHANGED,
    UPLOADED,
    WOULD_UPLOAD,
    page_name,
    upload_feedback,
)
from autograder.course.collect import Collection, Submission, collect
from autograder.course.export import export
from autograder.course.formgrade import SERVING, serving_pid, warn_if_served
from autograder.course.gradebook import Mark, describe_work, read_marks
from autograder.course.grades import PENDING, STATUS_UNMATCHED_FILE, final_grades
from autograder.course.pipeline import Limits, grade
from autograder.course.publish import canvas_scores
from autograder.course.release import prepare_template
from autograder.course.roster import POINTS_POSSIBLE, read_roster
from autograder.grading_folder import GradingFolder
from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, NOTEBOOK_ID
from autograder.worker.results import STATUS_INVALID, STATUS_MISSING, GradingResult
from demo.examples import EXAMPLES
from ece662.grading import registry

COLUMN = "Pruning (12345)"
QUESTIONS = [q.grade_id for q in registry.QUESTIONS]
LIMITS = Limits(cell_timeout=60, notebook_timeout=400, memory_mb=6144)
# Canvas gradebook export: identity columns, assignments, read-only totals, then "Points Possible"
ROSTER_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", COLUMN, "Quiz 1 (12346)",
                 "Current Score", "Final Score"]
PEOPLE = [("Smith, John", "111", "S111", "jsmith1"), ("Smith, John", "222", "S222", "jsmith2"),
          ("Doe, Jane", "333", "S333", "jdoe"), ("Lee, Kim", "444", "S444", "klee"),
          ("Nobody, Ann", "555", "S555", "anobody"), ("Roe, Rita", "1009", "S1009", "rroe"),
          ("Trunk, Tom", "666", "S666", "ttrunk"), ("Student, Test", "999", "", "")]  # Canvas's test student


def write_roster(path: Path, people=PEOPLE) -> Path:
    with open(path, "w", newline="", encoding="utf-8-sig") as f:  # Canvas writes a byte-order mark
        writer = csv.writer(f)
        writer.writerow(ROSTER_HEADER)
        writer.writerow([POINTS_POSSIBLE, "", "", "", "", "41.00", "10.00", "(read only)", "(read only)"])
        for name, uid, sis, login in people:
            writer.writerow([name, uid, sis, login, "ECE 662 001", "", "8.00", "80.0", "80.0"])
    return path


def with_answers(nb, text: str):
    """The notebook with every inline question answered by ``text``."""
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in QUESTIONS:
            cell.source = text
    return nb


def notebook_bytes(example: str, answer: str | None = None) -> bytes:
    nb = EXAMPLES[example]()
    return nbformat.writes(with_answers(nb, answer) if answer else nb).encode()


def write_zip(path: Path, files: dict) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, content in files.items():
            z.writestr(name, content)
    return path


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def column(part: str) -> str:
    """The grades.csv column of a part or question."""
    return f"{part} (/{registry.parts()[part]:g})"


def rows_by_student(path: Path) -> dict:
    with open(path, newline="") as f:
        return {r["student_id"] or r["file"]: r for r in csv.DictReader(f)}


# ---------------------------------------------------------------- collection


def test_canvas_zip_every_file_is_a_submission_superseded_or_unmatched(tmp_path):
    inner = write_zip(tmp_path / "inner.zip", {"pruning.ipynb": b"{}"})
    archive = write_zip(tmp_path / "submissions.zip", {
        "nobodyann_555_9005_work.zip": inner.read_bytes(),  # a student's own zip: extracted, graded inside
        "smithjohn_111_9001_pruning.ipynb": b"{}",
        "smithjohn_222_9002_pruning.ipynb": b"{}",  # same name slug, another student
        "doejane_late_333_9003_pruning.ipynb": b"{}",
        "leekim_444_9004_pruning.ipynb": b"{}",  # resubmitted as 9010
        "leekim_444_9010_pruning-1.ipynb": b"{}",
        "notes.txt": b"not from Canvas",
        "__MACOSX/._smithjohn_111_9001_pruning.ipynb": b"junk",
    })
    found = collect(archive, tmp_path / "staging")
    assert set(found.submissions) == {"111", "222", "333", "444", "555"}
    assert found.submissions["555"].file == "nobodyann_555_9005_work/pruning.ipynb"
    assert [(s.name, s.late) for s in map(found.submissions.get, ("111", "222", "333"))] == [
        ("smithjohn", False), ("smithjohn", False), ("doejane", True)]
    assert found.submissions["444"].file == "leekim_444_9010_pruning-1.ipynb"
    assert [(s.file, s.student, s.kept) for s in found.superseded] == [
        ("leekim_444_9004_pruning.ipynb", "444", "leekim_444_9010_pruning-1.ipynb")]
    assert found.unmatched == ["notes.txt"]


def test_folders_plain_names_and_a_custom_pattern(tmp_path):
    (tmp_path / "plain" / "bob").mkdir(parents=True)
    (tmp_path / "plain" / "alice.ipynb").write_text("{}")
    (tmp_path / "plain" / "bob" / "my work.ipynb").write_text("{}")
    assert set(collect(tmp_path / "plain", tmp_path / "s1").submissions) == {"alice", "bob"}

    moodle = tmp_path / "moodle"  # one folder per student: "<Name>_<id>_assignsubmission_file_/<file>"
    for folder in ("Jane Doe_77_assignsubmission_file_", "Kim Lee_78_assignsubmission_file_"):
        (moodle / folder).mkdir(parents=True)
        (moodle / folder / "pruning.ipynb").write_text("{}")
    (moodle / "grades.txt").write_text("")
    found = collect(moodle, tmp_path / "s2", r"(?P<name>[^/_]+)_(?P<student_id>\d+)_assignsubmission_file_/.+")
    assert {s: sub.name for s, sub in found.submissions.items()} == {"77": "Jane Doe", "78": "Kim Lee"}
    assert found.unmatched == ["grades.txt"]
    with pytest.raises(ValueError, match="student_id"):
        collect(moodle, tmp_path / "s3", r"(?P<id>\d+)")


def test_a_file_matched_by_hand_is_graded_and_remembered(tmp_path):
    """A file no name rule matches (1009.ipynb inside a Canvas zip) is given to its student with --match, and
    later runs remember it."""
    archive = write_zip(tmp_path / "submissions.zip", {"smithjohn_111_9001_pruning.ipynb": b"{}",
                                                       "1009.ipynb": b"{}", "notes.txt": b""})
    remembered = GradingFolder(tmp_path / "out").hand_matches
    remembered.parent.mkdir()
    assert collect(archive, tmp_path / "s1").unmatched == ["1009.ipynb", "notes.txt"]
    found = collect(archive, tmp_path / "s2", match=["1009.ipynb=1009"], remembered=remembered)
    assert set(found.submissions) == {"111", "1009"} and found.unmatched == ["notes.txt"]
    assert found.submissions["1009"].matched_by_hand and not found.submissions["111"].matched_by_hand
    again = collect(archive, tmp_path / "s3", remembered=remembered)  # a later run, no --match
    assert again.submissions["1009"].file == "1009.ipynb" and json.loads(remembered.read_text()) == {
        "1009.ipynb": "1009"}
    with pytest.raises(ValueError, match="not FILE=ID"):
        collect(archive, tmp_path / "s4", match=["1009.ipynb"], remembered=remembered)
    with pytest.raises(ValueError, match="names no file of .*: 1008.ipynb"):
        collect(archive, tmp_path / "s5", match=["1008.ipynb=1009"], remembered=remembered)


# ---------------------------------------------------------------- roster and Canvas CSV


def test_roster_reads_a_canvas_export(tmp_path):
    roster = read_roster(write_roster(tmp_path / "gradebook.csv"))
    assert [s.canvas_id for s in roster.students] == ["111", "222", "333", "444", "555", "1009", "666"]
    assert [s.canvas_id for s in roster.test_students] == ["999"]  # never missing, never in canvas.csv
    assert roster.identity_columns == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert roster.find("222").name == "Smith, John" and roster.find("klee").canvas_id == "444"
    assert roster.find("999").name == "Student, Test" and roster.find("998") is None
    assert [s.canvas_id for s in roster.named_in("1009.ipynb")] == ["1009"]
    assert [s.canvas_id for s in roster.named_in("work/klee_final.ipynb")] == ["444"]
    assert roster.named_in("pruning-1.ipynb") == []
    assert roster.assignment_column(None, "pruning") == COLUMN
    assert roster.assignment_column("Renamed in Canvas (12345)", "pruning") == COLUMN  # the id decides
    with pytest.raises(ValueError, match=r"no column 'Pruning 2 \(99999\)' \(its assignment columns: 'Pruning "
                                         r"\(12345\)', 'Quiz 1 \(12346\)'\).*--new-assignment"):
        roster.assignment_column("Pruning 2 (99999)", "pruning")
    assert roster.assignment_column("Pruning 2 (99999)", "pruning", new_column=True) == "Pruning 2 (99999)"
    with pytest.raises(ValueError, match="--assignment"):
        roster.assignment_column(None, "compaction")
    (tmp_path / "not-canvas.csv").write_text("name,score\nann,3\n")
    with pytest.raises(ValueError, match="not a Canvas gradebook export"):
        read_roster(tmp_path / "not-canvas.csv")


# ---------------------------------------------------------------- scores


def test_a_question_is_pending_until_graded_and_nothing_is_scored_when_nothing_could_be_graded():
    q = QUESTIONS[0]
    automatic = {t.grade_id: t.points for t in registry.TESTS} | dict.fromkeys(QUESTIONS)  # as the worker decides
    graded = GradingResult("a", graded_notebook="a.ipynb", scores=automatic)
    unreadable = GradingResult.failed("b", "invalid notebook", "not a notebook")
    answered_blank = GradingResult("c", graded_notebook="c.ipynb", scores=automatic | {QUESTIONS[1]: 0.0})
    collection = Collection({s: Submission(s, f"{s}.ipynb", f"{s}.ipynb") for s in "abc"})
    grades = {g.student: g for g in final_grades(
        collection, {"a": graded, "b": unreadable, "c": answered_blank},
        {"a": {q: Mark(None, None)}, "b": {q: Mark(None, None)}, "c": {q: Mark(4.0, 0.5)}}, {"c": {q: "well argued"}})}
    assert grades["a"].scores[q] is None and grades["a"].total() is None
    assert grades["a"].part_scores()[registry.part_of(q)] is None
    assert grades["b"].scores == {} and grades["b"].total() is None and grades["b"].pending() == []
    assert grades["b"].without_grade().startswith(STATUS_INVALID)
    assert grades["c"].scores[q] == 4.5 and grades["c"].scores[QUESTIONS[1]] == 0.0
    assert grades["c"].comments == {q: "well argued"}


# ---------------------------------------------------------------- manual work survives a regrade


def _fake_graded(out: Path, template: Path, student: str, answer: str, failed: tuple = (), blank: tuple = (),
                 code: str = "") -> GradingResult:
    """A per-student course as the worker leaves it, filled through nbgrader's API (no kernel): every test passed
    but those ``failed``, in the gradebook and the result alike; every question answered with ``answer`` but
    those ``blank`` (left as released, which nbgrader scores 0); ``code`` appended to Part 1's code cell."""
    from nbgrader.api import Gradebook

    course = out / "work" / student / "course"
    graded = course / "autograded" / student / ASSIGNMENT / NOTEBOOK
    graded.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, course / "gradebook.db")
    nb = with_answers(nbformat.reads(notebook_bytes("correct"), as_version=4), answer)
    released = {c.metadata["nbgrader"]["grade_id"]: c.source for c in EXAMPLES["blank"]().cells
                if c.get("metadata", {}).get("nbgrader")}
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        cell.source = released[grade_id] if grade_id in blank else cell.source + (code if grade_id == "part1_code"
                                                                                  else "")
    nbformat.write(nb, graded)
    scores = {t.grade_id: 0.0 if t.grade_id in failed else float(t.points) for t in registry.TESTS}
    scores |= {q: 0.0 if q in blank else None for q in QUESTIONS}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.add_student(student)
        gb.add_submission(ASSIGNMENT, student)
        for g in gb.find_submission_notebook(NOTEBOOK_ID, ASSIGNMENT, student).grades:
            g.auto_score = scores.get(g.name)
            g.needs_manual_grade = g.auto_score is None
        gb.db.commit()
    return GradingResult(student, scores=scores, graded_notebook=str(graded))


def _set_manual(db: Path, student: str, cell: str, score: float, comment: str | None = None) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gb:  # as formgrader's form saves a score
        grade = gb.find_grade(cell, NOTEBOOK_ID, ASSIGNMENT, student)
        grade.manual_score, grade.needs_manual_grade = score, False
        if comment is not None:
            gb.find_comment(cell, NOTEBOOK_ID, ASSIGNMENT, student).manual_comment = comment
        gb.db.commit()


def _auto_score(db: Path, student: str, cell: str) -> float | None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gb:  # what formgrader shows
        return gb.find_grade(cell, NOTEBOOK_ID, ASSIGNMENT, student).auto_score


def test_manual_work_is_kept_where_its_cells_did_not_change(tmp_path):
    out, subs = tmp_path / "out", tmp_path / "subs"
    subs.mkdir()
    template = prepare_template(out)
    for s in ("ann", "bob", "cy"):
        (subs / f"{s}.ipynb").write_text("{}")
    collection = collect(subs, out / "collected")
    q1, q2 = QUESTIONS[:2]
    test1, test2 = registry.TESTS[0].grade_id, registry.TESTS[1].grade_id
    results = {s: _fake_graded(out, template, s, f"answer of {s}") for s in ("ann", "bob", "cy")}
    finish(out, collection, results, template)
    for s in ("ann", "bob", "cy"):
        _set_manual(out / "gradebook.db", s, q1, 3.0, f"comment for {s}")
    for s in ("ann", "bob", "cy"):  # an override of a test: the grader read the student's code
        _set_manual(out / "gradebook.db", s, test1, 0.0)
    _set_manual(out / "gradebook.db", "cy", q2, 4.0)

    # bob rewrote only his answers: the answers' work goes, the test's override stays (his code is the same)
    results["bob"] = _fake_graded(out, template, "bob", "bob rewrote his answers")
    # cy changed only her code: the override of the test goes, her answers' scores and comments stay
    results["cy"] = _fake_graded(out, template, "cy", "answer of cy", code="\n# cy's fix\n")
    # and ann's notebook is graded again with another test result: her cells, hence all her work, stay
    results["ann"] = _fake_graded(out, template, "ann", "answer of ann", failed=(test2,))
    outcome = finish(out, collection, results, template)
    assert {(w.student, w.cell) for w in outcome.kept} == {("ann", q1), ("ann", test1), ("bob", test1),
                                                          ("cy", q1), ("cy", q2)}
    assert {(w.student, w.cell, tuple(w.changed)) for w in outcome.dropped} == {
        ("bob", q1, (q1,)), ("cy", test1, ("part1_code",))}  # each names the cell that changed
    assert describe_work(outcome.kept) == "5 scores and 2 comments of 3 students"
    marks, comments = read_marks(out / "gradebook.db")
    assert marks["ann"][q1].manual_score == 3.0 and comments["ann"][q1] == "comment for ann"
    assert marks["bob"][q1].manual_score is None and q1 not in comments["bob"]
    assert marks["bob"][test1].manual_score == 0.0 and marks["cy"][test1].manual_score is None
    assert _auto_score(out / "gradebook.db", "cy", test1) == registry.TESTS[0].points  # the test's own score is back
    assert _auto_score(out / "gradebook.db", "ann", test2) == 0.0  # formgrader shows the new score
    rows = rows_by_student(out / "grades.csv")
    assert rows["ann"][column(registry.part_of(q1))] == "3" and rows["bob"][column(registry.part_of(q1))] == PENDING
    assert rows["ann"][f"total (/{registry.total():g})"] == PENDING  # q2 is still to grade
    assert "comment for ann" in (out / "feedback" / "ann.html").read_text()


def test_the_summary_leaves_to_grade_what_the_gradebook_does(tmp_path, capsys):
    """Blank answers are scored 0 by nbgrader: the summary sends only the answered questions to formgrader."""
    out, subs = tmp_path / "out", tmp_path / "subs"
    subs.mkdir()
    template = prepare_template(out)
    for s in ("ann", "bob"):
        (subs / f"{s}.ipynb").write_text("{}")
    collection = collect(subs, out / "collected")
    q1, q2, *later = QUESTIONS
    results = {"ann": _fake_graded(out, template, "ann", "an answer", blank=tuple(later)),
               "bob": _fake_graded(out, template, "bob", "an answer", blank=(q2, *later))}
    outcome = finish(out, collection, results, template)
    assert {g.student: g.pending() for g in outcome.grades} == {"ann": [q1, q2], "bob": [q1]}
    print_summary(outcome, collection, out, True, None, 1.0, 2)
    printed = capsys.readouterr().out
    to_grade = next(line for line in printed.splitlines() if line.startswith("pending:"))
    assert to_grade == f"pending: 2 students with questions to grade in formgrader: {q1} (2 students), {q2} (1 student)"


def _fake_output(tmp_path: Path, graded: dict, failed: dict = None, extra_files: dict = None) -> Path:
    """A grading output folder for Canvas-named submissions without running a kernel: ``graded`` maps a Canvas
    user id to its answer text, ``failed`` to a failed GradingResult's status; ``extra_files`` go in the zip too.
    The roster is PEOPLE's, remembered as grade would."""
    out = tmp_path / "out"
    template = prepare_template(out)
    names = {uid: name.split(",")[0].lower() for name, uid, _, _ in PEOPLE}
    files = {f"{names[u]}_{u}_{9000 + int(u)}_pruning.ipynb": b"{}" for u in [*graded, *(failed or {})]}
    collection = collect(write_zip(tmp_path / "subs.zip", files | (extra_files or {})), out / "collected")
    results = {u: _fake_graded(out, template, u, answer) for u, answer in graded.items()}
    results |= {u: GradingResult.failed(u, status, "the file is not a notebook")
                for u, status in (failed or {}).items()}
    (out / "results").mkdir()
    for student, result in results.items():  # as the workers save them
        result.save(out / "results" / f"{student}.json")
    finish(out, collection, results, template, write_roster(tmp_path / "canvas-export.csv"))
    return out


def test_canvas_csv_gives_no_automatic_zero_and_refuses_an_unknown_column(tmp_path, capsys):
    out = _fake_output(tmp_path, {"111": "my answer"}, {"666": STATUS_INVALID}, {"1009.ipynb": b"{}",
                                                                                "readme.txt": b""})
    for q in QUESTIONS:
        _set_manual(out / "gradebook.db", "111", q, 2.0)
    grades = {g.student or g.file: g for g in export(out, verbose=False)}
    assert grades["666"].status == STATUS_INVALID and grades["666"].scores == {}
    assert (grades["1009"].status, grades["555"].status) == (STATUS_UNMATCHED_FILE, STATUS_MISSING)
    assert "--match 1009.ipynb=1009" in grades["1009"].detail and "999" not in grades  # the test student
    canvas = read_csv(out / "canvas.csv")
    total = f"{registry.autograded_total() + 2 * len(QUESTIONS):g}"
    assert {r[1]: r[5] for r in canvas[2:]} == {"111": total, "222": "", "333": "", "444": "", "555": "",
                                               "1009": "", "666": ""}
    rows = rows_by_student(out / "grades.csv")
    assert rows["666"][f"total (/{registry.total():g})"] == "" and rows["555"][f"total (/{registry.total():g})"] == ""
    assert "not graded / " in (out / "feedback" / "666.html").read_text()

    export(out, assignment=COLUMN, zero_missing=True)  # who handed in nothing gets 0; nobody else does
    printed = capsys.readouterr().out
    assert {r[1]: r[5] for r in read_csv(out / "canvas.csv")[2:]} == {
        "111": total, "222": "0", "333": "0", "444": "0", "555": "0", "1009": "", "666": ""}
    assert "ACTION: 2 students handed in work that has no grade" in printed
    assert "1009 (Roe, Rita): unmatched file: 1009.ipynb may be theirs: grade again with --match 1009.ipynb=1009" \
        in printed and "666 (Trunk, Tom): invalid notebook" in printed
    assert "readme.txt: the file name names no student" in printed and "left out: Canvas's test student (999)" \
        in printed
    assert canvas_scores(list(grades.values()))["555"] == ""  # the default

    before = (out / "canvas.csv").read_bytes()
    code = cli.main(["export", str(out), "--assignment", "Pruning (12354)"])  # a typo in the id
    error = capsys.readouterr().err
    assert code != 0 and (out / "canvas.csv").read_bytes() == before
    assert error.count("\n") == 1 and "no column 'Pruning (12354)'" in error and "'Pruning (12345)'" in error
    assert cli.main(["export", str(out), "--assignment", "Pruning 2 (12354)", "--new-assignment"]) == 0
    assert read_csv(out / "canvas.csv")[0][-1] == "Pruning 2 (12354)"


# ---------------------------------------------------------------- feedback to Canvas


@pytest.fixture
def canvas(monkeypatch):
    """A Canvas stand-in with every roster student enrolled, and its token in the environment."""
    stand_in = CanvasStandIn("42", "12345", [uid for _, uid, _, _ in PEOPLE], token="secret-token")
    server = serve(stand_in)
    monkeypatch.setenv("CANVAS_API_TOKEN", stand_in.token)
    yield stand_in
    server.shutdown()


def _uploads(out: Path, canvas: CanvasStandIn, **options) -> dict:
    return {u.student: (u.action, u.detail) for u in upload_feedback(out, canvas.url, canvas.course, verbose=False,
                                                                     **options)}


@pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly")  # the stand-in speaks http on 127.0.0.1
def test_feedback_reaches_canvas_once_per_version(tmp_path, canvas, monkeypatch, capsys):
    out = _fake_output(tmp_path, {"111": "an answer", "222": "another answer"})
    for q in QUESTIONS:
        _set_manual(out / "gradebook.db", "111", q, 4.0, "Well argued." if q == QUESTIONS[0] else None)
    export(out, verbose=False)
    page = (out / "feedback" / "111.html").read_bytes()

    assert _uploads(out, canvas, dry_run=True)["111"] == (WOULD_UPLOAD, page_name(page))
    assert not canvas.of("POST", ".*") and not canvas.of("PUT", ".*")
    done = _uploads(out, canvas)
    assert done["111"] == (UPLOADED, page_name(page))
    assert done["222"][0] == SKIPPED and "--include-pending" in done["222"][1]  # its questions are pending
    submissions = "/api/v1/courses/42/assignments/12345/submissions"
    (listing,) = canvas.of("GET", submissions)[-1:]
    assert listing.query["include[]"] == ["submission_comments"] and listing.authorization == "Bearer secret-token"
    (ask,) = canvas.of("POST", rf"{submissions}/\d+/comments/files")
    assert ask.path == f"{submissions}/111/comments/files"
    assert ask.form["name"] == [page_name(page)] and ask.form["size"] == [str(len(page))]
    (sent,) = canvas.of("POST", r"/upload/\d+")
    assert sent.authorization is None  # the upload itself goes without the token, as to Canvas's file store
    assert sent.form["file"] == page and sent.form["filename"] == page_name(page).encode()
    (comment,) = canvas.of("PUT", rf"{submissions}/\d+")
    assert comment.path == f"{submissions}/111" and comment.form["comment[file_ids][]"] == ["1"]
    assert canvas.comments["111"][0]["attachments"][0]["display_name"] == page_name(page)

    export(out, verbose=False)  # the same pages again: nothing new goes to Canvas
    assert _uploads(out, canvas)["111"][0] == UNCHANGED and len(canvas.of("PUT", ".*")) == 1
    for q in QUESTIONS:  # 222 graded, and 111's comment reworded
        _set_manual(out / "gradebook.db", "222", q, 3.0)
    _set_manual(out / "gradebook.db", "111", QUESTIONS[0], 4.0, "Well argued, with data.")
    done = _uploads(out, canvas)
    new_page = (out / "feedback" / "111.html").read_bytes()
    assert done["222"][0] == UPLOADED
    assert done["111"] == (UPLOADED, f"{page_name(new_page)} (its earlier feedback: {page_name(page)})")
    assert [len(canvas.comments[u]) for u in ("111", "222")] == [2, 1]
    (latest,) = canvas.comments["111"][-1]["attachments"]
    assert canvas.files[latest["id"]] == (page_name(new_page), new_page) and b"Well argued, with data." in new_page

    assert cli.main(["upload-feedback", str(out), "--canvas-url", canvas.url, "--course", "42"]) == 0
    assert "111" in capsys.readouterr().out and len(canvas.of("PUT", ".*")) == 3  # a rerun adds nothing
    monkeypatch.setenv("CANVAS_API_TOKEN", "wrong")
    with pytest.raises(RuntimeError, match="refused course 42"):
        _uploads(out, canvas)
    monkeypatch.delenv("CANVAS_API_TOKEN")
    with pytest.raises(ValueError, match="CANVAS_API_TOKEN"):
        _uploads(out, canvas)
    with pytest.raises(SystemExit):  # the token is never an option
        cli.main(["upload-feedback", str(out), "--canvas-url", canvas.url, "--course", "42", "--token", "x"])


# ---------------------------------------------------------------- the grading run


def test_grade_shows_its_set_up_and_warns_while_formgrader_serves(course_env, tmp_path, capfd):
    """A run says what it sets up before the first notebook, and warns when formgrader serves its output folder
    (here this test's own process stands for formgrader); a truncated upload gets no grade, not 0."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    (subs / "ann.ipynb").write_bytes(EXAMPLES["invalid_corrupted_json"]())
    out.mkdir()
    (out / SERVING).write_text(str(os.getpid()))
    (result,) = grade(subs, out, workers=1, limits=LIMITS, verbose=True)
    printed = capfd.readouterr()
    assert result.status == STATUS_INVALID
    assert f"WARNING: formgrader (process {os.getpid()}) is serving {out}" in printed.out
    assert f"kill {os.getpid()}" in printed.out
    bars = printed.err  # the progress bars, in order
    assert bars.index("set-up:") < bars.index("template gradebook") < bars.index("data cache") < bars.index("grading:")
    assert "ann" in printed.out and "invalid notebook" in printed.out
    assert rows_by_student(out / "grades.csv")["ann"][f"total (/{registry.total():g})"] == ""
    (out / SERVING).write_text("999999999")  # a formgrader that is gone: no warning
    assert serving_pid(out) is None


# ---------------------------------------------------------------- the whole loop, for real


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, response.read().decode()


@pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly")  # the stand-in speaks http on 127.0.0.1
def test_whole_loop(course_env, tmp_path, canvas, capsys):
    answer = {s: f"Student {s} argues that pruning keeps accuracy until about half the weights are gone."
              for s in ("111", "222", "444", "1009")}
    files = {
        "smithjohn_111_9001_pruning.ipynb": notebook_bytes("correct", answer["111"]),
        "smithjohn_222_9002_pruning.ipynb": notebook_bytes("wrong_per_layer", answer["222"]),  # same name
        "doejane_late_333_9003_pruning.ipynb": notebook_bytes("blank"),
        "leekim_444_9004_pruning.ipynb": notebook_bytes("blank"),  # superseded by 9010
        "leekim_444_9010_pruning-1.ipynb": notebook_bytes("correct", answer["444"]),
        "trunktom_666_9020_pruning.ipynb": EXAMPLES["invalid_corrupted_json"](),  # a truncated upload
        "1009.ipynb": notebook_bytes("correct", answer["1009"]),  # named by hand, in no Canvas way
        "readme.txt": b"a file the instructor added",
    }
    roster = write_roster(tmp_path / "canvas-export.csv")
    # deeper than a Unix socket path may be long: the kernels' sockets must not live in the output folder
    out = tmp_path / ("deep-output-folder-" * 6) / "out"
    assert len(str(out)) > 110
    results = {r.student: r for r in grade(write_zip(tmp_path / "submissions.zip", files), out, workers=2,
                                           limits=LIMITS, verbose=False, roster=roster)}
    assert set(results) == {"111", "222", "333", "444", "666"}
    auto_max = registry.autograded_total()
    assert results["111"].autograded_score() == auto_max, results["111"].detail
    assert results["222"].autograded_score() < auto_max and results["333"].autograded_score() == 0
    assert results["666"].status == STATUS_INVALID

    # formgrader serves the output folder: its printed link, opened in a fresh browser, lists every graded
    # notebook; while it runs, grading the folder again would warn, naming it
    with formgrader(out) as server:
        status, listing = _get(f"{server.base}/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{NOTEBOOK_ID}"
                               f"?token={server.token}")
        ids = {s["student"]: s["id"] for s in json.loads(listing)}
        assert status == 200 and set(ids) == {"111", "222", "333", "444"}
        status, page = _get(f"{server.base}/formgrader/submissions/{ids['111']}/?token={server.token}")
        assert status == 200 and answer["111"] in page
        dom = chromium_dom(server.link)
        assert set(re.findall(r'href="/formgrader/submissions/(\w+)"', dom)) == set(ids.values()), dom[-3000:]
        assert "Smith, John" in dom or "John Smith" in dom
        assert serving_pid(out) == server.pid
        warn_if_served(out)
        assert f"formgrader (process {server.pid}) is serving {out}" in capsys.readouterr().out
    assert serving_pid(out) is None and not (out / SERVING).exists()

    # grading by hand (what formgrader's form saves), then final grades
    manual = {q: float(n) for q, n in zip(QUESTIONS, (4, 5, 3, 4), strict=True)}
    for q, score in manual.items():
        _set_manual(out / "gradebook.db", "111", q, score, "Clear argument." if q == QUESTIONS[0] else None)
        _set_manual(out / "gradebook.db", "222", q, 1.0, "Please see me." if q == QUESTIONS[0] else None)
    _set_manual(out / "gradebook.db", "444", QUESTIONS[0], 5.0)  # the others stay pending
    export(out, assignment=COLUMN, verbose=False)  # the roster given to grade is remembered

    total_col = f"total (/{registry.total():g})"
    rows = rows_by_student(out / "grades.csv")
    assert set(rows) == {"111", "222", "333", "444", "555", "666", "1009", "readme.txt"}
    assert [rows["111"]["name"], rows["222"]["name"], rows["333"]["late"]] == ["Smith, John", "Smith, John", "late"]
    assert rows["111"][total_col] == f"{auto_max + sum(manual.values()):g}"
    assert rows["222"][total_col] == f"{results['222'].autograded_score() + len(QUESTIONS):g}"
    assert rows["333"][total_col] == "0"  # blank answers score 0 without a grader
    assert rows["444"][total_col] == PENDING and rows["444"][column(registry.part_of(QUESTIONS[1]))] == PENDING
    assert "leekim_444_9004_pruning.ipynb" in rows["444"]["detail"]
    assert [(rows[s]["status"], rows[s][total_col]) for s in ("555", "666", "1009")] == [
        ("missing", ""), (STATUS_INVALID, ""), (STATUS_UNMATCHED_FILE, "")]  # nobody gets a 0 nobody decided
    assert "--match 1009.ipynb=1009" in rows["1009"]["detail"]
    assert (rows["readme.txt"]["status"], rows["readme.txt"]["student_id"]) == ("unmatched", "")

    canvas_csv = read_csv(out / "canvas.csv")
    assert canvas_csv[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", COLUMN]
    assert canvas_csv[1] == [POINTS_POSSIBLE, "", "", "", "", f"{registry.total():g}"]
    assert {r[1]: r[5] for r in canvas_csv[2:]} == {"111": rows["111"][total_col], "222": rows["222"][total_col],
                                                   "333": "0", "444": "", "555": "", "666": "", "1009": ""}
    before = (out / "canvas.csv").read_bytes()
    assert cli.main(["export", str(out), "--assignment", "Pruning (1234)"]) != 0  # a typo: refused, file kept
    assert (out / "canvas.csv").read_bytes() == before

    feedback = (out / "feedback" / "111.html").read_text()
    assert "Clear argument." in feedback and f"4 / {registry.points()[QUESTIONS[0]]:g}" in feedback
    assert "pre-wrap" in feedback and "BEGIN HIDDEN TESTS" not in feedback
    assert f"{PENDING} / " in (out / "feedback" / "444.html").read_text()

    # the feedback pages to Canvas: every final one, none with questions pending or without a grade
    first = _uploads(out, canvas)
    assert {s: a for s, (a, _) in first.items()} == {"111": UPLOADED, "222": UPLOADED, "333": UPLOADED,
                                                     "444": SKIPPED, "666": SKIPPED}

    # 222 fixes the code, answers unchanged, and 1009's file is matched by hand: only they are graded, and
    # every manual score and comment stays
    before = {p.name: p.read_text() for p in (out / "results").glob("*.json")}
    files["smithjohn_222_9002_pruning.ipynb"] = notebook_bytes("correct", answer["222"])
    again = {r.student: r for r in grade(write_zip(tmp_path / "resubmitted.zip", files), out, workers=2,
                                         limits=LIMITS, verbose=False, match=["1009.ipynb=1009"])}
    assert {p.name for p in (out / "results").glob("*.json") if p.read_text() != before.get(p.name)} == {
        "222.json", "1009.json"}
    assert again["222"].autograded_score() == auto_max and again["1009"].autograded_score() == auto_max
    export(out, zero_missing=True, verbose=False)
    rows = rows_by_student(out / "grades.csv")
    assert rows["111"][total_col] == f"{auto_max + sum(manual.values()):g}"
    assert rows["222"][total_col] == f"{auto_max + len(QUESTIONS):g}"
    assert (rows["1009"]["status"], rows["1009"][total_col]) == ("graded", PENDING)
    assert "matched by hand" in rows["1009"]["detail"] and "readme.txt" in rows
    assert {r[1]: r[5] for r in read_csv(out / "canvas.csv")[2:]}["555"] == "0"  # --zero-missing
    assert "Please see me." in (out / "feedback" / "222.html").read_text()
    assert GradingFolder(out).autograded_notebook("222").is_file()

    # a rerun of the upload sends only what changed: 222's new scores
    second = _uploads(out, canvas)
    assert {s: a for s, (a, _) in second.items()} == {"111": UNCHANGED, "222": UPLOADED, "333": UNCHANGED,
                                                      "444": SKIPPED, "666": SKIPPED, "1009": SKIPPED}
    assert [len(canvas.comments.get(u, [])) for u in ("111", "222", "333", "444")] == [1, 2, 1, 0]
