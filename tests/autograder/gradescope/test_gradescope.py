"""The Gradescope bundle (contents, no solutions), its grading logic, and the unprivileged-user containment.

The bundle run from a clean Debian root is in tests/autograder/gradescope/test_gradescope_image.py (opt-in: make test-gradescope).
"""
import json
import os
import platform
import pwd
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from autograder.gradescope import resources as gradescope_resources
from autograder.gradescope.bundle import build
from autograder.gradescope.results import Visibility, results_json
from autograder.gradescope.setup import verify_checksums
from autograder.gradescope.settings import GRADESCOPE_LIMITS, Settings
from autograder.gradescope.supervisor import STUDENT, choose_notebook, run
from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, REPO, SOURCE_DIR
from autograder.worker import sandbox
from autograder.worker.job import WORKER_SLACK_S
from autograder.worker.results import STATUS_GRADED, GradingResult, Verdict
from demo.examples import P5_TRAINED_LONGER, insert_after, write_examples
from ece662.grading import registry

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS", "### END SOLUTION")
TEST_LIMITS = replace(GRADESCOPE_LIMITS, cell_timeout=60, notebook_timeout=400)  # room for a busy test machine


@pytest.fixture(scope="module")
def bundle(course_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("gs")
    return build(out / "bundle", train_images=100, allow_small_dataset=True)  # the tiny dataset


def extract(archive: Path, target: Path) -> Path:
    """Unzip like Gradescope does, keeping the executable bits."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            path = Path(z.extract(info, target))
            path.chmod(info.external_attr >> 16 & 0o777)
    return target


def solution_lines() -> set[str]:
    """Distinctive lines of the source notebook's solutions (not in the released notebook)."""
    source = nbformat.read(REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK, as_version=4)
    release = (REPO / "release" / ASSIGNMENT / NOTEBOOK).read_text()
    lines, inside = set(), False
    for cell in source.cells:
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped.startswith("### BEGIN SOLUTION"):
                inside = True
            elif stripped.startswith("### END SOLUTION"):
                inside = False
            elif inside and len(stripped) > 30 and json.dumps(stripped)[1:-1] not in release:
                lines.add(stripped)
    return lines


def test_bundle_layout(bundle):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        for script in ("setup.sh", "run_autograder"):
            assert z.getinfo(script).external_attr >> 16 & 0o111, f"{script} is not executable"
        settings = json.loads(z.read("gradescope.json"))
        requirements = z.read("requirements.txt").decode().split()
    assert {"setup.sh", "run_autograder", "gradebook.db", "SHA256SUMS", "ece662/models/torch.model",
            "ece662/datasets/cinic-10/PREPARED.json", "ece662/datasets/cinic-10/test-X.npy",
            "ece662/grading/checks.py", "autograder/worker/grade.py", "autograder/worker/verify.py",
            "autograder/worker/sandbox.py", "autograder/reference/torch.py", "autograder/reference/keras.py"} <= names
    assert not any(n.startswith(("assignment/", "release/", "tests/", "benchmarks/")) for n in names)
    assert settings["sandbox"] == "user:ece662-kernel" and settings["torch_requirement"].startswith("torch")
    assert "nbgrader==0.9.6" in requirements and not any(r.startswith(("torch", "jupyter")) for r in requirements)


def test_bundle_holds_solutions_only_where_the_kernel_cannot_read(bundle):
    """The grader runs Part 4's recipe with the reference solution, which lives in autograder/reference/
    (/autograder/source is mode 0700 in the container); no other file holds solution code, the ece662 package
    the kernel reads least of all, and no example submission is shipped."""
    lines = solution_lines()
    assert len(lines) >= 5, "the source notebook's solutions were not found: update solution_lines()"
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        assert "autograder/reference/torch.py" in names
        assert not any(n.endswith(("examples.py", "demo.py")) for n in names)
        for name in names:
            text = z.read(name).decode("latin-1")
            assert not any(m in text for m in SOLUTION_MARKERS), f"{name} holds nbgrader solution markers"
            leaked = [line for line in lines if line in text]
            assert not leaked or name.startswith("autograder/reference/"), f"{name} holds solution code: {leaked[:3]}"


def test_bundle_checksums_and_prepared_data(bundle, tmp_path, course_env):
    from ece662.data_utils import get_CINIC10_data

    source = extract(bundle, tmp_path / "source")
    assert verify_checksums(source) == len(zipfile.ZipFile(bundle).namelist()) - 3  # all but 2 scripts and itself
    shipped = get_CINIC10_data(root=source / "ece662/datasets/cinic-10", verbose=False)
    original = get_CINIC10_data(num_training=100, verbose=False)
    assert shipped["X_test"].shape == original["X_test"].shape and (shipped["X_test"] == original["X_test"]).all()
    assert (shipped["X_train"] == original["X_train"]).all() and len(shipped["y_val"]) == 0
    (source / "ece662/models/torch.model").write_bytes(b"damaged")
    with pytest.raises(SystemExit, match="torch.model does not match its checksum"):
        verify_checksums(source)


def test_choose_notebook_ignores_checkpoints_and_prefers_the_assignment(tmp_path):
    folder = tmp_path / "submission"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    (folder / ".ipynb_checkpoints" / "pruning-checkpoint.ipynb").write_text("{}")
    assert choose_notebook(folder)[0] is None
    assert "ignored: .ipynb_checkpoints/pruning-checkpoint.ipynb" in choose_notebook(folder)[1]
    (folder / "scratch.ipynb").write_text("{}")
    assert choose_notebook(folder)[0] == folder / "scratch.ipynb"
    (folder / "work").mkdir()
    (folder / "work" / NOTEBOOK).write_text("{}")
    (folder / "._pruning.ipynb").write_text("{}")
    chosen, note = choose_notebook(folder)
    assert chosen == folder / "work" / NOTEBOOK and "you submitted 2" in note and "work/pruning.ipynb" in note


def _result(failing: set) -> GradingResult:
    verdicts = {t.grade_id: Verdict(t.grade_id not in failing, "passed" if t.grade_id not in failing else
                                    f"{t.grade_id} is wrong\nmore") for t in registry.TESTS}
    scores = {t.grade_id: 0.0 if t.grade_id in failing else float(t.points) for t in registry.TESTS}
    return GradingResult(STUDENT, STATUS_GRADED, scores=scores, verdicts=verdicts)


def test_results_json_has_one_test_per_registry_test():
    failing = {registry.TESTS[0].grade_id}
    hidden = [t for t in registry.TESTS if t.public_levels is None]
    payload = results_json(_result(failing), ["Graded notebook: `pruning.ipynb`."], 12.3,
                           Visibility(hidden_tests="after_published"))
    tests = {t["name"].split(":")[0]: t for t in payload["tests"]}
    assert list(tests) == [t.grade_id for t in registry.TESTS]
    assert payload["score"] == registry.autograded_total() - registry.TESTS[0].points
    assert all(tests[t.grade_id]["max_score"] == t.points for t in registry.TESTS)
    assert tests[registry.TESTS[0].grade_id]["status"] == "failed"
    assert tests[registry.TESTS[0].grade_id]["output"].startswith(f"{registry.TESTS[0].grade_id} is wrong")
    assert all(tests[t.grade_id]["visibility"] == "after_published" for t in hidden)
    assert {payload["output_format"], payload["stdout_visibility"], payload["execution_time"]} == {"md", "hidden", 12}
    assert payload["output"].startswith(f"Autograded score: **{payload['score']:g} / {registry.autograded_total():g}**")
    assert f"`{registry.TESTS[0].grade_id}`" in payload["output"] and "graded by hand" in payload["output"]
    with pytest.raises(ValueError, match="not one of"):
        Visibility(hidden_tests="later")


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "50000 100000"}, 1), ({"cpu.max": "200000 100000"}, 2),
    ({"cpu.cfs_quota_us": "150000", "cpu.cfs_period_us": "100000"}, 1), ({"cpu.max": "max 100000"}, None)])
