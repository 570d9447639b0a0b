"""Each student's final grade: automatic scores, manual scores and comments, roster, status; ``grades.csv``.

A score is the worker's automatic one (its result's, which it also wrote
into its gradebook for formgrader) unless a grader set one in the merged
gradebook, where the comments come from too; points and parts come from
``ece662/grading/registry.py``. A question nobody has graded
yet is ``pending`` (never 0, never blank), and so is a total that includes one.
Nobody gets a score nobody decided: a submission without a graded notebook (an
unreadable upload, say) has no scores, and neither has a roster student who
handed in nothing. Every collected file gives one row: a submission, a roster
student without one (``missing``; ``unmatched file`` when an unmatched file's
name holds their id), or a file that names no student (``unmatched``). A
notebook the grader did not finish (``timed out``, ``crashed``) has its scores
but no total: the instructor regrades it (``regrade_command``) or decides.
"""
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from autograder.course.collect import Collection
from autograder.grading_folder import GradingFolder
from autograder.worker.results import STATUS_MISSING, UNFINISHED, GradingResult
from ece662.grading import registry

PENDING = "pending"
STATUS_UNMATCHED = "unmatched"
STATUS_UNMATCHED_FILE = "unmatched file"  # a roster student an unmatched file's name points to
STATUS_NOT_GRADED = "not graded"


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
        return "" if not self.scores or not self.finished() else points_text(self.total())

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
    """The score of a graded notebook's cell: a grader's (``mark``, from the gradebook) wins over the worker's
    automatic one, None (pending) for a question that awaits a grader; plus any extra credit."""
    manual = mark.manual_score if mark is not None else None
    score = manual if manual is not None else result.scores.get(grade_id, 0.0)
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
    GradingFolder(out).grade_options.write_text(json.dumps(options))


def regrade_command(out: Path, student: str) -> str:
    """The command that grades ``student`` again, with the options of the last ``grade`` into ``out``."""
    saved = GradingFolder(out).grade_options
    options = json.loads(saved.read_text()) if saved.is_file() else ["SUBMISSIONS", "--out", str(out)]
    return shlex.join(["python", "-m", "autograder", "grade", *options, "--only", student])


def points_text(value: float | None) -> str:
    """Points as ``grades.csv`` shows them: ``pending`` while a grader has to decide."""
    return PENDING if value is None else f"{value:g}"


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
