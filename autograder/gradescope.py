"""Grading inside a Gradescope container, and the command line for the bundle.

    python -m autograder.gradescope build [--out build/gradescope]   -> autograder.zip (gradescope_bundle.py)
    (in the container, run_autograder) python -m autograder.gradescope supervise

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
import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from . import sandbox
from .course import NOTEBOOK
from .gradescope_resources import Resources, usable_cpus
from .gradescope_results import Visibility, results_json, write_results
from .results import STATUS_CRASHED, STATUS_INVALID, STATUS_MEMORY, STATUS_TIMED_OUT, GradingResult

ROOT = Path("/autograder")
SETTINGS_FILE = "gradescope.json"
STUDENT = "submission"
OOM_ADVICE = ("the notebook uses too much memory, or the autograder has too little: instructors, see the README's "
              "Gradescope section for the memory to select")


@dataclass
class Settings:
    """The bundle's grading settings (``gradescope.json``), chosen at ``build`` time."""
    sandbox: str = "user:ece662-kernel"  # created by setup.sh
    cell_timeout: int = 120
    notebook_timeout: int = 330  # + the worker's slack (180 s) stays under deadline_s
    memory_mb: int = 6144  # address space of the kernel (prlimit), not resident memory
    deadline_s: int = 550  # the whole run, under Gradescope's default 600 s job timeout
    public_visibility: str = "visible"
    hidden_visibility: str = "after_published"  # a student must not probe graded-only checks by resubmitting
    torch_requirement: str = "torch"

    @classmethod
    def load(cls, source: Path) -> "Settings":
        path = source / SETTINGS_FILE
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        known = {f.name for f in fields(cls)}
        if unknown := set(data) - known:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}; rebuild the bundle")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def visibility(self) -> Visibility:
        return Visibility(self.public_visibility, self.hidden_visibility)


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
            [p for p in candidates if Path(NOTEBOOK).stem in p.name.lower()] or candidates
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


def _limits(settings: Settings):
    from .jobs import Limits

    return Limits(cell_timeout=settings.cell_timeout, notebook_timeout=settings.notebook_timeout,
                  memory_mb=settings.memory_mb)


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
    from .jobs import readable_paths, run_worker

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
    result = run_worker(STUDENT, notebook, _private_work_folder(root), source / "gradebook.db", readable,
                        _limits(settings), mode, threads=usable_cpus())
    swept = sandbox.sweep(mode)
    after = Resources.now()
    summary = [chosen, f"Kernel containment: {sandbox.describe(mode)}" + (f" ({note})" if note else ""),
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
    from .processes import become_subreaper, kill_descendants

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.gradescope")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the Gradescope autograder.zip")
    b.add_argument("--out", default=None, help="output folder (default build/gradescope)")
    b.add_argument("--train-images", type=int, default=None, help="training images shipped (default: Part 4's)")
    b.add_argument("--hidden-tests-visibility", default=Settings.hidden_visibility, choices=("hidden", "after_due_date",
                                                                             "after_published", "visible"),
                   help="when students see the results of tests that are checked only when graded")
    b.add_argument("--notebook-timeout", type=int, default=Settings.notebook_timeout)
    for name in ("run", "supervise"):
        p = sub.add_parser(name, help=f"{name} grading of /autograder/submission (inside the container)")
        p.add_argument("--root", default=str(ROOT))
    args = parser.parse_args(argv)
    if args.command == "build":
        from .gradescope_bundle import build, default_out

        settings = Settings(hidden_visibility=args.hidden_tests_visibility, notebook_timeout=args.notebook_timeout)
        archive = build(Path(args.out) if args.out else default_out(), settings, train_images=args.train_images)
        print(f"wrote {archive} ({archive.stat().st_size / 2**20:.1f} MiB); upload it as a Gradescope autograder")
        return 0
    if args.command == "run":
        run(Path(args.root))
        return 0
    return supervise(Path(args.root))


if __name__ == "__main__":
    sys.exit(main())
