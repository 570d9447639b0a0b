"""`make bench` end to end on the tiny synthetic set: every figure is measured and reported beside its goal.

Speed itself is not asserted here (CI machines vary); `make bench` prints and records it.
"""
import json
import os
import subprocess
import sys

from autograder.course import REPO


def test_bench_measures_and_reports_every_goal(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CINIC10_DIR", "ECE662_CACHE_DIR", "ECE662_MODEL_DIR")}
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--size", "tiny", "--work", str(tmp_path / "work"),
         "--report-dir", str(tmp_path / "report"), "--train-images", "600", "--epochs", "6",
         "--grading-submissions", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [g["id"] for g in report["goals"]] == ["P1", "P2a", "P2b", "P3", "P4a", "P4b", "P4c", "P5a", "P5b"]
    figures = report["figures"]
    assert figures["P2"]["images"] == 10 * (60 + 20 + 40)
    assert figures["P1"]["images"] == 400 and figures["P1"]["ratio"] > 0
    assert figures["P3"]["peak_mib"] >= figures["P3"]["imports_mib"] > 0
    # the pipeline graded the two correct examples with full marks, with 1 and with 2 workers
    assert figures["P4"]["scores"] == {"correct": 20.0, "correct_kthvalue_manual": 20.0}
    assert set(figures["P5"]["ms"]) == {"dense", "unstructured_80", "filters_80_masked", "filters_80_removed"}
    summary = (tmp_path / "report" / "REPORT.md").read_text()
    assert "synthetic (not CINIC-10)" in summary
    for goal in report["goals"]:
        assert f"| {goal['id']} |" in summary
        assert f"{goal['id']:4s}" in run.stdout  # printed too
