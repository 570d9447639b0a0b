"""The Gradescope bundle on a clean Debian root, exactly as Gradescope runs it (opt-in: ``make test-gradescope``).

A fresh copy of a Debian bookworm minbase root (made once with debootstrap
and cached) gets the bundle unzipped into /autograder/source; its own
setup.sh runs there (packages from Debian and PyPI only, nothing else
downloaded), then run_autograder grades each submission with no variables
set by the test. Each command runs in its own PID and mount namespace (like
a container: the kernel user's processes are the root's own). Checked: the
solution gets full marks, the blank release 0, a wrong example its exact
points, a notebook that leaves a detached process rewriting results.json its
real score, and an autosave in .ipynb_checkpoints is not graded.

Needs Linux, root, debootstrap (``apt-get install debootstrap``) and access
to deb.debian.org and PyPI (a CA the host's pip is told to trust, e.g. a
proxy's, is given to the root's pip too). About 10 minutes (setup.sh
installs about 5 GB, PyTorch included), plus a few minutes the first time
for debootstrap. Settings:

* ``ECE662_GS_CACHE``: folder for the base root (default
  ``~/.cache/ece662/gradescope-image``);
* ``ECE662_GS_MEMORY_MB`` / ``ECE662_GS_CPUS``: grade under these cgroup
  limits (e.g. 768 and 0.5, Gradescope's defaults), where cgroups allow it;
* ``ECE662_GS_KEEP=1``: keep the root afterwards (its path is printed).
"""
import json
import os
import platform
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from autograder.gradescope.bundle import build
from demo.examples import correct, insert_after, release_notebook, write_examples
from ece662.grading import registry

pytestmark = pytest.mark.gradescope_image

CACHE = Path(os.environ.get("ECE662_GS_CACHE") or "~/.cache/ece662/gradescope-image").expanduser()
MIRROR = "http://deb.debian.org/debian"
FULL = registry.autograded_total()

FORGER = r'''
import json, os, time
for secret in ("/autograder/source/gradebook.db", "/autograder/source/autograder/reference/torch.py"):
    try:
        open(secret).close()
        print("READ", secret)
    except OSError:
        print("cannot read", secret)
if os.fork() == 0:  # a detached grandchild that keeps writing full marks into results.json
    os.setsid()
    if os.fork() == 0:
        for _ in range(2400):
            try:
                with open("/autograder/results/results.json", "w") as f:
                    json.dump({"score": 999, "output": "forged", "tests": []}, f)
            except OSError:
                pass
            time.sleep(0.25)
        os._exit(0)
    os._exit(0)
'''


def _why_not() -> str | None:
    if platform.system() != "Linux" or os.geteuid() != 0:
        return "needs Linux and root (chroot, namespaces, a kernel user)"
    for tool in ("debootstrap", "unshare", "chroot"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install {tool})"
    return None


def _host_pip_ca() -> Path | None:
    """The CA bundle the host's pip trusts when it is told one (a proxy's); the root's pip gets the same."""
    for key in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(key) and Path(os.environ[key]).is_file():
            return Path(os.environ[key])
    return None


def base_root() -> Path:
    """A Debian bookworm minbase root, made once with debootstrap."""
    base = CACHE / "bookworm-minbase"
    if not (base / "etc" / "debian_version").is_file():
        tmp = CACHE / "bookworm-minbase.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(tmp), MIRROR], check=True,
                       stdout=subprocess.DEVNULL)
        tmp.rename(base)
    return base


