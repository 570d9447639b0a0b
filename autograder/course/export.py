"""Final grades out of a grading output folder: ``python -m autograder export OUT``.

Reads what ``grade`` left in ``OUT`` (``submissions.json``, ``results/``,
the merged ``gradebook.db`` with formgrader's manual scores and comments) and
writes ``grades.csv``, ``feedback/<student>.html`` and, given the Canvas
roster (``--roster``, or the one ``grade --roster`` saved as ``roster.csv``),
``canvas.csv`` for Canvas's gradebook import: the roster's identity columns,
the assignment column holding each total and the "Points Possible" row. A cell
is left empty (Canvas keeps the grade it has) while a question is pending, for
a student whose work has no automatic grade (an unreadable upload, a file
that matched no student, a notebook the grader did not finish: timed out or
crashed) and for a student who handed in nothing (0 with
``--zero-missing``); the export lists them all. The column must be one the
roster has (``--new-assignment`` to create one); a refused export writes
nothing.
"""
import shutil
import sys
from pathlib import Path

from autograder.course.collect import Collection
from autograder.course.feedback import exporter, feedback_html
from autograder.course.gradebook import read_marks
from autograder.course.grades import STATUS_UNMATCHED, final_grades, write_grades_csv
from autograder.course.roster import read_roster, write_canvas_csv
from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK
from autograder.worker.results import STATUS_MISSING, GradingResult
from ece662.grading import registry

SAVED_ROSTER = "roster.csv"
MANIFEST = "submissions.json"


def autograded_notebook(out: Path, student: str) -> Path:
    """Where the course in ``out`` keeps a student's graded notebook (what formgrader shows)."""
    return Path(out) / "autograded" / student / ASSIGNMENT / NOTEBOOK


def load_output(out: Path) -> tuple[Collection, dict]:
    """(the collection, {student: GradingResult}) that ``grade`` saved in ``out``."""
    out = Path(out)
    if not (out / MANIFEST).is_file() or not (out / "gradebook.db").is_file():
        raise FileNotFoundError(f"{out} is not a grading output folder (no {MANIFEST} or gradebook.db): "
                                "run `python -m autograder grade SUBMISSIONS --out FOLDER` first")
    collection = Collection.load(out / MANIFEST)
    results = {s: GradingResult.load(out / "results" / f"{s}.json") for s in collection.submissions
               if (out / "results" / f"{s}.json").is_file()}
    return collection, results


def remember_roster(out: Path, roster_file) -> None:
    """Keep ``roster_file`` in ``out`` for later runs."""
    saved = Path(out) / SAVED_ROSTER
    if Path(roster_file).resolve() != saved.resolve():
        shutil.copy(roster_file, saved)


def saved_roster(out: Path, roster_file=None):
    """The roster given now (remembered in ``out``), else the one remembered, else None."""
    if roster_file:
        roster = read_roster(roster_file)
        remember_roster(out, roster_file)
        return roster
    saved = Path(out) / SAVED_ROSTER
    return read_roster(saved) if saved.is_file() else None


def write_grade_files(out: Path, collection: Collection, results: dict, roster) -> list:
    """``grades.csv`` and every feedback page, from the results and the gradebook as they are now."""
    out = Path(out)
    marks, comments = read_marks(out / "gradebook.db")
    grades = final_grades(collection, results, marks, comments, roster, out)
    write_grades_csv(grades, out / "grades.csv")
    folder = out / "feedback"
    folder.mkdir(exist_ok=True)
    html, written = exporter(), set()
    for grade in grades:
        if grade.student and grade.file:  # a submission
            notebook = autograded_notebook(out, grade.student)
            try:
                page = feedback_html(grade, notebook if notebook.is_file() else None, html)
            except Exception as exc:  # one student's page must not stop everyone's: their grade, without notebook
                print(f"WARNING: the feedback page of {grade.student} shows the grade without the notebook, which "
                      f"could not be rendered ({type(exc).__name__}: {str(exc)[:200]})", file=sys.stderr)
                page = feedback_html(grade, None, html)
            (folder / f"{grade.student}.html").write_text(page)
            written.add(f"{grade.student}.html")
    for stale in folder.glob("*.html"):
        if stale.name not in written:
            stale.unlink()
    return grades


def canvas_scores(grades: list, zero_missing: bool = False) -> dict:
    """{Canvas user id: total}, or "" (leave unchanged) where there is no total: 0 for who handed in nothing
    when ``zero_missing``."""
    scores = {}
    for g in grades:
        if g.canvas_id:
            total = 0.0 if zero_missing and g.status == STATUS_MISSING else g.total()
            scores[g.canvas_id] = "" if total is None else total
    return scores


