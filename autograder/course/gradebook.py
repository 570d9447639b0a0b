"""The merged nbgrader gradebook (``OUT/gradebook.db``) that formgrader grades by hand.

It is rebuilt from the per-student gradebooks after every grading run; what
people did in it (manual scores, extra credit, comments) is read first and put
back, per student and cell, wherever the student's answer is unchanged.
Grades are read and written through nbgrader's ``Gradebook`` API; only the
merge copies rows with SQL (nbgrader's rows have UUID keys, so they never clash).
"""
import hashlib
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK

NOTEBOOK_ID = Path(NOTEBOOK).stem


@dataclass
class Mark:
    """One graded cell of one submission, as the gradebook has it."""
    auto_score: float | None
    manual_score: float | None
    extra_credit: float | None
    needs_manual_grade: bool


@dataclass
class ManualWork:
    """What a grader set on one cell of one submission, and the answer it was set for."""
    student: str
    cell: str
    manual_score: float | None
    extra_credit: float | None
    manual_comment: str | None
    answer_sha256: str | None


def _gradebook(db: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{db}")


def merge_gradebooks(template_db: Path, student_dbs: list[Path], target: Path) -> None:
    """One gradebook holding every student's submission, built afresh from the template."""
    tmp = target.with_suffix(".tmp")
    shutil.copy(template_db, tmp)
    con = sqlite3.connect(tmp)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
              if r[0] != "alembic_version"]
    for db in student_dbs:
        con.execute("ATTACH DATABASE ? AS s", (str(db),))
        for table in tables:
            con.execute(f'INSERT OR IGNORE INTO main."{table}" SELECT * FROM s."{table}"')
        con.commit()
        con.execute("DETACH DATABASE s")
    con.close()
    os.replace(tmp, target)


def graded_cells(db: Path) -> set[str]:
    """The grade ids the gradebook's notebook has (to compare with ``ece662/grading/registry.py``)."""
    with _gradebook(db) as gb:
        return {cell.name for cell in gb.find_notebook(NOTEBOOK_ID, ASSIGNMENT).grade_cells}


def read_marks(db: Path) -> tuple[dict, dict]:
    """({student: {grade id: Mark}}, {student: {cell: comment shown to the student}})."""
    marks, comments = {}, {}
    with _gradebook(db) as gb:
        for snb in gb.notebook_submissions(NOTEBOOK_ID, ASSIGNMENT):
            student = snb.student.id
            marks[student] = {g.name: Mark(g.auto_score, g.manual_score, g.extra_credit, bool(g.needs_manual_grade))
                              for g in snb.grades}
            comments[student] = {c.name: c.comment for c in snb.comments if c.comment}
    return marks, comments


def answer_sha256(notebook: Path, cell: str) -> str | None:
    """Fingerprint of what a grader judged on ``cell``: the cell itself if the student wrote it, else (a test
    cell) everything the student wrote. None when the notebook or cell is not there."""
    if not Path(notebook).is_file():
        return None
    cells = nbformat.read(notebook, as_version=4).cells
    meta = [c.get("metadata", {}).get("nbgrader", {}) for c in cells]
    target = [c for c, m in zip(cells, meta) if m.get("grade_id") == cell]
    if not target:
        return None
    written = [c for c, m in zip(cells, meta) if m.get("solution")]
    chosen = target if target[0].get("metadata", {}).get("nbgrader", {}).get("solution") else written
    return hashlib.sha256("\n\x00".join(c.source for c in chosen).encode()).hexdigest()


def read_manual_work(db: Path, notebook_of) -> list[ManualWork]:
    """Every manual score, extra credit and comment in ``db``; ``notebook_of(student)`` is the graded notebook
    the grader saw."""
    if not Path(db).is_file():
        return []
    work = {}
    with _gradebook(db) as gb:
        for snb in gb.notebook_submissions(NOTEBOOK_ID, ASSIGNMENT):
            student = snb.student.id
            for g in snb.grades:
                if g.manual_score is not None or g.extra_credit is not None:
                    work[student, g.name] = ManualWork(student, g.name, g.manual_score, g.extra_credit, None, None)
            for c in snb.comments:
                if c.manual_comment is not None:
                    item = work.setdefault((student, c.name), ManualWork(student, c.name, None, None, None, None))
                    item.manual_comment = c.manual_comment
    for item in work.values():
        item.answer_sha256 = answer_sha256(notebook_of(item.student), item.cell)
    return list(work.values())


def restore_manual_work(db: Path, work: list[ManualWork], notebook_of) -> tuple[list, list]:
    """Put back each item whose answer is unchanged in the newly graded notebook; returns (kept, dropped)."""
    from nbgrader.api import MissingEntry

    kept, dropped = [], []
    with _gradebook(db) as gb:
        for item in work:
            now = answer_sha256(notebook_of(item.student), item.cell)
            if item.answer_sha256 is None or now != item.answer_sha256:
                dropped.append(item)
                continue
            try:
                if item.manual_score is not None or item.extra_credit is not None:
                    grade = gb.find_grade(item.cell, NOTEBOOK_ID, ASSIGNMENT, item.student)
                    grade.manual_score, grade.extra_credit = item.manual_score, item.extra_credit
                    grade.needs_manual_grade = grade.manual_score is None and grade.auto_score is None
                if item.manual_comment is not None:
                    gb.find_comment(item.cell, NOTEBOOK_ID, ASSIGNMENT, item.student).manual_comment = \
                        item.manual_comment
            except MissingEntry:
                dropped.append(item)
                continue
            kept.append(item)
        gb.db.commit()
    return kept, dropped


def name_students(db: Path, names: dict) -> None:
    """Show people's names in formgrader: ``{student id: (first name, last name)}``."""
    with _gradebook(db) as gb:
        known = {s.id for s in gb.students}
        for student, (first, last) in names.items():
            if student in known:
                gb.update_or_create_student(student, first_name=first or None, last_name=last or None)
