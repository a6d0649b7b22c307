"""What made a run folder, and whether an existing folder may be reused, resumed or replaced.

Every step writes its outputs into one run folder, and that folder's ``run.json`` records:

- ``command``: the step (``partition``, ``embed``, ``train``, ...);
- ``fingerprint``: everything that determines the results: the settings that matter to this
  step and content fingerprints of its inputs (pair CSVs, the image cache's sources, the
  weights file, the dataset listing);
- ``status``: ``"running"`` from the moment the step claims the folder, ``"complete"`` when
  its last output is written;
- ``outputs``: the sha256 of each output file, on completion;
- the config and package versions (:func:`mfr.core.outputs.run_metadata`), and step details.

:func:`claim` is the one decision every step makes before any slow work:

=============================================  ======================================
the folder                                     outcome
=============================================  ======================================
absent or empty                                ``"new"``
same command, same fingerprint, complete       ``"complete"`` (up to date: skip)
same command, same fingerprint, running        ``"resume"`` (an interrupted run)
another command, another fingerprint           refused (``force``: replaced whole)
files but no run.json                          refused, always (not mfr's to delete)
=============================================  ======================================

A claimed folder is locked (:func:`lock`: ``.<name>.lock`` beside it, holding the process id
and the time) until :func:`complete`, or until the CLI's error path calls :func:`abandon`:
a second process claiming the same folder is refused with one line naming the first; the
lock of a process that died is taken over. :func:`abandon` never leaves a folder marked
``running``: a complete run that was reopened and failed before changing its outputs gets its
record back; any other gets ``status: failed`` and the error (resumable as before).
:func:`check_apart` refuses an output folder that is, holds or lies in one of the command's
input folders (a ``--force`` there would delete the input).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mfr.core.errors import MfrError, RunFolderError
from mfr.core.outputs import run_metadata, write_json
from mfr.core.run_record import RUN_FILE, read_json_record

__all__ = ["RUN_FILE", "abandon", "check_apart", "claim", "complete", "differences",
           "file_digest", "listing_digest", "lock", "read_run", "state", "unlock"]

_DIGESTS: dict[tuple[str, int, int], str] = {}
#: Folders this process claimed and has not completed: folder -> its record before the claim.
_CLAIMS: dict[Path, dict[str, Any] | None] = {}
#: Lock files this process holds.
_LOCKS: set[Path] = set()


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (remembered for the process by path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def listing_digest(root: str | Path, paths: Iterable[str] | None = None) -> str:
    """sha256 of a listing: each file's relative path, size and modification time.

    Cheap (no file is read) and changes when a file is added, removed, renamed or rewritten.
    `paths`: only these (relative to `root`; a missing one is recorded as missing); default:
    every file under `root`, walked in sorted order.
    """
    root = Path(root)
    h = hashlib.sha256()
    if paths is None:
        paths = []
        for d, dirs, files in os.walk(root):
            dirs.sort()
            rel = Path(d).relative_to(root)
            paths.extend((rel / f).as_posix() for f in sorted(files))
    for p in paths:
        try:
            st = os.stat(root / p)
            entry = f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n"
        except OSError:
            entry = f"{p}\tmissing\n"
        h.update(entry.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def read_run(out_dir: str | Path) -> dict[str, Any] | None:
    """The folder's run.json, or None when it has none (or one that is not a JSON object):
    the lenient look-up of :func:`claim` (such a folder is "foreign"); readers of a run's
    record use :func:`mfr.core.runs.read_run`, which says what is wrong."""
    try:
        return read_json_record(Path(out_dir) / RUN_FILE, "a run record")
    except MfrError:
        return None


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The keys at which two fingerprints differ, dotted (e.g. ``config.learning_rate``)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def state(out_dir: str | Path, command: str, fingerprint: Mapping[str, Any]) -> str:
    """``"absent"``, ``"complete"``, ``"running"`` (same run, interrupted or failed),
    ``"other"`` (another command or fingerprint) or ``"foreign"`` (files but no run.json)."""
    out = Path(out_dir)
    if not out.exists() or (out.is_dir() and not any(_visible(out))):
        return "absent"
    run = read_run(out)
    if run is None:
        return "foreign"
    if run.get("command") != command or run.get("fingerprint") != _jsonable(fingerprint):
        return "other"
    return "complete" if run.get("status") == "complete" else "running"


def _visible(out: Path) -> Iterable[Path]:
    return (p for p in out.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp")))


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def claim(out_dir: str | Path, command: str, fingerprint: Mapping[str, Any], *,
          config: Any = None, force: bool = False, reopen: bool = False,
          **details: Any) -> str:
    """Decide what may happen to `out_dir` (see the module docstring) before any slow work.

    Returns ``"new"``, ``"resume"`` or ``"complete"``. For ``"new"`` and ``"resume"`` the
    folder is made (checked writable), stale temporary files of a killed run are removed, and
    ``run.json`` is written with ``status: running``. ``"complete"`` changes nothing. Raises
    :class:`RunFolderError` naming what is in the folder when it may not be used.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out}: not a folder (expected an output folder for mfr {command})")
    if state(out, command, fingerprint) == "complete" and not (force or reopen):
        return "complete"  # read only: no lock
    lock(out)
    try:
        return _claim(out, command, fingerprint, config=config, force=force, reopen=reopen,
                      **details)
    except BaseException:
        if out.resolve() not in _CLAIMS:
            unlock(out)
        raise


