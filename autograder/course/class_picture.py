"""The Part 5 class picture: every graded Part 5 model's MACs against its accuracy, ``part5.html``.

The figures are the grader's (``GradingResult.figures["part5"]``), checked again here: a malformed entry is
reported and left out. The page names nobody: each point is labelled by an HMAC of the student id under a
secret kept in the grading folder. A student's feedback page shows their own point, ringed, against the same dense
model, uniform baseline and budget, and the id that finds it on the class page (``feedback_section``): nothing on
it depends on other students, so one student's regrade changes no one else's page (nor re-uploads it to Canvas).
"""
import base64
import hashlib
import hmac
import html
import io
import os
import secrets
import sys
from dataclasses import dataclass

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from autograder.course.feedback import NO_SCRIPTS
from autograder.grading_folder import GradingFolder
from ece662.grading.checks import Part5Point

FRAMEWORKS = {"torch": ("o", "tab:blue", "PyTorch"), "tensorflow": ("s", "tab:orange", "TensorFlow")}
RANGES = {"macs": (0, 1), "accuracy": (0, 1), "baseline_macs": (0, 1), "baseline_accuracy": (0, 1),
          "dense_accuracy": (0, 1), "budget": (0, 1), "difference": (-1, 1), "low": (-1, 1), "high": (-1, 1)}

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{policy}">
<title>Part 5: the class picture</title>
<style>body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; }} img {{ max-width: 100%; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; }}</style>
</head><body>
<h1>Part 5: the class picture</h1>
{body}
</body></html>
"""


@dataclass
class Point(Part5Point):
    """One graded Part 5 model: the grader's figures (widths as tuples), its student, and ``label``, what the pages
    show instead of ``student``."""
    student: str = ""
    label: str = ""


def write_part5_page(folder: GradingFolder, results: dict) -> list:
    """``part5.html`` from {student: GradingResult}; returns its points (Point), sorted by MACs."""
    key = _secret(folder)
    points, malformed = [], 0
    for student, result in sorted(results.items()):
        if not isinstance(result.figures, dict) or "part5" not in result.figures:
            continue
        try:
            points.append(_point(student, _hashed_id(key, student), result.figures["part5"]))
        except ValueError as exc:
            malformed += 1
            print(f"WARNING: the Part 5 figures of {student} are left out of {folder.part5_html.name}: {exc}",
                  file=sys.stderr)
    points.sort(key=lambda p: (p.macs, p.label))
    folder.part5_html.write_text(PAGE.format(policy=NO_SCRIPTS, body=_body(points, malformed)))
    return points


def plot_png(points: list, highlight: str | None = None) -> bytes:
    """The class plot as PNG: each point labelled by its hashed id, or, given ``highlight`` (a student id), no
    labels and that student's point ringed."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for budget in sorted({p.budget for p in points}):
        ax.axvline(100 * budget, color="grey", linestyle="--", label=f"MACs budget ({100 * budget:g}%)")
    for framework, (marker, colour, name) in FRAMEWORKS.items():
        ours = [p for p in points if p.framework == framework]
        if not ours:
            continue
        ax.scatter([100 * p.macs for p in ours], [100 * p.accuracy for p in ours], marker=marker, color=colour,
                   alpha=0.7, label=f"{name} submissions")
        dense = sorted({p.dense_accuracy for p in ours})
        ax.scatter([100] * len(dense), [100 * a for a in dense], marker="*", s=250, color=colour, edgecolor="black",
                   label=f"{name} dense model")
        baseline = sorted({(p.baseline_macs, p.baseline_accuracy) for p in ours})
        ax.scatter([100 * m for m, _ in baseline], [100 * a for _, a in baseline], marker="X", s=120, color=colour,
                   edgecolor="black", label=f"{name} uniform baseline")
    for p in points:
        if highlight is None:
            ax.annotate(p.label, (100 * p.macs, 100 * p.accuracy), xytext=(3, 3), textcoords="offset points",
                        fontsize=6)
        elif p.student == highlight:
            ax.scatter([100 * p.macs], [100 * p.accuracy], s=300, facecolors="none", edgecolors="red", linewidths=2,
                       label="your model")
    ax.set(xlim=(0, 105), xlabel="MACs (% of the dense model)", ylabel="accuracy on the grader's test images (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    return png.getvalue()


def feedback_section(points: list, student: str) -> str:
    """The Part 5 section of ``student``'s feedback page: their point ringed against the dense model, the uniform
    baseline and the budget, and their figures; "" when they have no graded Part 5 model."""
    own = next((p for p in points if p.student == student), None)
    if own is None:
        return ""
    name = FRAMEWORKS[own.framework][2]
    sentence = (f"Your {name} model keeps {_widths(own.widths)} filters per conv layer: {_pct(own.macs)} of the "
                f"dense model's MACs (budget {_pct(own.budget)}) for {_pct(own.accuracy)} accuracy, against "
                f"{_pct(own.baseline_accuracy)} for the uniform baseline under the same budget: a difference of "
                f"{_pp(own.difference)} percentage points (95% interval {_pp(own.low)} to {_pp(own.high)}); "
                f"the class page shows your model as {own.label}.")
    return (f'<div class="part5"><h4>Part 5: your model</h4>\n'
            f'{_img(plot_png([own], student), "Your Part 5 model, ringed in red")}\n'
            f"<p>{html.escape(sentence)}</p></div>")


def _point(student: str, label: str, data) -> Point:
    """The Point of a ``figures["part5"]`` entry; ValueError saying what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError(f"a {type(data).__name__}, not a dict")
    missing = [k for k in ("framework", "widths", "baseline_widths", *RANGES) if k not in data]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    if not isinstance(data["framework"], str) or data["framework"] not in FRAMEWORKS:
        raise ValueError(f"framework {data['framework']!r:.40} is not one of {', '.join(FRAMEWORKS)}")
    numbers = {}
    for key, (low, high) in RANGES.items():
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:  # NaN too
            raise ValueError(f"{key} {value!r:.40} is not a number in [{low}, {high}]")
        numbers[key] = float(value)
    widths = {}
    for key in ("widths", "baseline_widths"):
        value = data[key]
        if not isinstance(value, list) or len(value) != 3 or not all(type(w) is int and w > 0 for w in value):
            raise ValueError(f"{key} {value!r:.40} is not a list of 3 positive ints")
        widths[key] = tuple(value)
    if numbers["low"] > numbers["high"]:
        raise ValueError(f"the interval [{numbers['low']}, {numbers['high']}] is empty")
    return Point(framework=data["framework"], **widths, **numbers, student=student, label=label)


def _secret(folder: GradingFolder) -> bytes:
    """The hashed ids' secret: created once, readable only by its owner."""
    if not folder.id_secret.is_file():
        with os.fdopen(os.open(folder.id_secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(secrets.token_hex(32))
    return folder.id_secret.read_bytes().strip()


def _hashed_id(key: bytes, student: str) -> str:
    return hmac.new(key, student.encode(), hashlib.sha256).hexdigest()[:8]


def _body(points: list, malformed: int) -> str:
    left_out = f"<p>Left out: {malformed} result(s) with malformed Part 5 figures.</p>\n" if malformed else ""
    if not points:
        return f"<p>No Part 5 model was graded.</p>\n{left_out}"
    references = sorted({(FRAMEWORKS[p.framework][2], p.dense_accuracy, p.baseline_widths, p.baseline_macs,
                          p.baseline_accuracy, p.budget) for p in points})
    items = [f"{name}: dense model {_pct(dense)} accuracy; uniform baseline (widths {_widths(widths)}) {_pct(macs)} "
             f"of the MACs, {_pct(accuracy)} accuracy; budget {_pct(budget)} of the MACs"
             for name, dense, widths, macs, accuracy, budget in references]
    rows = [(p.label, FRAMEWORKS[p.framework][2], _widths(p.widths), _pct(p.macs), _pct(p.accuracy),
             f"{_pp(p.difference)} ({_pp(p.low)} to {_pp(p.high)})") for p in points]
    header = ("id", "framework", "widths", "MACs", "accuracy", "vs baseline, percentage points (95% interval)")
    return (f"<p>{len(points)} graded Part 5 model(s): MACs as a percentage of the dense model's against accuracy "
            "on the grader's test images, each labelled by an anonymous id (its student finds it on their feedback "
            f"page).</p>\n{_img(plot_png(points), 'Part 5 models of the class')}\n"
            "<ul>\n" + "".join(f"<li>{html.escape(item)}</li>\n" for item in items) + "</ul>\n<table>\n" +
            _row("th", header) + "".join(_row("td", row) for row in rows) + f"</table>\n{left_out}")


def _row(tag: str, cells: tuple) -> str:
    return "<tr>" + "".join(f"<{tag}>{html.escape(cell)}</{tag}>" for cell in cells) + "</tr>\n"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def _pp(fraction: float) -> str:
    return f"{100 * fraction:+.1f}"


def _widths(widths: tuple) -> str:
    return ", ".join(map(str, widths))
