"""Final grades out of a grading output folder: ``python -m autograder export OUT``.

Reads what ``grade`` left in ``OUT`` (the collection, the results, the
merged gradebook with formgrader's manual scores and comments) and publishes
(``publish.py``) ``grades.csv``, the feedback pages and, given the Canvas
roster (``--roster``, or the one given last to ``grade`` or ``export``),
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
from pathlib import Path

from autograder.course.grades import count_students, print_actions
from autograder.course.publish import canvas_scores, load_output, publish
from autograder.course.roster import load_roster, remember_roster
from autograder.grading_folder import GradingFolder
from autograder.nbgrader_course import ASSIGNMENT


def export(out: Path, roster_file=None, assignment: str | None = None, verbose: bool = True,
           new_assignment: bool = False, zero_missing: bool = False) -> list:
    """Write grades.csv, feedback and (with a roster) canvas.csv; returns the final grades. An ``assignment``
    column the roster lacks is refused before anything is written, unless ``new_assignment``."""
    folder = GradingFolder(out)
    collection, results = load_output(folder)
    roster = load_roster(roster_file, folder.roster)
    if assignment and roster is None:
        raise ValueError("--assignment names a Canvas column, which needs the Canvas roster: pass --roster FILE")
    column = roster.assignment_column(assignment, ASSIGNMENT, new_assignment) if roster else None
    remember_roster(roster_file, folder.roster)  # for the next export, once nothing refused it
    grades = publish(folder, collection, results, roster, column, zero_missing)
    if verbose:
        print_export(grades, folder, column, roster, zero_missing)
    return grades


def print_export(grades: list, folder: GradingFolder, column: str | None, roster, zero_missing: bool = False) -> None:
    graded = [g for g in grades if g.student]
    complete = [g for g in graded if g.total() is not None]
    print(f"grades: {folder.grades_csv} ({count_students(len(graded))}: {len(complete)} with a total, "
          f"{len(graded) - len(complete)} without)")
    print_actions(grades, zero_missing, each_pending=True)
    if roster is not None:
        scores = canvas_scores(grades, zero_missing)
        empty = sum(1 for s in roster.students if scores.get(s.canvas_id, "") == "")
        print(f"canvas: {folder.canvas_csv} (column '{column}', {count_students(len(roster.students))}, {empty} "
              "left empty: Canvas keeps what it has for them)")
        if column not in roster.assignment_columns:
            print(f"note: the roster has no column '{column}': Canvas creates that assignment on import "
                  "(--new-assignment)")
        if off := [g.student for g in graded if not g.canvas_id]:
            print(f"WARNING: not on the roster, so not in canvas.csv: {', '.join(off)}")
        if roster.test_students:
            print("left out: Canvas's test student (" + ", ".join(s.canvas_id for s in roster.test_students) + ")")
    print(f"feedback: {folder.feedback}")