def test_threads_follow_the_cpu_quota(tmp_path, monkeypatch, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(gradescope_resources, "_cgroup_dirs", lambda controller: [tmp_path])
    cores = len(os.sched_getaffinity(0))
    assert gradescope_resources.usable_cpus() == min(cores, expected or cores)


def _supervise(root: Path, settings: Settings | str) -> dict:
    """run_autograder's supervisor in its own process (it adopts and kills orphans: not in pytest's)."""
    (root / "source").mkdir(parents=True, exist_ok=True)
    (root / "source" / "gradescope.json").write_text(settings if isinstance(settings, str) else settings.to_json())
    subprocess.run([sys.executable, "-m", "autograder.gradescope", "supervise", "--root", str(root)], cwd=REPO,
                   check=True, timeout=120)
    return json.loads((root / "results" / "results.json").read_text())


# The supervisor in a driver whose child run sleeps: an empty submission alone can finish within 1 s.
_SLEEPING_RUN = """
import subprocess, sys
from pathlib import Path
from autograder.gradescope import supervisor
popen = subprocess.Popen
supervisor.subprocess.Popen = lambda cmd, **kw: popen([sys.executable, "-c", "import time; time.sleep(600)"], **kw)
supervisor.supervise(Path(sys.argv[1]))
"""


def test_supervise_reports_a_run_that_never_finishes(tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "source").mkdir()
    (root / "source" / "gradescope.json").write_text(Settings(sandbox="none", deadline_s=1).to_json())
    subprocess.run([sys.executable, "-c", _SLEEPING_RUN, str(root)], cwd=REPO, check=True, timeout=120)
    payload = json.loads((root / "results" / "results.json").read_text())
    assert payload["score"] == 0 and "timed out" in payload["output"] and "within 1 s" in payload["output"]
    assert [t["max_score"] for t in payload["tests"]] == [t.points for t in registry.TESTS]


def test_supervise_reports_a_run_that_crashes(tmp_path):
    payload = _supervise(tmp_path / "autograder", '{"no_such_setting": 1}')  # the run stops at its settings
    assert payload["score"] == 0 and "crashed" in payload["output"] and "exit code 1" in payload["output"]


def test_run_without_a_notebook(tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "answers.pdf").write_bytes(b"%PDF")
    payload = run(root, Settings(sandbox="none"))
    assert payload["score"] == 0 and "No notebook was submitted" in payload["output"]
    assert json.loads((root / "results" / "results.json").read_text()) == payload


def test_run_grades_a_submission(bundle, tmp_path, course_env):
    """Two examples' mistakes in one notebook (Part 2's filters pruned in the Linear layers too, Part 5's model
    trained an epoch more than the recipe): exactly their two tests lost, as on the course pipeline."""
    root = tmp_path / "autograder"
    extract(bundle, root / "source")
    write_examples(root / "submission", ["wrong_structured_hits_linear"])
    notebook = root / "submission" / "wrong_structured_hits_linear.ipynb"
    nb = insert_after(nbformat.read(notebook, as_version=4), "part5_build", P5_TRAINED_LONGER)
    notebook.write_text(nbformat.writes(nb))
    mode = sandbox.BUBBLEWRAP if sandbox.sandbox_unavailable_reason() is None else sandbox.NONE
    payload = run(root, Settings(sandbox=mode, limits=TEST_LIMITS))
    tests = {t["name"].split(":")[0]: t for t in payload["tests"]}
    assert tests["test_part2_scope"]["score"] == 0, payload["output"]
    assert "Linear" in tests["test_part2_scope"]["output"]
    assert tests["test_part5_recipe"]["score"] == 0
    assert "not what the recipe trains" in tests["test_part5_recipe"]["output"]
    assert payload["score"] == registry.autograded_total() - sum(registry.test(g).points for g in
                                                                  ("test_part2_scope", "test_part5_recipe"))
    assert "Graded notebook: `wrong_structured_hits_linear.ipynb`" in payload["output"]
    assert "BEGIN HIDDEN TESTS" not in json.dumps(payload)


@pytest.mark.parametrize("name", ["kernel_leftovers", "part4_noise_not_trained"])
def test_run_grades_red_team_attacks_exactly(bundle, tmp_path, course_env, name):
    """Gradescope's path holds the same line: what the kernel leaves behind reaches nothing, Part 4 forged earns
    nothing, and every test is graded (not crashed, not timed out)."""
    from attacks import ATTACKS, VICTIM

    attack = next(a for a in ATTACKS if a.name == name)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / VICTIM).write_text("a grader's file\n")
    root = tmp_path / "autograder"
    extract(bundle, root / "source")
    (root / "submission").mkdir()
    (root / "submission" / NOTEBOOK).write_text(nbformat.writes(attack.build(probe)))
    mode = sandbox.BUBBLEWRAP if sandbox.sandbox_unavailable_reason() is None else sandbox.NONE
    payload = run(root, Settings(sandbox=mode, limits=TEST_LIMITS))
    scores = {t["name"].split(":")[0]: t["score"] for t in payload["tests"]}
    assert scores == attack.expected_scores(), payload["output"]
    assert "(status: graded)" in payload["output"]
    text = (root / "results" / "results.json").read_text()
    assert "a grader's file" not in text and len(text) < 64 * 1024


