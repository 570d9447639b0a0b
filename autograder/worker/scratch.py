"""The only folder a student's kernel writes: capped while the kernel runs, gone without a walk afterwards.

Linux: ``private_tmpfs`` gives the worker process a mount namespace of its
own (a user namespace too when it is not root) and mounts a tmpfs there
with a size quota and a file-count limit. The kernel's working folder, its
evidence and its sockets live in it; nothing outside the worker's namespace
sees it, and when the worker exits the kernel drops it: no trusted code ever
lists, copies or deletes what the kernel wrote, however many files, links or
folder levels that is.

Elsewhere (no namespaces: macOS, a container without them) the folder is a
plain temporary folder, and ``remove_tree`` deletes it afterwards in bounded
work: one pass over the entries, no recursion, no link followed.
"""
import ctypes
import os
import sys
import tempfile
from pathlib import Path

SCRATCH_BYTES = 512 * 2**20  # the notebook's evidence is about 40 MB
SCRATCH_FILES = 10_000
PREFIX = "ece662-scratch-"

_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 2, 4, 1 << 14, 1 << 18
_MNT_DETACH = 2
_NO_FOLLOW_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _libc_call(name: str, *args) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")


def _own_mount_namespace() -> None:
    """Enter a new mount namespace (root), or a new user and mount namespace mapping this user to itself."""
    uid, gid = os.getuid(), os.getgid()
    try:
        _libc_call("unshare", _CLONE_NEWNS)  # root in the host's user namespace
    except OSError:
        _libc_call("unshare", _CLONE_NEWNS | _CLONE_NEWUSER)
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    _libc_call("mount", b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)  # our mounts stay ours


def private_tmpfs(size: int = SCRATCH_BYTES, files: int = SCRATCH_FILES) -> Path | None:
    """A tmpfs of at most ``size`` bytes and ``files`` inodes that only this process and its children see, or
    None where this system cannot make one. Call it while the process has a single thread (before torch)."""
    if not sys.platform.startswith("linux"):
        return None
    folder = Path(tempfile.mkdtemp(prefix=PREFIX))
    try:
        _own_mount_namespace()
        options = f"size={size},nr_inodes={files},mode=0711".encode()
        _libc_call("mount", b"tmpfs", str(folder).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options)
    except OSError:
        folder.rmdir()
        return None
    return folder


def unmount(folder: Path) -> None:
    """Drop a ``private_tmpfs`` (its files go with it) and its mount point."""
    try:
        _libc_call("umount2", str(folder).encode(), _MNT_DETACH)
        os.rmdir(folder)
    except OSError:
        pass  # the namespace drops the tmpfs when this process exits; only the empty mount point stays


def remove_tree(path: Path) -> None:
    """Delete ``path`` and everything under it without following a link, without recursion, in work linear in
    the number of entries: each folder met is first moved up to ``path`` itself, so no chain of open folders
    grows with the depth of the tree (a 100,000-level tree is no deeper to this than a flat one)."""
    path = Path(path)
    try:
        top = os.open(path, _NO_FOLLOW_DIR)
    except FileNotFoundError:
        return
    except OSError:  # a file, or a link where a folder was expected: remove it, never a link's target
        os.unlink(path)
        return
    token, moved = os.urandom(8).hex(), 0
    try:
        pending = [None]  # None: the top itself; else names of the folders moved up into it
        while pending:
            name = pending.pop()
            if name is not None:
                os.chmod(name, 0o700, dir_fd=top)  # a folder the kernel made unreadable or read-only
            folder = top if name is None else os.open(name, _NO_FOLLOW_DIR, dir_fd=top)
            try:
                os.fchmod(folder, 0o700)
                for entry in list(os.scandir(folder)):
                    if entry.is_dir(follow_symlinks=False):
                        moved += 1
                        flat = f".ece662-removing-{token}-{moved}"
                        os.rename(entry.name, flat, src_dir_fd=folder, dst_dir_fd=top)
                        pending.append(flat)
                    else:
                        os.unlink(entry.name, dir_fd=folder)
            finally:
                if folder != top:
                    os.close(folder)
            if name is not None:
                os.rmdir(name, dir_fd=top)
    finally:
        os.close(top)
    os.rmdir(path)
