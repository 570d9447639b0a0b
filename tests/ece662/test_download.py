"""The CINIC-10 download over real HTTP on 127.0.0.1, with a tarball built here."""
import gzip
import hashlib
import http.server
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from ece662.datasets.download import DownloadError, download_cinic10


def build_tarball(src: Path, out: Path, wrap: str | None = "CINIC-10") -> bytes:
    with tarfile.open(out, "w:gz") as tar:
        for split in ("train", "valid", "test"):
            tar.add(src / split, arcname=f"{wrap}/{split}" if wrap else split)
    return out.read_bytes()


class Server:
    """Serves fixed bytes at /CINIC-10.tar.gz; ``truncate`` announces the full length but sends less."""

    def __init__(self, payload: bytes, truncate: int | None = None):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()

            def do_GET(self):
                self.do_HEAD()
                outer.requests += 1
                try:
                    self.wfile.write(payload[:truncate] if truncate else payload)
                except (BrokenPipeError, ConnectionResetError):  # a client that only probes for redirects
                    pass

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/CINIC-10.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tarball(tiny_root, tmp_path):
    data = build_tarball(tiny_root, tmp_path / "built.tar.gz")
    return data, hashlib.md5(data).hexdigest()


def test_download_verifies_extracts_and_loads(tarball, tmp_path):
    payload, md5 = tarball
    server = Server(payload)
    try:
        root = download_cinic10(tmp_path / "datasets" / "cinic-10", url=server.url, md5=md5)
    finally:
        server.close()
    assert sorted(p.name for p in root.iterdir()) >= ["test", "train", "valid"]
    assert not list((tmp_path / "datasets").glob("*.tar.gz*"))  # archive removed, no .part left
    from ece662.data_utils import get_CINIC10_data

    assert len(get_CINIC10_data(root=root, verbose=False)["y_test"]) == 400


def test_corrupted_download_is_rejected_and_leaves_nothing(tarball, tmp_path):
    payload, md5 = tarball
    corrupted = bytearray(payload)
    corrupted[len(corrupted) // 2] ^= 0xFF
    server = Server(bytes(corrupted))
    target = tmp_path / "datasets" / "cinic-10"
    try:
        with pytest.raises(DownloadError, match="Nothing was kept"):
            download_cinic10(target, url=server.url, md5=md5)
    finally:
        server.close()
    assert not target.exists()
    assert list((tmp_path / "datasets").iterdir()) == []


def test_interrupted_download_is_rejected(tarball, tmp_path):
    payload, md5 = tarball
    server = Server(payload, truncate=len(payload) // 3)
    target = tmp_path / "datasets" / "cinic-10"
    try:
        with pytest.raises(DownloadError):
            download_cinic10(target, url=server.url, md5=md5)
    finally:
        server.close()
    assert not target.exists() and list((tmp_path / "datasets").iterdir()) == []


def test_archive_without_the_layout_is_rejected(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("not a dataset")
    archive = tmp_path / "junk.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "junk", arcname="junk")
    payload = archive.read_bytes()
    server = Server(payload)
    try:
        with pytest.raises(DownloadError, match="no train/, valid/ and test/"):
            download_cinic10(tmp_path / "out" / "cinic-10", url=server.url, md5=hashlib.md5(payload).hexdigest())
    finally:
        server.close()
    assert not (tmp_path / "out" / "cinic-10").exists()


def test_command_line_download_of_a_flat_archive(tiny_root, tmp_path):
    payload = build_tarball(tiny_root, tmp_path / "flat.tar.gz", wrap=None)  # train/ valid/ test/ at the top
    server = Server(payload)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ece662.datasets", "download", "--root", str(tmp_path / "d" / "cinic-10"),
             "--url", server.url, "--md5", hashlib.md5(payload).hexdigest()],
            capture_output=True, text=True, timeout=120)
        assert server.requests >= 1  # it really went over HTTP
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert "CINIC-10 is ready" in result.stdout
    assert (tmp_path / "d" / "cinic-10" / "valid" / "horse").is_dir()


def test_existing_dataset_is_not_overwritten(tarball, tmp_path):
    payload, md5 = tarball
    target = tmp_path / "cinic-10"
    (target / "train").mkdir(parents=True)
    server = Server(payload)
    try:
        with pytest.raises(DownloadError, match="not empty"):
            download_cinic10(target, url=server.url, md5=md5)
    finally:
        server.close()
    assert (target / "train").is_dir()


def test_archive_with_a_link_or_a_path_outside_is_refused(tiny_root, tmp_path):
    for name, kind in (("CINIC-10/train/airplane/x.png", tarfile.SYMTYPE), ("../outside.png", tarfile.REGTYPE)):
        archive = tmp_path / "evil.tar.gz"
        build_tarball(tiny_root, archive)
        with tarfile.open(tmp_path / "evil.tar", "w") as tar:
            with tarfile.open(archive) as good:
                for member in good.getmembers():
                    tar.addfile(member, good.extractfile(member) if member.isfile() else None)
            entry = tarfile.TarInfo(name)
            entry.type, entry.linkname = kind, "/etc/passwd"
            tar.addfile(entry)
        payload = gzip.compress((tmp_path / "evil.tar").read_bytes())
        server = Server(payload)
        try:
            with pytest.raises(DownloadError, match="which is not a file or folder inside it"):
                download_cinic10(tmp_path / "out" / "cinic-10", url=server.url, md5=hashlib.md5(payload).hexdigest())
        finally:
            server.close()
        assert not (tmp_path / "out" / "cinic-10").exists() and not (tmp_path / "outside.png").exists()
