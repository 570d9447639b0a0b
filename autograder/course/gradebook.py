"""The merged nbgrader gradebook (``gradebook.db`` of the grading output folder) that formgrader grades by hand.

It is rebuilt from the per-student gradebooks after every grading run; what
people did in it (manual scores, extra credit, comments) is read first and put
back, per student and cell, wherever what the grader judged is unchanged: a
question's answer cell, or, for an override of an automatic test, the code
the student wrote (every code cell that is not locked).
Grades are read and written through nbgrader's ``Gradebook`` API; only the
merge copies rows with SQL (nbgrader's rows have UUID keys, so they never clash).
"""
import hashlib
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK_ID



@dataclass
class Mark:
    """What a grader set on one graded cell of one submission (the automatic score is the worker's result's)."""
    manual_score: float | None
    extra_credit: float | None


@dataclass
class ManualWork:
    """What a grader set on one cell of one submission, and what it was set for."""
    student: str
    cell: str
    manual_score: float | None
    extra_credit: float | None
    manual_comment: str | None
    judged: dict | None = None  # {cell: sha256} of what the grader judged (``judged_cells``)
    changed: list = field(default_factory=list)  # the cells that changed since, when it was dropped


def describe_work(work: list) -> str:
    """"3 scores and 2 comments of 2 students": what ``work`` holds, counted by kind."""
    scores = sum(1 for w in work if w.manual_score is not None or w.extra_credit is not None)
    comments = sum(1 for w in work if w.manual_comment is not None)
    people = len({w.student for w in work})
    return f"{scores} scores and {comments} comments of {people} student" + ("s" if people != 1 else "")


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
            marks[student] = {g.name: Mark(g.manual_score, g.extra_credit) for g in snb.grades}
            comments[student] = {c.name: c.comment for c in snb.comments if c.comment}
    return marks, comments


def judged_cells(notebook: Path, cell: str) -> dict | None:
    """{cell name: sha256 of its source} of what a grader judged on ``cell``: the cell itself if the student
    wrote it (a question's answer), else (an automatic test) every code cell the student could write (not
    locked). A cell is named by its grade id, else its id. None when the notebook or ``cell`` is not there."""
    if not Path(notebook).is_file():
        return None
    cells = nbformat.read(notebook, as_version=4).cells
    meta = [c.get("metadata", {}).get("nbgrader", {}) for c in cells]
    target = [m for m in meta if m.get("grade_id") == cell]
    if not target:
        return None
    if target[0].get("solution"):
        chosen = [(c, m) for c, m in zip(cells, meta) if m.get("grade_id") == cell]
    else:
        chosen = [(c, m) for c, m in zip(cells, meta) if c.cell_type == "code" and not m.get("locked")]
    return {m.get("grade_id") or c.get("id") or f"cell {i}": hashlib.sha256(c.source.encode()).hexdigest()
            for i, (c, m) in enumerate(chosen)}


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
                    work[student, g.name] = ManualWork(student, g.name, g.manual_score, g.extra_credit, None)
            for c in snb.comments:
                if c.manual_comment is not None:
                    item = work.setdefault((student, c.name), ManualWork(student, c.name, None, None, None))
                    item.manual_comment = c.manual_comment
    for item in work.values():
        item.judged = judged_cells(notebook_of(item.student), item.cell)
    return list(work.values())


def restore_manual_work(db: Path, work: list[ManualWork], notebook_of) -> tuple[list, list]:
    """Put back each item whose judged cells are unchanged in the newly graded notebook; returns (kept,
    dropped), each dropped item with the cells that changed."""
    from nbgrader.api import MissingEntry

    kept, dropped = [], []
    with _gradebook(db) as gb:
        for item in work:
            now, before = judged_cells(notebook_of(item.student), item.cell), item.judged
            if now is None or before is None:
                item.changed = ["the graded notebook"]
            else:
                item.changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
            if item.changed:
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
                item.changed = [item.cell]
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
