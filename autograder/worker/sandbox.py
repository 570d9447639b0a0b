"""How a student's kernel is contained: the command line that starts it, its folders, and the sweep after it.

Three modes, named by a string the grading job carries:

* ``"bubblewrap"`` (Linux with working user namespaces): the kernel sees a
  read-only view of the system, the Python installation, the ``ece662``
  package, the dataset, its cache and the course model, and nothing else; it
  writes only to its scratch and runtime folders and has no network. It is
  PID 1 of its own PID namespace (no bubblewrap process beside it whose
  memory or environment it could read), runs as an unprivileged uid of its
  own user namespace with no capabilities, cannot make further user
  namespaces (so no tmpfs mounts of its own), and sees ``/proc/sys`` read-only.
* ``"user:<name>"`` (Linux, grader running as root; for containers such as
  Gradescope's where bubblewrap cannot create namespaces): the kernel runs as
  the unprivileged user ``<name>`` (a name or a numeric uid) through
  ``setpriv``, with no supplementary groups, no capabilities and no new
  privileges. It reads what that user may read (make the grading files
  private: mode 0700 or 0600), writes only its scratch and runtime folders
  (``prepare_kernel_folders``, run by the kernel command at each start),
  and everything it started is killed by ``sweep`` once the notebook has run.
* ``"none"``: no containment (macOS, Windows); the tamper guard is the only
  defence, and the kernel can read everything the grader's user can: its
  processes' environments (tokens exported in the shell), files and memory.

In every mode the kernel command starts from an empty environment (the
kernel gets ``_kernel_env``: the variables of ``_KEPT_ENV`` and its own
folders), enters the kernel's cgroup where there is one
(``autograder/worker/cgroup.py``), limits the address space (``prlimit --as``)
and offers the kernel to the OOM killer first (``choom``, where present).
"""
import functools
import json
import os
import platform
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

from autograder.worker import cgroup

KERNEL_NAME = "ece662-grading"
BUBBLEWRAP, NONE, USER_PREFIX = "bubblewrap", "none", "user:"  # the modes above (user: USER_PREFIX + its name)
# What a course run is asked for (``grade --sandbox``): bubblewrap where it works, bubblewrap or stop, no sandbox
AUTO, ON, OFF = "auto", "on", "off"
KERNEL_NPROC = 512  # processes and threads the kernel user may have (user mode): a fork bomb stops here
KERNEL_TMPFS_BYTES = 256 * 2**20  # each of the sandbox's RAM-backed folders (/tmp, /var/tmp, /dev/shm)
KERNEL_FILE_BYTES = 2**30  # the largest file a kernel may write: one notebook cannot fill the grader's disk
KERNEL_UID = 1000  # the kernel's uid inside bubblewrap's user namespace: not root, so it holds no capability
# Address space beyond the memory cap where a cgroup counts the kernel's memory: torch reserves about 3.2 GB of
# address space it never touches, and a single oversized allocation should still fail with a MemoryError
RESERVED_ADDRESS_SPACE_MB = 4096
_PROC_READ_ONLY = ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"]  # machine-wide knobs
_SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"]
_SYSTEM_FILES = ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/fonts",
                 "/etc/alternatives"]
_KEPT_ENV = ["LANG", "LC_ALL", "CINIC10_DIR", "ECE662_CACHE_DIR", "ECE662_MODEL_DIR", "OMP_NUM_THREADS",
             "ECE662_EVIDENCE_DIR"]


@functools.lru_cache(maxsize=1)
def sandbox_unavailable_reason() -> str | None:
    """None if bubblewrap can sandbox kernels here, else why not."""
    if platform.system() != "Linux":
        return f"no sandbox on {platform.system()} (bubblewrap is Linux-only)"
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bubblewrap (bwrap) is not installed: `apt-get install bubblewrap`"
    probe = subprocess.run([bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--as-pid-1",
                            "--die-with-parent", "--ro-bind", "/", "/", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()[:200]}"
    return None


def kernel_user(sandbox: str) -> str | None:
    """The user of a ``"user:<name>"`` mode, else None."""
    return sandbox[len(USER_PREFIX):] if sandbox.startswith(USER_PREFIX) else None


def _ids(user: str) -> tuple[int, int]:
    """(uid, gid) of a user name or numeric uid (a uid without a passwd entry gets the same number as gid)."""
    if user.isdigit():
        try:
            entry = pwd.getpwuid(int(user))
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            return int(user), int(user)
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"sandbox user {user!r} does not exist: create it (`useradd --system {user}`, as the "
                         "Gradescope setup.sh does) or name another mode") from None
    return entry.pw_uid, entry.pw_gid


