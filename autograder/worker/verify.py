"""The verifier: decides every autograded test from the evidence, in the grader, after the kernel is gone.

The student's kernel only records evidence (``ece662/grading/evidence.py``).
This module, which never imports or runs student code, loads it strictly,
checks it with ``ece662/grading/checks.py`` against the grader's own course checkpoint and its
own test data (paths from the grader's configuration, never from the
kernel), and returns a ``Verdict`` per test. ``ApplyVerdicts`` is the
nbgrader preprocessor that runs it between execution and score saving and
replaces each autograded cell's outputs with its verdict, so nothing the
kernel printed in a graded cell reaches the scores, the graded notebook or
the feedback. ``SaveRunReport``, the step after it, saves the verdicts for the
worker.
"""
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from autograder.worker.execute import tell_progress
from autograder.worker.job import VERIFIED
from autograder.worker.measurements import Store, data_digest, key
from autograder.worker.results import Verdict
from ece662.grading import checks, evidence, registry
from ece662.grading.registry import PART4

PASSED = "passed"
MAX_MESSAGE_CHARS = 2000
RAN = "ran"  # cell status recorded by LimitedExecute; anything else says why the cell did not run to the end


class TrustedData:
    """The grader's own course model folder and dataset (never the kernel's), and its store of measurements
    and recipe runs."""

    def __init__(self, model_dir: Path, data_root: Path, store: Store | None = None):
        self.model_dir, self.data_root = Path(model_dir), Path(data_root)
        self.store = store or Store()
        self._dataset = None  # loaded on first use

    def course_file(self, framework: str) -> Path:
        return self.model_dir / f"{framework}.model"

    def original(self, framework: str) -> dict:
        """The course model's weights, canonical layout, float32 numpy arrays."""
        from ece662.frameworks import read_course_file

        return read_course_file(self.course_file(framework), framework)["state_dict"]

    def dataset(self) -> dict:
        """``get_CINIC10_data()`` of the grader's dataset, as a notebook with default settings gets it."""
        from ece662 import data_utils

        if self._dataset is None:
            self._dataset = data_utils.get_CINIC10_data(root=self.data_root, verbose=False)
        return self._dataset

    def accuracy(self, state: dict) -> float:
        """Accuracy of canonical weights on the grader's test images, measured once per store."""
        from ece662.model import from_canonical
        from ece662.pruning_helper import accuracy

        data = self.dataset()
        images = self._digest("test", data["X_test"], data["y_test"])
        return self.store.measure(key("accuracy", images, state),
                                  lambda: accuracy(from_canonical(state), data["X_test"], data["y_test"]))

    def correct(self, state: dict):
        """Which of the grader's test images canonical weights classify right, measured once per store."""
        from ece662.model import from_canonical
        from ece662.pruning_helper import predict

        data = self.dataset()
        labels = np.asarray(data["y_test"])
        name = key("correct", self._digest("test", data["X_test"], data["y_test"]), state)
        found = self.store.train(name, {"correct": labels.shape},  # kept as weights are: one float array
                                 lambda: {"correct": predict(from_canonical(state), data["X_test"]) == labels})
        return found["correct"] > 0.5

    def recipe(self, framework: str):
        """``run(kind, start)``: Part 4's recipe from canonical weights ``start`` in ``framework``, on the grader's
        own training images, run once per store (``autograder/worker/recipe.py``)."""
        from autograder.worker import recipe

        def run(kind: str, start: dict) -> dict:
            data, course_file = self.dataset(), self.course_file(framework)
            X, y = data["X_train"][:PART4.images], data["y_train"][:PART4.images]
            course = hashlib.sha256(course_file.read_bytes()).hexdigest()
            name = key(kind, start, self._digest("part4", X, y), framework, repr(PART4), course)
            shapes = {k: tuple(v.shape) for k, v in start.items()}
            return self.store.train(name, shapes, lambda: recipe.run(kind, start, framework, course_file, X, y))
        return run

    def _digest(self, name: str, images, labels) -> str:
        cache = self.__dict__.setdefault("_digests", {})
        if name not in cache:
            cache[name] = data_digest(images, labels)
        return cache[name]


def _load(folder: Path, item, shapes: dict):
    """(checks' view of the item, its framework)."""
    if item.kind == "trace":
        levels, states, error, framework = evidence.read_trace(folder, item, shapes)
        return checks.Trace(levels, states, error), framework
    if item.kind == "model":
        return evidence.read_model(folder, item, shapes)
    if item.kind == "compact":
        return evidence.read_compact(folder, item, shapes)
    return evidence.read_results(folder, item), None


