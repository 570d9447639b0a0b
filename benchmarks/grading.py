"""P4: the solution notebook, the phases of one autograde, and grading throughput against stock nbgrader (P4d).

Our pipeline (``autograder.pipeline.grade``, sandbox, verification, feedback
and merge included) grades the same submissions with 1 and with 2 workers,
and stock ``nbgrader autograde`` + ``generate_feedback`` grades them in a
throw-away course (``benchmarks/stock_nbgrader.py``); the three runs alternate
(stock, ours-1, ours-2, then the reverse) so drift hits every side, and each
side keeps its best round. Neither side's set-up (stock's
``generate_assignment``, our template gradebook) is timed.

Phases of an autograde come from ``GradingResult.phases`` (recorded by the
worker, LimitedExecute and the verifier); what the worker does not see (its
own start and imports, the pipeline's start and the merge) is timed here by
wrapping ``run_worker`` and ``finish`` in ``autograder/course/pipeline.py``
while ``grade`` runs.
"""
import os
import resource
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .stock_nbgrader import time_stock_grading

# P4d's submissions: two correct, a blank one and three typical mistakes, Part 4 as the recipe (P4d) and left
# undone, as the release hands it out (P4e: Part 4 differs from the recipe, so nothing of it is shared)
GRADING_EXAMPLES = ["correct", "correct_kthvalue_manual", "blank", "wrong_incremental_fraction", "wrong_per_layer",
                    "wrong_structured_hits_linear"]
GOAL_VS_STOCK = {1: 1.0, 2: 1.0}  # P4d, P4e: times faster than stock nbgrader, by number of workers
FLOOR_SLACK = 1.1  # P4f: the 2-worker wall time within 10% of the CPU floor


@contextmanager
def timed_calls(module, name: str, calls: list):
    """While inside, every call of ``module.name`` (from any thread) appends (start, end, return value)."""
    original = getattr(module, name, None)
    if original is None:
        raise RuntimeError(f"{module.__name__} has no {name}: update benchmarks/grading.py to time what replaced it")

    def timed(*args, **kwargs):
        started = time.perf_counter()
        value = original(*args, **kwargs)
        calls.append((started, time.perf_counter(), value))
        return value

    setattr(module, name, timed)
    try:
        yield calls
    finally:
        setattr(module, name, original)


def autograde_phases(result, wall_s: float) -> dict:
    """Seconds per phase of one student's autograde; ``wall_s``: the pipeline's wall time for its worker."""
    phases = result.phases
    cells = phases.get("cells_s", {})
    kernel, verify = phases.get("kernel_start_s", 0.0), phases.get("verify_s", 0.0)
    autograde = phases.get("autograde_s", 0.0)
    return {
        "waiting_s": phases.get("waiting_s", 0.0),  # for a notebook slot (the previous kernel still running)
        # process start (a spare's imports overlap the previous student), job and result files
        "worker_start_s": wall_s - result.seconds - phases.get("waiting_s", 0.0),
        "setup_s": phases.get("setup_s", 0.0),  # private course, submission checks, fingerprints
        "kernel_start_s": kernel,  # in the sandbox, until the first code cell
        "cells_s": cells,  # each code cell, by cell id (the setup cell holds the kernel's imports)
        "verify_s": verify,  # loading and checking the evidence, Part 4's recipe run when its start is new
        "measurements_made": phases.get("measurements_made", 0),  # accuracies and recipe runs, by the verifier
        "measurements_reused": phases.get("measurements_reused", 0),  # found in the shared store
        "scores_s": autograde - kernel - sum(cells.values()) - verify,  # nbgrader's other steps, score saving
        # gradebook copy, nbgrader API start, the tamper guard's second fingerprint, the scores written
        "worker_rest_s": result.seconds - phases.get("setup_s", 0.0) - autograde,
        "wall_s": wall_s,
    }


def run_ours(submissions: Path, out: Path, workers: int) -> dict:
    """Our pipeline over ``submissions`` into ``out`` (every submission regraded); wall time and phases."""
    from autograder.course import pipeline

    pipeline.prepare_template(out)  # like stock's generate_assignment: set-up, not timed
    shutil.rmtree(out / "measurements", ignore_errors=True)  # a first grading run: nothing measured to reuse
    workers_done, merges = [], []
    with timed_calls(pipeline, "run_worker", workers_done), timed_calls(pipeline, "finish", merges):
        started = time.perf_counter()
        results = pipeline.grade(submissions, out, workers=workers, force=True, verbose=False)
        total_s = time.perf_counter() - started
    first_worker = min(start for start, _, _ in workers_done)
    return {
        "total_s": total_s, "workers": workers,
        "pipeline_start_s": first_worker - started,  # collecting, sandbox check, template check, data cache
        "merge_s": sum(end - start for start, end, _ in merges),
        "phases": {r.student: autograde_phases(r, end - start) for start, end, r in workers_done},
        "scores": {r.student: r.autograded_score() for r in results},
        "seconds": {r.student: r.seconds for r in results},
        "sandbox": sorted({r.sandbox for r in results}),
    }


