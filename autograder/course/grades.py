"""Each student's final grade: automatic scores, manual scores and comments, roster, status; ``grades.csv``.

Scores and comments come from the merged gradebook, where each worker wrote
the automatic scores it decided (the same numbers as its result); points and
parts come from ``ece662/grading/registry.py``. A question nobody has graded
yet is ``pending`` (never 0, never blank), and so is a total that includes one.
Nobody gets a score nobody decided: a submission without a graded notebook (an
unreadable upload, say) has no scores, and neither has a roster student who
handed in nothing. Every collected file gives one row: a submission, a roster
student without one (``missing``; ``unmatched file`` when an unmatched file's
name holds their id), or a file that names no student (``unmatched``). A
notebook the grader did not finish (``timed out``, ``crashed``) has its scores
but no total: the instructor regrades it (``regrade_command``) or decides.
"""
import csv
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from autograder.course.collect import Collection
from autograder.worker.results import STATUS_MISSING, UNFINISHED, GradingResult
from autograder.worker.sanitize import csv_cell
from ece662.grading import registry

PENDING = "pending"
STATUS_UNMATCHED = "unmatched"
STATUS_UNMATCHED_FILE = "unmatched file"  # a roster student an unmatched file's name points to
STATUS_NOT_GRADED = "not graded"
RUN_OPTIONS = "grade-options.json"  # in the output folder: the options of the last `grade`, for regrade commands


@dataclass
class StudentGrade:
    student: str  # "" for a file that names no student
    status: str
    name: str = ""
    late: bool = False
    file: str = ""  # the file graded, as handed in ("" for a roster student without one)
    detail: str = ""
    canvas_id: str = ""  # the roster's Canvas user id ("" when not on the roster)
    scores: dict = field(default_factory=dict)  # grade id -> points, None = pending; empty: nothing graded
    comments: dict = field(default_factory=dict)  # cell -> grader's comment
    regrade: str = ""  # the command that grades this student again

    def finished(self) -> bool:
        """Whether the grader ran the notebook to the end within its limits (else its scores are partial)."""
        return self.status not in UNFINISHED

    def part_scores(self) -> dict:
        """{part: points or None (pending)} in notebook order; empty when nothing was graded."""
        if not self.scores:
            return {}
        parts = {}
        for grade_id in registry.points():
            part, score = registry.part_of(grade_id), self.scores.get(grade_id, 0.0)
            parts[part] = None if score is None or parts.get(part, 0.0) is None else parts.get(part, 0.0) + score
        return parts

    def autograded(self) -> float:
        return sum(self.scores.get(t.grade_id) or 0.0 for t in registry.TESTS)

    def total(self) -> float | None:
        """All points; None while a question is pending, when nothing was graded or grading did not finish."""
        scores = [self.scores.get(g, 0.0) for g in registry.points()]
        return None if not self.scores or not self.finished() or any(s is None for s in scores) else sum(scores)

    def pending(self) -> list[str]:
        """The questions still to grade by hand."""
        return [g for g in registry.points() if self.scores and self.scores.get(g, 0.0) is None]

    def total_text(self) -> str:
        """The total as grades.csv shows it: points, ``pending`` or "" (nothing graded, or not finished)."""
        return "" if not self.scores or not self.finished() else _points(self.total())

    def without_grade(self) -> str:
        """Why there is no total ("" when there is one): what the instructor has to do."""
        if not self.finished():
            return f"{self.status}: {self.detail}" + (f"; regrade: {self.regrade}" if self.regrade else "")
        if self.pending():
            return f"to grade in formgrader: {', '.join(self.pending())}"
        if self.status == STATUS_MISSING:
            return "nothing handed in"
        if self.status in (STATUS_UNMATCHED_FILE, STATUS_UNMATCHED) or not self.scores:
            return f"{self.status}: {self.detail}"
        return ""


def cell_score(grade_id: str, mark, result: GradingResult) -> float | None:
    """The score of a graded notebook's cell: a grader's wins; else a test's automatic score; else a
    question's: None (pending) while it awaits a grader."""
    if mark is not None and mark.manual_score is not None:
        score = mark.manual_score
    elif registry.is_autograded(grade_id):  # the worker wrote the same score into the gradebook and the result
        score = (mark.auto_score if mark is not None else result.scores.get(grade_id)) or 0.0
    elif mark is not None:
        score = None if mark.needs_manual_grade else (mark.auto_score or 0.0)
    else:
        score = result.scores.get(grade_id, 0.0)
    extra = mark.extra_credit if mark is not None else None
    return None if score is None else score + (extra or 0.0)


