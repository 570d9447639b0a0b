"""Autograde every submission: parallel, limited, sandboxed, idempotent.

``grade(SUBMISSIONS, OUT)`` writes under ``OUT``:

* ``grades.csv``: student id, status, points per part, autograded total, detail;
* ``feedback/<student>.html``: feedback without the hidden tests;
* ``gradebook.db``: one nbgrader gradebook with every submission (for formgrader's manual grading);
* ``results/<student>.json`` and ``work/<student>/``: each student's result and private course.

Concurrency: each student is graded by its own ``autograder.worker`` process
with its own copy of the template gradebook, so SQLite never sees two writers;
the per-student gradebooks are merged into ``gradebook.db`` at the end
(nbgrader's rows have UUID keys, so they merge without clashes). A rerun skips
students whose submission, source notebook and limits are unchanged, and
rebuilds ``gradebook.db`` and ``grades.csv`` from all results, so regrading one
student leaves the others as they were.
"""
import csv
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .collect import DEFAULT_NAME_PATTERN, collect
from .course import ASSIGNMENT, NOTEBOOK, REPO, SOURCE_DIR, generate_release
from .sandbox import sandbox_unavailable_reason
from .worker import STATUS_CRASHED, STATUS_TAMPERED, STATUS_TIMED_OUT, template_cells

WORKER_SLACK_S = 180  # on top of the notebook limit: kernel start, nbgrader, feedback


@dataclass
class Limits:
    cell_timeout: int = 120
    notebook_timeout: int = 600
    memory_mb: int = 6144


def _source_notebook() -> Path:
    return REPO / SOURCE_DIR / ASSIGNMENT / NOTEBOOK


