"""The worker's answer to a graded kernel's measurement requests (``ece662/measurement_requests.py``).

While the kernel runs, a thread of the worker (trusted code, outside the
sandbox) watches the request folder the kernel may write to. Each request is
read like evidence: no links, no special files, a size cap, exactly the
course model's float32 shapes, finite values. The service measures it on the
grader's own test images (``TrustedData``) and so puts the value into the
shared store, where the kernel and, later, the verifier look it up. The
kernel only chooses *which* weights get measured, never the value: a request
for other images, a malformed one, or one over the limit per notebook is
refused and the kernel measures for itself.
"""
import logging
import os
import threading
from pathlib import Path

from ece662 import evidence
from ece662.measurement_requests import POLL_S, REFUSED, SERVING, parse_name

from .verify import TrustedData

_NO_FOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0)
MAX_REQUESTS = 64  # a notebook needs about 15; more are refused (the kernel measures them itself)


class MeasurementService:
    """Answers the requests that appear in ``folder`` (created here) until the context exits."""

    def __init__(self, folder: Path, trusted: TrustedData, limit: int = MAX_REQUESTS):
        self.folder, self.trusted, self.limit = Path(folder), trusted, limit
        self.answered, self.refused = 0, 0
        self._seen: set[str] = set()
        self._shapes = None  # the course model's, read at the first request
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="measurement-service", daemon=True)

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        # The kernel can write where the folder lies: everything goes through this descriptor, so a folder it
        # replaced by a link is never followed, and markers are created without following links.
        self._fd = os.open(self.folder, _NO_FOLLOW_DIR)
        self._create(SERVING)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        try:
            os.unlink(SERVING, dir_fd=self._fd)
        except OSError:
            pass
        self._stop.set()
        self._thread.join()
        os.close(self._fd)

    def _create(self, name: str) -> None:
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=self._fd))
        except OSError:  # there already (the kernel put something there): the kernel will wait, then measure
            pass

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                names = [e.name for e in os.scandir(self._fd) if e.name not in self._seen]
            except OSError:
                names = []
            for name in sorted(names):
                self._seen.add(name)
                parsed = parse_name(name)
                if parsed is not None:
                    self._answer(*parsed)
            self._stop.wait(POLL_S)

    def _answer(self, images: str, item) -> None:
        import torch

        if self.answered + self.refused >= self.limit or images != self.trusted.evaluator().digests["accuracy"]:
            return self._refuse(item)
        try:
            if self._shapes is None:
                self._shapes = {k: tuple(v.shape) for k, v in self.trusted.original("torch").items()}
            state, framework = evidence.read_model(self.folder, item, self._shapes)
            if framework != "torch":
                return self._refuse(item)
            self.trusted.accuracy({k: torch.from_numpy(v) for k, v in state.items()})
            self.answered += 1
        except evidence.EvidenceError:
            self._refuse(item)
        except Exception:  # a bug here must not stop grading: the kernel measures for itself
            logging.getLogger(__name__).exception("answering %s failed", item.name)
            self._refuse(item)

    def _refuse(self, item) -> None:
        self.refused += 1
        self._create(f"{item.name}{REFUSED}")
