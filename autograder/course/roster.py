"""Canvas gradebook CSV: read the roster an instructor exports (``publish.py`` writes the file Canvas imports).

Canvas exports (and imports) ``Student, ID, SIS User ID, SIS Login ID,
Section, <assignment columns "Name (id)">...`` followed by a
``Points Possible`` row (and, for assignments with a manual posting policy, a
``Manual Posting`` row); then one row per student. ``ID`` is the Canvas user
id that bulk-download file names carry. In an import, an empty cell leaves the
grade unchanged and an assignment column Canvas does not know creates a new
assignment. Canvas's test student (the one "Student View" uses, named
"Student, Test") is kept apart: it is never a missing student and never in the
file written for import.
"""
import csv
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED = ("Student", "ID")
IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section")
POINTS_POSSIBLE = "    Points Possible"
ASSIGNMENT_COLUMN = re.compile(r".+ \((\d+)\)$")  # "Pruning (12345)"
TEST_STUDENT = "Student, Test"  # Canvas's name for the course's test student


@dataclass
class RosterStudent:
    values: dict  # the student's identity columns, as exported

    @property
    def name(self) -> str:
        return self.values["Student"]

    @property
    def canvas_id(self) -> str:
        return self.values["ID"]

    def ids(self) -> set[str]:
        """Every id a submission may be filed under: Canvas user id, SIS user id, SIS login id."""
        return {self.values.get(k, "").strip() for k in ("ID", "SIS User ID", "SIS Login ID")} - {""}


@dataclass
class Roster:
    path: Path
    identity_columns: list  # the export's identity columns, in its order
    assignment_columns: list  # "Name (id)" columns
    students: list  # RosterStudent, in the export's order, without the test student
    test_students: list = field(default_factory=list)  # Canvas's test student (RosterStudent)

    def find(self, student_id: str) -> RosterStudent | None:
        """The roster student (or test student) a submission's id names (Canvas id, SIS user id or SIS login
        id)."""
        return next((s for s in self.students + self.test_students if student_id in s.ids()), None)

    def named_in(self, file: str) -> list[RosterStudent]:
        """The students whose id (Canvas id, SIS user id or login) is a word of ``file``'s name: who an unmatched
        file may belong to."""
        words = set(re.split(r"[^a-z0-9@.-]+", file.lower())) | set(re.split(r"[^a-z0-9]+", file.lower()))
        return [s for s in self.students if {i.lower() for i in s.ids()} & words]

    def assignment_column(self, wanted: str | None, assignment_id: str, new_column: bool = False) -> str:
        """The column for this assignment: ``wanted`` (exact, or its "(id)"), else the only one naming it.
        A ``wanted`` the roster lacks is refused unless ``new_column`` (Canvas then creates that assignment)."""
        if wanted:
            by_id = ASSIGNMENT_COLUMN.fullmatch(wanted)
            same = [c for c in self.assignment_columns
                    if c == wanted or (by_id and ASSIGNMENT_COLUMN.fullmatch(c).group(1) == by_id.group(1))]
            if same or new_column:
                return same[0] if same else wanted
            raise ValueError(f"{self.path} has no column {wanted!r} (its assignment columns: "
                             f"{', '.join(map(repr, self.assignment_columns)) or 'none'}): pass one of them to "
                             "--assignment, or add --new-assignment to have Canvas create a new assignment")
        named = [c for c in self.assignment_columns if assignment_id.lower() in c.lower()]
        if len(named) != 1:
            raise ValueError(f"{self.path}: cannot tell which column is this assignment "
                             f"({len(named)} of {self.assignment_columns or 'no columns'} name '{assignment_id}'); "
                             'pass --assignment "Name (id)" as in the Canvas gradebook')
        return named[0]


def read_roster(path: Path) -> Roster:
    """Parse a Canvas gradebook export; a file that is not one raises ValueError naming what is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"roster {path} does not exist: export it from Canvas (Grades > Export > CSV)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]] if rows else []
    if missing := [c for c in REQUIRED if c not in header]:
        raise ValueError(f"{path} is not a Canvas gradebook export: no {' / '.join(missing)} column "
                         f"(its header: {header[:6]}); export the gradebook from Canvas as CSV")
    students, test_students = [], []
    for row in rows[1:]:
        values = dict(zip(header, (v.strip() for v in row)))
        if values.get("ID") and "Points Possible" not in values.get("Student", ""):
            person = RosterStudent({c: values.get(c, "") for c in header if c in IDENTITY})
            (test_students if person.name == TEST_STUDENT else students).append(person)
    return Roster(path, [c for c in header if c in IDENTITY],
                  [c for c in header if ASSIGNMENT_COLUMN.fullmatch(c)], students, test_students)


def load_roster(given, remembered: Path) -> Roster | None:
    """The roster ``given`` now, else the one ``remember_roster`` kept at ``remembered``, else None."""
    if given:
        return read_roster(given)
    return read_roster(remembered) if Path(remembered).is_file() else None


def remember_roster(given, remembered: Path) -> None:
    """Keep the roster ``given`` (if any) at ``remembered`` for later runs."""
    if given and Path(given).resolve() != Path(remembered).resolve():
        shutil.copy(given, remembered)
