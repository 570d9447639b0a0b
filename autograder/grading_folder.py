"""The grading output folder (``python -m autograder grade SUBMISSIONS --out OUT``): every path in it.

Like nbgrader's ``CourseDirectory``, one object names the folder's layout and every module asks it:

* ``grades.csv``, ``canvas.csv``, ``feedback/<student>.html``, ``part5.html``: what people read (``publish.py``
  writes them); ``part5-id.secret`` the secret of the anonymous ids on ``part5.html`` (``class_picture.py``);
* ``gradebook.db`` and ``autograded/<student>/<assignment>/<notebook>``: the nbgrader course formgrader grades in;
* ``submissions.json``, ``collected/``, ``matches.json``, ``roster.csv``, ``grade-options.json``: what was
  collected, every ``--match`` given, the roster given last and the options of the last ``grade``;
* ``results/<student>.json``, ``jobs/``, ``logs/``, ``work/<student>/``: each student's result, worker job, log
  and private course; ``template/`` the template gradebook; ``measurements/`` what the sandboxed verifiers share.
"""
from dataclasses import dataclass
from pathlib import Path

from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK

PRIVATE_COURSE = "course"  # a worker's private nbgrader course, in its work/<student>/ folder
GRADEBOOK = "gradebook.db"  # an nbgrader course's gradebook, at the course's root


@dataclass(frozen=True)
class GradingFolder:
    """The grading output folder rooted at ``root``."""
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def make(self) -> None:
        """The folder and the subfolders a grading run writes into."""
        for folder in (self.results, self.jobs, self.logs, self.feedback, self.root / "work"):
            folder.mkdir(parents=True, exist_ok=True)

    grades_csv = property(lambda self: self.root / "grades.csv")
    canvas_csv = property(lambda self: self.root / "canvas.csv")
    feedback = property(lambda self: self.root / "feedback")
    part5_html = property(lambda self: self.root / "part5.html")  # the Part 5 class picture, names replaced by ids
    id_secret = property(lambda self: self.root / "part5-id.secret")  # the HMAC key of part5.html's ids
    gradebook = property(lambda self: self.root / GRADEBOOK)
    autograded = property(lambda self: self.root / "autograded")
    manifest = property(lambda self: self.root / "submissions.json")  # the Collection
    collected = property(lambda self: self.root / "collected")  # where an LMS zip is unpacked
    hand_matches = property(lambda self: self.root / "matches.json")  # every --match given, {file: student id}
    roster = property(lambda self: self.root / "roster.csv")  # the Canvas roster given last
    grade_options = property(lambda self: self.root / "grade-options.json")  # the last `grade`'s options
    results = property(lambda self: self.root / "results")
    jobs = property(lambda self: self.root / "jobs")
    logs = property(lambda self: self.root / "logs")
    template = property(lambda self: self.root / "template")
    measurements = property(lambda self: self.root / "measurements")
    spare_workers_log = property(lambda self: self.logs / "spare-workers.log")

    def feedback_page(self, student: str) -> Path:
        return self.feedback / f"{student}.html"

    def autograded_notebook(self, student: str) -> Path:
        """A student's graded notebook in the course formgrader shows."""
        return self.autograded / student / ASSIGNMENT / NOTEBOOK

    def feedback_pages(self) -> list[Path]:
        return sorted(self.feedback.glob("*.html"))

    def result(self, student: str) -> Path:
        return self.results / f"{student}.json"

    def saved_results(self) -> list[Path]:
        return sorted(self.results.glob("*.json"))

    def job(self, student: str) -> Path:
        return self.jobs / f"{student}.json"

    def log(self, student: str) -> Path:
        return self.logs / f"{student}.log"

    def work(self, student: str) -> Path:
        """The worker's folder for ``student``: its private nbgrader course and kernel set-up."""
        return self.root / "work" / student

    def worker_gradebook(self, student: str) -> Path:
        """The gradebook the worker filled for ``student`` (merged into ``gradebook.db``)."""
        return self.work(student) / PRIVATE_COURSE / GRADEBOOK
