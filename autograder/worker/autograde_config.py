"""nbgrader's autograde as the worker runs it: its steps (``autograde_preprocessors``) and one student's private
course around them (``autograde_config``). ``nbgrader_config.py`` at the repository's top installs the same steps,
so plain ``nbgrader autograde`` there grades with them.
"""
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config

from autograder.nbgrader_course import base_config, private_exchange
from autograder.worker.job import Job
from autograder.worker.sandbox import KERNEL_NAME


def autograde_preprocessors() -> list:
    """nbgrader's autograde steps with ``Execute`` replaced by ``LimitedExecute``, ``KillLeftovers``,
    ``ApplyVerdicts`` and ``SaveRunReport``, and ``SanitizeNotebook`` last."""
    from nbgrader.converters import Autograde

    from autograder.worker.execute import KillLeftovers, LimitedExecute
    from autograder.worker.sanitize import SanitizeNotebook
    from autograder.worker.verify import ApplyVerdicts, SaveRunReport

    steps = []
    for step in Autograde.class_traits()["autograde_preprocessors"].default():
        steps += [LimitedExecute, KillLeftovers, ApplyVerdicts, SaveRunReport] if step.__name__ == "Execute" else [step]
    return steps + [SanitizeNotebook]  # last: nbgrader scores unanswered questions on the cells as handed in


@dataclass(frozen=True)
class KernelPlaces:
    """Where a graded kernel works: its folder (its working directory), the evidence folder in it, and the folder
    of its sockets and connection file."""
    folder: Path
    evidence: Path
    runtime: Path


def autograde_config(course: Path, db: Path, kernel: KernelPlaces, job: Job, report: Path,
                     progress_fd: int = -1) -> Config:
    """One student's private course (``autograder/worker/grade.py``): the steps, the job's limits, the contained
    kernel, the verifier's inputs and where it reports."""
    c = base_config(course, db)
    private_exchange(c, course)
    c.Autograde.autograde_preprocessors = autograde_preprocessors()
    c.CourseDirectory.source_directory = "source"  # empty: the kernel's course holds no source notebooks
    c.LimitedExecute.timeout = job.limits.cell_timeout
    c.LimitedExecute.notebook_timeout = job.limits.notebook_timeout
    c.LimitedExecute.backstop_factor = job.limits.backstop_factor
    c.LimitedExecute.kernel_name = KERNEL_NAME
    c.LimitedExecute.startup_timeout = 120
    c.LimitedExecute.kernel_cwd = str(kernel.folder)
    c.KillLeftovers.sandbox = job.sandbox
    c.KillLeftovers.progress_fd = progress_fd
    c.ApplyVerdicts.model_dir = job.model_dir
    c.ApplyVerdicts.data_root = job.data_root
    c.ApplyVerdicts.evidence_dir = str(kernel.evidence)
    c.ApplyVerdicts.store_dir = job.store_dir
    c.SaveRunReport.report_file = str(report)
    c.SaveRunReport.progress_fd = progress_fd
    c.OverwriteCells.add_missing_cells = True
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(kernel.runtime / "kernel")
    c.KernelManager.connection_file = str(kernel.runtime / "connection.json")
    return c