def prepare_template(out: Path) -> Path:
    """The template gradebook (assignment and its cells), regenerated when the source notebook changes."""
    digest = hashlib.sha256(_source_notebook().read_bytes()).hexdigest()
    db, stamp = out / "template" / "gradebook.db", out / "template" / "source.sha256"
    if not (db.is_file() and stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(out / "template", ignore_errors=True)
        (out / "template").mkdir(parents=True)
        generate_release(out / "template", gradebook=db)
        stamp.write_text(digest)
    return db


def readable_paths() -> list[Path]:
    """What a sandboxed kernel may read besides Python: the ece662 package, data, data cache, model."""
    import ece662
    from ece662 import data_utils
    from ece662.pruning_helper import model_path

    data_utils.get_CINIC10_data(verbose=False)  # build the cache now: kernels only read it
    model = model_path("torch")
    if not model.is_file():
        raise FileNotFoundError(f"No course model at {model}: train it first (`make model`).")
    paths = {Path(ece662.__file__).resolve().parent, data_utils.dataset_root().resolve(),
             data_utils.cache_dir().resolve(), model.parent.resolve()}
    return sorted(paths)


def guarded_paths() -> list[Path]:
    """What a submission must not change: the ece662 package, the course model and the data cache."""
    import ece662
    from ece662 import data_utils
    from ece662.pruning_helper import model_path

    return [Path(ece662.__file__).resolve().parent, model_path("torch").resolve(), data_utils.cache_dir().resolve()]


def _job_key(submission: Path, limits: Limits, sandbox: bool) -> str:
    h = hashlib.sha256(submission.read_bytes())
    h.update(_source_notebook().read_bytes())
    h.update(json.dumps([asdict(limits), sandbox]).encode())
    return h.hexdigest()


def _fallback_result(student, cells, status, detail):
    return {"student": student, "status": status, "detail": detail, "scores": {k: 0.0 for k in cells},
            "max_scores": cells}


def run_worker(student: str, submission: Path, out: Path, template_db: Path, readable, limits: Limits,
               sandbox: bool, cells: dict, threads: int) -> dict:
    """Grade one submission in an ``autograder.worker`` process under a hard wall-clock limit."""
    work, result_file = out / "work" / student, out / "results" / f"{student}.json"
    job = {"student": student, "submission": str(submission.resolve()), "workdir": str(work),
           "template_db": str(template_db), "sandbox": sandbox, "readable": [str(p) for p in readable],
           "guarded": [str(p) for p in guarded_paths()],
           "limits": asdict(limits), "result": str(result_file), "threads": threads}
    for sub in ("jobs", "results", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    job_file = out / "jobs" / f"{student}.json"
    job_file.write_text(json.dumps(job, indent=1))
    result_file.unlink(missing_ok=True)
    log = out / "logs" / f"{student}.log"
    limit = limits.notebook_timeout + WORKER_SLACK_S
    with open(log, "w") as log_handle:
        proc = subprocess.Popen([sys.executable, "-m", "autograder.worker", str(job_file)], stdout=log_handle,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=out)
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            if not result_file.is_file():
                return _fallback_result(student, cells, STATUS_TIMED_OUT, f"grading did not finish within {limit} s")
    if not result_file.is_file():
        tail = log.read_text(errors="replace")[-1500:]
        return _fallback_result(student, cells, STATUS_CRASHED, f"the grading worker failed (see {log}): {tail}")
    return json.loads(result_file.read_text())


def merge_gradebooks(template_db: Path, student_dbs: list[Path], target: Path) -> None:
    """One gradebook holding every student's submission, built afresh from the template."""
    tmp = target.with_suffix(".tmp")
    shutil.copy(template_db, tmp)
    con = sqlite3.connect(tmp)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
              if r[0] != "alembic_version"]
    for db in student_dbs:
        con.execute("ATTACH DATABASE ? AS s", (str(db),))
        for table in tables:
            con.execute(f'INSERT OR IGNORE INTO main."{table}" SELECT * FROM s."{table}"')
        con.commit()
        con.execute("DETACH DATABASE s")
    con.close()
    os.replace(tmp, target)


def part_of(grade_id: str) -> str:
    """'test_part1_global' -> 'part1', 'q1_answer' -> 'q1'."""
    if grade_id.startswith("test_"):
        return grade_id.split("_")[1]
    return grade_id.split("_")[0]


def write_csv(results: list[dict], cells: dict, path: Path) -> list[str]:
    parts = list(dict.fromkeys(part_of(g) for g in cells))
    maxima = {p: sum(v for g, v in cells.items() if part_of(g) == p) for p in parts}
    header = ["student_id", "status"] + [f"{p} (/{maxima[p]:g})" for p in parts] + [
        f"autograded (/{sum(v for g, v in cells.items() if not g.endswith('_answer')):g})", "detail"]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in sorted(results, key=lambda r: r["student"]):
            row = [r["student"], r["status"]]
            for p in parts:
                scores = [r["scores"].get(g) for g in cells if part_of(g) == p]
                row.append("" if any(s is None for s in scores) else f"{sum(scores):g}")
            auto = sum(r["scores"].get(g) or 0 for g in cells if not g.endswith("_answer"))
            writer.writerow(row + [f"{auto:g}", r.get("detail", "")[:300]])
    os.replace(tmp, path)
    return header


def grade(submissions, out, workers: int = 2, limits: Limits = Limits(), sandbox: str = "auto",
          force: bool = False, name_pattern: str = DEFAULT_NAME_PATTERN, verbose: bool = True) -> list[dict]:
    """Autograde everything in ``submissions`` (folder or zip) into ``out``; returns the results."""
    started = time.monotonic()
    out = Path(out).resolve()
    for sub in ("results", "jobs", "logs", "feedback", "work"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    found = collect(Path(submissions), out / "collected", name_pattern)
    if not found:
        raise ValueError(f"no submissions found in {submissions}")
    reason = sandbox_unavailable_reason()
    if sandbox == "on" and reason:
        raise RuntimeError(f"--sandbox on, but {reason}")
    use_sandbox = sandbox != "off" and reason is None
    template_db = prepare_template(out)
    cells, _ = template_cells(template_db)
    readable = readable_paths()

    todo, results = [], {}
    for student, path in found.items():
        key = _job_key(path, limits, use_sandbox)
        previous = out / "results" / f"{student}.json"
        if not force and previous.is_file():
            cached = json.loads(previous.read_text())
            if cached.get("job_key") == key:
                results[student] = cached
                continue
        todo.append((student, path, key))

    with ThreadPoolExecutor(max(1, workers)) as pool, \
            tqdm(total=len(todo), desc="grading", unit="nb", disable=not verbose) as bar:
        threads = max(1, (os.cpu_count() or 1) // workers)  # kernels share the cores: no oversubscription
        futures = {pool.submit(run_worker, s, p, out, template_db, readable, limits, use_sandbox, cells, threads):
                   (s, k) for s, p, k in todo}
        for future in as_completed(futures):
            student, key = futures[future]
            result = future.result()
            result["job_key"] = key
            (out / "results" / f"{student}.json").write_text(json.dumps(result, indent=1))
            results[student] = result
            bar.update(1)

    for stale in (out / "results").glob("*.json"):  # students no longer in the submissions
        if stale.stem not in found:
            stale.unlink()
            results.pop(stale.stem, None)
    final = [results[s] for s in sorted(results)]
    for r in final:
        if r.get("feedback") and Path(r["feedback"]).is_file():
            shutil.copy(r["feedback"], out / "feedback" / f"{r['student']}.html")
    student_dbs = [out / "work" / r["student"] / "course" / "gradebook.db" for r in final]
    merge_gradebooks(template_db, [db for db in student_dbs if db.is_file()], out / "gradebook.db")
    write_csv(final, cells, out / "grades.csv")
    if verbose:
        print_summary(final, cells, out, use_sandbox, reason, time.monotonic() - started, len(todo))
    return final


def print_summary(results, cells, out, sandboxed, reason, seconds, graded_now):
    auto_max = sum(v for g, v in cells.items() if not g.endswith("_answer"))
    print(f"\n{'student':24s} {'status':17s} {'auto':>7s}")
    for r in results:
        auto = sum(r["scores"].get(g) or 0 for g in cells if not g.endswith("_answer"))
        print(f"{r['student'][:24]:24s} {r['status']:17s} {auto:4g}/{auto_max:g}")
    counts = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(f"\n{len(results)} submissions ({graded_now} graded now, {len(results) - graded_now} unchanged) in "
          f"{seconds:.0f} s: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    print("sandbox: " + ("bubblewrap (read-only view, no network)" if sandboxed else f"NONE - {reason or 'disabled'}"))
    tampered = [r["student"] for r in results if r["status"] == STATUS_TAMPERED]
    if tampered:
        print(f"WARNING: {', '.join(tampered)} changed grading files (see grades.csv); restore them "
              "(`git checkout ece662/`, retrain or copy back the model) and regrade everyone with --force.")
    print(f"grades: {out / 'grades.csv'}\nfeedback: {out / 'feedback'}\ngradebook: {out / 'gradebook.db'} "
          "(manual grading: Inline Questions 1 and 2)")
