"""Spare worker processes (autograder/course/spare_workers.py): a dead spare is never handed a job, unused ones
exit."""
import os

from autograder.course.spare_workers import SpareWorkers


def test_a_dead_spare_gets_no_job_and_unused_spares_exit_cleanly(tmp_path):
    spares = SpareWorkers(tmp_path, count=2, threads=1, jobs=2)
    dead, unused = spares._waiting
    os.killpg(dead.proc.pid, 9)
    dead.proc.wait()
    assert spares.hand_over(tmp_path / "job.json") is None  # the pipeline then starts a worker the usual way
    spares.close()
    assert unused.proc.returncode == 0  # it read end-of-input and left without grading anything
    assert not (tmp_path / "results").exists()
