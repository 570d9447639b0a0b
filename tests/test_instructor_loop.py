"""The instructor's whole loop: LMS zip in, manual grading in formgrader, final grades and Canvas CSV out.

Fast tests cover collection, the Canvas roster and the carry-over of manual
work on a gradebook filled through nbgrader's API; ``test_whole_loop`` grades
a Canvas-style zip for real, grades by hand through nbgrader's Gradebook API,
fetches formgrader's page over HTTP, exports and regrades one student.
"""
import csv
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

from autograder.course.aggregate import finish
from autograder.course.collect import Collection, Submission, collect
from autograder.course.export import autograded_notebook, export
from autograder.course.gradebook import Mark, read_marks
from autograder.course.grades import PENDING, final_grades
from autograder.course.pipeline import Limits, grade
from autograder.course.release import prepare_template
from autograder.course.roster import POINTS_POSSIBLE, read_roster
from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, REPO
from autograder.worker.results import GradingResult
from demo.examples import EXAMPLES
from ece662.grading import registry

NOTEBOOK_ID = Path(NOTEBOOK).stem
COLUMN = "Pruning (12345)"
QUESTIONS = [q.grade_id for q in registry.QUESTIONS]
LIMITS = Limits(cell_timeout=60, notebook_timeout=400, memory_mb=6144)
# Canvas gradebook export: identity columns, assignments, read-only totals, then "Points Possible"
ROSTER_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", COLUMN, "Quiz 1 (12346)",
                 "Current Score", "Final Score"]
PEOPLE = [("Smith, John", "111", "S111", "jsmith1"), ("Smith, John", "222", "S222", "jsmith2"),
          ("Doe, Jane", "333", "S333", "jdoe"), ("Lee, Kim", "444", "S444", "klee"),
          ("Nobody, Ann", "555", "S555", "anobody")]


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


# ---------------------------------------------------------------- roster and Canvas CSV


def test_roster_reads_a_canvas_export(tmp_path):
    roster = read_roster(write_roster(tmp_path / "gradebook.csv"))
    assert [s.canvas_id for s in roster.students] == ["111", "222", "333", "444", "555"]
    assert roster.identity_columns == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert roster.find("222").name == "Smith, John" and roster.find("klee").canvas_id == "444"
    assert roster.find("999") is None
    assert roster.assignment_column(None, "pruning") == COLUMN
    assert roster.assignment_column("Renamed in Canvas (12345)", "pruning") == COLUMN  # the id decides
    assert roster.assignment_column("Pruning 2 (99999)", "pruning") == "Pruning 2 (99999)"  # new on import
    with pytest.raises(ValueError, match="--assignment"):
        roster.assignment_column(None, "compaction")
    (tmp_path / "not-canvas.csv").write_text("name,score\nann,3\n")
    with pytest.raises(ValueError, match="not a Canvas gradebook export"):
        read_roster(tmp_path / "not-canvas.csv")


# ---------------------------------------------------------------- scores


def test_a_question_is_pending_until_graded_and_zero_when_nothing_can_be_graded():
    q = QUESTIONS[0]
    graded = GradingResult("a", graded_notebook="a.ipynb", scores={t.grade_id: t.points for t in registry.TESTS})
    unreadable = GradingResult.failed("b", "invalid notebook", "not a notebook")
    waiting, answered_blank = Mark(None, None, None, True), Mark(0.0, None, None, False)
    collection = Collection({s: Submission(s, f"{s}.ipynb", f"{s}.ipynb") for s in "abc"})
    grades = {g.student: g for g in final_grades(
        collection, {"a": graded, "b": unreadable, "c": graded},
        {"a": {q: waiting}, "b": {q: waiting}, "c": {q: Mark(None, 4.0, 0.5, False), QUESTIONS[1]: answered_blank}},
        {"c": {q: "well argued"}})}
    assert grades["a"].scores[q] is None and grades["a"].total() is None
    assert grades["a"].part_scores()[registry.part_of(q)] is None
    assert grades["b"].scores[q] == 0.0 and grades["b"].total() == 0.0
    assert grades["c"].scores[q] == 4.5 and grades["c"].scores[QUESTIONS[1]] == 0.0
    assert grades["c"].comments == {q: "well argued"}


# ---------------------------------------------------------------- manual work survives a regrade


