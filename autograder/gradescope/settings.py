"""The Gradescope bundle's grading settings (``gradescope.json``), chosen at ``build`` time."""
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from autograder.gradescope.results import Visibility

SETTINGS_FILE = "gradescope.json"


@dataclass
class Settings:
    """The bundle's grading settings (``gradescope.json``), chosen at ``build`` time."""
    sandbox: str = "user:ece662-kernel"  # created by setup.sh
    cell_timeout: int = 120
    notebook_timeout: int = 330  # + the worker's slack (180 s) stays under deadline_s
    memory_mb: int = 6144  # the kernel's memory: its cgroup's cap where one can be made, else its address space
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
        known = {f.name for f in fields(cls)}
        if unknown := set(data) - known:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}; rebuild the bundle")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def visibility(self) -> Visibility:
        return Visibility(self.public_visibility, self.hidden_visibility)
