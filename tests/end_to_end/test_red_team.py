"""Red team: submissions built to get points their work does not earn (tests/support/attacks.py), and malformed
evidence handed straight to the verifier.

One session-wide grading run (two workers, sandboxed where this machine can) grades every attack; a
second, small run grades the ones where the sandbox matters without it. Each attack must get exactly the
points of its real work, the status it states, and feedback without hidden tests or grading internals.
The direct tests feed ``autograder.worker.verify.verify`` one malformed evidence file at a time: each must be
refused with a message for the student, never crash, hang or read more than the size cap.
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from attacks import ATTACKS, CLASSMATE, FAKE_TOKEN, HEARTBEAT, PARTS_1_2, UNSANDBOXED, VICTIM, memory_grab
from formgrader_session import chromium_dom, formgrader

from autograder.course.pipeline import Limits, grade
from autograder.worker import cgroup
from autograder.worker.sandbox import kernel_argv, sandbox_unavailable_reason
from autograder.worker.verify import RAN, TrustedData, verify
from demo import examples
from ece662.grading import cells, evidence, registry

LIMITS = Limits(cell_timeout=40, notebook_timeout=400, memory_mb=6144)
# Where a cgroup caps each kernel's memory, the unsandboxed run caps it at 2 GB and grabs twice that beside work that
# fits; elsewhere nothing would stop the grab, so it is not run
CAPPED = cgroup.unavailable_reason() is None
OFF_LIMITS = Limits(cell_timeout=40, notebook_timeout=400, memory_mb=2048 if CAPPED else 6144)
UNSANDBOXED_RUN = UNSANDBOXED + ([memory_grab(2 * OFF_LIMITS.memory_mb)] if CAPPED else [])
VICTIM_TEXT = "a grader's file\n"
OUTPUT_CAP_BYTES = 16 * 2**20  # a graded notebook or feedback page, whatever the kernel printed
FORBIDDEN_IN_FEEDBACK = ("BEGIN HIDDEN TESTS", "BEGIN SOLUTION", "Recorded for grading", "autograder/")


# ------------------------------------------------------------------ correct evidence, written in this process

def _notebook_namespace() -> dict:
    """The names the notebook's setup cell defines, for running the examples' code here."""
    import torch
    from torch import nn
    from torch.nn.utils import prune

    from ece662 import data_utils
    from ece662.pruning_helper import global_sparsity, load_model, model_path, prunable_layers, test_model

    data = data_utils.get_CINIC10_data(verbose=False)
    path = model_path("torch")
    return dict(torch=torch, nn=nn, prune=prune, load_model=load_model, test_model=test_model,
                prunable_layers=prunable_layers, global_sparsity=global_sparsity, path=path, mode="torch",
                model=load_model(path, mode="torch"), test_data=[data["X_test"], data["y_test"]],
                sparsity_levels=list(registry.UNSTRUCTURED_LEVELS), structured_levels=list(registry.STRUCTURED_LEVELS))


def write_correct_evidence(folder: Path) -> Path:
    """What the correct Parts 1 and 2 record when graded, as a classmate's evidence folder would hold it."""
    ns = _notebook_namespace()
    exec(examples.P1_CORRECT + examples.P2_CORRECT, ns)
    items = {item for t in registry.TESTS if t.part in ("part1", "part2") for item in t.evidence}
    for item in items:
        if item.kind == "trace":
            levels, states, error = cells.trace(ns[item.source], item, item.levels, "torch")
            evidence.write_trace(folder, item, states, levels, error, "torch")
        elif item.kind == "model":
            evidence.write_model(folder, item, cells.canonical_state(ns[item.source]), "torch")
        else:
            evidence.write_results(folder, item, ns[item.source])
    return folder


@pytest.fixture(scope="session")
def correct_evidence(course_env, tmp_path_factory):
    return write_correct_evidence(tmp_path_factory.mktemp("correct-evidence"))


@pytest.fixture(scope="session")
def trusted(course_env, tmp_path_factory):
    """The grader's paths for a course graded in PyTorch only (its model folder holds no tensorflow.model)."""
    from ece662 import data_utils

    models = tmp_path_factory.mktemp("torch-only-models")
    shutil.copy(course_env, models / "torch.model")
    return TrustedData(models, data_utils.dataset_root())


# ------------------------------------------------------------------ the graded runs