def _fake_graded(out: Path, template: Path, student: str, answer: str, failed: tuple = ()) -> GradingResult:
    """A per-student course as the worker leaves it, filled through nbgrader's API (no kernel): every test passed
    but those ``failed``, in the gradebook and the result alike."""
    from nbgrader.api import Gradebook

    course = out / "work" / student / "course"
    graded = course / "autograded" / student / ASSIGNMENT / NOTEBOOK
    graded.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, course / "gradebook.db")
    nbformat.write(with_answers(nbformat.reads(notebook_bytes("correct"), as_version=4), answer), graded)
    scores = {t.grade_id: 0.0 if t.grade_id in failed else float(t.points) for t in registry.TESTS}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.add_student(student)
        gb.add_submission(ASSIGNMENT, student)
        for g in gb.find_submission_notebook(NOTEBOOK_ID, ASSIGNMENT, student).grades:
            g.auto_score = scores.get(g.name)
            g.needs_manual_grade = g.name in QUESTIONS
        gb.db.commit()
    return GradingResult(student, scores={**scores, **{q: None for q in QUESTIONS}}, graded_notebook=str(graded))


def _set_manual(db: Path, student: str, cell: str, score: float, comment: str | None = None) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{db}") as gb:  # as formgrader's form saves a score
        grade = gb.find_grade(cell, NOTEBOOK_ID, ASSIGNMENT, student)
        grade.manual_score, grade.needs_manual_grade = score, False
        if comment is not None:
            gb.find_comment(cell, NOTEBOOK_ID, ASSIGNMENT, student).manual_comment = comment
        gb.db.commit()


def test_manual_work_is_kept_where_the_answer_did_not_change(tmp_path):
    out, subs = tmp_path / "out", tmp_path / "subs"
    subs.mkdir()
    template = prepare_template(out)
    for s in ("ann", "bob"):
        (subs / f"{s}.ipynb").write_text("{}")
    collection = collect(subs, out / "collected")
    q1, q2 = QUESTIONS[:2]
    results = {s: _fake_graded(out, template, s, f"answer of {s}") for s in ("ann", "bob")}
    finish(out, collection, results, template)
    for s in ("ann", "bob"):
        _set_manual(out / "gradebook.db", s, q1, 3.0, f"comment for {s}")
    _set_manual(out / "gradebook.db", "ann", registry.TESTS[0].grade_id, 0.0)  # an override of a test

    results["bob"] = _fake_graded(out, template, "bob", "bob rewrote his answers")  # bob resubmits
    # and ann's notebook is graded again with another test result: her answers, hence her overrides, stay
    results["ann"] = _fake_graded(out, template, "ann", "answer of ann", failed=(registry.TESTS[1].grade_id,))
    outcome = finish(out, collection, results, template)
    assert {(w.student, w.cell) for w in outcome.kept} == {("ann", q1), ("ann", registry.TESTS[0].grade_id)}
    assert {(w.student, w.cell) for w in outcome.dropped} == {("bob", q1)}
    marks, comments = read_marks(out / "gradebook.db")
    assert marks["ann"][q1].manual_score == 3.0 and comments["ann"][q1] == "comment for ann"
    assert marks["bob"][q1].manual_score is None and q1 not in comments["bob"]
    assert marks["ann"][registry.TESTS[1].grade_id].auto_score == 0.0  # formgrader shows the new score
    rows = rows_by_student(out / "grades.csv")
    assert rows["ann"][column(registry.part_of(q1))] == "3" and rows["bob"][column(registry.part_of(q1))] == PENDING
    assert rows["ann"][f"total (/{registry.total():g})"] == PENDING  # q2 is still to grade
    assert "comment for ann" in (out / "feedback" / "ann.html").read_text()


# ---------------------------------------------------------------- the whole loop, for real


@contextmanager
def formgrader(out: Path, log: Path):
    """``python -m autograder formgrade OUT`` running; yields (base URL, token)."""
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "autograder", "formgrade", str(out)], cwd=REPO,
                                stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline, url = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            found = re.search(r"(http://127\.0\.0\.1:\d+)/\S*\?token=(\S+)", log.read_text())
            if found:
                try:
                    urllib.request.urlopen(f"{found[1]}/api/status?token={found[2]}", timeout=5)
                    url = found
                    break
                except OSError:
                    pass
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        assert url, f"formgrader did not start:\n{log.read_text()}"
        yield url[1], url[2]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.status, response.read().decode()


