"""The command line that starts a student's kernel: a memory limit, and a bubblewrap sandbox on Linux.

Inside the sandbox the kernel sees a read-only view of the system, the Python
installation, the ``ece662`` package, the dataset, its cache and the course
model, and nothing else: not the source notebooks, the gradebook, other
students' files or the instructor's home. It may write only to its own
scratch folder (the notebook's folder) and a private /var/tmp. It has no network
(it talks to nbgrader through Unix sockets in its runtime folder).
"""
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

KERNEL_NAME = "ece662-grading"
_SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"]
_SYSTEM_FILES = ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/fonts",
                 "/etc/alternatives"]
_KEPT_ENV = ["LANG", "LC_ALL", "CINIC10_DIR", "ECE662_CACHE_DIR", "ECE662_MODEL_DIR", "OMP_NUM_THREADS"]


@functools.lru_cache(maxsize=1)
def sandbox_unavailable_reason() -> str | None:
    """None if bubblewrap can sandbox kernels here, else why not."""
    if platform.system() != "Linux":
        return f"no sandbox on {platform.system()} (bubblewrap is Linux-only)"
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bubblewrap (bwrap) is not installed: `apt-get install bubblewrap`"
    probe = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()[:200]}"
    return None


def _python_dirs() -> list[Path]:
    return sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix)})


def kernel_argv(scratch: Path, runtime: Path, readable: list[Path], memory_mb: int, sandbox: bool) -> list[str]:
    """argv for a kernelspec: ipykernel under ``prlimit`` (address-space limit), inside bwrap if ``sandbox``."""
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
              "--HistoryManager.hist_file=:memory:"]
    if sandbox:
        bwrap = [shutil.which("bwrap"), "--unshare-all", "--die-with-parent", "--new-session",
                 "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--clearenv"]
        for path in _SYSTEM_DIRS + _SYSTEM_FILES:
            bwrap += ["--ro-bind-try", path, path]
        for path in [*_python_dirs(), *readable]:
            bwrap += ["--ro-bind", str(path), str(path)]
        bwrap += ["--bind", str(scratch), str(scratch), "--bind", str(runtime), str(runtime), "--chdir", str(scratch),
                  # the kernel's own temp space; then freeze everything else, including the folders bwrap
                  # made for the mount points (they lie on its /tmp when the grading folder is under /tmp)
                  "--tmpfs", "/var/tmp", "--remount-ro", "/", "--remount-ro", "/tmp"]
        env = {"HOME": "/var/tmp", "TMPDIR": "/var/tmp", "MPLCONFIGDIR": "/var/tmp/matplotlib",
               "IPYTHONDIR": "/var/tmp/ipython",
               "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "JUPYTER_RUNTIME_DIR": str(runtime),
               "NBGRADER_EXECUTION": "autograde"}
        env.update({key: os.environ[key] for key in _KEPT_ENV if key in os.environ})
        for key, value in env.items():
            bwrap += ["--setenv", key, value]
        kernel = bwrap + ["--"] + kernel
    return [shutil.which("prlimit") or "prlimit", f"--as={memory_mb * 2**20}", "--"] + kernel


def write_kernelspec(jupyter_dir: Path, argv: list[str]) -> None:
    """Install the grading kernelspec under ``jupyter_dir/kernels/`` (put ``jupyter_dir`` on JUPYTER_PATH)."""
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": "ECE 662 grading", "language": "python",
        "interrupt_mode": "message", "metadata": {"debugger": False},
    }, indent=1))