def _claim(out: Path, command: str, fingerprint: Mapping[str, Any], *, config: Any,
           force: bool, reopen: bool, **details: Any) -> str:
    now = state(out, command, fingerprint)
    if now == "foreign":
        names = sorted(p.name for p in _visible(out))
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise RunFolderError(f"{out}: holds files that no mfr run recorded ({shown}); choose "
                             f"an empty or new folder for mfr {command}")
    if now == "other":
        run = read_run(out) or {}
        if not force:
            if run.get("command") != command:
                what = f"an `mfr {run.get('command')}` run"
            else:
                diff = differences(run.get("fingerprint"), _jsonable(fingerprint))
                what = (f"an `mfr {command}` run made from other inputs or settings "
                        f"(differs in: {', '.join(diff[:6]) or 'its record'})")
            raise RunFolderError(f"{out}: holds {what} (see its {RUN_FILE}); choose another "
                                 f"output folder, or --force to replace it whole")
        shutil.rmtree(out)
        now = "absent"
    if now == "complete" and not (force or reopen):
        return "complete"
    if now == "complete" and force:  # do it again from scratch
        shutil.rmtree(out)
    elif now == "complete":
        now = "running"
    before = read_run(out) if now == "running" else None
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.tmp"):
            stale.unlink()
        _CLAIMS[out.resolve()] = before
        write_json(out / RUN_FILE, run_metadata(_used(config, command), command=command,
                                                status="running",
                                                fingerprint=fingerprint, **details))
    except OSError as e:
        raise RunFolderError(f"{out}: cannot write here ({e.strerror}); choose another "
                             f"output folder") from None
    return "resume" if now == "running" else "new"


def _used(config: Any, command: str) -> Any:
    """What a run records of its config: the fields its command uses (a StudyConfig's
    :meth:`~mfr.core.config.StudyConfig.used_by`; a plain dict as given)."""
    return config.used_by(command) if hasattr(config, "used_by") else config


def complete(out_dir: str | Path, command: str, fingerprint: Mapping[str, Any], *,
             outputs: Iterable[str], config: Any = None, **details: Any) -> Path:
    """Write the final ``run.json``: status complete, and the sha256 of each output file
    (paths relative to `out_dir`; folders are listed file by file)."""
    out = Path(out_dir)
    _CLAIMS.pop(out.resolve(), None)
    digests: dict[str, str] = {}
    for name in outputs:
        p = out / name
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            digests[f.relative_to(out).as_posix()] = file_digest(f)
    try:
        return write_json(out / RUN_FILE, run_metadata(_used(config, command), command=command,
                                                       status="complete",
                                                       fingerprint=fingerprint,
                                                       outputs=digests, **details))
    finally:
        unlock(out)


def _outputs_intact(out: Path, run: Mapping[str, Any]) -> bool:
    try:
        return all(file_digest(out / name) == digest
                   for name, digest in (run.get("outputs") or {}).items())
    except OSError:
        return False


