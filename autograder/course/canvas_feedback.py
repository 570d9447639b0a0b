"""Feedback pages to students through Canvas: ``python -m autograder upload-feedback OUT --canvas-url URL
--course ID``.

Each student's feedback page (published afresh from the gradebook first, as ``export`` publishes it) is
attached to a comment on their submission of the assignment, through Canvas's REST API with ``canvasapi``
(``Submission.upload_comment``: Canvas's file upload, then the comment). The access token comes from the
environment variable ``CANVAS_API_TOKEN`` (Canvas: Account > Settings > New Access Token), never from the
command line. The Canvas assignment is the roster's column for this assignment ("Name (id)"),
or ``--assignment``.

The attached file's name holds a fingerprint of the page (``pruning-feedback-<12 hex digits>.html``): a
student whose submission already has a comment with that file is left alone, so a rerun uploads only the
pages that changed. A student whose total is not final (questions pending, or work without an automatic
grade) is skipped unless ``include_pending``. Every student gets one line saying what was done.
"""
import hashlib
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from autograder.course.publish import load_output, publish
from autograder.course.roster import ASSIGNMENT_COLUMN, load_roster
from autograder.grading_folder import GradingFolder
from autograder.nbgrader_course import ASSIGNMENT

TOKEN_VARIABLE = "CANVAS_API_TOKEN"
PAGE_PREFIX = f"{ASSIGNMENT}-feedback-"
UPLOADED, UNCHANGED, SKIPPED, FAILED, WOULD_UPLOAD = "uploaded", "unchanged", "skipped", "failed", "would upload"


@dataclass
class Upload:
    """What happened to one student's feedback page."""
    student: str
    canvas_id: str
    action: str  # UPLOADED, UNCHANGED, SKIPPED, FAILED or WOULD_UPLOAD (a dry run)
    detail: str


def page_name(page: bytes) -> str:
    """The attachment's name: changes exactly when the page does."""
    return f"{PAGE_PREFIX}{hashlib.sha256(page).hexdigest()[:12]}.html"


def canvas_assignment_id(roster, wanted: str | None) -> str:
    """The Canvas assignment id: ``wanted`` as a bare id, else the "(id)" of its roster column (default: the
    roster's column for this assignment)."""
    if wanted and wanted.isdigit():
        return wanted
    return ASSIGNMENT_COLUMN.fullmatch(roster.assignment_column(wanted, ASSIGNMENT)).group(1)


def _attachments(submission) -> list[str]:
    """The names of the files attached to the comments of a Canvas submission."""
    return [a.get("display_name") or a.get("filename") or "" for c in getattr(submission, "submission_comments", [])
            for a in c.get("attachments") or []]


def _course_assignment(canvas_url: str, course_id: str, assignment_id: str):
    from canvasapi import Canvas
    from canvasapi.exceptions import CanvasException

    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise ValueError(f"no Canvas access token: set the environment variable {TOKEN_VARIABLE} (Canvas: Account > "
                         "Settings > New Access Token); it is never taken from the command line")
    url = urlparse(canvas_url)
    if url.scheme != "https" and url.hostname not in ("127.0.0.1", "localhost"):
        raise ValueError(f"--canvas-url {canvas_url} is not an https:// address: the token must not travel in clear")
    try:
        course = Canvas(canvas_url, token).get_course(course_id)
        return course.get_assignment(assignment_id)
    except CanvasException as exc:
        raise RuntimeError(f"Canvas at {canvas_url} refused course {course_id}, assignment {assignment_id} ({exc}): "
                           "check the ids (they are in the assignment's Canvas address) and "
                           f"{TOKEN_VARIABLE}") from None


def upload_feedback(out: Path, canvas_url: str, course_id: str, assignment: str | None = None,
                    include_pending: bool = False, dry_run: bool = False, roster_file=None,
                    verbose: bool = True) -> list[Upload]:
    """Attach each student's current feedback page to a comment on their Canvas submission, once per version of
    the page; returns what happened to each student."""
    from canvasapi.exceptions import CanvasException

    folder = GradingFolder(out)
    collection, results = load_output(folder)
    roster = load_roster(roster_file, folder.roster)
    if roster is None:
        raise ValueError("upload-feedback needs the Canvas roster, for each student's Canvas id: pass --roster FILE "
                         "(the gradebook export) here or to grade")
    canvas_assignment = _course_assignment(canvas_url, course_id, canvas_assignment_id(roster, assignment))
    grades = publish(folder, collection, results, roster)  # the pages as the gradebook is now
    try:
        in_canvas = {str(s.user_id): s for s in canvas_assignment.get_submissions(include=["submission_comments"])}
    except CanvasException as exc:
        raise RuntimeError(f"Canvas at {canvas_url} did not list the assignment's submissions ({exc})") from None

    uploads = []
    with tempfile.TemporaryDirectory(prefix="ece662-feedback-") as tmp:
        for g in (g for g in grades if g.student and g.file):  # every submission: it has a page
            page = folder.feedback_page(g.student).read_bytes()
            name, submission = page_name(page), in_canvas.get(g.canvas_id)
            earlier = [a for a in _attachments(submission) if a.startswith(PAGE_PREFIX)] if submission else []
            if not g.canvas_id:
                done = Upload(g.student, "", SKIPPED, "not on the roster, so no Canvas user")
            elif submission is None:
                done = Upload(g.student, g.canvas_id, SKIPPED, "Canvas lists no submission of this user for the "
                                                               "assignment (not enrolled in the course?)")
            elif name in earlier:
                done = Upload(g.student, g.canvas_id, UNCHANGED, f"{name} is already in Canvas")
            elif g.total() is None and not include_pending:
                done = Upload(g.student, g.canvas_id, SKIPPED, f"no final total yet ({g.without_grade()}); "
                                                               "--include-pending uploads it anyway")
            elif dry_run:
                done = Upload(g.student, g.canvas_id, WOULD_UPLOAD, name)
            else:
                copy = Path(tmp) / g.student / name  # the attachment's name is the file's
                copy.parent.mkdir()
                copy.write_bytes(page)  # the bytes its name fingerprints
                try:
                    ok, response = submission.upload_comment(copy)
                except CanvasException as exc:
                    ok, response = False, exc
                done = Upload(g.student, g.canvas_id, UPLOADED, name + (
                    f" (its earlier feedback: {', '.join(earlier)})" if earlier else "")) if ok else \
                    Upload(g.student, g.canvas_id, FAILED, f"Canvas refused the upload: {str(response)[:200]}")
            uploads.append(done)
            if verbose:
                print(f"{done.student[:16]:16s} {done.canvas_id[:10]:>10s}  {done.action}: {done.detail}", flush=True)
    if verbose:
        counts = Counter(u.action for u in uploads)
        print("feedback to Canvas: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) if uploads else
              "feedback to Canvas: no submissions")
    return uploads