def verify(evidence_dir: Path, cell_status: dict, trusted: TrustedData, figures: dict | None = None) -> dict:
    """{grade_id: Verdict} for every autograded test. ``cell_status``: grade_id -> RAN or why it did not run;
    ``figures``, if given, receives what the checks measured for the class pages."""
    reference = trusted.original("torch")
    shapes = {k: tuple(v.shape) for k, v in reference.items()}
    needed = {item.name: item for t in registry.TESTS if cell_status.get(t.grade_id) == RAN for item in t.evidence}
    items, problems, frameworks = {}, {}, set()
    for name, item in needed.items():
        try:
            items[name], framework = _load(Path(evidence_dir), item, shapes)
        except evidence.EvidenceError as exc:
            problems[name] = str(exc)
            continue
        if framework:
            frameworks.add(framework)
    framework = next(iter(frameworks), "torch")
    if len(frameworks) > 1:
        problems.update({name: "was recorded with both PyTorch and TensorFlow models: use one `mode` throughout"
                         for name in items})
    original = reference
    if framework != "torch":
        try:
            original = trusted.original(framework)
        except (OSError, ValueError):
            problems.update({name: f"was recorded in {framework} mode, which this course does not grade: use "
                                   "mode='torch'" for name in items})
    ctx = checks.Context(original, items, problems, trusted.accuracy, trusted.recipe(framework), framework,
                         trusted.correct)

    verdicts = {}
    for test in registry.TESTS:
        status = cell_status.get(test.grade_id)
        if status != RAN:
            verdicts[test.grade_id] = Verdict(False, f"This test cell did not run to the end: {status or 'not run'}.")
            continue
        try:
            measured = checks.run(test.grade_id, ctx)
            verdicts[test.grade_id] = Verdict(True, f"{PASSED}: {measured}" if measured else PASSED)
        except AssertionError as exc:
            verdicts[test.grade_id] = Verdict(False, str(exc)[:MAX_MESSAGE_CHARS])
        except Exception:  # a bug in a check must cost no one their other tests, nor show grader internals
            logging.getLogger(__name__).exception("checking %s failed", test.grade_id)
            verdicts[test.grade_id] = Verdict(False, "This test could not be checked because of an error in the "
                                                     "grader; your instructor has the details.")
    if figures is not None:
        figures.update(ctx.figures)
    return verdicts


def verdict_output(verdict: Verdict) -> NotebookNode:
    if verdict.passed:
        return NotebookNode(output_type="stream", name="stdout", text="Test passed.\n")
    return NotebookNode(output_type="error", ename="TestFailed", evalue=verdict.message,
                        traceback=[f"TestFailed: {verdict.message}"])


class ApplyVerdicts(NbGraderPreprocessor):
    """After the kernel is gone: verify the evidence and make each autograded cell's outputs its verdict (the
    verdicts and the verifier's timing also go to ``resources``). Unset paths default to the grader's own
    environment: its course model folder, its dataset and ``evidence/`` beside the notebook."""

    model_dir = Unicode("", help="the grader's course model folder").tag(config=True)
    data_root = Unicode("", help="the grader's dataset folder").tag(config=True)
    evidence_dir = Unicode("", help="the folder the kernel recorded evidence in").tag(config=True)
    store_dir = Unicode("", help="a folder of measurements and recipe runs shared with other workers "
                                 "(autograder/worker/measurements.py); only where no kernel can write it"
                        ).tag(config=True)

    def _trusted(self) -> TrustedData:
        from ece662 import data_utils
        from ece662.paths import model_path

        return TrustedData(Path(self.model_dir or model_path("torch").parent),
                           Path(self.data_root or data_utils.dataset_root()),
                           Store(self.store_dir or None))

    def preprocess(self, nb, resources):
        folder = Path(self.evidence_dir or Path(resources.get("metadata", {}).get("path", ".")) / "evidence")
        started, trusted = time.monotonic(), self._trusted()
        figures = resources["ece662_figures"] = {}
        verdicts = resources["ece662_verdicts"] = verify(folder, resources.get("ece662_cell_status", {}), trusted,
                                                         figures)
        resources.setdefault("ece662_timing", {}).update(verify_s=round(time.monotonic() - started, 2),
                                                         measurements_made=trusted.store.made,
                                                         measurements_reused=trusted.store.reused)
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if cell.cell_type == "code" and registry.is_autograded(gid):
                cell.outputs = [verdict_output(verdicts[gid])]
        return nb, resources


class SaveRunReport(NbGraderPreprocessor):
    """The step after ApplyVerdicts: save what it and LimitedExecute recorded in ``resources`` for the worker,
    and tell the course run that the notebook is verified."""

    report_file = Unicode("", help="where to save the RunReport").tag(config=True)
    progress_fd = Integer(-1, help="a pipe to which 'verified' is written once it is").tag(config=True)

    def preprocess(self, nb, resources):
        tell_progress(self.progress_fd, VERIFIED)
        if self.report_file:
            RunReport(resources["ece662_verdicts"], resources.get("ece662_cell_status", {}),
                      resources.get("ece662_events", []), resources.get("ece662_timing", {}),
                      resources.get("ece662_figures", {})).save(Path(self.report_file))
        return nb, resources


@dataclass
class RunReport:
    """What the verifier and LimitedExecute found, for the worker: verdicts, each graded cell's status, the
    events (time limits, kernel deaths, memory errors) and timings."""
    verdicts: dict  # grade id -> Verdict
    cell_status: dict
    events: list
    timing: dict
    figures: dict = field(default_factory=dict)  # what the verifier measured for the class pages

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> "RunReport":
        data = json.loads(Path(path).read_text())
        return cls(**dict(data, verdicts={k: Verdict(**v) for k, v in data["verdicts"].items()}))