def abandon(reason: str) -> list[Path]:
    """The error path of a command: every folder this process claimed and did not complete
    is unlocked and never left ``running``: a complete run reopened (``--resume``) whose
    outputs are unchanged gets its complete record back; any other is marked
    ``status: failed`` with `reason` (the same run is resumed by the next claim, as an
    interrupted one is). Returns the folders."""
    done = []
    for out, before in list(_CLAIMS.items()):
        _CLAIMS.pop(out, None)
        with contextlib.suppress(OSError):
            if (before is not None and before.get("status") == "complete"
                    and _outputs_intact(out, before)):
                write_json(out / RUN_FILE, before)
            elif (run := read_run(out)) is not None and run.get("status") == "running":
                write_json(out / RUN_FILE, {**run, "status": "failed", "error": reason})
        unlock(out)
        done.append(out)
    return done


# --------------------------------------------------------------------------- locks


def _lock_path(out: Path) -> Path:
    out = Path(os.path.abspath(out))
    return out.parent / f".{out.name}.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock(out_dir: str | Path) -> Path:
    """Take the run folder's lock (``.<name>.lock`` beside it: the folder itself may be
    replaced whole): made exclusively, holding this process's id, host and start time.

    Held by another live process on this host: :class:`RunFolderError` naming it. Held by a
    process that is gone (killed): taken over. Held by this process: kept."""
    path = _lock_path(Path(out_dir))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunFolderError(f"{Path(out_dir)}: cannot write here ({path.parent}: "
                             f"{e.strerror}); choose another output folder") from None
    mine = f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid_s, host, since = (path.read_text(encoding="utf-8").split() + ["", "", ""])[:3]
            except OSError:
                continue  # released meanwhile: try again
            pid = int(pid_s) if pid_s.isdigit() else -1
            if pid == os.getpid() and host == socket.gethostname():
                _LOCKS.add(path)
                return path
            if pid > 0 and host == socket.gethostname() and _alive(pid):
                raise RunFolderError(f"{Path(out_dir)}: is being written by process {pid} "
                                     f"since {since} (lock {path}); wait for it to finish, "
                                     f"or choose another output folder") from None
            if pid > 0 and host != socket.gethostname():
                raise RunFolderError(f"{Path(out_dir)}: is being written by process {pid} on "
                                     f"{host} since {since} (lock {path}); if that process is "
                                     f"gone, delete the lock") from None
            with contextlib.suppress(FileNotFoundError):  # a dead process's: take it over
                path.unlink()
            continue
        except OSError as e:
            raise RunFolderError(f"{Path(out_dir)}: cannot write here ({e.strerror}); choose "
                                 f"another output folder") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(mine)
        _LOCKS.add(path)
        return path
    raise RunFolderError(f"{Path(out_dir)}: could not take its lock {path}; try again")


def unlock(out_dir: str | Path) -> None:
    """Release the lock this process holds on a run folder (nothing if it holds none)."""
    path = _lock_path(Path(out_dir))
    if path in _LOCKS:
        _LOCKS.discard(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --------------------------------------------------------------------------- apart


def check_apart(out_dir: str | Path, inputs: Mapping[str, str | Path | None], *,
                may_hold: Iterable[str] = (), may_lie_in: Iterable[str] = ()) -> None:
    """Refuse an output folder that is one of the inputs, holds one or lies inside one
    (``--force`` would delete the input, or the outputs would mix with it).

    `inputs`: what -> folder (None: not given; the output folder may hold one that does not
    exist: the step names it missing). `may_hold`: inputs that may lie inside the
    output folder (an image cache ``OUT/cache``); `may_lie_in`: inputs the output folder may
    lie inside (a study folder's ``evaluation/``)."""
    out = Path(os.path.abspath(Path(out_dir).expanduser()))
    with contextlib.suppress(OSError):
        out = out.resolve()
    may_hold, may_lie_in = set(may_hold), set(may_lie_in)
    for what, folder in inputs.items():
        if folder is None:
            continue
        src = Path(os.path.abspath(Path(folder).expanduser()))
        with contextlib.suppress(OSError):
            src = src.resolve()
        if out == src:
            how = "is"
        # an input that does not exist cannot be lost (the step says it is missing)
        elif src.is_relative_to(out) and what not in may_hold and src.exists():
            how = "holds"
        elif out.is_relative_to(src) and what not in may_lie_in:
            how = "lies inside"
        else:
            continue
        raise RunFolderError(f"{out_dir}: the output folder {how} the {what} {folder}, an "
                             f"input of this command; choose an output folder apart from it")
