"""Feedback HTML with the final grade: automatic and manual scores, graders' comments, ``pending`` questions.

Built from the graded notebook with nbgrader's feedback page (hidden tests
and tracebacks removed as in ``autograder/course/hidden_tests.py``), but the scores are the
student's final ones rather than the gradebook's: a question nobody has graded
yet says "pending" instead of "0 / 5", a table at the top gives the points per
part, and long failure messages wrap instead of running off the page. A
submission that could not be graded gets the same page with its status and
why, and "not graded" for every score.
"""
import os
import re

import nbformat
import nbgrader
from nbconvert.exporters import HTMLExporter
from nbgrader.preprocessors import GetGrades
from traitlets.config import Config

from autograder.course.grades import PENDING, StudentGrade
from autograder.course.hidden_tests import FEEDBACK_PREPROCESSORS
from autograder.nbgrader_course import NOTEBOOK_ID
from autograder.worker.results import STATUS_GRADED
from autograder.worker.sanitize import sanitize
from ece662.grading import registry

_FORMGRADER = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader")

TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{% macro heading(cell) -%}
{%- set g = cell.metadata.nbgrader -%}
<a name="{{ g.grade_id }}"></a>
<div class="panel-heading">
  <span class="nbgrader-label">{% if g.solution %}Your answer{% else %}Test <code>{{ g.grade_id }}</code>{% endif %}</span>
  {%- if g.final_score %}<span class="pull-right final-score">Score: {{ g.final_score }}</span>{% endif %}
</div>
{%- endmacro %}
{% macro footer(cell) -%}
{%- if cell.metadata.nbgrader.comment -%}
<div class="panel-footer"><b>Comments:</b> {{ cell.metadata.nbgrader.comment | markdown2html | strip_files_prefix }}</div>
{%- endif -%}
{%- endmacro %}
{% macro is_graded(cell) -%}
{{- 'yes' if cell.metadata.nbgrader and (cell.metadata.nbgrader.grade or cell.metadata.nbgrader.solution) -}}
{%- endmacro %}

{% block body %}
<body>
<style>
div.output_area pre, div.output_subarea pre, div.text_cell_render pre {
  white-space: pre-wrap; overflow-wrap: anywhere; }
div.output_subarea { overflow-x: visible; max-width: 100%; }
</style>
<a name="top"></a>
<div class="container"><div class="panel panel-default">
<div class="panel-heading">
<h4>{{ resources.final.title | e }}</h4>
<table class="table table-condensed final-grade">
{%- for part in resources.final.parts %}
<tr><td>{{ part.title | e }}</td><td>{{ part.score }}</td></tr>
{%- endfor %}
<tr><th>Total</th><th>{{ resources.final.total }}</th></tr>
</table>
{%- if resources.final.status %}<p class="final-status"><b>{{ resources.final.status | e }}</b>{% if resources.final.detail %}: {{ resources.final.detail | e }}{% endif %}</p>{% endif %}
{{ resources.final.part5 }}
</div>
<div class="panel-body"><div id="notebook" class="border-box-sizing"><div class="container" id="notebook-container">
{{ super.super() }}
</div></div></div>
</div></div>
</body>
{%- endblock body %}

{% block markdowncell scoped %}
{%- if is_graded(cell) -%}
<div class="cell border-box-sizing text_cell rendered">
  {{ self.empty_in_prompt() }}
  <div class="panel panel-primary nbgrader_cell">
    {{ heading(cell) }}
    <div class="panel-body"><div class="text_cell_render border-box-sizing rendered_html">
      {{ cell.source | markdown2html | strip_files_prefix }}
    </div></div>
    {{ footer(cell) }}
  </div>
</div>
{%- else -%}{{ super() }}{%- endif -%}
{% endblock markdowncell %}

{% block input %}
{%- if is_graded(cell) -%}
<div class="panel panel-primary nbgrader_cell">
  {{ heading(cell) }}
  <div class="panel-body"><div class="input_area">{{ cell.source | highlight_code(metadata=cell.metadata) }}</div></div>
  {{ footer(cell) }}
</div>
{%- else -%}{{ super() }}{%- endif -%}
{% endblock input %}
"""


def _points(score: float | None, points: float) -> str:
    return f"{PENDING} / {points:g}" if score is None else f"{score:g} / {points:g}"


def _part_title(part: str) -> str:
    question = next((q for q in registry.QUESTIONS if q.part == part), None)
    return question.title if question else re.sub(r"^part(\d+)$", r"Part \1", part)


def exporter() -> HTMLExporter:
    """nbgrader's feedback page, with the template above."""
    c = Config()
    c.HTMLExporter.template_name = "feedback"
    c.HTMLExporter.sanitize_html = True  # a student's <script> or onerror= is shown as text, never run
    c.HTMLExporter.extra_template_basedirs = [os.path.join(_FORMGRADER, "templates")]
    c.HTMLExporter.extra_template_paths = [os.path.join(_FORMGRADER, "static", "node_modules", "bootstrap", "dist",
                                                        "css")]
    html = HTMLExporter(config=c)
    html.raw_template = TEMPLATE
    for preprocessor in FEEDBACK_PREPROCESSORS:
        if preprocessor is not GetGrades:  # the scores come from the final grade instead
            html.register_preprocessor(preprocessor, enabled=True)
    return html


def feedback_html(grade: StudentGrade, notebook_path, html: HTMLExporter, part5: str = "") -> str:
    """The feedback page of ``grade``: its graded notebook when there is one, else just its grade and status;
    ``part5``: the HTML of its Part 5 section under the grade (``class_picture.feedback_section``).
    The page runs no script: its Content-Security-Policy forbids them, and the notebook is made inert again
    (``autograder/worker/sanitize.py``) however it was graded."""
    nb = nbformat.read(notebook_path, as_version=4) if notebook_path else nbformat.v4.new_notebook()
    sanitize(nb)
    points = registry.points()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta:
            continue
        gid = meta.get("grade_id")
        meta["final_score"] = _points(grade.scores.get(gid, 0.0), points[gid]) if meta.get("grade") and gid in points \
            else ""
        meta["comment"] = grade.comments.get(gid, "") if meta.get("solution") else ""
    parts = grade.part_scores()
    shown = _points if grade.scores else (lambda score, points: f"not graded / {points:g}")
    final = {"title": f"Feedback for {grade.name or grade.student}",
             "parts": [{"title": _part_title(p), "score": shown(parts.get(p), m)} for p, m in registry.parts().items()],
             "total": shown(grade.total(), registry.total()),
             "status": "" if grade.status == STATUS_GRADED else grade.status, "detail": grade.detail, "part5": part5}
    body, _ = html.from_notebook_node(nb, resources={"nbgrader": {"notebook": NOTEBOOK_ID}, "final": final})
    return with_policy(body)


NO_SCRIPTS = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
              "form-action 'none'; base-uri 'none'")


def with_policy(page: str) -> str:
    """``page`` with a Content-Security-Policy that forbids every script, first thing in its head."""
    meta = f'<meta http-equiv="Content-Security-Policy" content="{NO_SCRIPTS}">'
    head = page.find("<head>")
    if head < 0:
        raise ValueError("the feedback page has no <head>")
    return page[:head + len("<head>")] + meta + page[head + len("<head>"):]
