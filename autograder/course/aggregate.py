"""After the workers: turn the grading output folder into one nbgrader course and write the grades.

``finish`` records what was collected and the roster, copies each graded
notebook into the course formgrader shows, rebuilds the merged gradebook from
the per-student gradebooks while keeping every manual score and comment whose
cells are unchanged (``autograder/course/gradebook.py``), writes formgrader's
``nbgrader_config.py`` and publishes ``grades.csv`` and the feedback pages
(``publish.py``).
"""
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from autograder.course.collect import Collection
from autograder.course.formgrade import write_course_config
from autograder.course.gradebook import (
    describe_work,
    graded_cells,
    merge_gradebooks,
    name_students,
    read_manual_work,
    restore_manual_work,
)
from autograder.course.grades import print_actions
from autograder.course.publish import publish
from autograder.course.roster import load_roster, remember_roster
from autograder.grading_folder import GradingFolder
from autograder.worker.results import STATUS_TAMPERED
from autograder.worker.sandbox import BUBBLEWRAP, NONE, describe
from ece662.grading import registry


@dataclass
class Outcome:
    grades: list  # StudentGrade, one per row of grades.csv
    kept: list = field(default_factory=list)  # ManualWork carried over
    dropped: list = field(default_factory=list)  # ManualWork whose cells changed


def _copy_graded_notebooks(folder: GradingFolder, results: dict) -> None:
    """The course formgrader shows holds exactly the current graded notebooks."""
    for student, result in results.items():
        target = folder.autograded_notebook(student)
        source = Path(result.graded_notebook) if result.graded_notebook else None
        if source is not None and source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.resolve() != target.resolve():
                shutil.copy(source, target)
        else:
            target.unlink(missing_ok=True)
    for gone in folder.autograded.glob("*"):
        if gone.name not in results:
            shutil.rmtree(gone)


def _names(collection: Collection, roster) -> dict:
    """{student: (first, last)} from the roster's "Last, First" or the LMS's name."""
    names = {}
    for student, sub in collection.submissions.items():
        person = roster.find(student) if roster else None
        last, _, first = (person.name if person else sub.name).partition(", ")
        names[student] = (first, last)
    return names


def finish(out: Path, collection: Collection, results: dict, template_db: Path, roster_file=None) -> Outcome:
    """Everything after the workers; ``results`` maps every collected student to their GradingResult."""
    folder = GradingFolder(out)
    for stale in folder.saved_results():
        if stale.stem not in collection.submissions:
            stale.unlink()
    collection.save(folder.manifest)
    roster = load_roster(roster_file, folder.roster)
    remember_roster(roster_file, folder.roster)
    previous = read_manual_work(folder.gradebook, folder.autograded_notebook)  # before the notebooks are replaced
    _copy_graded_notebooks(folder, results)
    student_dbs = [folder.worker_gradebook(s) for s in sorted(results)]
    merge_gradebooks(template_db, [d for d in student_dbs if d.is_file()], folder.gradebook)
    kept, dropped = restore_manual_work(folder.gradebook, previous, folder.autograded_notebook)
    name_students(folder.gradebook, _names(collection, roster))
    write_course_config(out)
    return Outcome(publish(folder, collection, results, roster), kept, dropped)


def print_summary(outcome: Outcome, collection: Collection, out: Path, sandboxed: bool, reason: str | None,
                  seconds: float, graded_now: int, bounds: str = "") -> None:
    grades, folder = outcome.grades, GradingFolder(out)
    students = [g for g in grades if g.student and g.file]
    print(f"\n{'student':16s} {'name':20s} {'status':17s} {'auto':>7s} {'total':>9s}")
    for g in students:
        auto = f"{g.autograded():4g}" if g.scores else "   -"
        print(f"{g.student[:16]:16s} {g.name[:20]:20s} {g.status:17s} {auto}/{registry.autograded_total():g}"
              f" {g.total_text() or '-':>5s}/{registry.total():g}" + ("  late" if g.late else ""))
    counts = Counter(g.status for g in students)
    print(f"\n{len(students)} submissions ({graded_now} graded now, {len(students) - graded_now} unchanged) in "
          f"{seconds:.0f} s: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    print("sandbox: " + (describe(BUBBLEWRAP) if sandboxed else f"{describe(NONE)} ({reason or 'disabled'})"))
    if bounds:
        print(f"kernel bounds: {bounds}")
    for s in collection.superseded:
        print(f"superseded: {s.file} (student {s.student}; graded {s.kept} instead)")
    print_actions(grades)
    if outcome.kept or outcome.dropped:
        print(f"manual grading carried over: {describe_work(outcome.kept)}" + (
            "; dropped because the student changed the cells they were given for: " +
            ", ".join(f"{w.student}/{w.cell} ({', '.join(w.changed)} changed)" for w in outcome.dropped)
            if outcome.dropped else ""))
    in_gradebook, in_registry = graded_cells(folder.gradebook), set(registry.points())
    if in_gradebook != in_registry:
        print(f"WARNING: the notebook's graded cells and ece662/grading/registry.py disagree (only in the notebook: "
              f"{sorted(in_gradebook - in_registry)}, only in the registry: {sorted(in_registry - in_gradebook)})")
    if tampered := [g.student for g in grades if g.status == STATUS_TAMPERED]:
        print(f"WARNING: {', '.join(tampered)} changed grading files (see grades.csv); restore them "
              "(`git checkout ece662/`, retrain or copy back the model) and regrade everyone with --force.")
    print(f"grades: {folder.grades_csv}\nfeedback: {folder.feedback}\n"
          f"manual grading: python -m autograder formgrade {out}\n"
          f"final grades (and canvas.csv): python -m autograder export {out} [--roster FILE]\n"
          f"feedback to Canvas: python -m autograder upload-feedback {out} --canvas-url URL --course ID")
