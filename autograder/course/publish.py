"""Publish the grades: the only writer of ``grades.csv``, ``canvas.csv``, ``part5.html`` and the feedback pages.

``grade`` (at its end), ``export`` and ``upload-feedback`` call ``publish``, which builds each student's final
grade (``grades.py``) from the results and the merged gradebook as they are now (formgrader's manual scores and
comments) and writes every file from it. Ids, names, file names and details come from students: a cell never
starts a formula (``csv_cell``).
"""
import contextlib
import csv
import os
import sys
from pathlib import Path

from autograder.course.class_picture import feedback_section, write_part5_page
from autograder.course.collect import Collection
from autograder.course.feedback import exporter, feedback_html
from autograder.course.gradebook import read_marks
from autograder.course.grades import final_grades, points_text
from autograder.course.roster import POINTS_POSSIBLE
from autograder.grading_folder import GradingFolder
from autograder.worker.results import STATUS_MISSING, GradingResult
from autograder.worker.sanitize import csv_cell
from ece662.grading import registry


def load_output(folder: GradingFolder) -> tuple[Collection, dict]:
    """(the collection, {student: GradingResult}) that ``grade`` saved in ``folder``."""
    if not folder.manifest.is_file() or not folder.gradebook.is_file():
        raise FileNotFoundError(f"{folder.root} is not a grading output folder (no {folder.manifest.name} or "
                                f"{folder.gradebook.name}): run `python -m autograder grade SUBMISSIONS --out FOLDER` "
                                "first")
    collection = Collection.load(folder.manifest)
    return collection, {s: GradingResult.load(folder.result(s)) for s in collection.submissions
                        if folder.result(s).is_file()}


def publish(folder: GradingFolder, collection: Collection, results: dict, roster=None, column: str | None = None,
            zero_missing: bool = False) -> list:
    """``grades.csv``, ``part5.html``, every submission's feedback page and, given the roster's ``column``,
    ``canvas.csv``; returns the final grades (StudentGrade)."""
    marks, comments = read_marks(folder.gradebook)
    grades = final_grades(collection, results, marks, comments, roster, folder.root)
    write_grades_csv(grades, folder.grades_csv)
    _write_feedback(grades, folder, write_part5_page(folder, results))
    if column is not None:
        write_canvas_csv(roster, column, canvas_scores(grades, zero_missing), folder.canvas_csv)
    return grades


def _write_feedback(grades: list, folder: GradingFolder, part5_points: list) -> None:
    """One page per submission, and no other page; ``part5_points``: the class's Part 5 models (Point)."""
    folder.feedback.mkdir(exist_ok=True)
    html, written = exporter(), set()
    for grade in grades:
        if grade.student and grade.file:  # a submission
            notebook, part5 = folder.autograded_notebook(grade.student), feedback_section(part5_points, grade.student)
            try:
                page = feedback_html(grade, notebook if notebook.is_file() else None, html, part5)
            except Exception as exc:  # one student's page must not stop everyone's: their grade, without notebook
                print(f"WARNING: the feedback page of {grade.student} shows the grade without the notebook, which "
                      f"could not be rendered ({type(exc).__name__}: {str(exc)[:200]})", file=sys.stderr)
                page = feedback_html(grade, None, html, part5)
            folder.feedback_page(grade.student).write_text(page)
            written.add(folder.feedback_page(grade.student))
    for stale in folder.feedback_pages():
        if stale not in written:
            stale.unlink()


def write_grades_csv(grades: list, path: Path) -> None:
    """``grades.csv``: one row per student or unmatched file."""
    parts = registry.parts()
    header = (["student_id", "name", "status", "late"] + [f"{p} (/{m:g})" for p, m in parts.items()] +
              [f"autograded (/{registry.autograded_total():g})", f"total (/{registry.total():g})", "file", "detail"])
    with _replacing(path) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for g in grades:
            by_part = g.part_scores()
            points = [points_text(by_part[p]) if by_part else "" for p in parts]
            totals = [f"{g.autograded():g}", g.total_text()] if g.scores and g.finished() else ["", ""]
            writer.writerow(map(csv_cell, [g.student, g.name, g.status, "late" if g.late else ""] + points +
                                totals + [g.file, g.detail[:300]]))


def canvas_scores(grades: list, zero_missing: bool = False) -> dict:
    """{Canvas user id: total}, or "" (leave unchanged) where there is no total: 0 for who handed in nothing
    when ``zero_missing``."""
    scores = {}
    for g in grades:
        if g.canvas_id:
            total = 0.0 if zero_missing and g.status == STATUS_MISSING else g.total()
            scores[g.canvas_id] = "" if total is None else total
    return scores


def write_canvas_csv(roster, column: str, scores: dict, path: Path) -> None:
    """Canvas's gradebook import: the roster's identity columns plus ``column``; ``scores`` maps Canvas user id
    -> points, or "" to leave the grade unchanged (as for a roster student missing from ``scores``)."""
    with _replacing(path, encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(roster.identity_columns + [column])
        writer.writerow([POINTS_POSSIBLE] + [""] * (len(roster.identity_columns) - 1) + [f"{registry.total():g}"])
        for student in roster.students:
            score = scores.get(student.canvas_id, "")
            writer.writerow([csv_cell(student.values.get(c, "")) for c in roster.identity_columns] +
                            [score if isinstance(score, str) else f"{score:g}"])


@contextlib.contextmanager
def _replacing(path: Path, **kwargs):
    """A file written beside ``path`` and put in its place once complete: a reader never sees half of it."""
    tmp = Path(path).with_suffix(".tmp")
    with open(tmp, "w", newline="", **kwargs) as f:
        yield f
    os.replace(tmp, path)