def _grade_attacks(attacks, base: Path, correct: Path, sandbox: str, limits: Limits = LIMITS):
    """Grade ``attacks`` with a fake token exported in the grader's environment (the README's feedback step)."""
    probe, subs = base / "probe", base / "submissions"
    probe.mkdir(parents=True)
    subs.mkdir()
    (probe / VICTIM).write_text(VICTIM_TEXT)
    shutil.copytree(correct, probe / CLASSMATE)
    for attack in attacks:
        (subs / f"{attack.name}.ipynb").write_text(nbformat.writes(attack.build(probe)))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CANVAS_API_TOKEN", FAKE_TOKEN)
        results = grade(subs, base / "out", workers=2, limits=limits, sandbox=sandbox, verbose=True)
    return base, {r.student: r for r in results}


@pytest.fixture(scope="session")
def red_team(correct_evidence, tmp_path_factory):
    return _grade_attacks(ATTACKS, tmp_path_factory.mktemp("red-team"), correct_evidence, "auto")


@pytest.fixture(scope="session")
def red_team_unsandboxed(correct_evidence, tmp_path_factory):
    return _grade_attacks(UNSANDBOXED_RUN, tmp_path_factory.mktemp("red-team-off"), correct_evidence, "off",
                          OFF_LIMITS)


def _assert_exact(attack, result):
    messages = {gid: v.message for gid, v in result.verdicts.items() if not v.passed}
    assert result.status == attack.status, (attack.what, result.detail)
    assert {t.grade_id: result.scores.get(t.grade_id) for t in registry.TESTS} == attack.expected_scores(), (
        attack.what, messages)


