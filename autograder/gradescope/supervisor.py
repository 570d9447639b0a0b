"""Grading inside a Gradescope container (``run_autograder`` calls ``python -m autograder.gradescope supervise``).

``supervise`` runs as root: it shields itself from the OOM killer, adopts
every orphaned process, starts ``run`` as a child with a deadline, kills
everything left afterwards, and writes a ``results.json`` that says what
happened if ``run`` did not write one (killed, out of memory, past the
deadline). ``run`` picks the notebook, grades it with the grading worker
(kernel as the unprivileged user from setup.sh, verification in the worker
after the kernel is gone), sweeps the kernel user's processes again and writes
``results.json`` last. The kernel user can read neither ``/autograder/source``
(mode 0700: the grading code, gradebook, the verifier's model and data) nor
write ``/autograder/results``.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

from autograder.gradescope.resources import Resources, usable_cpus
from autograder.gradescope.results import results_json, write_results
from autograder.gradescope.settings import Settings
from autograder.grading_folder import GRADEBOOK, GradingFolder
from autograder.nbgrader_course import NOTEBOOK, NOTEBOOK_ID
from autograder.worker import sandbox
from autograder.worker.cgroup import caps_for
from autograder.worker.results import STATUS_CRASHED, STATUS_INVALID, STATUS_MEMORY, STATUS_TIMED_OUT, GradingResult

ROOT = Path("/autograder")
STUDENT = "submission"
OOM_ADVICE = ("the notebook uses too much memory, or the autograder has too little: instructors, see the README's "
              "Gradescope section for the memory to select")


def choose_notebook(folder: Path) -> tuple[Path | None, str]:
    """(the notebook to grade, a sentence saying which and why) from a submission folder.

    Hidden files and folders (``.ipynb_checkpoints`` autosaves, ``.something``) and ``__MACOSX`` are
    ignored. Of several notebooks, the one named like the assignment's (``pruning.ipynb``) is graded.
    """
    found = sorted(folder.rglob("*.ipynb"), key=lambda p: (len(p.relative_to(folder).parts), str(p)))
    ignored = [p for p in found if any(part.startswith(".") or part == "__MACOSX"
                                       for part in p.relative_to(folder).parts)]
    candidates = [p for p in found if p not in ignored]
    names = ", ".join(str(p.relative_to(folder)) for p in candidates)
    if not candidates:
        also = f" (ignored: {', '.join(str(p.relative_to(folder)) for p in ignored)})" if ignored else ""
        return None, f"No notebook was submitted{also}: upload your {NOTEBOOK}."
    named = [p for p in candidates if p.name == NOTEBOOK] or \
            [p for p in candidates if NOTEBOOK_ID in p.name.lower()] or candidates
    chosen = named[0]
    if len(candidates) == 1:
        return chosen, f"Graded notebook: `{chosen.relative_to(folder)}`."
    return chosen, (f"Graded notebook: `{chosen.relative_to(folder)}` (you submitted {len(candidates)}: {names}; "
                    f"the one named `{NOTEBOOK}` is graded, or else the first).")


def choose_sandbox(preferred: str) -> tuple[str, str]:
    """(the mode to use, a note if it is not ``preferred``): the preferred mode, else bubblewrap, else none."""
    try:
        return sandbox.validate_mode(preferred), ""
    except ValueError as exc:
        reason = str(exc)
    if sandbox.sandbox_unavailable_reason() is None:
        return sandbox.BUBBLEWRAP, f"{preferred} unavailable ({reason}); using bubblewrap"
    return sandbox.NONE, f"{preferred} unavailable ({reason}); KERNEL NOT CONTAINED"


def _private_work_folder(root: Path) -> Path:
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o700)
    return work


def run(root: Path = ROOT, settings: Settings | None = None) -> dict:
    """Grade the notebook in ``root/submission`` and write ``root/results/results.json`` (returned)."""
    umask = os.umask(0o077)  # everything the grader writes is private to it unless made otherwise
    try:
        return _run(root, settings)
    finally:
        os.umask(umask)


def _run(root: Path, settings: Settings | None) -> dict:
    from autograder.worker.job import new_job, readable_paths, run_worker

    started = time.monotonic()
    source = root / "source"
    settings = settings or Settings.load(source)
    results_file = root / "results" / "results.json"
    notebook, chosen = choose_notebook(root / "submission")
    if notebook is None:
        result = GradingResult.failed(STUDENT, STATUS_INVALID, chosen)
        payload = results_json(result, [], time.monotonic() - started, settings.visibility())
        write_results(payload, results_file)
        return payload
    mode, note = choose_sandbox(settings.sandbox)
    before = Resources.now()
    readable = readable_paths() if mode == sandbox.BUBBLEWRAP else []  # what bubblewrap shows the kernel
    work = _private_work_folder(root)
    folder = GradingFolder(work)
    job = new_job(STUDENT, notebook, folder, source / GRADEBOOK, "", settings.limits, mode, usable_cpus(), readable)
    result = run_worker(job, folder)
    swept = sandbox.sweep(mode)
    after = Resources.now()
    summary = [chosen, f"Kernel containment: {sandbox.describe(mode)}" + (f" ({note})" if note else ""),
               f"Kernel bounds: {sandbox.describe_bounds(caps_for(job.limits, job.threads), mode)}",
               f"Resources: {after.describe()}"]
    if before.oom_kills is not None and after.oom_kills > before.oom_kills:
        summary.append(f"**Out of memory**: the OOM killer killed {after.oom_kills - before.oom_kills} process(es) "
                       f"while grading ({OOM_ADVICE}).")
    if swept:
        summary.append(f"{swept} process(es) the notebook left running were killed.")
    payload = results_json(result, summary, time.monotonic() - started, settings.visibility())
    write_results(payload, results_file)  # last: nothing the notebook started is alive any more
    return payload


def _set_oom_score(value: int) -> None:
    try:
        Path("/proc/self/oom_score_adj").write_text(str(value))
    except OSError:
        pass  # not Linux, or not allowed to lower it: the deadline and the fallback still hold


def _what_killed(code: int | None, before: Resources, after: Resources, deadline: int) -> tuple[str, str]:
    """(status, detail) for a ``run`` that ended without writing results.json."""
    oom = before.oom_kills is not None and after.oom_kills is not None and after.oom_kills > before.oom_kills
    limit = f"{after.memory_limit / 2**20:.0f} MiB" if after.memory_limit else "the container's memory"
    if code is None:
        return STATUS_TIMED_OUT, (f"grading did not finish within {deadline} s and was stopped; "
                                  "a cell probably runs far longer than it should")
    if oom or code == -9:
        return STATUS_MEMORY, (f"the grader was killed{' by the OOM killer' if oom else ''} (signal 9) with "
                               f"{limit} available ({OOM_ADVICE})")
    return STATUS_CRASHED, f"the grader stopped with exit code {code} before writing results"


def supervise(root: Path = ROOT, settings: Settings | None = None) -> int:
    """Run ``run`` in a child under a deadline; whatever happens, leave a results.json that says what did."""
    from autograder.worker.processes import become_subreaper, kill_descendants

    started = time.monotonic()
    try:
        settings = settings or Settings.load(root / "source")
    except (OSError, ValueError, TypeError) as exc:  # the run reports it too; here only the defaults matter
        print(f"gradescope.json unusable ({exc}); the supervisor uses the default settings", file=sys.stderr)
        settings = Settings()
    _set_oom_score(-1000)  # the kernel (+1000, see sandbox) goes first, this process never
    become_subreaper()
    results_file = root / "results" / "results.json"
    results_file.unlink(missing_ok=True)
    before = Resources.now()
    child = subprocess.Popen([sys.executable, "-m", "autograder.gradescope", "run", "--root", str(root)],
                             cwd=Path(__file__).resolve().parent.parent)
    try:
        code = child.wait(timeout=settings.deadline_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        code = None
    kill_descendants()
    mode = settings.sandbox
    if sandbox.kernel_user(mode) and sandbox.user_mode_unavailable_reason(sandbox.kernel_user(mode)) is None:
        sandbox.sweep(mode)
    if results_file.is_file() and code == 0:
        return 0
    after = Resources.now()
    status, detail = _what_killed(code, before, after, settings.deadline_s)
    summary = [f"Resources: {after.describe()}", "No test results could be recorded; the scores below are zero."]
    payload = results_json(GradingResult.failed(STUDENT, status, detail), summary, time.monotonic() - started,
                           settings.visibility())
    write_results(payload, results_file)
    return 0