def test_whole_loop(course_env, tmp_path):
    answer = {s: f"Student {s} argues that pruning keeps accuracy until about half the weights are gone."
              for s in ("111", "222", "444")}
    files = {
        "smithjohn_111_9001_pruning.ipynb": notebook_bytes("correct", answer["111"]),
        "smithjohn_222_9002_pruning.ipynb": notebook_bytes("wrong_per_layer", answer["222"]),  # same name
        "doejane_late_333_9003_pruning.ipynb": notebook_bytes("blank"),
        "leekim_444_9004_pruning.ipynb": notebook_bytes("blank"),  # superseded by 9010
        "leekim_444_9010_pruning-1.ipynb": notebook_bytes("correct", answer["444"]),
        "readme.txt": b"a file the instructor added",
    }
    roster = write_roster(tmp_path / "canvas-export.csv")
    # deeper than a Unix socket path may be long: the kernels' sockets must not live in the output folder
    out = tmp_path / ("deep-output-folder-" * 6) / "out"
    assert len(str(out)) > 110
    results = {r.student: r for r in grade(write_zip(tmp_path / "submissions.zip", files), out, workers=2,
                                           limits=LIMITS, verbose=False, roster=roster)}
    assert set(results) == {"111", "222", "333", "444"}
    auto_max = registry.autograded_total()
    assert results["111"].autograded_score() == auto_max, results["111"].detail
    assert results["222"].autograded_score() < auto_max and results["333"].autograded_score() == 0

    # formgrader serves the output folder: one submission's grading page with that student's answer
    with formgrader(out, tmp_path / "formgrader.log") as (base, token):
        status, listing = _get(f"{base}/formgrader/api/submitted_notebooks/{ASSIGNMENT}/{NOTEBOOK_ID}?token={token}")
        ids = {s["student"]: s["id"] for s in json.loads(listing)}
        assert status == 200 and set(ids) == {"111", "222", "333", "444"}
        status, page = _get(f"{base}/formgrader/submissions/{ids['111']}/?token={token}")
        assert status == 200 and answer["111"] in page

    # grading by hand (what formgrader's form saves), then final grades
    manual = {q: float(n) for q, n in zip(QUESTIONS, (4, 5, 3))}
    for q, score in manual.items():
        _set_manual(out / "gradebook.db", "111", q, score, "Clear argument." if q == QUESTIONS[0] else None)
        _set_manual(out / "gradebook.db", "222", q, 1.0, "Please see me." if q == QUESTIONS[0] else None)
    _set_manual(out / "gradebook.db", "444", QUESTIONS[0], 5.0)  # the others stay pending
    export(out, assignment=COLUMN, verbose=False)  # the roster given to grade is remembered

    total_col = f"total (/{registry.total():g})"
    rows = rows_by_student(out / "grades.csv")
    assert set(rows) == {"111", "222", "333", "444", "555", "readme.txt"}
    assert [rows["111"]["name"], rows["222"]["name"], rows["333"]["late"]] == ["Smith, John", "Smith, John", "late"]
    assert rows["111"][total_col] == f"{auto_max + sum(manual.values()):g}"
    assert rows["222"][total_col] == f"{results['222'].autograded_score() + len(QUESTIONS):g}"
    assert rows["333"][total_col] == "0"  # blank answers score 0 without a grader
    assert rows["444"][total_col] == PENDING and rows["444"][column(registry.part_of(QUESTIONS[1]))] == PENDING
    assert "leekim_444_9004_pruning.ipynb" in rows["444"]["detail"]
    assert (rows["555"]["status"], rows["555"][total_col]) == ("missing", "0")
    assert (rows["readme.txt"]["status"], rows["readme.txt"]["student_id"]) == ("unmatched", "")

    canvas = read_csv(out / "canvas.csv")
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", COLUMN]
    assert canvas[1] == [POINTS_POSSIBLE, "", "", "", "", f"{registry.total():g}"]
    assert {r[1]: r[5] for r in canvas[2:]} == {"111": rows["111"][total_col], "222": rows["222"][total_col],
                                               "333": "0", "444": "", "555": "0"}

    feedback = (out / "feedback" / "111.html").read_text()
    assert "Clear argument." in feedback and f"4 / {registry.points()[QUESTIONS[0]]:g}" in feedback
    assert "pre-wrap" in feedback and "BEGIN HIDDEN TESTS" not in feedback
    assert f"{PENDING} / " in (out / "feedback" / "444.html").read_text()

    # 222 fixes the code, answers unchanged: only 222 is regraded and every manual score and comment stays
    before = {p.name: p.read_text() for p in (out / "results").glob("*.json")}
    files["smithjohn_222_9002_pruning.ipynb"] = notebook_bytes("correct", answer["222"])
    again = {r.student: r for r in grade(write_zip(tmp_path / "resubmitted.zip", files), out, workers=2,
                                         limits=LIMITS, verbose=False)}
    assert {p.name for p in (out / "results").glob("*.json") if p.read_text() != before[p.name]} == {"222.json"}
    assert again["222"].autograded_score() == auto_max
    export(out, verbose=False)
    rows = rows_by_student(out / "grades.csv")
    assert rows["111"][total_col] == f"{auto_max + sum(manual.values()):g}"
    assert rows["222"][total_col] == f"{auto_max + len(QUESTIONS):g}"
    assert "Please see me." in (out / "feedback" / "222.html").read_text()
    assert autograded_notebook(out, "222").is_file()
