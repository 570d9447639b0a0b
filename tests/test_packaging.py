"""The set-up files agree with each other and with the README."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def test_readme_commands_exist_and_ci_runs_the_test_command():
    readme = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", readme, re.M):
        assert re.search(rf"^{target}:", makefile, re.M), f"README mentions `make {target}`, Makefile lacks it"
    assert "make test" in readme and "make demo" in readme
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(), re.M)

