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


def test_readme_points_table_is_the_registry():
    from ece662.grading import registry

    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| (Part \d|Inline Question \d|total)\b[^|]*\| (\d+) \|$", readme, re.M))
    tests = {}
    for t in registry.TESTS:
        tests[registry.part_of(t.grade_id)] = tests.get(registry.part_of(t.grade_id), 0) + 1
    expected = {f"Part {p[-1]}": str(n) for p, n in registry.parts().items() if p.startswith("part")}
    expected |= {f"Inline Question {q[-1]}": str(n) for q, n in registry.parts().items() if q.startswith("q")}
    expected |= {"Part 3": "0", "total": f"{registry.total():g}"}
    assert rows == expected
    for part, n in tests.items():
        assert re.search(rf"^\| Part {part[-1]}, [^|]*\({n} autograded tests\)", readme, re.M), part