def user_mode_unavailable_reason(user: str) -> str | None:
    """None if kernels can run as ``user`` here, else why not."""
    if platform.system() != "Linux":
        return f"no unprivileged-user mode on {platform.system()}"
    if os.geteuid() != 0:
        return "running kernels as another user needs the grader to run as root"
    for tool in ("setpriv", "prlimit"):
        if not shutil.which(tool):
            return f"{tool} (util-linux) is not installed: `apt-get install util-linux`"
    try:
        uid, _ = _ids(user)
    except ValueError as exc:
        return str(exc)
    if uid == 0:
        return f"sandbox user {user!r} is root"
    return None


def validate_mode(sandbox: str) -> str:
    """``sandbox`` if it is a mode this machine can use, else ValueError saying why not."""
    user = kernel_user(sandbox)
    reason = (user_mode_unavailable_reason(user) if user else
              sandbox_unavailable_reason() if sandbox == BUBBLEWRAP else
              None if sandbox == NONE else _unknown_mode(sandbox))
    if reason:
        raise ValueError(reason)
    return sandbox


def _unknown_mode(sandbox: str) -> str:
    return f"unknown sandbox mode {sandbox!r}: use '{BUBBLEWRAP}', '{USER_PREFIX}<name>' or '{NONE}'"


def describe(sandbox: str) -> str:
    """One line for reports: how kernels are contained."""
    if user := kernel_user(sandbox):
        uid, _ = _ids(user)
        return f"unprivileged user {user} (uid {uid}), no capabilities; leftover processes killed"
    if sandbox == BUBBLEWRAP:
        return "bubblewrap (read-only view, no network, no other process visible, grader's environment not passed)"
    return ("NONE: kernels run as the grader's user and can read its processes' environments (any token exported "
            "in the shell), memory and files; tamper guard only")


def describe_bounds(caps: cgroup.Caps, sandbox: str) -> str:
    """One line for reports: what bounds a kernel's share of the machine here."""
    if cgroup.unavailable_reason() is None:
        return cgroup.describe(caps)
    tmpfs = (f"tmpfs folders of {KERNEL_TMPFS_BYTES // 2**20} MiB each" if sandbox == BUBBLEWRAP and
             _bwrap_caps_tmpfs() else "tmpfs folders unbounded" if sandbox == BUBBLEWRAP else "the system's tmpfs")
    nproc = f"{KERNEL_NPROC} processes of its user" if kernel_user(sandbox) else "no process limit"
    return (f"{cgroup.unavailable_reason()}: only per process, an address space of {caps.memory_bytes // 2**20} MB "
            f"(memfd and tmpfs pages not counted); {tmpfs}; {nproc}")


def _python_dirs() -> list[Path]:
    return sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix)})


def kernel_home(runtime: Path) -> Path:
    """The kernel's HOME and TMPDIR in user mode (inside its runtime folder)."""
    return runtime / "home"


def _kernel_env(runtime: Path, home: str) -> dict:
    env = {"HOME": home, "TMPDIR": home, "MPLCONFIGDIR": f"{home}/matplotlib", "IPYTHONDIR": f"{home}/ipython",
           "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "JUPYTER_RUNTIME_DIR": str(runtime),
           "NBGRADER_EXECUTION": "autograde",
           "CUDA_VISIBLE_DEVICES": ""}  # no GPU: the grader runs Part 4's recipe on the CPU
    env.update({key: os.environ[key] for key in _KEPT_ENV if key in os.environ})
    return env


@functools.lru_cache(maxsize=1)
def _bwrap_caps_tmpfs() -> bool:
    """Whether this bubblewrap can size a tmpfs (``--size``, from 0.7; Ubuntu 22.04 ships 0.6)."""
    help_text = subprocess.run([shutil.which("bwrap"), "--help"], capture_output=True, text=True)
    return "--size" in help_text.stdout + help_text.stderr