class CleanRoot:
    """A throw-away copy of the base root; ``run`` executes a command in it like a container would."""

    def __init__(self, path: Path, cgroup: "LimitsCgroup | None" = None):
        self.path, self.cgroup = path, cgroup
        subprocess.run(["cp", "-a", str(base_root()), str(path)], check=True)
        shutil.copy("/etc/resolv.conf", path / "etc" / "resolv.conf")
        self.env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                    "LANG": "C.UTF-8"}
        self.setup_env = {}
        if ca := _host_pip_ca():
            shutil.copy(ca, path / "etc" / "host-pip-ca.pem")
            self.setup_env["PIP_CERT"] = "/etc/host-pip-ca.pem"

    def run(self, command: str, extra_env: dict | None = None, limited: bool = False,
            timeout: int = 3600) -> subprocess.CompletedProcess:
        env = " ".join(shlex.quote(f"{k}={v}") for k, v in {**self.env, **(extra_env or {})}.items())
        root = self.path
        inside = (f"mkdir -p {root}/dev/shm {root}/sys/fs/cgroup && mount -t tmpfs shm {root}/dev/shm && "
                  f"{{ mount --rbind /sys/fs/cgroup {root}/sys/fs/cgroup || true; }} && "
                  f"exec chroot {root} /usr/bin/env -i {env} /bin/bash -c {shlex.quote(command)}")
        argv = ["unshare", "--pid", "--fork", "--kill-child", f"--mount-proc={root}/proc", "--propagation",
                "private", "/bin/sh", "-c", inside]
        cgroup = self.cgroup if limited else None
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=cgroup.enter if cgroup else None)

    def size_mb(self, sub: str = "") -> float:
        out = subprocess.run(["du", "-sxm", str(self.path / sub.lstrip("/"))], capture_output=True, text=True)
        return float(out.stdout.split()[0])


class LimitsCgroup:
    """Cgroups (v1) that measure peak memory and CPU seconds, and limit them like Gradescope's container."""

    def __init__(self, memory_mb: int | None, cpus: float | None):
        self.dirs = []
        own = {line.split(":")[1]: line.split(":")[2] for line in Path("/proc/self/cgroup").read_text().splitlines()}
        wanted = {"memory": {"memory.limit_in_bytes": memory_mb * 2**20} if memory_mb else {},
                  "cpuacct": {},  # CPU seconds used: a busy host skews wall time
                  "cpu": {"cpu.cfs_period_us": 100000, "cpu.cfs_quota_us": int(cpus * 100000)} if cpus else None}
        for controller, settings in wanted.items():
            parent = Path("/sys/fs/cgroup") / controller / own.get(controller, "/").lstrip("/")
            if settings is None or not (parent / "cgroup.procs").is_file():
                continue
            folder = parent / f"ece662-gs-{os.getpid()}"
            folder.mkdir(exist_ok=True)
            for name, value in settings.items():
                (folder / name).write_text(str(value))
            self.dirs.append(folder)

    def enter(self) -> None:
        for folder in self.dirs:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def peak_mb(self) -> float | None:
        for folder in self.dirs:
            if (folder / "memory.max_usage_in_bytes").is_file():
                return int((folder / "memory.max_usage_in_bytes").read_text()) / 2**20
        return None

    def cpu_seconds(self) -> float | None:
        for folder in self.dirs:
            if (folder / "cpuacct.usage").is_file():
                return int((folder / "cpuacct.usage").read_text()) / 1e9
        return None

    def reset(self) -> None:
        for folder in self.dirs:
            for name in ("memory.max_usage_in_bytes", "cpuacct.usage"):
                if (folder / name).is_file():
                    (folder / name).write_text("0")

    def remove(self) -> None:
        for folder in self.dirs:
            folder.rmdir()


def _extract(archive: Path, target: Path) -> None:
    import zipfile

    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            Path(z.extract(info, target)).chmod(info.external_attr >> 16 & 0o777)


