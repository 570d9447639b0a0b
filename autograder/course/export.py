"""Final grades out of a grading output folder: ``python -m autograder export OUT``.

Reads what ``grade`` left in ``OUT`` (``submissions.json``, ``results/``,
the merged ``gradebook.db`` with formgrader's manual scores and comments) and
writes ``grades.csv``, ``feedback/<student>.html`` and, given the Canvas
roster (``--roster``, or the one ``grade --roster`` saved as ``roster.csv``),
``canvas.csv`` for Canvas's gradebook import: the roster's identity columns,
the assignment column holding each total (left empty while a question is
pending, 0 for a student who handed in nothing) and the "Points Possible" row.
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


def saved_roster(out: Path, roster_file=None):
    """The roster given now (remembered in ``out``), else the one remembered, else None."""
    saved = Path(out) / SAVED_ROSTER
    if roster_file:
        roster = read_roster(roster_file)
        if Path(roster_file).resolve() != saved.resolve():
            shutil.copy(roster_file, saved)
        return roster
    return read_roster(saved) if saved.is_file() else None


def write_grade_files(out: Path, collection: Collection, results: dict, roster) -> list:
    """``grades.csv`` and every feedback page, from the results and the gradebook as they are now."""
    out = Path(out)
    marks, comments = read_marks(out / "gradebook.db")
    grades = final_grades(collection, results, marks, comments, roster)
    write_grades_csv(grades, out / "grades.csv")
    folder = out / "feedback"
    folder.mkdir(exist_ok=True)
    html, written = exporter(), set()
    for grade in grades:
        if grade.student and grade.status != STATUS_MISSING:
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


def canvas_scores(grades: list) -> dict:
    """{Canvas user id: total}, "" (leave unchanged) while a question is pending."""
    scores = {}
    for g in grades:
        if g.canvas_id:
            total = g.total()
            scores[g.canvas_id] = "" if total is None else total
    return scores


def export(out: Path, roster_file=None, assignment: str | None = None, verbose: bool = True) -> list:
    """Write grades.csv, feedback and (with a roster) canvas.csv; returns the final grades."""
    out = Path(out)
    collection, results = load_output(out)
    roster = saved_roster(out, roster_file)
    if assignment and roster is None:
        raise ValueError("--assignment names a Canvas column, which needs the Canvas roster: pass --roster FILE")
    grades = write_grade_files(out, collection, results, roster)
    column = None
    if roster is not None:
        column = roster.assignment_column(assignment, ASSIGNMENT)
        write_canvas_csv(roster, column, registry.total(), canvas_scores(grades), out / "canvas.csv")
    if verbose:
        print_export(grades, out, column, roster)
    return grades


def print_export(grades: list, out: Path, column: str | None, roster) -> None:
    students = [g for g in grades if g.student]
    pending = [g for g in students if g.total() is None]
    missing = [g for g in students if g.status == STATUS_MISSING]
    unmatched = [g for g in grades if g.status == STATUS_UNMATCHED]
    print(f"grades: {out / 'grades.csv'} ({len(students)} students: {len(students) - len(pending)} complete, "
          f"{len(pending)} with questions pending, {len(missing)} missing)")
    if pending:
        print("pending (grade them in formgrader, then export again): " +
              ", ".join(f"{g.student} ({', '.join(g.pending())})" for g in pending))
    if unmatched:
        print(f"WARNING: {len(unmatched)} file(s) name no student and have no grade: " +
              ", ".join(g.file for g in unmatched))
    if roster is not None:
        off = [g.student for g in students if not g.canvas_id]
        print(f"canvas: {out / 'canvas.csv'} (column '{column}', {len(roster.students)} students, "
              f"{sum(1 for g in students if g.canvas_id and g.total() is None)} left empty while pending)")
        if column not in roster.assignment_columns:
            print(f"note: the roster has no column '{column}': Canvas creates that assignment on import")
        if off:
            print(f"WARNING: not on the roster, so not in canvas.csv: {', '.join(off)}")
    print(f"feedback: {out / 'feedback'}")
