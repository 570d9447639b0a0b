"""The Part 5 class picture (``part5.html``) and each student's Part 5 section on their feedback page."""
import base64
import html
import re
import stat

from formgrader_session import chromium_dom

from autograder.course import publish as publish_module
from autograder.course.class_picture import feedback_section, plot_png, write_part5_page
from autograder.course.collect import Collection, Submission
from autograder.course.feedback import exporter, feedback_html
from autograder.course.grades import StudentGrade
from autograder.grading_folder import GradingFolder
from autograder.worker.results import STATUS_GRADED, GradingResult

EVIL = '<script>alert("x")</script>\'"&'  # a student id that would inject HTML if it were ever shown
SECTION = "Part 5: your model"


def part5(framework="torch", widths=(12, 24, 48), macs=0.25, accuracy=0.712) -> dict:
    """``figures["part5"]`` as the grader stores it: baseline 69% accuracy, interval +-1.5 points."""
    return {"framework": framework, "widths": list(widths), "macs": macs, "accuracy": accuracy,
            "baseline_widths": [10, 20, 40], "baseline_macs": 0.29, "baseline_accuracy": 0.69,
            "dense_accuracy": 0.80 if framework == "torch" else 0.78, "budget": 0.3,
            "difference": accuracy - 0.69, "low": accuracy - 0.705, "high": accuracy - 0.675}


def class_results(evil: bool = True) -> dict:
    """Two torch and one TensorFlow model, one result without Part 5, three malformed entries."""
    results = {"jsmith1": part5(), "kdoe2": part5("torch", (16, 16, 32), 0.18, 0.655),
               "tlee3": part5("tensorflow", (8, 32, 64), 0.29, 0.702), "rnone4": None,
               "ewrong5": part5() | {"accuracy": "0.9"}, "fnan6": part5() | {"macs": float("nan")},
               "gbad7": part5() | {"widths": [16, True, 32]}}
    if evil:
        results[EVIL] = part5(widths=(20, 20, 20), macs=0.21, accuracy=0.68)
    return {s: GradingResult(s, figures={} if figures is None else {"part5": figures})
            for s, figures in results.items()}


def without_images(page: str) -> str:
    return re.sub(r'src="data:image/png;base64,[^"]*"', "", page)


def table_rows(page: str) -> list:
    """(id, framework, widths, MACs, accuracy, difference) of each row of the page's table."""
    return re.findall(r"<tr>" + "<td>([^<]*)</td>" * 6 + "</tr>", page)


def test_the_class_page_shows_every_valid_model_and_names_nobody(tmp_path, capsys):
    folder = GradingFolder(tmp_path)
    points = write_part5_page(folder, class_results())
    page = folder.part5_html.read_text()
    rows = table_rows(page)
    assert len(rows) == len(points) == 4
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [  # sorted by MACs
        ("PyTorch", "16, 16, 32", "18.0%", "65.5%"), ("PyTorch", "20, 20, 20", "21.0%", "68.0%"),
        ("PyTorch", "12, 24, 48", "25.0%", "71.2%"), ("TensorFlow", "8, 32, 64", "29.0%", "70.2%")]
    assert rows[2][5] == "+2.2 (+0.7 to +3.7)"
    ids = [r[0] for r in rows]
    assert all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids) and len(set(ids)) == 4
    text = without_images(page)
    for student in [*class_results(), html.escape(EVIL), html.escape(EVIL, quote=False)]:
        assert student not in text
    assert "<script" not in page.lower() and "onerror" not in page.lower()
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'(?:src|href)="([^"]*)"', page))
    assert "PyTorch: dense model 80.0% accuracy" in page and "TensorFlow: dense model 78.0% accuracy" in page
    assert "Left out: 3 result(s) with malformed Part 5 figures." in page
    warnings = capsys.readouterr().err
    assert "ewrong5" in warnings and "accuracy '0.9'" in warnings
    assert "fnan6" in warnings and "macs nan" in warnings and "gbad7" in warnings and "rnone4" not in warnings
    assert stat.S_IMODE(folder.id_secret.stat().st_mode) == 0o600


def test_ids_are_stable_under_the_folder_s_secret_and_differ_under_another(tmp_path):
    folder, other = GradingFolder(tmp_path / "a"), GradingFolder(tmp_path / "b")
    folder.root.mkdir(), other.root.mkdir()
    write_part5_page(folder, class_results())
    first = folder.part5_html.read_bytes()
    write_part5_page(folder, class_results())
    assert folder.part5_html.read_bytes() == first  # same secret, same page: no needless re-upload
    write_part5_page(other, class_results())
    ids = {r[0] for r in table_rows(first.decode())}
    assert ids.isdisjoint(r[0] for r in table_rows(other.part5_html.read_text()))


def test_a_page_says_so_when_no_part5_model_was_graded(tmp_path):
    folder = GradingFolder(tmp_path)
    assert write_part5_page(folder, {"rnone4": GradingResult("rnone4")}) == []
    page = folder.part5_html.read_text()
    assert "No Part 5 model was graded." in page and "<table" not in page and "<img" not in page


def own_point(points, student):
    return next(p for p in points if p.student == student)


def test_a_student_sees_their_own_model_ringed_on_their_feedback_page(tmp_path):
    points = write_part5_page(GradingFolder(tmp_path), class_results())
    own = feedback_section(points, "jsmith1")
    page = feedback_html(StudentGrade("jsmith1", STATUS_GRADED, file="jsmith1.ipynb"), None, exporter(), own)
    text = html.unescape(without_images(page))
    assert SECTION in text
    for number in ("12, 24, 48 filters", "25.0% of the dense model's MACs", "71.2% accuracy", "69.0% for the uniform",
                   "+2.2 percentage points (95% interval +0.7 to +3.7)"):
        assert number in text
    label = next(p.label for p in points if p.student == "jsmith1")
    assert label in text and not any(p.label in text for p in points if p.student != "jsmith1")
    image = re.search(r'src="data:image/png;base64,[^"]*"', own)
    assert image and image.group(0) in page
    ringed = base64.b64encode(plot_png([own_point(points, "jsmith1")], "jsmith1")).decode()
    assert image.group(0) == f'src="data:image/png;base64,{ringed}"'  # their point only
    # nothing on it depends on the other students: a classmate's regrade leaves the page as it is
    assert feedback_section([p for p in points if p.student != "kdoe2"], "jsmith1") == own
    assert feedback_section(points, "rnone4") == feedback_section(points, "ewrong5") == ""


def test_publish_writes_the_class_page_and_each_student_s_section(tmp_path, monkeypatch):
    monkeypatch.setattr(publish_module, "read_marks", lambda db: ({}, {}))  # an empty gradebook
    folder, results = GradingFolder(tmp_path), class_results(evil=False)
    collection = Collection({s: Submission(s, f"{s}.ipynb", f"{s}.ipynb") for s in results})
    publish_module.publish(folder, collection, results)
    assert len(table_rows(folder.part5_html.read_text())) == 3
    assert SECTION in folder.feedback_page("tlee3").read_text()
    assert SECTION not in folder.feedback_page("rnone4").read_text()
    assert SECTION not in folder.feedback_page("ewrong5").read_text()


def test_the_class_page_s_table_is_in_chromium_s_dom(tmp_path):
    folder = GradingFolder(tmp_path)
    write_part5_page(folder, class_results())
    dom = chromium_dom(folder.part5_html.as_uri())  # skips when Chromium is not installed
    assert len(table_rows(dom)) == 4 and "<script" not in dom.lower()