def phase_totals(run: dict) -> dict:
    """Each phase summed over a run's submissions (cells summed too)."""
    totals = {}
    for phases in run["phases"].values():
        for name, value in phases.items():
            totals[name] = totals.get(name, 0.0) + (sum(value.values()) if isinstance(value, dict) else value)
    return totals


def floor(run: dict, stock: dict, cores: int) -> dict:
    """No schedule can finish a run's CPU work faster than its CPU seconds spread over every core: that bounds
    our wall time from below and the ratio to stock from above. Part 4's cell (two models trained, unless
    every epoch is replayed) is the largest share of the kernels' work."""
    floor_s = run["cpu_s"] / cores
    return {"cpu_s": run["cpu_s"], "cores": cores, "floor_s": floor_s, "max_vs_stock": stock["total_s"] / floor_s,
            "stock_cpu_s": stock["cpu_s"], "busy_cores": run["cpu_s"] / run["total_s"],
            "part4_cell_s": {student: ph["cells_s"].get("part4_code", 0.0) for student, ph in run["phases"].items()},
            "verify_s": {student: ph["verify_s"] for student, ph in run["phases"].items()}}


def cpu_seconds() -> float:
    """CPU seconds this machine has spent working (user, nice, system, interrupts; not idle, not stolen by the
    hypervisor): the bench runs alone, so a side's delta is its work, kernels in their sandboxes included.
    Elsewhere than Linux: this process and the children it waited for."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]]
        return sum(fields[i] for i in (0, 1, 2, 5, 6)) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                      resource.getrusage(resource.RUSAGE_CHILDREN)))


def with_cpu(side):
    """``side()``'s run, with the CPU seconds it used (``cpu_s``)."""
    before = cpu_seconds()
    run = side()
    return dict(run, cpu_s=cpu_seconds() - before)


def compare_with_stock(folder: Path, subs: dict[str, Path], work: Path, rounds: int) -> dict:
    """Stock nbgrader and our pipeline with 1 and 2 workers on ``subs`` (all in ``folder``), alternating;
    each side's best of ``rounds``."""
    sides = {"stock": lambda: time_stock_grading(work / "stock-nbgrader", subs),
             "ours_1": lambda: run_ours(folder, work / "grading-1", 1),
             "ours_2": lambda: run_ours(folder, work / "grading-2", 2)}
    best = {}
    for round_ in range(rounds):
        for side in (list(sides) if round_ % 2 == 0 else list(reversed(sides))):
            print(f"  {side} ...", flush=True)
            run = with_cpu(sides[side])
            if side not in best or run["total_s"] < best[side]["total_s"]:
                best[side] = run
    stock_s = best["stock"]["total_s"]
    return {"rounds": rounds, **best,
            **{f"vs_stock_{w}": stock_s / best[f"ours_{w}"]["total_s"] for w in GOAL_VS_STOCK},
            "floor": {str(w): floor(best[f"ours_{w}"], best["stock"], os.cpu_count() or 1) for w in GOAL_VS_STOCK},
            "note": "stock nbgrader is a timing peer only: its test cells record evidence that nothing verifies, "
                    "so its scores mean nothing"}


def _without_part4(path: Path) -> None:
    """The submission at ``path`` with Part 4's cell as the release hands it out (not done)."""
    import nbformat

    from demo.examples import release_notebook

    stub = next(c for c in release_notebook().cells if c.get("id") == "part4_code").source
    nb = nbformat.read(path, as_version=4)
    next(c for c in nb.cells if c.get("id") == "part4_code").source = stub
    nbformat.write(nb, path)


def grading_times(work: Path, submissions: int, rounds: int = 1) -> dict:
    """Solution notebook run, one autograde's phases, our pipeline with 1 vs 2 workers and vs stock nbgrader, on
    the example submissions (P4d) and on the same with Part 4 left undone (P4e)."""
    from demo.end_to_end import execute_solution
    from demo.examples import write_examples

    _, notebook_s = execute_solution(work / "solution")
    sets = {}
    for name, strip in (("P4d", False), ("P4e", True)):
        folder = work / f"submissions-{name}"
        shutil.rmtree(folder, ignore_errors=True)  # the pipeline grades every file there
        subs = write_examples(folder, GRADING_EXAMPLES[:submissions])
        for path in subs.values() if strip else ():
            _without_part4(path)
        print(f" {name}: {'Part 4 left undone' if strip else 'Part 4 as the recipe'}", flush=True)
        sets[name] = compare_with_stock(folder, subs, work / name, rounds)
    one, two = sets["P4d"]["ours_1"], sets["P4d"]["ours_2"]
    return {"notebook_s": notebook_s, "submissions": len(subs),
            "autograde_one_s": float(np.median(list(one["seconds"].values()))),
            "pipeline_1_workers_s": one["total_s"], "pipeline_2_workers_s": two["total_s"],
            "speedup_2_workers": one["total_s"] / two["total_s"], "scores": one["scores"],
            "scores_agree": one["scores"] == two["scores"], **sets}
