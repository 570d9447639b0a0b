"""Student content made inert before anyone reads it: the graded notebook holds nothing a browser would run.

Formgrader shows instructors the graded notebook in their logged-in session, and both feedback pages show it
to students; nbgrader's templates pass markdown cells' HTML, ``javascript:`` links and some output fields
through unescaped. ``SanitizeNotebook``, the last autograde step, cleans the notebook itself, so every page
made from it is safe:

* a markdown cell becomes its rendered HTML cleaned by an allow-list (Ammonia, through ``nh3``): no
  scripts, event handlers, styles, forms or frames, links only to http(s) and mailto, images only as
  embedded data; it is kept on one line inside a ``<div>``, so re-rendering it as markdown passes it
  through unchanged, and MathJax is told to leave it alone (TeX can make links too);
* raw cells become such cells holding their text;
* outputs keep only plain text, PNG and JPEG images (checked to be base64) and errors; their metadata,
  cell metadata other than nbgrader's, attachments and the notebook's own metadata are dropped.

``csv_cell`` does the same for the CSV files instructors open in spreadsheets.
"""
import html
import re

import nh3
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

ALLOWED_TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3",
                "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong",
                "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "td": {"align"}, "th": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}
NO_MATH = "tex2jax_ignore mathjax_ignore"  # MathJax 2 and 3: leave the text inside as it is
SHOWN_MIME_TYPES = ("text/plain", "image/png", "image/jpeg")
BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
NOTEBOOK_METADATA = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}}


def _image_source(tag: str, name: str, value: str) -> str | None:
    if tag == "img" and name == "src":
        return value if re.fullmatch(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=]*", value) else None
    return value


def clean_html(text: str) -> str:
    """HTML with only the allowed tags and attributes; links to allowed schemes; images embedded only."""
    return nh3.clean(text, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES,
                     attribute_filter=_image_source, link_rel="noopener noreferrer nofollow")


ATTACHMENT_LINK = re.compile(r"\]\(\s*<?attachment:")


def clean_markdown(source: str) -> str:
    """A markdown cell's source as inert HTML that renders as it did, on one line in a ``<div>``. Attachments
    are not shown (``strip_metadata`` drops them); markdown the renderer cannot take is shown as text."""
    try:
        rendered = markdown2html_mistune(ATTACHMENT_LINK.sub("](#attachment-not-shown:", source))
    except Exception:  # the renderer's own errors: the text is shown as it is
        rendered = f"<pre>{html.escape(source)}</pre>"
    return f'<div class="{NO_MATH}">' + clean_html(rendered).replace("\n", "&#10;") + "</div>"


def _clean_output(output: dict) -> dict | None:
    kind = output.get("output_type")
    if kind == "stream":
        return {"output_type": "stream", "name": "stderr" if output.get("name") == "stderr" else "stdout",
                "text": str(output.get("text", ""))}
    if kind == "error":
        return {"output_type": "error", "ename": str(output.get("ename", "")),
                "evalue": str(output.get("evalue", "")), "traceback": [str(x) for x in output.get("traceback", [])]}
    if kind in ("execute_result", "display_data"):
        data = {}
        for mime in SHOWN_MIME_TYPES:
            value = output.get("data", {}).get(mime)
            if isinstance(value, list):
                value = "".join(map(str, value))
            if isinstance(value, str) and (mime == "text/plain" or BASE64.fullmatch(value)):
                data[mime] = value
        if not data:
            return None
        cleaned = {"output_type": kind, "data": data, "metadata": {}}
        if kind == "execute_result":
            count = output.get("execution_count")
            cleaned["execution_count"] = count if isinstance(count, int) else None
        return cleaned
    return None


def strip_metadata(nb) -> None:
    """Keep only what grading reads of a handed-in notebook (nbgrader's cell metadata): a student's tags,
    attachments, widgets, kernel or title can neither crash nbgrader's validation nor reach a page."""
    nb.metadata = NotebookNode(NOTEBOOK_METADATA)  # nbgrader sets the kernel it grades with anyway
    for cell in nb.cells:
        nbgrader = cell.get("metadata", {}).get("nbgrader")
        cell.metadata = NotebookNode({"nbgrader": nbgrader} if isinstance(nbgrader, dict) else {})
        cell.pop("attachments", None)


def sanitize(nb) -> None:
    """Make the notebook ``nb`` (an nbformat NotebookNode) inert, in place."""
    strip_metadata(nb)
    for cell in nb.cells:
        if cell.cell_type == "raw":
            cell.cell_type, cell.source = "markdown", f"<pre>{html.escape(cell.source)}</pre>"
        if cell.cell_type == "markdown":
            cell.source = clean_markdown(cell.source)
        elif cell.cell_type == "code":
            cell.outputs = [NotebookNode(o) for o in map(_clean_output, cell.get("outputs", [])) if o]
            if not isinstance(cell.get("execution_count"), int):
                cell.execution_count = None


class SanitizeNotebook(NbGraderPreprocessor):
    """The last autograde step: the graded notebook, which formgrader and the feedback pages show, made inert."""

    def preprocess(self, nb, resources):
        sanitize(nb)
        return nb, resources


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: one starting like a formula gets a leading quote (numbers are kept)."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START) and not re.fullmatch(r"-?\d+(\.\d+)?", text):
        return "'" + text
    return text
