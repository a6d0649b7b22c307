"""Folder locks: one process at a time writes a run folder or an image cache.

A folder's lock is ``flock(2)`` on a file beside it, ``<parent>/.<name>.lock``, where parent
and name are those of the folder's **real** path (symbolic links resolved: an alias of a folder
has the folder's lock). Chosen over the ``filelock`` package for two reasons: the lock file
must hold its holder's process id, host and start time (for the message a refused process
prints), which ``filelock``'s Unix lock truncates when a second process merely tries it; and
the lock file is removed on release, which needs the inode check below.

- **Atomic, and never stale.** The kernel grants the lock to one open file at a time and drops
  it when its holder's process ends, however it ends (killed included). A process that died
  holding a lock leaves only a file; the next process locks that file: there is no
  read-delete-create to race, and no process id to check for being alive.
- **Removed on release, safely.** The holder unlinks the file while it still holds the lock,
  then closes it. A process that locked the file just before it was unlinked finds that the
  path no longer names the file it holds (another inode, or none) and tries again, so two
  processes never hold locks on a folder at once.
- **Per process.** A process that holds a folder's lock and asks again keeps it (one lock,
  released once). Locks are not shared with threads or forks specially: mfr takes them in the
  process that writes.

:func:`acquire` refuses at once (``wait=False``: run folders, :class:`FolderLockedError`
naming the holder) or waits (``wait=True``: image caches, saying once on stderr whom it waits
for).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from mfr.core.errors import RunFolderError

__all__ = ["FolderLockedError", "acquire", "held", "holder", "lock_path", "locked", "release"]

#: lock file -> open descriptor holding the flock, for the locks this process holds
_HELD: dict[Path, int] = {}
#: flock's errors on a filesystem that has no file locks (some network and FUSE mounts)
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


class FolderLockedError(RunFolderError):
    """Another live process holds the folder's lock."""


def real_folder(folder: str | Path) -> Path:
    """The folder's real path: absolute, ``~`` expanded, every symbolic link resolved (the
    parts that exist; a folder not made yet is its real parent plus its name)."""
    return Path(os.path.realpath(Path(folder).expanduser()))


def lock_path(folder: str | Path) -> Path:
    """``<parent>/.<name>.lock`` of the folder's real path."""
    real = real_folder(folder)
    return real.parent / f".{real.name}.lock"


def held(folder: str | Path) -> bool:
    """Whether this process holds the folder's lock."""
    return lock_path(folder) in _HELD


def holder(path: Path) -> str:
    """Who holds the lock file `path`, as its holder wrote it: ``process PID [on HOST] since
    TIME`` (or "another process" when the file says nothing readable)."""
    try:
        pid, host, since = (path.read_text(encoding="utf-8").split() + ["", "", ""])[:3]
    except (OSError, UnicodeDecodeError):
        return "another process"
    if not pid.isdigit():
        return "another process"
    where = "" if host in ("", socket.gethostname()) else f" on {host}"
    return f"process {pid}{where}" + (f" since {since}" if since else "")


def acquire(folder: str | Path, *, wait: bool = False, what: str = "output folder") -> Path:
    """Take the folder's lock; returns the lock file.

    Held by another live process: ``wait=False`` raises :class:`FolderLockedError` naming it;
    ``wait=True`` says once on stderr whom it waits for and blocks until it is released.
    Held by this process: kept. The folder's parent cannot hold a file:
    :class:`~mfr.core.errors.RunFolderError` ("cannot write here")."""
    path = lock_path(folder)
    if path in _HELD:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunFolderError(f"{folder}: cannot write here ({path.parent}: {e.strerror}); "
                             f"choose another {what}") from None
    said = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise RunFolderError(f"{folder}: cannot write here ({path}: {e.strerror}); choose "
                                 f"another {what}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in _NO_LOCKS:  # a filesystem without file locks: said, not fatal
                    print(f"WARNING: {folder}: its filesystem has no file locks ({path}: "
                          f"{e.strerror}); written without one: run one mfr at a time here",
                          file=sys.stderr, flush=True)
                    _HELD[path] = fd
                    return path
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if not wait:
                    raise FolderLockedError(
                        f"{folder}: is being written by {holder(path)} (lock {path}); wait for "
                        f"it to finish, or choose another {what}") from None
                if not said:
                    print(f"mfr: {folder}: waiting for {holder(path)} to finish writing it "
                          f"(lock {path})", file=sys.stderr, flush=True)
                    said = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            if not _names(path, fd):
                os.close(fd)  # locked a file its holder removed as it released it: again
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()} "
                         f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        _HELD[path] = fd
        return path


def _names(path: Path, fd: int) -> bool:
    """Whether `path` still names the open file `fd`."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def release(folder: str | Path) -> None:
    """Release the folder's lock if this process holds it (the lock file is removed)."""
    path = lock_path(folder)
    fd = _HELD.pop(path, None)
    if fd is None:
        return
    try:
        if _names(path, fd):
            path.unlink()  # while still locked: see the module docstring
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(folder: str | Path, *, wait: bool = False, what: str = "output folder") -> Iterator[Path]:
    """The folder's lock for the block (released after it, unless this process held it
    already before the block)."""
    mine = held(folder)
    path = acquire(folder, wait=wait, what=what)
    try:
        yield path
    finally:
        if not mine:
            release(folder)