def final_grades(collection: Collection, results: dict, marks: dict, comments: dict, roster=None,
                 out: Path | None = None) -> list:
    """One StudentGrade per submission, per roster student without one, per unmatched file naming no roster
    student; ``out``: the grading output folder, for the commands that regrade a student."""
    grades, matched = [], set()
    superseded = {}
    for s in collection.superseded:
        superseded.setdefault(s.student, []).append(s.file)
    for student, sub in sorted(collection.submissions.items()):
        result = results.get(student)
        student_marks = marks.get(student, {})
        detail = [result.detail] if result else ["no result in results/: grade again"]
        if superseded.get(student):
            detail.append(f"also handed in, not graded: {', '.join(superseded[student])}")
        if sub.matched_by_hand:
            detail.append("matched by hand (--match)")
        on_roster = roster.find(student) if roster else None
        if roster and not on_roster:
            detail.append("not on the roster")
        graded = result is not None and bool(result.graded_notebook)
        grades.append(StudentGrade(
            student, result.status if result else STATUS_NOT_GRADED, on_roster.name if on_roster else sub.name,
            sub.late, sub.file, "; ".join(d for d in detail if d), on_roster.canvas_id if on_roster else "",
            {g: cell_score(g, student_marks.get(g), result) for g in registry.points()} if graded else {},
            comments.get(student, {}), regrade_command(out, student) if out else ""))
        if on_roster:
            matched.add(on_roster.canvas_id)
    owners = {name: roster.named_in(name) if roster else [] for name in collection.unmatched}
    for person in roster.students if roster else []:
        if person.canvas_id in matched:
            continue
        if files := [name for name, people in owners.items() if person in people]:
            advice = match_advice(files[0], person.canvas_id)
            grades.append(StudentGrade(person.canvas_id, STATUS_UNMATCHED_FILE, person.name, canvas_id=person.canvas_id,
                                       detail=f"{', '.join(files)} may be theirs: {advice}"))
        else:
            grades.append(StudentGrade(person.canvas_id, STATUS_MISSING, person.name, detail="nothing handed in",
                                       canvas_id=person.canvas_id))
    grades.sort(key=lambda g: g.student)
    for name in collection.unmatched:
        if not owners[name]:
            grades.append(StudentGrade("", STATUS_UNMATCHED, file=name, detail=(
                f"the file name names no student: {match_advice(name, 'ID')} (ID: the student's id, for Canvas the "
                "roster's ID column)")))
    return grades


def match_advice(file: str, student: str) -> str:
    """How the instructor gives a file to a student."""
    return f"grade again with --match {shlex.quote(f'{file}={student}')}"


def save_grade_options(out: Path, options: list[str]) -> None:
    """Remember the options of this ``grade`` run (the submissions first), which regrade a student as it did."""
    (Path(out) / RUN_OPTIONS).write_text(json.dumps(options))


def regrade_command(out: Path, student: str) -> str:
    """The command that grades ``student`` again, with the options of the last ``grade`` into ``out``."""
    saved = Path(out) / RUN_OPTIONS
    options = json.loads(saved.read_text()) if saved.is_file() else ["SUBMISSIONS", "--out", str(out)]
    return shlex.join(["python", "-m", "autograder", "grade", *options, "--only", student])


def _points(value: float | None) -> str:
    return PENDING if value is None else f"{value:g}"


def write_grades_csv(grades: list, path: Path) -> list[str]:
    """``grades.csv``: one row per student or unmatched file; returns the header."""
    parts = registry.parts()
    header = (["student_id", "name", "status", "late"] + [f"{p} (/{m:g})" for p, m in parts.items()] +
              [f"autograded (/{registry.autograded_total():g})", f"total (/{registry.total():g})", "file", "detail"])
    tmp = Path(path).with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for g in grades:  # ids, names, file names and details come from students: never formulas
            by_part = g.part_scores()
            points = [_points(by_part[p]) if by_part else "" for p in parts]
            totals = [f"{g.autograded():g}", g.total_text()] if g.scores and g.finished() else ["", ""]
            writer.writerow(map(csv_cell, [g.student, g.name, g.status, "late" if g.late else ""] + points +
                                totals + [g.file, g.detail[:300]]))
    os.replace(tmp, path)
    return header