def test_run_keeps_the_kernel_in_a_closed_box(bundle, tmp_path, course_env, monkeypatch):
    """Gradescope's path: correct work that probes for a token exported before grading, starts 1,000 processes
    and (where a cgroup caps the kernel) grabs twice its memory cap keeps full points; no file holds the token."""
    from attacks import FAKE_TOKEN, PARTS_1_2, closed_box

    from autograder.worker import cgroup

    capped = cgroup.unavailable_reason() is None
    root = tmp_path / "autograder"
    extract(bundle, root / "source")
    (root / "submission").mkdir()
    (root / "submission" / NOTEBOOK).write_text(nbformat.writes(closed_box(4096 if capped else 0)))
    mode = sandbox.BUBBLEWRAP if sandbox.sandbox_unavailable_reason() is None else sandbox.NONE
    monkeypatch.setenv("CANVAS_API_TOKEN", FAKE_TOKEN)
    payload = run(root, Settings(sandbox=mode, limits=replace(TEST_LIMITS, memory_mb=2048 if capped else 6144)))
    scores = {t["name"].split(":")[0]: t["score"] for t in payload["tests"]}
    assert scores == {t.grade_id: float(t.points) if t.grade_id in PARTS_1_2 else 0.0 for t in registry.TESTS}, \
        payload["output"]
    assert ("(status: **memory limit**)" if capped else "(status: graded)") in payload["output"], payload["output"]
    assert "Kernel bounds: " + ("cgroup v" if capped else "no cgroup") in payload["output"]
    if mode == sandbox.BUBBLEWRAP:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink() and "source" not in path.relative_to(root).parts[:1]:
                assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def test_results_json_shows_a_students_html_as_text():
    message = 'prune_unstructured_to(model, 0.1) raised ValueError: <img src=x onerror="alert(1)">'
    result = GradingResult("s", verdicts={t.grade_id: Verdict(False, message) for t in registry.TESTS},
                           scores={t.grade_id: 0.0 for t in registry.TESTS}, detail="<script>x</script>")
    payload = results_json(result, [], 1.0)
    assert "<img" not in payload["output"] and "<script" not in payload["output"]
    assert "&lt;img" in payload["output"] and payload["test_output_format"] == "text"


