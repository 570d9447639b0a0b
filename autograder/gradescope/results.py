"""Gradescope's ``results.json`` from a ``GradingResult``: one test per autograded cell, and a summary on top.

Schema: https://gradescope-autograders.readthedocs.io/en/latest/specs/ (score,
execution_time, output, output_format, visibility, stdout_visibility, tests[]
with score, max_score, status, name, number, output, visibility). Tests come
from ``ece662/grading/registry.py`` (names, points, order); their output is the
verifier's message, never the test source. The inline questions are graded
by hand on Gradescope and are not in it.
"""
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from autograder.worker.results import STATUS_GRADED, GradingResult
from ece662.grading import registry

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


@dataclass
class Visibility:
    """Who sees what, when (Gradescope's visibility values)."""
    public_tests: str = "visible"  # tests with a public part (the student's own run checks some of it)
    hidden_tests: str = "after_published"  # tests checked only when graded (``public_levels is None``)

    def __post_init__(self):
        for value in (self.public_tests, self.hidden_tests):
            if value not in VISIBILITIES:
                raise ValueError(f"visibility {value!r} is not one of {', '.join(VISIBILITIES)}")

    def of(self, test: registry.GradedTest) -> str:
        return self.hidden_tests if test.public_levels is None else self.public_tests


def _test_output(result: GradingResult, grade_id: str) -> tuple[bool, str]:
    verdict = result.verdicts.get(grade_id)
    if verdict is not None:
        return verdict.passed, verdict.message
    return False, f"not graded: {result.detail or result.status}"


def _manual_note() -> str:
    questions = ", ".join(q.title.split(":")[0] for q in registry.QUESTIONS)
    points = sum(q.points for q in registry.QUESTIONS)
    return f"{questions} ({points:g} points) are graded by hand."


def results_json(result: GradingResult, summary: list[str], seconds: float,
                 visibility: Visibility = Visibility()) -> dict:
    """The results.json payload: ``summary`` lines head the top output, then the status and each failure."""
    tests, failed = [], []
    parts = list(dict.fromkeys(t.part for t in registry.TESTS))
    for t in registry.TESTS:
        passed, message = _test_output(result, t.grade_id)
        score = float(result.scores.get(t.grade_id) or 0.0)
        number = f"{parts.index(t.part) + 1}.{[x for x in registry.TESTS if x.part == t.part].index(t) + 1}"
        tests.append({"name": f"{t.grade_id}: {t.summary}", "number": number, "score": score,
                      "max_score": t.points, "status": "passed" if passed and score == t.points else "failed",
                      "output": message, "visibility": visibility.of(t)})
        if tests[-1]["status"] == "failed":  # markdown: a message quoting the student's code stays text
            failed.append(f"- `{t.grade_id}`: {html.escape(message.splitlines()[0]) if message else 'failed'}")
    total = sum(t["score"] for t in tests)
    status = result.status if result.status == STATUS_GRADED else f"**{result.status}**"
    lines = [f"Autograded score: **{total:g} / {registry.autograded_total():g}** (status: {status})",
             *summary]
    if result.detail:
        lines.append(f"Details: {html.escape(result.detail)}")
    lines += failed or ["All autograded tests passed."]
    lines.append(_manual_note())
    return {"score": total, "execution_time": round(seconds), "output": "\n\n".join(lines),
            "output_format": "md", "test_output_format": "text", "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests}


def write_results(payload: dict, path: Path) -> None:
    """Write results.json atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.chmod(0o644)
    os.replace(tmp, path)
