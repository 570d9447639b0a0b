"""Manual grading in nbgrader's formgrader, straight from a grading output folder.

The output folder is an nbgrader course: ``gradebook.db`` (every submission),
``autograded/<student>/<assignment>/<notebook>.ipynb`` (the graded notebooks)
and ``nbgrader_config.py`` (this course's settings; nbgrader's own feedback,
if someone generates it from formgrader, hides the hidden tests and goes to
``nbgrader_feedback/``). ``python -m autograder formgrade OUT`` starts a
Jupyter server on localhost with a fresh token and prints the manual grading
page's address.
"""
import os
import secrets
import socket
from pathlib import Path

from autograder.nbgrader_course import ASSIGNMENT, NOTEBOOK, ensure_tools_on_path

CONFIG_FILE = "nbgrader_config.py"
CONFIG_TEXT = '''\
# nbgrader settings for this grading output folder, written by `python -m autograder grade`.
# The folder is an nbgrader course (gradebook.db, autograded/): `python -m autograder formgrade .` grades it by hand.
from pathlib import Path

from autograder.nbgrader_course import graded_course_config

c = get_config()  # noqa: F821 (provided by nbgrader)
c.merge(graded_course_config(Path(__file__).parent))
'''


def write_course_config(out: Path) -> Path:
    path = Path(out) / CONFIG_FILE
    path.write_text(CONFIG_TEXT)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grading_url(port: int, token: str) -> str:
    return f"http://127.0.0.1:{port}/formgrader/gradebook/{ASSIGNMENT}/{Path(NOTEBOOK).stem}?token={token}"


def serve(out: Path, port: int = 0) -> None:
    """Run formgrader on ``out`` until interrupted (Ctrl-C)."""
    from jupyter_server.serverapp import ServerApp

    out = Path(out).resolve()
    if not (out / "gradebook.db").is_file() or not (out / "autograded").is_dir():
        raise FileNotFoundError(f"{out} is not a grading output folder (no gradebook.db or autograded/): "
                                "run `python -m autograder grade SUBMISSIONS --out FOLDER` first")
    write_course_config(out)
    ensure_tools_on_path()
    port, token = port or _free_port(), secrets.token_urlsafe(24)
    os.chdir(out)  # formgrader reads nbgrader_config.py from the working folder
    argv = [f"--ServerApp.root_dir={out}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", "--ServerApp.open_browser=False", f"--IdentityProvider.token={token}",
            "--ServerApp.jpserver_extensions=nbgrader.server_extensions.formgrader=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--ServerApp.allow_root=True")  # containers often run as root
    print(f"Manual grading (formgrader) for {out}:\n    {grading_url(port, token)}\nStop with Ctrl-C.", flush=True)
    ServerApp.launch_instance(argv=argv)
