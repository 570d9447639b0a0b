"""Manual grading in nbgrader's formgrader, straight from a grading output folder.

The output folder is an nbgrader course: ``gradebook.db`` (every submission),
``autograded/<student>/<assignment>/<notebook>.ipynb`` (the graded notebooks)
and ``nbgrader_config.py`` (this course's settings; nbgrader's own feedback,
if someone generates it from formgrader, hides the hidden tests and goes to
``nbgrader_feedback/``). ``python -m autograder formgrade OUT`` starts a
Jupyter server on localhost with a fresh token and prints the manual grading
page's address. The login cookie is set for the whole server (path ``/``), so
the page's calls to formgrader's API are logged in too, whatever page the link
opens. While it serves, ``OUT/formgrader.pid`` holds its process id:
``grade`` warns when it regrades a folder formgrader is serving.
"""
import os
import secrets
import socket
from pathlib import Path

from traitlets.config import Config

from autograder.grading_folder import GradingFolder
from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK_ID, base_config, ensure_tools_on_path, private_exchange

CONFIG_FILE = "nbgrader_config.py"
SERVING = "formgrader.pid"  # in the output folder while formgrader serves it
CONFIG_TEXT = '''\
# nbgrader settings for this grading output folder, written by `python -m autograder grade`.
# The folder is an nbgrader course (gradebook.db, autograded/): `python -m autograder formgrade .` grades it by hand.
from pathlib import Path

from autograder.course.formgrade import graded_course_config

c = get_config()  # noqa: F821 (provided by nbgrader)
c.merge(graded_course_config(Path(__file__).parent))
'''


def graded_course_config(root: Path) -> Config:
    """The grading output folder ``root`` as an nbgrader course (formgrader; nbgrader's own feedback goes to
    ``nbgrader_feedback/`` without hidden tests, ``feedback/`` holds the pages ``export`` writes)."""
    from autograder.course.hidden_tests import FEEDBACK_PREPROCESSORS

    root = Path(root).resolve()
    c = base_config(root, GradingFolder(root).gradebook)
    private_exchange(c, root)
    c.CourseDirectory.feedback_directory = "nbgrader_feedback"
    c.GenerateFeedback.preprocessors = FEEDBACK_PREPROCESSORS
    return c


def write_course_config(out: Path) -> Path:
    path = Path(out) / CONFIG_FILE
    path.write_text(CONFIG_TEXT)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grading_url(port: int, token: str) -> str:
    """The manual grading list: every submission of the notebook, with its score and what is left to grade."""
    return f"http://127.0.0.1:{port}/formgrader/gradebook/{ASSIGNMENT}/{NOTEBOOK_ID}?token={token}"


def serving_pid(out: Path) -> int | None:
    """The process id of a formgrader serving ``out`` now, else None."""
    try:
        pid = int((Path(out) / SERVING).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):  # no marker, a damaged one, or its process is gone
        return None
    return pid


def warn_if_served(out: Path) -> None:
    """Regrading replaces ``gradebook.db``: say so when formgrader serves ``out``."""
    if pid := serving_pid(out):
        print(f"WARNING: formgrader (process {pid}) is serving {out}: grading replaces its gradebook.db, so scores "
              f"saved in that formgrader from now on may be lost. Stop it (Ctrl-C in its terminal, or kill {pid}) "
              f"and start it again after grading: python -m autograder formgrade {out}", flush=True)


def serve(out: Path, port: int = 0) -> None:
    """Run formgrader on ``out`` until interrupted (Ctrl-C)."""
    from jupyter_server.serverapp import ServerApp

    out = Path(out).resolve()
    if not (GradingFolder(out).gradebook.is_file() and GradingFolder(out).autograded.is_dir()):
        raise FileNotFoundError(f"{out} is not a grading output folder (no gradebook.db or autograded/): "
                                "run `python -m autograder grade SUBMISSIONS --out FOLDER` first")
    write_course_config(out)
    ensure_tools_on_path()
    port, token = port or _free_port(), secrets.token_urlsafe(24)
    os.chdir(out)  # formgrader reads nbgrader_config.py from the working folder
    argv = [f"--ServerApp.root_dir={out}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", "--ServerApp.open_browser=False", f"--IdentityProvider.token={token}",
            # without a path, the browser scopes the login cookie to the folder of the first page opened
            '--IdentityProvider.cookie_options={"path": "/"}',
            "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--ServerApp.allow_root=True")  # containers often run as root
    marker = out / SERVING
    marker.write_text(str(os.getpid()))
    print(f"Manual grading (formgrader) for {out}:\n    {grading_url(port, token)}\nStop with Ctrl-C.", flush=True)
    try:
        ServerApp.launch_instance(argv=argv)
    finally:
        marker.unlink(missing_ok=True)
