"""The benchmark's goals, and the report: ``report.json`` (every figure) and ``REPORT.md`` (the summary)."""
import json
import os
import platform
from pathlib import Path

import torch

MIB_LIMIT = 1.5e9 / 2**20  # 1.5 GB


def goals(f: dict) -> list[dict]:
    """One row per goal: what, measured, goal, met."""
    p1, p2, p3, p4, p5 = (f[k] for k in ("P1", "P2", "P3", "P4", "P5"))
    speedup = p5["speedup"]
    return [
        {"id": "P1", "what": "test_model throughput / bare forward on a preloaded float tensor",
         "measured": f"{p1['ratio']:.2f} ({p1['test_model_img_per_s']:.0f} vs {p1['bare_forward_img_per_s']:.0f} img/s)",
         "goal": ">= 0.9", "met": p1["ratio"] >= 0.9},
        {"id": "P2a", "what": f"cold load of {p2['images']:,} PNGs into the cache vs a naive one-process PIL loop",
         "measured": f"{p2['cold_speedup']:.1f}x the naive speed ({p2['cold_s']:.1f} s vs {p2['naive_s']:.1f} s)",
         "goal": ">= 2x faster", "met": p2["cold_speedup"] >= 2},
        {"id": "P2b", "what": "warm load (cache hit), all splits", "measured": f"{p2['warm_s']:.3f} s",
         "goal": "< 1 s", "met": p2["warm_s"] < 1},
        {"id": "P3", "what": f"peak RSS, get_CINIC10_data() + test_model over {p3['images']:,} test images",
         "measured": f"{p3['peak_mib']:.0f} MiB (imports alone {p3['imports_mib']:.0f} MiB)",
         "goal": "<= 1.5 GB (1431 MiB)", "met": p3["peak_mib"] <= MIB_LIMIT},
        {"id": "P4a", "what": "solution notebook, default settings", "measured": f"{p4['notebook_s']:.0f} s",
         "goal": "about a minute (<= 90 s)", "met": p4["notebook_s"] <= 90},
        {"id": "P4b", "what": "autograde one submission (median)", "measured": f"{p4['autograde_one_s']:.0f} s",
         "goal": "about a minute (<= 90 s)", "met": p4["autograde_one_s"] <= 90},
        {"id": "P4c", "what": f"grading pipeline, {p4['submissions']} submissions, 1 vs 2 workers",
         "measured": f"{p4['pipeline_1_workers_s']:.0f} s vs {p4['pipeline_2_workers_s']:.0f} s "
                     f"({p4['speedup_2_workers']:.2f}x)", "goal": "reported", "met": True},
        {"id": "P5a", "what": "80% filters physically removed: speed-up over dense",
         "measured": f"{speedup['filters_80_removed']:.1f}x ({p5['ms']['filters_80_removed']:.1f} vs "
                     f"{p5['ms']['dense']:.1f} ms / 256 images)", "goal": ">= 3x", "met": speedup["filters_80_removed"] >= 3},
        {"id": "P5b", "what": "80% unstructured: speed-up over dense",
         "measured": f"{speedup['unstructured_80']:.2f}x ({p5['ms']['unstructured_80']:.1f} ms)",
         "goal": "about 1x (0.8-1.25)", "met": 0.8 <= speedup["unstructured_80"] <= 1.25},
    ]


def machine() -> dict:
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def write_report(figures: dict, setup: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``REPORT.md`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = goals(figures)
    info = machine()
    payload = {"machine": info, "setup": setup, "figures": figures, "goals": rows}
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(payload, indent=1, default=float))
    lines = [
        "# Benchmark report (`make bench`)",
        "",
        f"Data: {setup['dataset']} ({setup['images']:,} images: {setup['sizes']}). "
        f"Machine: {info['cpus']} CPU cores, torch {info['torch']} ({info['torch_threads']} threads), "
        f"Python {info['python']}. Total run: {setup['total_s'] / 60:.1f} min. "
        "Ratios are measured side by side in the same run.",
        "",
        "| id | what | measured | goal | met |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {r['id']} | {r['what']} | {r['measured']} | {r['goal']} | {'yes' if r['met'] else '**NO**'} |"
          for r in rows],
        "",
        f"P4 autograded points at this size (each must match its intended score): {figures['P4']['scores']}.",
        f"P5 latencies (ms per batch of 256): {', '.join(f'{k} {v:.1f}' for k, v in figures['P5']['ms'].items())}.",
        f"P2: {figures['P2']['note']}.",
        "",
    ]
    md_path = out_dir / "REPORT.md"
    md_path.write_text("\n".join(lines))
    return json_path, md_path