def _bubblewrap_argv(scratch: Path, runtime: Path, readable: list[Path]) -> list[str]:
    # tmpfs is RAM the address-space limit does not count: each one is capped (bubblewrap >= 0.7)
    tmpfs = ["--size", str(KERNEL_TMPFS_BYTES), "--tmpfs"] if _bwrap_caps_tmpfs() else ["--tmpfs"]
    bwrap = [shutil.which("bwrap"), "--unshare-all", "--unshare-user", "--uid", str(KERNEL_UID), "--gid",
             str(KERNEL_UID), "--cap-drop", "ALL", "--disable-userns", "--as-pid-1", "--die-with-parent",
             "--new-session", "--proc", "/proc", "--dev", "/dev", *tmpfs, "/dev/shm", *tmpfs, "/tmp", *tmpfs,
             "/var/tmp", "--clearenv"]
    for path in _PROC_READ_ONLY:  # writable by a kernel whose uid maps to the grader's root otherwise
        bwrap += ["--ro-bind-try", path, path]
    for path in _SYSTEM_DIRS + _SYSTEM_FILES:
        bwrap += ["--ro-bind-try", path, path]
    for path in [*_python_dirs(), *readable]:
        bwrap += ["--ro-bind", str(path), str(path)]
    bwrap += ["--bind", str(scratch), str(scratch), "--bind", str(runtime), str(runtime), "--chdir", str(scratch),
              # /var/tmp (made first, so binds below it stay visible) is the kernel's own temp space; freeze
              # everything else, including the folders bwrap made for the mount points on its /tmp
              "--remount-ro", "/", "--remount-ro", "/tmp"]
    for key, value in _kernel_env(runtime, "/var/tmp").items():
        bwrap += ["--setenv", key, value]
    return bwrap + ["--"]


def _user_argv(user: str, scratch: Path, runtime: Path) -> list[str]:
    """As root, (re)make the kernel's folders and hand them and the connection file to ``user`` (nbgrader
    recreates the notebook's folder before each run); then setpriv drops to ``user`` for good, env empty."""
    uid, gid = _ids(user)
    prepare = [sys.executable, "-I", "-m", "autograder.worker.sandbox", "prepare-and-exec", f"{USER_PREFIX}{user}",
               str(scratch), str(runtime), "{connection_file}", "--"]
    drop = [shutil.which("setpriv"), f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
            "--no-new-privs", "--pdeathsig=KILL"]
    env = ["env", "-i", f"--chdir={scratch}",
           *(f"{k}={v}" for k, v in _kernel_env(runtime, str(kernel_home(runtime))).items())]
    return prepare + drop + ["--"] + env


def kernel_argv(scratch: Path, runtime: Path, readable: list[Path], memory_mb: int, sandbox: str,
                group: cgroup.KernelCgroup | None = None) -> list[str]:
    """argv for a kernelspec: ipykernel from an empty environment, in ``group`` (a cgroup, if any), under
    ``prlimit`` (address space), contained as ``sandbox`` says.

    ``scratch``: the kernel's working folder; ``runtime``: its sockets and connection file (and, outside
    bubblewrap, its HOME); ``readable``: what bubblewrap shows besides the system and Python. In user mode the
    command prepares its folders itself at each (re)start; call ``sweep`` after the notebook has run.
    """
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
              "--HistoryManager.hist_file=:memory:"]
    address_space_mb = memory_mb + (RESERVED_ADDRESS_SPACE_MB if group else 0)
    limits = [shutil.which("prlimit") or "prlimit", f"--as={address_space_mb * 2**20}", "--core=0",
              f"--fsize={KERNEL_FILE_BYTES}"]
    empty_env = [shutil.which("env") or "/usr/bin/env", "-i"]  # nothing of the grader's environment goes on
    if user := kernel_user(sandbox):
        kernel = _user_argv(user, scratch, runtime) + kernel
        limits.append(f"--nproc={KERNEL_NPROC}")
    elif sandbox == BUBBLEWRAP:
        kernel = _bubblewrap_argv(scratch, runtime, readable) + kernel
    elif sandbox == NONE:
        kernel_home(runtime).mkdir(parents=True, exist_ok=True)
        empty_env += [f"{k}={v}" for k, v in _kernel_env(runtime, str(kernel_home(runtime))).items()]
    else:
        raise ValueError(_unknown_mode(sandbox))
    oom_first = [choom, "-n", "1000", "--"] if (choom := shutil.which("choom")) else []
    return empty_env + cgroup.enter_argv(group) + limits + ["--"] + oom_first + kernel


