"""ApplyVerdicts and SaveRunReport (autograder/worker/verify.py), one step at a time on a small notebook: the
verifier's verdicts replace what the kernel printed in the graded cells, the student's own cells keep theirs, and
the worker gets the verdicts in its report. (The verifier's rules: tests/autograder/worker/test_verify.py.)"""
import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from nbgrader.utils import determine_grade

from autograder.worker import verify
from autograder.worker.job import VERIFIED
from autograder.worker.results import Verdict
from autograder.worker.verify import RAN, ApplyVerdicts, RunReport, SaveRunReport
from ece662.grading import registry

PASSES, FAILS = registry.TESTS[0].grade_id, registry.TESTS[1].grade_id
TEST_PASSED = new_output("stream", name="stdout", text="Test passed.\n")  # a passed verdict; a kernel can print it


def _cell(source, grade_id: str, outputs, grade=True):
    cell = new_code_cell(source, outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": grade, "grade_id": grade_id, "locked": grade, "solution": not grade,
                                 "points": 1 if grade else 0, "schema_version": 3}
    return cell


def test_verdicts_replace_the_graded_cells_outputs_and_the_student_cells_keep_theirs(tmp_path, monkeypatch):
    asked = []

    def verifier(folder, cell_status, trusted, figures):  # one test passes, the others fail
        asked.append((folder, cell_status))
        return {t.grade_id: Verdict(t.grade_id == PASSES, "passed" if t.grade_id == PASSES else "wrong sparsity")
                for t in registry.TESTS}

    monkeypatch.setattr(verify, "verify", verifier)
    crashed = new_output("error", ename="ValueError", evalue="the kernel's own error", traceback=["ValueError"])
    answer = _cell("x = 1", "answer", [new_output("stream", name="stdout", text="my output\n")], grade=False)
    nb = new_notebook(cells=[new_markdown_cell("text"), answer, _cell("run_test(1)", PASSES, [crashed]),
                             _cell("run_test(2)", FAILS, [TEST_PASSED])])
    status = {PASSES: RAN, FAILS: RAN}
    resources = {"metadata": {"path": str(tmp_path)}, "ece662_cell_status": status}
    ApplyVerdicts(model_dir=str(tmp_path), data_root=str(tmp_path)).preprocess(nb, resources)

    assert asked == [(tmp_path / "evidence", status)]  # evidence/ beside the notebook by default
    _, answered, passed, failed = nb.cells
    assert answered.outputs == [new_output("stream", name="stdout", text="my output\n")]
    assert passed.outputs == [TEST_PASSED] and determine_grade(passed) == (1, 1)
    assert [(o.ename, o.evalue) for o in failed.outputs] == [("TestFailed", "wrong sparsity")]
    assert determine_grade(failed) == (0, 1)
    assert resources["ece662_verdicts"][FAILS] == Verdict(False, "wrong sparsity")
    assert set(resources["ece662_timing"]) == {"verify_s", "measurements_made", "measurements_reused"}
    nbformat.validate(nb)


def test_the_report_holds_what_the_steps_recorded_and_the_course_run_hears_verified(tmp_path):
    verdicts = {PASSES: Verdict(True, "passed"), FAILS: Verdict(False, "This test cell did not run to the end")}
    resources = {"ece662_verdicts": verdicts, "ece662_cell_status": {PASSES: RAN, FAILS: "the kernel died"},
                 "ece662_events": [{"event": "kernel died", "cell": "c2"}], "ece662_timing": {"verify_s": 0.5}}
    read, write = os.pipe()
    SaveRunReport(report_file=str(tmp_path / "report.json"), progress_fd=write).preprocess(new_notebook(), resources)
    os.close(write)
    assert os.read(read, 100).decode() == f"{VERIFIED}\n"
    report = RunReport.load(tmp_path / "report.json")
    assert report == RunReport(verdicts, resources["ece662_cell_status"], resources["ece662_events"],
                               resources["ece662_timing"])
