"""Test helpers: ``python -m autograder formgrade OUT`` running, and a page as a fresh headless Chromium shows it."""
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Formgrader:
    link: str  # the address ``formgrade`` printed
    base: str  # http://127.0.0.1:PORT
    token: str
    pid: int


@contextlib.contextmanager
def formgrader(out: Path):
    """``python -m autograder formgrade OUT`` running and answering; yields a Formgrader."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "autograder", "formgrade", str(out), "--port", str(port)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, link, seen = time.monotonic() + 120, None, []
        while link is None and time.monotonic() < deadline and server.poll() is None:
            seen.append(server.stdout.readline())
            link = re.search(r"http://127\.0\.0\.1:\d+/\S*\?token=[\w-]+", seen[-1])
        assert link, f"formgrade printed no link:\n{''.join(seen)}"
        token = link[0].rpartition("token=")[2]
        threading.Thread(target=server.stdout.read, daemon=True).start()  # its log must not fill the pipe
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:  # the link is printed before the server listens
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                break
            except OSError:
                assert server.poll() is None, "formgrade exited"
                time.sleep(0.3)
        yield Formgrader(link[0], base, token, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def chromium_dom(url: str, budget_ms: int = 8000) -> str:
    """The DOM of ``url`` after its scripts ran, from headless Chromium with a fresh profile (no cookies)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (Debian package chromium; `make test` installs it)")
    profile = tempfile.mkdtemp(prefix="ece662-chromium-")
    try:
        done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               "--disable-quic", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                               "--dump-dom", url], capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0 and "<body" in done.stdout, done.stderr[-2000:]
    return done.stdout
