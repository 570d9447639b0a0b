"""Student content made inert (autograder/worker/sanitize.py): the cleaners, and SanitizeNotebook on a small notebook;
the browser checks are in tests/end_to_end/test_red_team.py."""
from html.parser import HTMLParser

import nbformat
import pytest
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbformat.validator import NotebookValidationError

from autograder.worker.sanitize import (
    ALLOWED_TAGS,
    NO_MATH,
    NOTEBOOK_METADATA,
    SanitizeNotebook,
    clean_markdown,
    csv_cell,
    strip_metadata,
)

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "<a href='javascript:alert(1)'>x</a>",
    "<svg onload=alert(1)></svg>",
    "<iframe src=javascript:alert(1)></iframe>",
    "<style>body{display:none}</style>",
    "<form action=http://evil><input></form>",
    "![x](attachment:a.png)",
    "<div onmouseover=alert(1) class=tex2jax_process>x</div>",
]


class Markup(HTMLParser):
    """The tags and attributes of a page (text, escaped or not, is not markup)."""

    def __init__(self, html: str):
        super().__init__()
        self.tags = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_keeps_no_active_content(payload):
    html = clean_markdown(f"An answer. {payload}\n\n```\ncode {payload}\n```")
    tags = Markup(html).tags
    assert {tag for tag, _ in tags} <= ALLOWED_TAGS, html
    for tag, attrs in tags:
        assert not any(name.startswith("on") for name in attrs), html
        assert not any("javascript:" in (attrs.get(name) or "") for name in ("href", "src")), html
    assert [attrs.get("class") for _, attrs in tags if "class" in attrs] == [NO_MATH]  # a student's are dropped
    assert "An answer." in html


def test_clean_markdown_renders_again_unchanged():
    """Formgrader and the feedback pages render markdown cells: the cleaned HTML passes through as it is."""
    html = clean_markdown("**Bold**, a [link](https://example.org), a table\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                          "```\n<b>code</b>\n\n[y](javascript:2)\n```")
    assert markdown2html_mistune(html).strip() == html
    assert 'href="https://example.org"' in html and "<table>" in html and "&lt;b&gt;code" in html


def test_the_graded_notebook_keeps_only_passive_content_and_nbgrader_metadata():
    nb = nbformat.v4.new_notebook(metadata={"title": "</title><script>x</script>", "kernelspec": {"name": "python3", "display_name": "Python 3"}})
    code = nbformat.v4.new_code_cell("x", metadata={"tags": ['a" onclick="x'], "nbgrader": {"grade_id": "c"}})
    code.execution_count = "1 onmouseover=y"
    code.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": "<script>x</script>", "text/plain": "ok"}),
        nbformat.v4.new_output("display_data", data={"image/png": 'x" onerror="y'}),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="}, metadata={"width": "1 onerror=y"}),
        nbformat.v4.new_output("display_data", data={"application/javascript": "x"}),
        nbformat.v4.new_output("stream", name="stdout", text="<b>printed</b>"),
    ]
    raw = nbformat.v4.new_raw_cell("<script>x</script>", metadata={"format": "text/html"})
    text = nbformat.v4.new_markdown_cell("An answer <img src=x onerror=alert(1)>", attachments={"a.png": {}})
    nb.cells = [code, raw, text]
    SanitizeNotebook().preprocess(nb, {})
    assert dict(nb.metadata) == NOTEBOOK_METADATA
    assert dict(code.metadata) == {"nbgrader": {"grade_id": "c"}}
    assert [o.get("data") for o in code.outputs if "data" in o] == [{"text/plain": "ok"}, {"image/png": "iVBORw0KGgo="}]
    assert all(o.get("metadata", {}) == {} for o in code.outputs)
    assert code.execution_count is None
    assert raw.cell_type == "markdown" and "<script" not in raw.source
    assert "onerror" not in text.source and "An answer" in text.source and "attachments" not in text
    nbformat.validate(nb)


def test_strip_metadata_makes_a_bad_tag_harmless():
    """A tag with a comma fails nbformat's validation, which would crash nbgrader for that student."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.from_dict({"cell_type": "markdown", "id": "a", "source": "x", "metadata": {"tags": ["a,b"]}})]
    with pytest.raises(NotebookValidationError):
        nbformat.validate(nb)
    strip_metadata(nb)
    nbformat.validate(nb)


def test_csv_cells_are_never_formulas():
    assert [csv_cell(v) for v in ("=1+1", "+1", "-x", "@SUM(A1)", "\tx", "plain", "-3", "2.5", None, 7)] == [
        "'=1+1", "'+1", "'-x", "'@SUM(A1)", "'\tx", "plain", "-3", "2.5", "", "7"]