def test_attacks_are_many_and_named_once():
    assert len(ATTACKS) >= 12 and len({a.name for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_attack_gets_exactly_the_points_of_its_work(red_team, attack):
    _, results = red_team
    _assert_exact(attack, results[attack.name])


@pytest.mark.parametrize("attack", UNSANDBOXED_RUN, ids=lambda a: a.name)
def test_unsandboxed_attack_gets_exactly_the_points_of_its_work(red_team_unsandboxed, attack):
    _, results = red_team_unsandboxed
    _assert_exact(attack, results[attack.name])


@pytest.mark.parametrize("run", ["red_team", "red_team_unsandboxed"])
def test_grader_never_writes_through_a_kernels_symlink(run, request):
    """nbgrader writes the graded notebook into the kernel's folder: a link planted there must not be followed."""
    base, results = request.getfixturevalue(run)
    assert (base / "probe" / VICTIM).read_text() == VICTIM_TEXT
    graded = Path(results["links"].graded_notebook)
    assert graded.is_file() and not graded.is_symlink()


def test_detached_daemon_cannot_write_outside_the_sandbox(red_team):
    base, _ = red_team
    assert not (base / "probe" / HEARTBEAT).exists()


def test_unsandboxed_detached_daemon_is_dead_after_grading(red_team_unsandboxed):
    base, _ = red_team_unsandboxed
    heartbeat = base / "probe" / HEARTBEAT
    assert heartbeat.exists(), "the daemon never ran: the attack tests nothing"
    before = heartbeat.read_text()
    time.sleep(1)
    assert heartbeat.read_text() == before


def test_unsandboxed_gradebook_edit_changes_no_score(red_team_unsandboxed):
    base, results = red_team_unsandboxed
    assert results["gradebook_edit"].autograded_score() == sum(
        t.points for t in registry.TESTS if t.part == "part2")
    con = sqlite3.connect(base / "out" / "gradebook.db")
    assert con.execute("SELECT COUNT(*) FROM grade WHERE manual_score = 100 OR auto_score = 100").fetchone()[0] == 0
    assert con.execute("SELECT COUNT(*) FROM grade_cells WHERE max_score = 100").fetchone()[0] == 0


@pytest.mark.parametrize("run", ["red_team", "red_team_unsandboxed"])
def test_feedback_and_details_hold_no_hidden_text_or_internals(run, request):
    base, results = request.getfixturevalue(run)
    out = base / "out"
    for name, result in results.items():
        html = (out / "feedback" / f"{name}.html").read_text()
        assert not [text for text in FORBIDDEN_IN_FEEDBACK if text in html], name
        assert str(out) not in html, name
        assert "Traceback" not in result.detail, (name, result.detail[-500:])


def test_feedback_runs_no_student_script(red_team):
    """Feedback is opened by students and instructors: a student's HTML or JavaScript output must not run."""
    base, _ = red_team
    html = (base / "out" / "feedback" / "ipython_hooks.html").read_text()
    assert not re.search(r"<img[^>]*onerror", html)
    assert not re.search(r"<script[^>]*>[^<]*owned", html)


OUTPUT_PER_STUDENT_BYTES = 32 * 2**20  # what one student's graded notebook, feedback and private course may take


@pytest.mark.parametrize("run", ["red_team", "red_team_unsandboxed"])
def test_what_a_kernel_leaves_behind_reaches_no_trusted_code(run, request):
    """Links, a FIFO, 200,000 files, a deep tree and big files in the kernel's folder: nothing of it is walked,
    copied or read by the grader, so the output holds none of it and stays small."""
    base, results = request.getfixturevalue(run)
    out = base / "out"
    assert results["kernel_leftovers"].status == "graded"
    sizes, files = 0, 0
    for path in out.rglob("*"):
        assert not path.is_symlink(), path
        if path.is_file() and "kernel_leftovers" in path.parts:
            sizes += path.stat().st_size
            files += 1
    assert sizes < OUTPUT_PER_STUDENT_BYTES and files < 100, (sizes, files)
    source = (examples.REPO / "assignment" / "pruning" / "pruning.ipynb").read_text()
    assert "Rubric (5 points)" in source  # the source notebook, which the leftovers link to, holds this
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".ipynb", ".json", ".csv", ".log"):
            text = path.read_text(errors="replace")
            assert "Rubric (5 points)" not in text and VICTIM_TEXT not in text, path
            assert not re.search(r"root:[^:\n]*:\d+:", text), path  # a line of /etc/shadow


def _printed(result, text: str) -> str:
    """What the kernel printed after ``text`` in its graded notebook (the student's output, read as such)."""
    for cell in nbformat.read(result.graded_notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            for line in str(output.get("text", "")).splitlines():
                if text in line:
                    return line[line.index(text) + len(text):].strip()
    raise AssertionError(f"the notebook never printed {text!r}: the probe did not run")


def test_no_token_of_the_grader_reaches_the_kernel_or_the_output(red_team):
    """A token exported before grading: the probe (every /proc/*/environ, its own environment, the memory of the
    processes that started it) finds nothing, and no file of the output holds it."""
    if sandbox_unavailable_reason():
        pytest.skip("graded without the sandbox here: the grader's environment is exposed (the summary says so)")
    base, results = red_team
    assert _printed(results["closed_box"], "token found:") == "[]"
    assert int(_printed(results["closed_box"], "places probed:").split()[0]) >= 2
    for path in (base / "out").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def test_unsandboxed_kernel_reads_the_graders_environment(red_team_unsandboxed):
    """Without the sandbox the same probe finds the token (the summary warns of this): the probe is real."""
    _, results = red_team_unsandboxed
    assert FAKE_TOKEN in _printed(results["closed_box"], "token found:")


@pytest.mark.skipif(not CAPPED, reason=f"{cgroup.unavailable_reason()}: processes are not capped here")
@pytest.mark.parametrize("run", ["red_team", "red_team_unsandboxed"])
def test_a_fork_of_1000_processes_is_capped(run, request):
    _, results = request.getfixturevalue(run)
    assert results["closed_box"].status == "graded"
    assert 0 < int(_printed(results["closed_box"], "processes started at once:")) < min(1000, LIMITS.pids)


@pytest.mark.skipif(not CAPPED, reason=f"{cgroup.unavailable_reason()}: memory is not capped here")
def test_a_memory_grab_is_stopped_while_its_neighbours_are_graded(red_team_unsandboxed):
    """Twice the cap grabbed in a tmpfs of its own and in a memfd: the kernel is stopped, the status says memory
    limit, the rest of its work keeps its points, and the correct work graded beside it is untouched."""
    _, results = red_team_unsandboxed
    grab = results["memory_grab"]
    assert grab.status == "memory limit" and "memory limit 2048 MB reached" in grab.detail, grab.detail
    assert sum(grab.scores.values()) == sum(t.points for t in registry.TESTS if t.grade_id in PARTS_1_2)
    assert results["kernel_leftovers"].status == results["closed_box"].status == "graded"


def _assert_inert(dom: str, where: str):
    assert not re.search(r"<body[^>]*data-owned", dom), f"a student's script ran in {where}"
    assert "<title>OWNED" not in dom, f"a student's script ran in {where}"
    assert "An answer with an attachment" in dom, f"{where} does not show the student's answers: the test is void"


@pytest.mark.parametrize("run", ["red_team", "red_team_unsandboxed"])
def test_student_html_is_inert_in_the_feedback_page(run, request):
    base, _ = request.getfixturevalue(run)
    page = base / "out" / "feedback" / "html_payloads.html"
    _assert_inert(chromium_dom(page.as_uri()), "the feedback page")
    assert "Content-Security-Policy" in page.read_text()


def test_student_html_is_inert_in_formgrader(red_team):
    """Formgrader shows the graded notebook in the instructor's logged-in session: the payloads stay text."""
    base, _ = red_team
    out = base / "out"
    with sqlite3.connect(out / "gradebook.db") as con:
        (submission,) = con.execute(
            "SELECT submitted_notebook.id FROM submitted_notebook JOIN submitted_assignment ON "
            "submitted_notebook.assignment_id = submitted_assignment.id WHERE submitted_assignment.student_id = ?",
            ("html_payloads",)).fetchone()
    with formgrader(out) as server:
        dom = chromium_dom(f"{server.base}/formgrader/submissions/{submission}/?token={server.token}")
    _assert_inert(dom, "formgrader's submission view")


def test_printed_floods_are_capped(red_team):
    """64 MiB printed by a cell must not be held, saved and rendered whole by the grader."""
    base, results = red_team
    result = results["ipython_hooks"]
    assert Path(result.graded_notebook).stat().st_size < OUTPUT_CAP_BYTES
    assert (base / "out" / "feedback" / "ipython_hooks.html").stat().st_size < OUTPUT_CAP_BYTES


# ------------------------------------------------------------------ what the sandbox lets a kernel take

def _sandboxed_python(tmp_path: Path, code: str, memory_mb: int) -> str:
    """stdout of ``code`` run exactly as a graded kernel is started (bubblewrap, memory limit), minus ipykernel."""
    if reason := sandbox_unavailable_reason():
        pytest.skip(reason)
    scratch, runtime = tmp_path / "scratch", tmp_path / "runtime"
    scratch.mkdir()
    runtime.mkdir()
    argv = kernel_argv(scratch, runtime, [], memory_mb, "bubblewrap")
    start = argv.index("ipykernel_launcher") - 2  # [python, -m, ipykernel_launcher, ...]
    return subprocess.run(argv[:start] + [sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300).stdout


def test_sandbox_tmpfs_cannot_hold_memory_past_the_limit(tmp_path):
    """/var/tmp and /dev/shm are RAM: a kernel limited to 512 MiB must not park 1 GiB there."""
    code = """
import os
for target in ("/var/tmp/hog", "/dev/shm/hog"):
    try:
        with open(target, "wb") as f:
            for _ in range(1024):
                f.write(b"x" * 2**20)
        print("WROTE", target)
    except OSError:
        pass
    finally:
        if os.path.exists(target):
            os.remove(target)
"""
    assert "WROTE" not in _sandboxed_python(tmp_path, code, memory_mb=512)


def test_sandbox_shows_no_other_process_no_namespace_and_no_machine_knob(tmp_path, monkeypatch):
    """The kernel is alone in its PID namespace (no bubblewrap process whose environment or memory it could read),
    gets no variable of the grader's, cannot make a user namespace (and so no tmpfs of its own), and cannot write
    the machine's sysctls even where its uid maps to the grader's root."""
    monkeypatch.setenv("CANVAS_API_TOKEN", FAKE_TOKEN)
    code = """
import ctypes, glob, os
libc = ctypes.CDLL(None, use_errno=True)
print("PIDS", sorted(int(p.split("/")[2]) for p in glob.glob("/proc/[0-9]*")), os.getpid())
print("UNSHARE", libc.unshare(0x10000000 | 0x00020000), "UID", os.getuid())
print("SYSCTL", sum(os.access(p, os.W_OK) for p in glob.glob("/proc/sys/**", recursive=True) if os.path.isfile(p)))
print("ENV", sorted(os.environ), open("/proc/self/environ", "rb").read().count(b"TOKEN"))
"""
    out = _sandboxed_python(tmp_path, code, memory_mb=1024)
    assert "PIDS [1] 1" in out and "UNSHARE -1 UID 1000" in out and "SYSCTL 0" in out, out
    assert "CANVAS_API_TOKEN" not in out and out.strip().endswith("0"), out


def test_sandbox_caps_file_size(tmp_path):
    """The kernel's folder is on the grader's disk: one notebook must not be able to fill it."""
    code = """
import os
written = 0
try:
    with open("big", "wb") as f:
        for _ in range(2048):
            f.write(b"x" * 2**20)
            written += 1
except OSError:
    pass
finally:
    os.remove("big")
print("MIB", written)
"""
    out = _sandboxed_python(tmp_path, code, memory_mb=1024)
    assert int(out.split("MIB")[-1]) < 2048


# ------------------------------------------------------------------ the verifier on hand-made evidence

def _rewrite_header(path: Path, change) -> None:
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = change(json.loads(data[8:8 + size]))
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + size:])


def _entry(name, **change):
    return lambda h: {**h, name: {**h[name], **change}}


def _metadata(**change):
    return lambda h: {**h, "__metadata__": {**h["__metadata__"], **change}}


def _replace(path: Path, make) -> None:
    path.unlink()
    make(path)


def _sparse(size):
    def make(path):
        with open(path, "wb") as f:
            f.truncate(size)
    return make


def _nan_in_data(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    data[start:start + 4] = b"\x00\x00\xc0\x7f"  # float32 NaN
    path.write_bytes(bytes(data))


TRACE, MODEL = "part1_trace.safetensors", "part1_model.safetensors"
# name: (evidence file, how it is spoiled); each must be refused and fail every test that reads it
SAFETENSORS_CASES = {
    "symlink_to_dev_zero": (TRACE, lambda p: _replace(p, lambda q: os.symlink("/dev/zero", q))),
    "fifo": (TRACE, lambda p: _replace(p, os.mkfifo)),
    "sparse_10_gib": (TRACE, lambda p: _replace(p, _sparse(10 * 2**30))),
    "folder": (TRACE, lambda p: _replace(p, Path.mkdir)),
    "header_length_2_63": (TRACE, lambda p: p.write_bytes((2**63).to_bytes(8, "little") + p.read_bytes()[8:])),
    "header_not_utf8": (TRACE, lambda p: _rewrite_header(p, lambda h: b"\xff" * 64)),
    "header_nested_100000_deep": (TRACE, lambda p: _rewrite_header(p, lambda h: b"[" * 100000 + b"]" * 100000)),
    "header_a_list": (TRACE, lambda p: _rewrite_header(p, lambda h: [1, 2])),
    "shape_null": (MODEL, lambda p: _rewrite_header(p, _entry("features.0.weight", shape=None))),
    "shape_a_number": (MODEL, lambda p: _rewrite_header(p, _entry("features.0.weight", shape=5))),
    "entry_a_string": (MODEL, lambda p: _rewrite_header(p, lambda h: {**h, "features.0.weight": "x"})),
    "float64": (MODEL, lambda p: _rewrite_header(p, _entry("features.0.weight", dtype="F64"))),
    "extra_tensor": (MODEL, lambda p: _rewrite_header(
        p, lambda h: {**h, "extra": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}})),
    "metadata_a_list": (MODEL, lambda p: _rewrite_header(p, lambda h: {**h, "__metadata__": [1]})),
    "metadata_value_not_text": (MODEL, lambda p: _rewrite_header(p, _metadata(framework={"a": 1}))),
    "framework_tensorflow": (MODEL, lambda p: _rewrite_header(p, _metadata(framework="tensorflow"))),
    "levels_nested_deep": (TRACE, lambda p: _rewrite_header(p, _metadata(levels="[" * 100000))),
    "levels_400_digits": (TRACE, lambda p: _rewrite_header(p, _metadata(levels="[" + "9" * 400 + "]"))),
    "levels_infinite": (TRACE, lambda p: _rewrite_header(p, _metadata(levels="[1e999]"))),
    "levels_not_a_list": (TRACE, lambda p: _rewrite_header(p, _metadata(levels='{"a": 1}'))),
    "levels_none_without_error": (TRACE, lambda p: _rewrite_header(p, _metadata(levels="[]"))),
    "nan_weight": (TRACE, _nan_in_data),
    "truncated": (TRACE, lambda p: p.write_bytes(p.read_bytes()[:-100])),
    "huge_echoed_source": (MODEL, lambda p: _rewrite_header(p, _metadata(source="x" * 500_000))),
}


def _results(payload):
    return lambda p: p.write_text(payload if isinstance(payload, str) else json.dumps(payload))


def _items(change):
    """The correct results file with its items changed."""
    def spoil(path: Path):
        payload = json.loads(path.read_text())
        path.write_text(json.dumps({**payload, "items": change(payload["items"])}))
    return spoil


RESULTS_CASES = {
    "nan_accuracy": _items(lambda items: [[k, float("nan")] for k, _ in items]),
    "infinite_accuracy": _items(lambda items: [[k, float("inf")] for k, _ in items]),
    "accuracy_400_digits": _items(lambda items: [[k, 10**400] for k, _ in items]),
    "level_400_digits": _items(lambda items: [[10**400, v] for _, v in items]),
    "accuracy_an_object": _items(lambda items: [[k, {"type": {"nested": [1, 2]}}] for k, _ in items]),
    "accuracy_a_bool": _items(lambda items: [[k, True] for k, _ in items]),
    "levels_as_text": _items(lambda items: [[str(k), v] for k, v in items]),
    "items_a_dict": _items(lambda items: {"a": 1}),
    "nested_30000_deep": lambda p: p.write_text(p.read_text()[:-1] + ', "x": ' + "[" * 30000 + "]" * 30000 + "}"),
    "over_64_kib": _items(lambda items: items + [[i, 0.5] for i in range(20000)]),
    "not_json": _results("{'items': nan"),
    "a_list": _results([1, 2, 3]),
    "not_a_dict_object": _results({"format": evidence.FORMAT, "version": evidence.VERSION, "kind": "results",
                                   "source": "unstructured_results", "not_a_dict": {"x": [1]}}),
}

READERS = {  # evidence file -> the tests that read it (all others are left out of the run to keep it fast)
    TRACE: ["test_part1_cumulative", "test_part1_global"],
    MODEL: ["test_part1_final_model"],
    "part1_results.json": ["test_part1_accuracies"],
}


class ReaderBlocked(Exception):
    pass


def _blocked(signum, frame):
    raise ReaderBlocked("the verifier blocked reading the evidence")


def _verify_spoiled(correct: Path, tmp_path: Path, trusted, filename: str, spoil) -> dict:
    folder = tmp_path / "evidence"
    shutil.copytree(correct, folder)
    spoil(folder / filename)
    status = {gid: RAN for gid in READERS[filename]}
    previous = signal.signal(signal.SIGALRM, _blocked)  # a blocking read (a FIFO) fails instead of hanging
    signal.alarm(120)
    try:
        return verify(folder, status, trusted)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _assert_refused(verdicts: dict, filename: str, trusted):
    for gid in READERS[filename]:
        message = verdicts[gid].message
        assert not verdicts[gid].passed, gid
        assert len(message) < 2000, message[:300]
        assert str(trusted.model_dir) not in message and "evidence/" not in message, message  # no grader paths


def test_correct_evidence_passes_parts_1_and_2(correct_evidence, trusted):
    """The baseline the spoiled copies start from (and the classmate evidence the link attack points at)."""
    verdicts = verify(correct_evidence, {t.grade_id: RAN for t in registry.TESTS}, trusted)
    assert {gid for gid, v in verdicts.items() if v.passed} == {
        t.grade_id for t in registry.TESTS if t.part in ("part1", "part2")}


@pytest.mark.parametrize("case", sorted(SAFETENSORS_CASES))
def test_verifier_refuses_spoiled_safetensors(correct_evidence, tmp_path, trusted, case):
    filename, spoil = SAFETENSORS_CASES[case]
    _assert_refused(_verify_spoiled(correct_evidence, tmp_path, trusted, filename, spoil), filename, trusted)


@pytest.mark.parametrize("case", sorted(RESULTS_CASES))
def test_verifier_refuses_spoiled_results(correct_evidence, tmp_path, trusted, case):
    filename = "part1_results.json"
    _assert_refused(_verify_spoiled(correct_evidence, tmp_path, trusted, filename, RESULTS_CASES[case]), filename,
                    trusted)


def test_verifier_refuses_a_linked_evidence_folder(correct_evidence, tmp_path, trusted):
    (tmp_path / "evidence").symlink_to(correct_evidence, target_is_directory=True)
    verdicts = verify(tmp_path / "evidence", {t.grade_id: RAN for t in registry.TESTS}, trusted)
    assert not any(v.passed for v in verdicts.values())


def test_sparse_file_is_refused_before_it_is_read(correct_evidence, tmp_path, trusted):
    """A 10 GiB evidence file costs the grader nothing: it is refused by its size, unread."""
    verdicts = _verify_spoiled(correct_evidence, tmp_path, trusted, TRACE, SAFETENSORS_CASES["sparse_10_gib"][1])
    assert "over the" in verdicts["test_part1_cumulative"].message