@pytest.fixture(scope="module")
def image(course_env, tmp_path_factory):
    """A clean root with the bundle set up by its own setup.sh."""
    if reason := _why_not():
        pytest.skip(reason)
    memory, cpus = os.environ.get("ECE662_GS_MEMORY_MB"), os.environ.get("ECE662_GS_CPUS")
    cgroup = LimitsCgroup(int(memory) if memory else None, float(cpus) if cpus else None)
    archive = build(tmp_path_factory.mktemp("bundle"), allow_small_dataset=True)  # the tiny dataset
    root = CleanRoot(tmp_path_factory.mktemp("gradescope") / "root", cgroup)  # limits apply to grading only
    base_mb = root.size_mb()
    _extract(archive, root.path / "autograder" / "source")
    started = time.monotonic()
    done = root.run("cd /autograder/source && bash ./setup.sh", extra_env=root.setup_env)
    print(done.stdout[-3000:], done.stderr[-3000:])
    assert done.returncode == 0, f"setup.sh failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    shutil.copy(root.path / "autograder/source/run_autograder", root.path / "autograder/run_autograder")
    print(f"\nsetup.sh: {time.monotonic() - started:.0f} s; bundle {archive.stat().st_size / 2**20:.1f} MiB; image "
          f"{root.size_mb() - base_mb:.0f} MB over the base root ({base_mb:.0f} MB), venv "
          f"{root.size_mb('autograder/venv'):.0f} MB")
    yield root
    cgroup.remove()
    if os.environ.get("ECE662_GS_KEEP"):
        print(f"kept the root at {root.path}")
    else:
        shutil.rmtree(root.path, ignore_errors=True)


def grade(root: CleanRoot, files: dict[str, object]) -> dict:
    """Run run_autograder on a submission folder holding ``files`` (relative path -> notebook)."""
    import nbformat

    for sub in ("submission", "results", "work"):
        shutil.rmtree(root.path / "autograder" / sub, ignore_errors=True)
    (root.path / "autograder" / "results").mkdir()
    for name, nb in files.items():
        path = root.path / "autograder" / "submission" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
    if root.cgroup:
        root.cgroup.reset()
    started = time.monotonic()
    done = root.run("/autograder/run_autograder", limited=True, timeout=900)
    seconds = time.monotonic() - started
    payload = json.loads((root.path / "autograder" / "results" / "results.json").read_text())
    peak, cpu = (root.cgroup.peak_mb(), root.cgroup.cpu_seconds()) if root.cgroup else (None, None)
    print(f"\n{list(files)}: {payload['score']:g}/{FULL:g} in {seconds:.0f} s"
          + (f", {cpu:.0f} CPU s" if cpu else "") + (f", peak memory {peak:.0f} MiB" if peak else "")
          + f"\n{payload['output']}\n{done.stdout[-2000:]}")
    return payload


def _scores(payload: dict) -> dict:
    return {t["name"].split(":")[0]: t["score"] for t in payload["tests"]}


def test_solution_gets_full_marks(image):
    payload = grade(image, {"pruning.ipynb": correct()})
    assert payload["score"] == FULL, payload["output"]
    assert "unprivileged user ece662-kernel" in payload["output"]


def test_blank_release_gets_zero(image):
    payload = grade(image, {"pruning.ipynb": release_notebook()})
    assert payload["score"] == 0 and len(payload["tests"]) == len(registry.TESTS)


def test_wrong_example_gets_its_exact_points(image, tmp_path):
    import nbformat

    write_examples(tmp_path, ["wrong_structured_hits_linear"])
    nb = nbformat.read(tmp_path / "wrong_structured_hits_linear.ipynb", as_version=4)
    payload = grade(image, {"pruning.ipynb": nb})
    assert payload["score"] == FULL - registry.test("test_part2_scope").points
    assert _scores(payload)["test_part2_scope"] == 0


def test_detached_forger_gets_its_real_score(image):
    payload = grade(image, {"pruning.ipynb": insert_after(release_notebook(), "setup", FORGER)})
    time.sleep(3)  # a surviving forger would have rewritten results.json by now
    again = json.loads((image.path / "autograder" / "results" / "results.json").read_text())
    assert again == payload and payload["score"] == 0
    graded = next(p for p in (image.path / "autograder" / "work").rglob("pruning.ipynb") if "autograded" in p.parts)
    printed = graded.read_text()  # what the forger's cell printed: it could not read the grading files
    assert "cannot read /autograder/source/gradebook.db" in printed and "READ /autograder" not in printed


def test_checkpoint_autosave_is_not_graded(image):
    payload = grade(image, {"pruning.ipynb": correct(),
                            ".ipynb_checkpoints/pruning-checkpoint.ipynb": release_notebook()})
    assert payload["score"] == FULL and "Graded notebook: `pruning.ipynb`" in payload["output"]