def export(out: Path, roster_file=None, assignment: str | None = None, verbose: bool = True,
           new_assignment: bool = False, zero_missing: bool = False) -> list:
    """Write grades.csv, feedback and (with a roster) canvas.csv; returns the final grades. An ``assignment``
    column the roster lacks is refused before anything is written, unless ``new_assignment``."""
    out = Path(out)
    collection, results = load_output(out)
    roster = read_roster(roster_file) if roster_file else saved_roster(out)
    if assignment and roster is None:
        raise ValueError("--assignment names a Canvas column, which needs the Canvas roster: pass --roster FILE")
    column = roster.assignment_column(assignment, ASSIGNMENT, new_assignment) if roster else None
    if roster_file:
        remember_roster(out, roster_file)  # for the next export, once nothing refused it
    grades = write_grade_files(out, collection, results, roster)
    if roster is not None:
        write_canvas_csv(roster, column, registry.total(), canvas_scores(grades, zero_missing), out / "canvas.csv")
    if verbose:
        print_export(grades, out, column, roster, zero_missing)
    return grades


def count_students(n: int) -> str:
    return f"{n} student" + ("s" if n != 1 else "")


def pending_questions(grades: list) -> str:
    """The questions left to grade by hand, each with how many students wait for it, as the gradebook says."""
    waiting = {q.grade_id: sum(1 for g in grades if q.grade_id in g.pending()) for q in registry.QUESTIONS}
    return ", ".join(f"{q} ({count_students(n)})" for q, n in waiting.items() if n) or "none"


def print_actions(grades: list, zero_missing: bool = False, each_pending: bool = False) -> None:
    """What the instructor must do before every student has a grade: pending questions (``each_pending``: with
    each student's), work without an automatic grade (a notebook the grader did not finish: with the command that
    regrades it), files that name no student, students who handed in nothing."""
    if pending := [g for g in grades if g.pending()]:
        print(f"pending: {count_students(len(pending))} with questions to grade in formgrader: "
              f"{pending_questions(grades)}")
        if each_pending:
            print("    " + ", ".join(f"{g.student} ({', '.join(g.pending())})" for g in pending))
    if stuck := [g for g in grades if g.student and g.status != STATUS_MISSING and
                 (not g.pending() or not g.finished()) and g.without_grade()]:
        print(f"ACTION: {count_students(len(stuck))} handed in work that has no grade (left empty in canvas.csv):")
        for g in stuck:
            print(f"    {g.student} ({g.name or 'no name'}): {g.without_grade()}")
    if unmatched := [g for g in grades if g.status == STATUS_UNMATCHED]:
        print(f"WARNING: {len(unmatched)} file(s) name no student and were not graded:")
        for g in unmatched:
            print(f"    {g.file}: {g.detail}")
    if missing := [g for g in grades if g.status == STATUS_MISSING]:
        print(f"missing: {count_students(len(missing))} on the roster handed in nothing (" +
              ("0 in canvas.csv, --zero-missing" if zero_missing else "left empty in canvas.csv; --zero-missing on "
               "export writes 0") + "): " + ", ".join(f"{g.student} ({g.name})" for g in missing))
        if zero_missing and unmatched:
            print("WARNING: --zero-missing with files that name no student: make sure none of them is a missing "
                  "student's work")


def print_export(grades: list, out: Path, column: str | None, roster, zero_missing: bool = False) -> None:
    graded = [g for g in grades if g.student]
    complete = [g for g in graded if g.total() is not None]
    print(f"grades: {out / 'grades.csv'} ({count_students(len(graded))}: {len(complete)} with a total, "
          f"{len(graded) - len(complete)} without)")
    print_actions(grades, zero_missing, each_pending=True)
    if roster is not None:
        scores = canvas_scores(grades, zero_missing)
        empty = sum(1 for s in roster.students if scores.get(s.canvas_id, "") == "")
        print(f"canvas: {out / 'canvas.csv'} (column '{column}', {count_students(len(roster.students))}, {empty} "
              "left empty: Canvas keeps what it has for them)")
        if column not in roster.assignment_columns:
            print(f"note: the roster has no column '{column}': Canvas creates that assignment on import "
                  "(--new-assignment)")
        if off := [g.student for g in graded if not g.canvas_id]:
            print(f"WARNING: not on the roster, so not in canvas.csv: {', '.join(off)}")
        if roster.test_students:
            print("left out: Canvas's test student (" + ", ".join(s.canvas_id for s in roster.test_students) + ")")
    print(f"feedback: {out / 'feedback'}")
