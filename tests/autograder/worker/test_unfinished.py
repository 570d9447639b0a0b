"""A notebook the grader did not finish: its cause is named in the result, grades.csv and the feedback page; it
gets no total (grades.csv, canvas.csv) and an ACTION line with the command that regrades it."""
import csv
import html
import os
import sys

import nbformat

from autograder.course.collect import Collection, Submission
from autograder.course.feedback import exporter, feedback_html
from autograder.course.grades import final_grades, print_actions, save_grade_options
from autograder.course.publish import canvas_scores, write_grades_csv
from autograder.course.release import prepare_template
from autograder.grading_folder import GradingFolder
from autograder.worker.job import Job, Limits
from autograder.worker.results import STATUS_CRASHED, STATUS_TIMED_OUT, GradingResult
from demo.examples import EXAMPLES
from ece662.grading import registry
from ece662.grading.evidence import ENV_DIR

TIMED_OUT = "cell 3f2a hit the cpu time limit (120.4 s of CPU time in 640 s; limit 120 s) and was interrupted"
LIMITS = Limits(cell_timeout=60, notebook_timeout=400, memory_mb=6144)
KILLED = "the kernel was killed by signal 9 (memory limit?) in cell 77c1; the kernel was restarted and grading went on"


def test_a_partial_score_is_no_total_and_the_action_names_the_regrade(tmp_path, capsys):
    full = {t.grade_id: float(t.points) for t in registry.TESTS}
    partial = dict(full, **{registry.TESTS[-1].grade_id: 0.0})
    results = {"1001": GradingResult("1001", STATUS_TIMED_OUT, TIMED_OUT, partial, graded_notebook="x.ipynb"),
               "1002": GradingResult("1002", STATUS_CRASHED, KILLED, partial, graded_notebook="x.ipynb"),
               "1003": GradingResult("1003", scores=full, graded_notebook="x.ipynb")}
    collection = Collection({s: Submission(s, f"{s}.ipynb", f"{s}.ipynb") for s in results})
    save_grade_options(tmp_path, ["subs dir/canvas.zip", "--out", str(tmp_path), "--cell-timeout", "60"])
    grades = {g.student: g for g in final_grades(collection, results, {}, {}, out=tmp_path)}
    for g in grades.values():
        g.canvas_id = f"c{g.student}"
    assert canvas_scores(list(grades.values())) == {"c1001": "", "c1002": "", "c1003": registry.autograded_total()}
    assert grades["1001"].total_text() == grades["1002"].total_text() == ""
    write_grades_csv(list(grades.values()), tmp_path / "grades.csv")
    with open(tmp_path / "grades.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    autograded, total = f"autograded (/{registry.autograded_total():g})", f"total (/{registry.total():g})"
    assert rows["1001"][autograded] == rows["1001"][total] == "" and rows["1001"]["detail"] == TIMED_OUT
    assert rows["1002"][total] == "" and rows["1002"]["detail"] == KILLED
    print_actions(list(grades.values()))
    printed = capsys.readouterr().out
    assert "ACTION: 2 students handed in work that has no grade" in printed
    command = f"python -m autograder grade 'subs dir/canvas.zip' --out {tmp_path} --cell-timeout 60 --only 1001"
    assert f"    1001 (no name): timed out: {TIMED_OUT}; regrade: {command}" in printed
    assert "1003" not in printed
    assert KILLED in feedback_html(grades["1002"], None, exporter())


def test_the_exception_nbgrader_swallows_is_the_crash_s_cause(tmp_path, monkeypatch):
    """A kernel that cannot start (a broken Python environment: its launcher exits): nbgrader logs the exception
    and raises only "see the above traceback"; the worker's result, grades.csv and the feedback page name it."""
    from autograder.worker import grade as worker

    for key in ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", ENV_DIR, "JUPYTER_PATH", "JUPYTER_RUNTIME_DIR", "PATH"):
        monkeypatch.setenv(key, os.environ.get(key, "unset"))  # the worker sets them: put them back afterwards
    broken = [sys.executable, "-c", "import sys; sys.exit('No module named ipykernel_launcher')"]
    monkeypatch.setattr(worker, "kernel_argv", lambda *args, **kwargs: broken)
    submission = tmp_path / "1001.ipynb"
    nbformat.write(EXAMPLES["blank"](), submission)
    job = Job("1001", str(submission), "", str(tmp_path / "work"), str(prepare_template(tmp_path)),
              str(tmp_path / "result.json"), str(tmp_path / "log"), "none", 1, "", "", LIMITS)
    result = worker.grade_one(job)
    assert result.status == STATUS_CRASHED and result.retry_alone
    assert result.detail == ("nbgrader could not autograde this notebook: KernelStartError: the kernel exited with "
                             "code 1 before it started (its stderr ends: No module named ipykernel_launcher)")
    grades = final_grades(Collection({"1001": Submission("1001", str(submission), "1001.ipynb")}),
                          {"1001": result}, {}, {}, out=tmp_path)
    write_grades_csv(grades, tmp_path / "grades.csv")
    with open(tmp_path / "grades.csv") as f:
        row, = csv.DictReader(f)
    assert row["status"] == STATUS_CRASHED and row["detail"] == result.detail
    assert result.detail in html.unescape(feedback_html(grades[0], None, exporter()))


def test_what_the_machine_may_have_stopped_is_graded_again_alone(tmp_path, monkeypatch):
    """At the end of a run: a notebook whose worker was killed at the wall-clock limit is graded again, alone;
    one stopped by its CPU limit (which load cannot move) is not; one that stops again says so."""
    from autograder.course import pipeline

    stopped = GradingResult.failed("a", STATUS_TIMED_OUT, "grading did not finish within 3900 s", retry_alone=True)
    looping = GradingResult("b", STATUS_TIMED_OUT, TIMED_OUT, retry_alone=False)
    results = {"a": stopped, "b": looping, "c": GradingResult("c", retry_alone=True)}
    jobs = [Job(s, "", "", "", "", str(tmp_path / f"{s}.json"), "", "none", 1, "", "") for s in results]
    running, runs = [], []

    def run_alone(job, out, spares=None, kernel_slots=None):
        running.append(job.student)
        assert len(running) == 1 and spares is None and kernel_slots is None  # nothing else runs beside it
        runs.append(job.student)
        running.pop()
        return GradingResult.failed(job.student, STATUS_TIMED_OUT, "grading did not finish within 3900 s")

    monkeypatch.setattr(pipeline, "run_worker", run_alone)
    pipeline._regrade_alone(jobs, results, GradingFolder(tmp_path), verbose=False)
    assert runs == ["a"] and results["b"] is looping
    assert results["a"].detail.endswith("; the same when graded again alone")
    assert GradingResult.load(tmp_path / "a.json").detail == results["a"].detail
