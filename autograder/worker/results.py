"""The typed record of one graded submission, passed between the worker, the pipeline and Gradescope.

Saved as ``results/<student>.json``; ``GradingResult.load`` refuses a file that
is not one (wrong fields or types), so a damaged result is reported, not
half-read.
"""
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ece662.grading import registry

STATUS_GRADED = "graded"
STATUS_TIMED_OUT = "timed out"
STATUS_CRASHED = "crashed"
STATUS_MEMORY = "memory limit"
STATUS_INVALID = "invalid notebook"
STATUS_INVALID_UPLOAD = "invalid upload"  # an archive refused at intake (autograder/course/archives.py)
STATUS_TAMPERED = "tampered"
STATUS_MISSING = "missing"  # on the roster, nothing submitted
# The grader did not finish the notebook within its limits: its partial scores are no grade (no total is exported)
UNFINISHED = (STATUS_TIMED_OUT, STATUS_CRASHED)


@dataclass
class Verdict:
    """The verifier's decision on one autograded test."""
    passed: bool
    message: str  # shown to the student: "passed" or what is wrong


@dataclass
class GradingResult:
    student: str
    status: str = STATUS_GRADED
    detail: str = ""
    scores: dict = field(default_factory=dict)  # grade id -> points, None while a question awaits manual grading
    verdicts: dict = field(default_factory=dict)  # grade id -> Verdict of each autograded test
    sandbox: str = ""  # how the kernel was contained: "bubblewrap", "unprivileged user", "none"
    submission: str = ""  # the file graded
    submission_sha256: str = ""
    graded_notebook: str = ""
    seconds: float = 0.0
    job_key: str = ""
    phases: dict = field(default_factory=dict)  # seconds per grading phase (benchmarks)
    # what the verifier measured for the class pages, computed by the grader only: {"part5": Part5Point as a dict}
    figures: dict = field(default_factory=dict)
    # what stopped grading may come from the machine (a wall-clock limit, a killed kernel or worker, an error of
    # the grader's), not from the notebook: the course pipeline grades it again alone, once
    retry_alone: bool = False

    @classmethod
    def failed(cls, student: str, status: str, detail: str, **extra) -> "GradingResult":
        """A submission that could not be graded: zero for every autograded test."""
        scores = {t.grade_id: 0.0 for t in registry.TESTS}
        return cls(student=student, status=status, detail=detail, scores=scores, **extra)

    def autograded_score(self) -> float:
        return sum(self.scores.get(t.grade_id) or 0.0 for t in registry.TESTS)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def save(self, path: Path) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, data: dict) -> "GradingResult":
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or "student" not in data or set(data) - known:
            raise ValueError(f"not a grading result (fields: {sorted(data) if isinstance(data, dict) else data!r})")
        data = dict(data)
        data["verdicts"] = {k: Verdict(**v) for k, v in data.get("verdicts", {}).items()}
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> "GradingResult":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not a valid grading result ({exc}); delete it and regrade") from None
