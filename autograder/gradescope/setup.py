"""Image set-up inside the Gradescope container: ``python -m autograder.gradescope.setup`` (from setup.sh).

Runs as root with the fresh venv's Python and the standard library only. It
checks the shipped model and data against ``SHA256SUMS``, installs what
grading needs (a CPU-only PyTorch where download.pytorch.org is reachable,
else PyPI's CUDA build without triton and the other optional extras), copies
the ``ece662`` package with its model and data to ``/autograder/lib`` for the
kernel, creates the kernel's unprivileged user, locks ``/autograder/source``
(mode 0700) and checks that the kernel user can load the data and model but
cannot read the grading files. Nothing is downloaded but packages.
"""
import compileall
import hashlib
import json
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from autograder.worker.sandbox import USER_PREFIX

ROOT = Path("/autograder")
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# Requirements of PyPI's torch that CPU grading does not use: the compiler (triton), CUDA's Python bindings,
# and setuptools (only for building extensions). The CUDA libraries stay: torch's libraries link against them.
SKIPPED_TORCH_REQUIREMENTS = {"triton", "cuda-bindings", "setuptools"}
CHECKSUMS = "SHA256SUMS"


def _step(message: str) -> None:
    print(f"[setup] {message}", flush=True)


def verify_checksums(source: Path) -> int:
    """Check every file listed in ``source/SHA256SUMS``; returns how many. Raises naming a damaged file."""
    lines = (source / CHECKSUMS).read_text().splitlines()
    for line in lines:
        digest, name = line.split(maxsplit=1)
        path = source / name
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError as exc:
            raise SystemExit(f"{path} is missing ({exc}): rebuild autograder.zip and upload it again") from None
        if h.hexdigest() != digest:
            raise SystemExit(f"{path} does not match its checksum in {CHECKSUMS}: the upload is damaged; "
                             "rebuild autograder.zip and upload it again")
    return len(lines)


def _pip(*args: str, check: bool = True) -> bool:
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-input", "--progress-bar", "off", *args])
    if check and done.returncode != 0:
        raise SystemExit(f"pip install {' '.join(args)} failed (exit {done.returncode}); see the log above")
    return done.returncode == 0


def _name(requirement: str) -> str:
    head = requirement.split(";")[0].strip()
    for stop in "[<>=!~ (":
        head = head.split(stop)[0]
    return head.lower().replace("_", "-")


def torch_requirements() -> list[str]:
    """Requirements of the installed torch that grading needs (markers kept, optional ones left out)."""
    from importlib.metadata import requires

    return [r for r in requires("torch") or [] if "extra ==" not in r and _name(r) not in SKIPPED_TORCH_REQUIREMENTS]


def install_torch(requirement: str) -> str:
    """Install PyTorch, CPU-only if its index is reachable; returns which build."""
    if _pip("--no-deps", "--retries", "0", "--timeout", "30", "--index-url", CPU_TORCH_INDEX, requirement,
            check=False):
        build = "CPU-only build from download.pytorch.org"
    else:
        _pip("--no-deps", requirement)
        build = "PyPI's CUDA build (CPU use only; triton and CUDA's Python bindings skipped on purpose: " \
                "pip's warning that they are missing is expected)"
    _pip(*torch_requirements())
    return build


def _site_packages() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


def install_kernel_package(source: Path, lib: Path) -> None:
    """The kernel's copy of ``ece662`` (model and data inside) in ``lib``, found through a .pth file.

    The .pth also lists ``source`` first: root imports the grading code and its own copy of ``ece662`` from
    there; the kernel user cannot read ``source``, so Python skips it and finds ``lib``.
    """
    shutil.rmtree(lib / "ece662", ignore_errors=True)
    shutil.copytree(source / "ece662", lib / "ece662", ignore=shutil.ignore_patterns("__pycache__"))
    for path in [lib, *lib.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    compileall.compile_dir(str(lib), quiet=1)
    compileall.compile_dir(str(source), quiet=1)
    (_site_packages() / "ece662-grading.pth").write_text(f"{source}\n{lib}\n")


def create_user(name: str) -> int:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name).pw_uid


def lock_down(root: Path, source: Path) -> None:
    """Grading files root-only; results folder not writable by others; the rest traversable."""
    root.chmod(0o755)
    source.chmod(0o700)
    (root / "results").mkdir(exist_ok=True)
    (root / "results").chmod(0o755)


_KERNEL_CHECK = """
import os, sys
from ece662.data_utils import get_CINIC10_data
from ece662.pruning_helper import load_model, model_path
data = get_CINIC10_data(verbose=False)
load_model(model_path("torch"))
results, secrets = sys.argv[1], sys.argv[2:]
for secret in secrets:
    try:
        open(secret, "rb")
    except PermissionError:
        continue
    sys.exit(f"the kernel user can read {secret}")
if os.access(results, os.W_OK):
    sys.exit(f"the kernel user can write to {results}")
print("kernel user: data", {k: len(v) for k, v in data.items() if k.startswith("y_")}, "and model load;",
      "grading files unreadable, results not writable")
"""


def check_kernel_view(user: str, root: Path) -> None:
    """As the kernel user: data and model load; the gradebook and grading code cannot be read, nor results written."""
    uid = pwd.getpwnam(user).pw_uid
    gid = pwd.getpwnam(user).pw_gid
    secrets = [str(root / "source" / "gradebook.db"), str(root / "source" / "autograder" / "reference" / "torch.py")]
    done = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "env", "-i",
                           "HOME=/tmp", sys.executable, "-c", _KERNEL_CHECK, str(root / "results"), *secrets],
                          cwd="/")
    if done.returncode != 0:
        raise SystemExit(f"the kernel user {user} cannot use the installed course files (see above)")


def main(root: Path = ROOT) -> int:
    source = root / "source"
    settings = json.loads((source / "gradescope.json").read_text())
    _step(f"{verify_checksums(source)} shipped files match their checksums")
    _pip("--upgrade", "pip")  # the distribution's pip is old (Ubuntu 22.04: 22.0)
    _step(f"PyTorch: {install_torch(settings['torch_requirement'])}")
    _pip("-r", str(source / "requirements.txt"))
    install_kernel_package(source, root / "lib")
    user = settings["sandbox"].removeprefix(USER_PREFIX)
    _step(f"kernel user {user} (uid {create_user(user)})")
    lock_down(root, source)
    check_kernel_view(user, root)
    subprocess.run([sys.executable, "-c", "import autograder.worker.grade, autograder.gradescope.supervisor"], cwd="/", check=True)
    _step("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
