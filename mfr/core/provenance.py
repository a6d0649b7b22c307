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

A claimed folder is locked (:func:`lock`, :mod:`mfr.core.locks`: an ``flock`` on
``.<name>.lock`` beside the folder's real path, so an alias through a symbolic link is the
same folder) until :func:`complete`, or until the run ends otherwise: a second process
claiming the same folder is refused with one line naming the first; the lock of a process that
died is simply taken (the kernel dropped it). Every way a run can end marks it: the CLI's
error and signal paths and :func:`marks_its_runs` (the step functions, in notebooks and
scripts) call :func:`abandon`, and so does the end of the process (``atexit``); the study
runner marks a folder whose kernel died (:func:`release_unfinished`). :func:`abandon` never
leaves a folder marked ``running``: a complete run that was reopened and failed before
changing its outputs gets its record back; any other gets ``status: failed`` and the error
(resumable as before).
:func:`check_apart` refuses an output folder that is, holds or lies in one of the command's
input folders (a ``--force`` there would delete the input).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mfr.core import locks
from mfr.core.errors import RunFolderError
from mfr.core.outputs import run_metadata, write_json
from mfr.core.run_record import RUN_FILE, read_run

__all__ = ["RUN_FILE", "abandon", "check_apart", "claim", "complete", "differences", "ending",
           "file_digest", "listing_digest", "lock", "marks_its_runs",
           "release_unfinished", "state", "unlock"]

T = TypeVar("T")
_DIGESTS: dict[tuple[str, int, int], str] = {}
#: Folders this process claimed and has not completed: folder -> its record before the claim.
_CLAIMS: dict[Path, dict[str, Any] | None] = {}


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
    every file under `root`, walked in sorted order, except what mfr itself writes there: a
    folder below `root` holding a run record, a study ledger or an image cache's record
    (an ``--out`` or ``--cache-dir`` inside the data root), and lock and temporary files,
    so that writing a run's outputs inside its data root does not change the data it read.
    """
    root = Path(root)
    h = hashlib.sha256()
    if paths is None:
        paths = []
        for d, dirs, files in os.walk(root):
            dirs[:] = sorted(x for x in dirs if not _mfr_folder(Path(d) / x))
            rel = Path(d).relative_to(root)
            paths.extend((rel / f).as_posix() for f in sorted(files) if not _mfr_file(f))
    for p in paths:
        try:
            st = os.stat(root / p)
            entry = f"{p}\t{st.st_size}\t{st.st_mtime_ns}\n"
        except OSError:
            entry = f"{p}\tmissing\n"
        h.update(entry.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


#: the files that mark a folder as mfr's own output (a run, a study, an image cache)
_MFR_RECORDS = (RUN_FILE, "study.json", ".mfr-image-cache.json")


def _mfr_folder(folder: Path) -> bool:
    return any(os.path.isfile(folder / name) for name in _MFR_RECORDS)


def _mfr_file(name: str) -> bool:
    return name.startswith(".") and (name.endswith(".lock") or name.endswith(".tmp"))


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
    run = read_run(out, lenient=True)
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
        run = read_run(out, lenient=True) or {}
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
    before = read_run(out, lenient=True) if now == "running" else None
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
    digests: dict[str, str] = {}
    for name in outputs:
        p = out / name
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            digests[f.relative_to(out).as_posix()] = file_digest(f)
    # until the record is written the run is not complete: a failure here is abandoned
    path = write_json(out / RUN_FILE, run_metadata(_used(config, command), command=command,
                                                   status="complete", fingerprint=fingerprint,
                                                   outputs=digests, **details))
    _CLAIMS.pop(out.resolve(), None)
    unlock(out)
    return path


def _outputs_intact(out: Path, run: Mapping[str, Any]) -> bool:
    outputs = run.get("outputs")
    if not isinstance(outputs, Mapping):
        return False
    try:
        return all(file_digest(out / name) == digest for name, digest in outputs.items())
    except OSError:
        return False


def abandon(reason: str, only: Iterable[Path] | None = None) -> list[Path]:
    """The error path of a command: every folder this process claimed and did not complete
    (`only`: of these) is unlocked and never left ``running``: a complete run reopened
    (``--resume``) whose outputs are unchanged gets its complete record back; any other is
    marked ``status: failed`` with `reason` (the same run is resumed by the next claim, as an
    interrupted one is). Returns the folders."""
    done = []
    for out, before in list(_CLAIMS.items()):
        if only is not None and out not in only:
            continue
        with contextlib.suppress(OSError):
            if (before is not None and before.get("status") == "complete"
                    and _outputs_intact(out, before)):
                write_json(out / RUN_FILE, dict(before))
            elif (run := read_run(out, lenient=True)) is not None and run.get("status") == "running":
                write_json(out / RUN_FILE, {**run, "status": "failed", "error": reason})
        unlock(out)
        _CLAIMS.pop(out, None)  # last: cut short (a second signal), the next call redoes it
        done.append(out)
    return done


# --------------------------------------------------------------------------- locks


def lock(out_dir: str | Path) -> Path:
    """Take the run folder's lock (:mod:`mfr.core.locks`: ``.<name>.lock`` beside the folder's
    real path, the folder itself may be replaced whole), or :class:`RunFolderError` naming
    the live process that holds it. A dead process's lock is simply taken (the kernel dropped
    it); this process's is kept."""
    return locks.acquire(out_dir)


def unlock(out_dir: str | Path) -> None:
    """Release the lock this process holds on a run folder (nothing if it holds none)."""
    locks.release(out_dir)


def release_unfinished(run_dir: str | Path, reason: str) -> bool:
    """Mark a run folder that another process claimed and left ``running`` (it was killed,
    or its kernel died) ``failed`` with `reason`, if no live process holds its lock now;
    whether it was marked. The study runner's word for a step whose kernel it lost."""
    out = Path(run_dir)
    run = read_run(out, lenient=True)
    if run is None or run.get("status") != "running" or locks.held(out):
        return False
    try:
        locks.acquire(out)
    except RunFolderError:
        return False  # still being written: its process marks it
    try:
        run = read_run(out, lenient=True)
        if run is None or run.get("status") != "running":
            return False
        write_json(out / RUN_FILE, {**run, "status": "failed", "error": reason})
        return True
    finally:
        locks.release(out)


def marks_its_runs(fn: Callable[..., T]) -> Callable[..., T]:
    """A step function that never leaves a run folder it claimed ``running`` nor locked,
    however it ends: an exception (or Ctrl-C, or a diverging training) marks each folder
    it claimed and did not complete ``failed`` with the error (:func:`abandon`), and so
    does a return before :func:`complete` (a bug: said so). For steps called from
    notebooks and scripts; the CLI does the same for a whole command."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        before = set(_CLAIMS)
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            abandon(ending(e), only=set(_CLAIMS) - before)
            raise
        left = set(_CLAIMS) - before
        if left:
            abandon(f"{fn.__name__} returned before completing its run", only=left)
        return result

    return wrapper


def ending(e: BaseException) -> str:
    """How a run ended, in one line, for its record's ``error``."""
    if isinstance(e, KeyboardInterrupt):
        return f"interrupted ({e})" if str(e) else "interrupted"
    if isinstance(e, MemoryError):
        return "MemoryError: out of memory"
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@atexit.register
def _abandon_at_exit() -> None:
    """A process that ends with runs it claimed and did not complete (a notebook kernel shut
    down after a failed cell, a script that returned early) marks and unlocks them."""
    if _CLAIMS:
        abandon("the process ended before the run completed")


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
