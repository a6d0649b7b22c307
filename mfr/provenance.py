"""What made a run folder, and whether an existing folder may be reused, resumed or replaced.

Every step writes its outputs into one run folder, and that folder's ``run.json`` records:

- ``command``: the step (``partition``, ``embed``, ``train``, ...);
- ``fingerprint``: everything that determines the results: the settings that matter to this
  step and content fingerprints of its inputs (pair CSVs, the image cache's sources, the
  weights file, the dataset listing);
- ``status``: ``"running"`` from the moment the step claims the folder, ``"complete"`` when
  its last output is written;
- ``outputs``: the sha256 of each output file, on completion;
- the config and package versions (:func:`mfr.outputs.run_metadata`), and step details.

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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mfr.errors import MfrError, RunFolderError
from mfr.outputs import run_metadata, write_json
from mfr.run_record import RUN_FILE, read_json_record

__all__ = ["RUN_FILE", "claim", "complete", "differences", "file_digest", "listing_digest",
           "read_run", "state"]

_DIGESTS: dict[tuple[str, int, int], str] = {}


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
    record use :func:`mfr.runs.read_run`, which says what is wrong."""
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
    """``"absent"``, ``"complete"``, ``"running"`` (same run, interrupted), ``"other"``
    (another command or fingerprint) or ``"foreign"`` (files but no run.json)."""
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
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.tmp"):
            stale.unlink()
        write_json(out / RUN_FILE, run_metadata(config, command=command, status="running",
                                                fingerprint=fingerprint, **details))
    except OSError as e:
        raise RunFolderError(f"{out}: cannot write here ({e.strerror}); choose another "
                             f"output folder") from None
    return "resume" if now == "running" else "new"


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
    return write_json(out / RUN_FILE, run_metadata(config, command=command, status="complete",
                                                   fingerprint=fingerprint, outputs=digests,
                                                   **details))
