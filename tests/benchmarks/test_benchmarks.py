"""`make bench` end to end on the tiny synthetic set: every figure is measured and reported beside its goal.

Speed itself is not asserted here (CI machines vary); `make bench` prints and records it. About 5 minutes on 2
cores, so `make test-bench` runs it, not `make test`.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from autograder.nbgrader_course import REPO
from ece662.grading import registry


@pytest.mark.bench_run
def test_bench_measures_and_reports_every_goal(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CINIC10_DIR", "ECE662_CACHE_DIR", "ECE662_MODEL_DIR")}
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--size", "tiny", "--work", str(tmp_path / "work"),
         "--report-dir", str(tmp_path / "report"), "--train-images", "600", "--epochs", "6",
         "--grading-submissions", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    with_tf = ["P1tf"] if importlib.util.find_spec("tensorflow") else []
    assert [g["id"] for g in report["goals"]] == ["P1", *with_tf, "P2a", "P2b", "P3", "P4a", "P4b", "P4c", "P4d1",
                                                  "P4d2", "P4e1", "P4e2", "P4fd", "P4fe", "P5a", "P5b"]
    figures = report["figures"]
    assert figures["P2"]["images"] == 10 * (60 + 20 + 40)
    assert figures["P1"]["images"] == 400 and figures["P1"]["ratio"] > 0
    assert figures["P3"]["peak_mib"] >= figures["P3"]["imports_mib"] > 0
    # the pipeline graded the two correct examples with full marks, with 1 and with 2 workers
    full = float(sum(t.points for t in registry.TESTS))
    assert figures["P4"]["scores"] == {"correct": full, "correct_kthvalue_manual": full}
    assert figures["P4"]["scores_agree"]
    for name in ("P4d", "P4e"):
        _assert_grading_set(figures["P4"][name])
    assert set(figures["P5"]["ms"]) == {"dense", "unstructured_80", "filters_80_masked", "filters_80_removed"}
    summary = (tmp_path / "report" / "REPORT.md").read_text()
    assert "synthetic (not CINIC-10)" in summary
    for goal in report["goals"]:
        assert f"| {goal['id']} |" in summary
        assert f"{goal['id']:4s}" in run.stdout  # printed too
    assert "| evidence loading and verification (with Part 4's recipe run when its start is new) |" in summary
    assert "| &nbsp;&nbsp;cell `setup` |" in summary and "## P4e: grading throughput" in summary


def _assert_grading_set(p4d: dict):
    """Stock nbgrader timed on the same submissions; every phase of each of our autogrades accounted for."""
    assert p4d["stock"]["autograde_s"] > 0 and p4d["stock"]["feedback_s"] > 0
    for workers in ("1", "2"):
        ours = p4d[f"ours_{workers}"]
        assert set(ours["phases"]) == {"correct", "correct_kthvalue_manual"} and ours["merge_s"] > 0
        for phases in ours["phases"].values():
            assert {"setup", *(t.grade_id for t in registry.TESTS)} <= set(phases["cells_s"])
            assert phases["kernel_start_s"] > 0 and phases["scores_s"] >= 0 and phases["waiting_s"] >= 0
        floor = p4d["floor"][workers]  # machine-wide CPU time: other load counts too, so no tighter bound here
        assert floor["cpu_s"] > 0 and floor["stock_cpu_s"] > 0 and set(floor["verify_s"]) == set(ours["phases"])
        assert set(floor["part4_cell_s"]) == set(ours["phases"]) and all(s >= 0 for s in floor["part4_cell_s"].values())
        assert floor["floor_s"] == floor["cpu_s"] / floor["cores"] and p4d[f"vs_stock_{workers}"] > 0