def _traversable(folder: Path) -> None:
    """Let others pass through ``folder`` and its parents (x only: nothing becomes listable or readable)."""
    for path in [folder, *folder.parents]:
        mode = path.stat().st_mode
        if not mode & 0o001:
            path.chmod(mode | 0o001)


def prepare_kernel_folders(sandbox: str, scratch: Path, runtime: Path, connection_file: Path | None = None) -> None:
    """Create the kernel's writable folders; in user mode give them (and the connection file) to its user.

    The user-mode kernel command runs this itself at every kernel start; calling it earlier is harmless.
    The folders' parents become traversable (x, not r) so the user can reach them: keep everything else
    there private (umask 077).
    """
    home = kernel_home(runtime)
    for folder in (scratch, runtime, home):
        folder.mkdir(parents=True, exist_ok=True)
    user = kernel_user(sandbox)
    if not user:
        return
    uid, gid = _ids(user)
    for path in (scratch, runtime, home, *([connection_file] if connection_file else [])):
        os.chown(path, uid, gid)
        path.chmod(0o700 if path.is_dir() else 0o600)
        _traversable(path.parent)


def _pids_of(uid: int) -> list[int]:
    """Live (not zombie) processes with ``uid`` as real, effective or saved uid."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if uid in map(int, fields.get("Uid", "").split()[:3]) and not fields.get("State", "").strip().startswith("Z"):
            pids.append(int(status.parent.name))
    return pids


def kill_processes_of(user: str, rounds: int = 50) -> int:
    """SIGKILL every process of ``user`` (a name or uid), fork bombs included; returns how many were running.

    Each round a shell running as ``user`` calls ``kill -KILL -1``, which reaches every process of that
    user at once, so a process cannot escape by forking or by leaving its session. Needs root.
    """
    uid, gid = _ids(user)
    if uid == 0:
        raise ValueError("refusing to kill every process of root: the sandbox user must be unprivileged")
    found = 0
    for _ in range(rounds):
        pids = _pids_of(uid)
        if not pids:
            return found
        found = max(found, len(pids))
        subprocess.run([shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                        "/bin/sh", "-c", "kill -KILL -1"], env={}, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.02)
    if left := _pids_of(uid):
        raise RuntimeError(f"processes of {user} survived {rounds} kill rounds: {left[:10]}")
    return found


def sweep(sandbox: str) -> int:
    """Kill what a user-mode kernel left running (call after the notebook, before verifying); else 0."""
    user = kernel_user(sandbox)
    return kill_processes_of(user) if user else 0


def main(argv: list[str]) -> None:
    """``prepare-and-exec MODE SCRATCH RUNTIME CONNECTION_FILE -- COMMAND...`` (the user-mode kernel's first step)."""
    if len(argv) < 6 or argv[0] != "prepare-and-exec" or argv[5] != "--":
        sys.exit("usage: python -m autograder.worker.sandbox prepare-and-exec MODE SCRATCH RUNTIME CONNECTION_FILE -- CMD")
    mode, scratch, runtime, connection_file = argv[1], Path(argv[2]), Path(argv[3]), Path(argv[4])
    prepare_kernel_folders(mode, scratch, runtime, connection_file)
    os.execve(argv[6], argv[6:], {})  # setpriv and what it runs as the kernel's user get no variable of root's


def write_kernelspec(jupyter_dir: Path, argv: list[str]) -> None:
    """Install the grading kernelspec under ``jupyter_dir/kernels/`` (put ``jupyter_dir`` on JUPYTER_PATH)."""
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": "ECE 662 grading", "language": "python",
        "interrupt_mode": "message", "metadata": {"debugger": False},
    }, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
