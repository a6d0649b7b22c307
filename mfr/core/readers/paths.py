"""Paths a user gives: what they are, before anything is opened, and whether they stay in their tree.

- :func:`require_file` / :func:`require_dir`: the path is a regular file / a folder. A FIFO
  (opening it blocks for ever), a device (reads without end), a socket, a symlink loop, a
  folder where a file is expected: one line naming the path and what it is, before ``open``.
- :func:`relative_inside`: a path written in a file (a pair table, a labels file) that must
  stay inside the tree it is relative to: not empty, not absolute, no drive, no ``..``, no NUL
  byte. Checked on the text, so links inside the tree (a partition's ``data/`` links to the
  dataset) keep working; :func:`resolved_inside` also resolves the links, where a tree may
  hold none that leave it.
- :func:`name_part`: one file or folder name taken from a file (an MFR2 subject name): no
  separator, not ``.`` or ``..``.
- :func:`list_folder`: a folder's entries, sorted, each a file, a folder or something else;
  a name that is not UTF-8, a symlink loop, an entry that cannot be read is listed with the
  reason, never fatal.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from mfr.core.errors import InputError, MissingError, NotADirError, excerpt

_DRIVE = re.compile(r"^[A-Za-z]:")

__all__ = ["Entry", "file_kind", "leaves_tree", "list_folder", "name_part", "relative_inside",
           "require_dir", "require_file", "resolved_inside", "shown"]


def shown(name: str) -> str:
    """A name as text that can be written anywhere (undecodable bytes as \\xNN)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: "a regular file", "a folder", "a FIFO (named pipe)", ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _stat(path: Path, expected: str, what: str = "") -> os.stat_result:
    """``os.stat`` (links followed) with every failure one line: missing, a symlink loop, a
    permission, a name too long."""
    missing = f"{what} not found" if what else "not found"
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise MissingError(f"{shown(str(path))}: {missing} ({expected})") from None
    except NotADirectoryError:
        raise MissingError(f"{shown(str(path))}: {missing} (a part of it is a file; "
                           f"{expected})") from None
    except OSError as e:
        why = ("a symbolic link loop" if e.errno == errno.ELOOP else
               f"cannot be read ({e.strerror})")
        raise InputError(f"{shown(str(path))}: {why} ({expected})") from None
    except ValueError:  # an embedded NUL byte
        raise InputError(f"{excerpt(str(path))}: not a usable path (a NUL byte; "
                         f"{expected})") from None


def require_file(path: str | Path, expected: str = "expected a file",
                 what: str = "file") -> Path:
    """`path` as a Path, if it is a regular file (after links): MissingError
    ``"PATH: <what> not found (<expected>)"`` when absent, InputError naming what it is
    otherwise (``"is a folder, not a file"``, a FIFO, a device, a symlink loop)."""
    p = Path(path)
    mode = _stat(p, expected, what).st_mode
    if not stat.S_ISREG(mode):
        raise InputError(f"{shown(str(p))}: is {file_kind(mode)}, not a file ({expected})")
    return p


def require_dir(path: str | Path, expected: str = "expected a folder",
                what: str = "folder") -> Path:
    """`path` as a Path, if it is a folder (after links): MissingError
    ``"PATH: <what> not found (<expected>)"`` when absent, NotADirError naming what it is
    otherwise."""
    p = Path(path)
    mode = _stat(p, expected, what).st_mode
    if not stat.S_ISDIR(mode):
        raise NotADirError(f"{shown(str(p))}: is {file_kind(mode)}, not a folder ({expected})")
    return p


def relative_inside(rel: str, where: str, what: str = "path") -> str:
    """`rel`, a path read from a file (`where`: "FILE: line N"), if it stays inside the tree it
    is relative to: InputError for an empty path, an absolute one, a drive, ``..`` or a NUL
    byte. Returned as written (the caller's key)."""
    if not isinstance(rel, str) or not rel.strip():
        raise InputError(f"{where}: an empty {what} (expected a path relative to its tree)")
    if "\0" in rel:
        raise InputError(f"{where}: {what} {excerpt(rel)} holds a NUL byte")
    if leaves_tree(rel):
        raise InputError(f"{where}: {what} {excerpt(rel)} points outside its tree (expected a "
                         f"relative path without '..')")
    return rel


def leaves_tree(rel: str) -> bool:
    """Whether relative path `rel` (``/`` or ``\\`` separated) is absolute, has a drive
    (``C:``, ``\\\\server``) or a ``..`` part: string operations only (a pair table has
    millions of paths; pathlib takes microseconds each)."""
    posix = rel.replace("\\", "/")
    return (posix.startswith("/") or _DRIVE.match(rel) is not None
            or ".." in posix.split("/"))


def resolved_inside(root: str | Path, rel: str, where: str, what: str = "path") -> Path:
    """``root / rel`` resolved (links followed), if it is still inside `root` resolved;
    InputError otherwise (:func:`relative_inside` is checked first)."""
    relative_inside(rel, where, what)
    base = Path(root).resolve()
    try:
        full = (base / rel).resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop on the way
        raise InputError(f"{where}: {what} {excerpt(rel)} cannot be resolved ({e})") from None
    if full != base and base not in full.parents:
        raise InputError(f"{where}: {what} {excerpt(rel)} leads outside {base} (a link "
                         f"to {full})")
    return full


def name_part(name: str, where: str, what: str = "name") -> str:
    """`name` (read from a file) if it can be one file or folder name: InputError for an empty
    name, ``.``, ``..``, a separator or a NUL byte."""
    if (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name):
        raise InputError(f"{where}: {what} {excerpt(name)} is not a file or folder name "
                         f"(expected no '/', '\\', '..')")
    return name


@dataclass(frozen=True)
class Entry:
    """One entry of a folder: its `name`, its `path` and what it is (`kind`: "file", "dir"
    or "other"; links followed)."""

    name: str
    path: Path
    kind: str


def list_folder(folder: str | Path, hidden: bool = False) -> tuple[list[Entry], list[tuple[str, str]]]:
    """The entries of `folder` sorted by name, and ``(name, reason)`` for each one passed over:
    a name that is not UTF-8, a symlink loop or a dangling link, an entry that cannot be
    read. Hidden names (a leading dot) are skipped unless `hidden`. A folder that cannot be
    listed at all is one entry of the second list (name ``""``), never an exception."""
    folder = Path(folder)
    entries: list[Entry] = []
    skipped: list[tuple[str, str]] = []
    try:
        with os.scandir(folder) as it:
            found = sorted(it, key=lambda e: e.name)
    except OSError as e:
        why = "a symbolic link loop" if e.errno == errno.ELOOP else e.strerror or str(e)
        return [], [("", f"folder cannot be listed ({why})")]
    for e in found:
        if not hidden and e.name.startswith("."):
            continue
        try:
            e.name.encode("utf-8")
        except UnicodeEncodeError:
            skipped.append((shown(e.name), "name is not valid UTF-8"))
            continue
        try:
            mode = os.stat(e.path).st_mode
        except FileNotFoundError:
            skipped.append((e.name, "a link to nothing (dangling)"))
            continue
        except OSError as err:
            skipped.append((e.name, f"a symbolic link loop ({err.strerror})" if err.errno == errno.ELOOP
                            else f"unreadable ({err.strerror})"))
            continue
        kind = "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
        if kind == "other":
            skipped.append((e.name, f"{file_kind(mode)}, not a file or folder"))
            continue
        entries.append(Entry(e.name, Path(e.path), kind))
    return entries, skipped
