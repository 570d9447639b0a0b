"""The bundle's grading settings (``gradescope.json``, one flat level: the ``Limits`` fields among the others)."""
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from autograder.gradescope.results import Visibility
from autograder.worker.job import Limits
from autograder.worker.sandbox import USER_PREFIX

SETTINGS_FILE = "gradescope.json"
# One notebook per container under a fixed deadline: no wall-clock backstop beyond the limits themselves, and a
# notebook limit that, with the worker's slack (180 s), stays under deadline_s
GRADESCOPE_LIMITS = Limits(notebook_timeout=330, backstop_factor=1)


@dataclass
class Settings:
    """The bundle's grading settings, chosen at ``build`` time."""
    sandbox: str = f"{USER_PREFIX}ece662-kernel"  # created by setup.sh
    limits: Limits = GRADESCOPE_LIMITS
    deadline_s: int = 550  # the whole run, under Gradescope's default 600 s job timeout
    public_visibility: str = "visible"
    hidden_visibility: str = "after_published"  # a student must not probe graded-only checks by resubmitting
    torch_requirement: str = "torch"

    @classmethod
    def load(cls, source: Path) -> "Settings":
        path = source / SETTINGS_FILE
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        limit_names = {f.name for f in fields(Limits)}
        known = {f.name for f in fields(cls) if f.name != "limits"} | limit_names
        if unknown := set(data) - known:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}; rebuild the bundle")
        limits = replace(GRADESCOPE_LIMITS, **{k: v for k, v in data.items() if k in limit_names})
        return cls(limits=limits, **{k: v for k, v in data.items() if k not in limit_names})

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps({**data.pop("limits"), **data}, indent=1)

    def visibility(self) -> Visibility:
        return Visibility(self.public_visibility, self.hidden_visibility)