# ---------------------------------------------------------------- the unprivileged-user containment mode

def _free_uid() -> int:
    used = {p.pw_uid for p in pwd.getpwall()}
    return next(u for u in range(64100, 65000) if u not in used and not sandbox._pids_of(u))


def _python_for(uid: int) -> str | None:
    """An interpreter the user ``uid`` can run (the venv's may live in root's home)."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(candidate) and subprocess.run(
                ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "env", "-i", candidate, "-c", "pass"],
                capture_output=True).returncode == 0:
            return candidate
    return None


PROBE = r'''
import glob, json, os, sys, time
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
environs = []
for path in glob.glob("/proc/[0-9]*/environ"):
    try:
        environs.append(open(path, "rb").read())
    except OSError:
        pass
report = {"uid": os.getuid(), "groups": os.getgroups(), "env": sorted(os.environ), "cwd": os.getcwd(),
          "capabilities": int(status["CapEff"], 16) | int(status["CapPrm"], 16), "no_new_privs": status["NoNewPrivs"],
          "environs_read": len(environs), "secret_seen": any(b"not for the kernel" in e for e in environs)}
for name, path in [("read_secret", sys.argv[1]), ("write_results", sys.argv[2] + "/results.json"),
                   ("write_scratch", "mine.txt")]:
    try:
        open(path, "r" if name.startswith("read") else "w").close()
        report[name] = True
    except OSError:
        report[name] = False
if os.fork() == 0:  # a detached grandchild that would rewrite results for a minute
    os.setsid()
    if os.fork() == 0:
        for _ in range(600):
            try:
                open(sys.argv[2] + "/results.json", "w").write("forged")
            except OSError:
                pass
            time.sleep(0.1)
        os._exit(0)
    os._exit(0)
print(json.dumps(report))
'''


@pytest.mark.skipif(platform.system() != "Linux" or os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="the unprivileged-user mode needs Linux, root and setpriv")
def test_user_mode_contains_the_kernel(tmp_path, monkeypatch):
    uid = _free_uid()
    python = _python_for(uid)
    if python is None:
        pytest.skip("no Python interpreter here that an unprivileged user may run")
    mode = f"user:{uid}"
    assert sandbox.validate_mode(mode) == mode
    secret, results = tmp_path / "source", tmp_path / "results"
    secret.mkdir(mode=0o700)
    (secret / "gradebook.db").write_text("hidden tests")
    results.mkdir(mode=0o755)
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    scratch, runtime = work / "course" / "scratch", tmp_path / "runtime"
    work.joinpath("course").mkdir(mode=0o700)
    runtime.mkdir(mode=0o700)
    connection = runtime / "kernel.json"
    connection.write_text("{}")
    connection.chmod(0o600)
    monkeypatch.setenv("GRADER_SECRET", "not for the kernel")
    argv = sandbox.kernel_argv(scratch, runtime, [], 2048, mode)
    kernel_python = len(argv) - 1 - argv[::-1].index(sys.executable)
    wrapper = [a.replace("{connection_file}", str(connection)) for a in argv[:kernel_python]]
    with open(tmp_path / "probe.out", "w") as out:  # a file, not a pipe: the detached process keeps it open
        done = subprocess.run(wrapper + [python, "-c", PROBE, str(secret / "gradebook.db"), str(results)],
                              stdout=out, stderr=subprocess.STDOUT, timeout=60)
    assert done.returncode == 0, (tmp_path / "probe.out").read_text()
    report = json.loads((tmp_path / "probe.out").read_text())
    assert report["uid"] == uid and report["groups"] == [] and report["cwd"] == str(scratch)
    assert report["capabilities"] == 0 and report["no_new_privs"].strip() == "1"
    assert report == {**report, "read_secret": False, "write_results": False, "write_scratch": True}
    assert "GRADER_SECRET" not in report["env"] and report["environs_read"] >= 1 and not report["secret_seen"]
    assert all(p.stat().st_uid == uid for p in (connection, scratch, runtime, sandbox.kernel_home(runtime)))
    time.sleep(0.3)
    assert sandbox._pids_of(uid), "the detached probe process should still be running before the sweep"
    assert sandbox.sweep(mode) >= 1
    assert sandbox._pids_of(uid) == [] and not (results / "results.json").exists()
    assert sandbox.sweep(sandbox.NONE) == 0


@pytest.mark.skipif(platform.system() != "Linux" or os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="the unprivileged-user mode needs Linux, root and setpriv")
def test_sweep_kills_a_process_swarm():
    uid = _free_uid()
    spawner = "for i in 1 2 3 4; do (while :; do sleep 300 & done) & done; wait"  # forks up to the nproc limit
    swarm = subprocess.Popen(["prlimit", f"--nproc={sandbox.KERNEL_NPROC}", "--", "setpriv", f"--reuid={uid}",
                              f"--regid={uid}", "--clear-groups", "/bin/sh", "-c", spawner],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if len(sandbox._pids_of(uid)) > 100:
            break
        time.sleep(0.1)
    assert len(sandbox._pids_of(uid)) > 100
    assert sandbox.kill_processes_of(str(uid)) > 100
    swarm.wait(timeout=10)
    assert sandbox._pids_of(uid) == []


def test_unknown_modes_and_users_are_refused():
    with pytest.raises(ValueError, match="unknown sandbox mode"):
        sandbox.validate_mode("chroot")
    with pytest.raises(ValueError, match="refusing"):
        sandbox.kill_processes_of("0")
    with pytest.raises(ValueError, match="useradd"):
        sandbox.kernel_argv(Path("/tmp"), Path("/tmp"), [], 1024, "user:no-such-user-ece662")


def test_default_limits_end_before_the_deadline():
    assert GRADESCOPE_LIMITS.notebook_timeout + WORKER_SLACK_S < Settings().deadline_s < 600  # Gradescope's default
